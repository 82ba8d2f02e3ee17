"""Kernels of the fixed-structure methods (LeafInfluence, LeafRefit).

Notation (SPEC §3): trees j in round-major order, leaf L = leaf_offset[j] +
compact leaf, ``b[L] = -eta / (H_L + lambda_L)`` (0 for leaves that L1 zeroed),
``cmul[j, r] = w_r (h_rj + v_L k_rj)`` and ``src[j, r]`` the removed row's own
term (``g + v h`` for removal, ``g - g*`` for a label edit). The derivative of
the leaf values in the removed row's weight follows

    J_L = b_L * (sum_{r in L, r in U} cmul[j, r] Delta_r + 1[i in L] src[j, i])

with Delta_r the derivative of row r's margin before the tree's round. All
arrays are tree-major (n_trees, n) so each tree's pass is sequential.
"""
import math

import numpy as np

from .._losses import grad_hess_row
from .stats import round_end
from .._numba import njit, pnjit, prange


# ------------------------------------------------------------ row terms
@pnjit
def row_terms_kernel(leaves, leaf_offset, v, w, g, h, k, cmul_T, src_T):
    """The per-row terms of the recursion, tree-major.

    leaves : int32 (n, n_trees); v : float64 (n_leaves_total,) leaf values
    over eta; w : (n,); g, h, k : float64 (n, n_trees). Writes
    ``cmul_T[j, r] = w_r (h_rj + v_L k_rj)`` and ``src_T[j, r] = w_r (g_rj +
    v_L h_rj)``, L the leaf of row r in tree j (both float64 (n_trees, n)).
    """
    n, n_trees = leaves.shape
    for r in prange(n):
        wr = w[r]
        for j in range(n_trees):
            vl = v[leaf_offset[j] + leaves[r, j]]
            cmul_T[j, r] = wr * (h[r, j] + vl * k[r, j])
            src_T[j, r] = wr * (g[r, j] + vl * h[r, j])


# --------------------------------------------------------------- SinglePoint
@pnjit
def single_point_kernel(leaves_T, tree_round, tree_output, leaf_offset, b, cmul_T, src_T,
                        n_outputs, out_T):
    """J along each row's own path when only the removed row is updated.

    out_T : float64 (n_trees, n): J of the removed row's leaf in each tree.
    """
    n_trees, n = leaves_T.shape
    for i in prange(n):
        delta = np.zeros(n_outputs)
        j = 0
        while j < n_trees:
            j_end = round_end(tree_round, j)
            for jj in range(j, j_end):
                c = tree_output[jj]
                L = leaf_offset[jj] + leaves_T[jj, i]
                out_T[jj, i] = b[L] * (cmul_T[jj, i] * delta[c] + src_T[jj, i])
            for jj in range(j, j_end):
                delta[tree_output[jj]] += out_T[jj, i]
            j = j_end


# ------------------------------------------------------------------ AllPoints
@njit
def _adjoint_sweep(u, leaves_T, tree_round, tree_output, leaf_offset, b, cmul_T, src_T,
                   n_outputs, out):
    """Backward sweep for one query; ``u`` (n_leaves_total,) holds q on entry.

    Adds -sum_j u_L b_L src[j, i] to out[i] for every training row i, which is
    the AllPoints LeafInfluence of row i on the query (times its weight, which
    ``src`` already carries).
    """
    n_trees, n = leaves_T.shape
    rho = np.zeros((n_outputs, n))
    j_end = n_trees
    while j_end > 0:
        r = tree_round[j_end - 1]
        j = j_end - 1
        while j > 0 and tree_round[j - 1] == r:
            j -= 1
        # u of this round's leaves: q + rows' accumulated later-round terms
        for jj in range(j, j_end):
            c = tree_output[jj]
            off = leaf_offset[jj]
            lcol = leaves_T[jj]
            for i in range(n):
                u[off + lcol[i]] += rho[c, i]
        for jj in range(j, j_end):
            c = tree_output[jj]
            off = leaf_offset[jj]
            lcol = leaves_T[jj]
            ccol = cmul_T[jj]
            scol = src_T[jj]
            for i in range(n):
                L = off + lcol[i]
                ub = u[L] * b[L]
                rho[c, i] += ccol[i] * ub
                out[i] -= scol[i] * ub
        j_end = j


@pnjit
def all_points_kernel(test_leaves, q, leaves_T, tree_round, tree_output, leaf_offset, b,
                      cmul_T, src_T, n_outputs, out):
    """AllPoints LeafInfluence, out (m, n) overwritten; parallel over test rows."""
    m = test_leaves.shape[0]
    n_trees = test_leaves.shape[1]
    n_leaves = b.shape[0]
    for e in prange(m):
        u = np.zeros(n_leaves)
        for j in range(n_trees):
            u[leaf_offset[j] + test_leaves[e, j]] += q[e, j]
        out[e, :] = 0.0
        _adjoint_sweep(u, leaves_T, tree_round, tree_output, leaf_offset, b, cmul_T,
                       src_T, n_outputs, out[e])


@njit
def adjoint_single(u, leaves_T, tree_round, tree_output, leaf_offset, b, cmul_T, src_T,
                   n_outputs):
    """One AllPoints sweep for a summed query ``u``; returns (n,)."""
    out = np.zeros(leaves_T.shape[1])
    _adjoint_sweep(u, leaves_T, tree_round, tree_output, leaf_offset, b, cmul_T, src_T,
                   n_outputs, out)
    return out


@pnjit
def all_points_self_kernel(train_q, leaves_T, tree_round, tree_output, leaf_offset, b,
                           cmul_T, src_T, n_outputs, i_start, i_stop, out):
    """Self-influence out[i] (out is (n,)) of training rows i_start..i_stop-1:
    one sweep per training row on its own loss."""
    n_trees, n = leaves_T.shape
    n_leaves = b.shape[0]
    for i in prange(i_start, i_stop):
        u = np.zeros(n_leaves)
        for j in range(n_trees):
            u[leaf_offset[j] + leaves_T[j, i]] += train_q[i, j]
        row = np.zeros(n)
        _adjoint_sweep(u, leaves_T, tree_round, tree_output, leaf_offset, b, cmul_T,
                       src_T, n_outputs, row)
        out[i] = row[i]


# ----------------------------------------------------------------- TopKLeaves
@njit
def _score_pass(dc, lcol, ccol, score, acc, n_l, nb):
    """Per leaf l and removed row q: score[l, q] = sum |dc[r, q]|, acc[l, q] =
    sum cmul[r] dc[r, q] over the leaf's rows r, in ascending row order."""
    for l in range(n_l):
        for q in range(nb):
            score[l, q] = 0.0
            acc[l, q] = 0.0
    for r in range(dc.shape[0]):
        l = lcol[r]
        cm = ccol[r]
        for q in range(nb):
            d = dc[r, q]
            score[l, q] += abs(d)
            acc[l, q] += cm * d


@njit
def _update_score_pass(dc, lprev, u, lcol, ccol, score, acc, n_l, nb):
    """:func:`_score_pass` after adding the previous tree's leaf increments
    ``u[lprev[r], q]`` to every dc[r, q] (one pass instead of two)."""
    for l in range(n_l):
        for q in range(nb):
            score[l, q] = 0.0
            acc[l, q] = 0.0
    for r in range(dc.shape[0]):
        lp = lprev[r]
        l = lcol[r]
        cm = ccol[r]
        for q in range(nb):
            d = dc[r, q] + u[lp, q]
            dc[r, q] = d
            score[l, q] += abs(d)
            acc[l, q] += cm * d


@njit
def _update_pass(dc, lcol, u, nb):
    for r in range(dc.shape[0]):
        l = lcol[r]
        for q in range(nb):
            dc[r, q] += u[l, q]


@pnjit
def top_k_leaves_kernel(k, leaves_T, tree_round, tree_output, leaf_offset, b, cmul_T,
                        src_T, n_outputs, score_floor, batch, i_start, i_stop, sel_leaf,
                        sel_val):
    """Sparse leaf derivatives of removed rows i_start..i_stop-1 with the
    TopKLeaves update set.

    For each tree, the k leaves with the largest sum of |Delta| over their rows
    (ties: lower leaf index) and the removed row's leaf are updated. Sums at
    or below ``score_floor`` count as 0 (rounding noise, e.g. g + v h of a
    pure leaf, must not decide a tie). Every sum runs over the leaf's rows in
    ascending order.

    Removed rows are processed in batches of ``batch`` (parallel over
    batches): Delta is an (n_outputs, n, batch) block, so one sequential pass
    over the rows per tree forms the scores and the sums ``sum cmul Delta`` of
    every leaf for the whole batch (the inner loop over the batch vectorises),
    and the previous tree's leaf changes are added to Delta in that same pass.
    Each removed row's numbers do not depend on the batch it is in.
    sel_leaf : int64 (n, n_trees, k+1), -1 where unused; sel_val : float64 same.
    Rows i_start..i_stop-1 of both are written.
    """
    n_trees, n = leaves_T.shape
    max_leaves = 0
    for j in range(n_trees):
        max_leaves = max(max_leaves, leaf_offset[j + 1] - leaf_offset[j])
    n_batches = (i_stop - i_start + batch - 1) // batch
    for bi in prange(n_batches):
        r0 = i_start + bi * batch
        nb = min(batch, i_stop - r0)
        delta = np.zeros((n_outputs, n, nb))
        score = np.empty((max_leaves, nb))
        acc = np.empty((max_leaves, nb))
        # per output: the leaf changes of its last tree, not yet in delta
        pend = np.zeros((n_outputs, max_leaves, nb))
        pend_tree = np.full(n_outputs, -1, dtype=np.int64)
        chosen = np.empty(k, dtype=np.int64)
        j = 0
        while j < n_trees:
            j_end = round_end(tree_round, j)
            for jj in range(j, j_end):
                c = tree_output[jj]
                off = leaf_offset[jj]
                n_l = leaf_offset[jj + 1] - off
                lcol = leaves_T[jj]
                ccol = cmul_T[jj]
                dc = delta[c]
                if pend_tree[c] >= 0:
                    _update_score_pass(dc, leaves_T[pend_tree[c]], pend[c], lcol, ccol,
                                       score, acc, n_l, nb)
                    pend_tree[c] = -1
                else:
                    _score_pass(dc, lcol, ccol, score, acc, n_l, nb)
                for q in range(nb):
                    i = r0 + q
                    for l in range(n_l):
                        if score[l, q] <= score_floor:
                            score[l, q] = 0.0
                    kk = min(k, n_l)
                    for s in range(kk):  # selection by repeated max, ties -> lower index
                        best = -1
                        for l in range(n_l):
                            taken = False
                            for t in range(s):
                                if chosen[t] == l:
                                    taken = True
                                    break
                            if not taken and (best < 0 or score[l, q] > score[best, q]):
                                best = l
                        chosen[s] = best
                    own = lcol[i]
                    own_in = False
                    for s in range(kk):
                        l = chosen[s]
                        a = acc[l, q]
                        if l == own:
                            a += src_T[jj, i]
                            own_in = True
                        sel_leaf[i, jj, s] = off + l
                        sel_val[i, jj, s] = b[off + l] * a
                    for s in range(kk, k):
                        sel_leaf[i, jj, s] = -1
                        sel_val[i, jj, s] = 0.0
                    if own_in:
                        sel_leaf[i, jj, k] = -1
                        sel_val[i, jj, k] = 0.0
                    else:
                        L = off + own
                        sel_leaf[i, jj, k] = L
                        sel_val[i, jj, k] = b[L] * (ccol[i] * dc[i, q] + src_T[jj, i])
            # margins move after the whole round: the removed rows' own terms
            # now, the chosen leaves' changes in the output's next pass (a row
            # gets at most one non-zero change per tree, so the order is free)
            for jj in range(j, j_end):
                c = tree_output[jj]
                off = leaf_offset[jj]
                if pend_tree[c] >= 0:  # the output had no tree in this round
                    _update_pass(delta[c], leaves_T[pend_tree[c]], pend[c], nb)
                u = pend[c]
                for l in range(leaf_offset[jj + 1] - off):
                    for q in range(nb):
                        u[l, q] = 0.0
                for q in range(nb):
                    i = r0 + q
                    for s in range(k):
                        L = sel_leaf[i, jj, s]
                        if L >= 0:
                            u[L - off, q] = sel_val[i, jj, s]
                    if sel_leaf[i, jj, k] >= 0:
                        delta[c, i, q] += sel_val[i, jj, k]
                pend_tree[c] = jj
            j = j_end


@njit
def sparse_to_csr(sel_leaf, sel_val, n_leaves_total, ptr, idx, vals):
    """Group (row, leaf, value) triples by leaf: rows of leaf L are
    idx[ptr[L]:ptr[L+1]] with values vals[...]. Returns the number of entries."""
    n, T, s = sel_leaf.shape
    counts = np.zeros(n_leaves_total + 1, dtype=np.int64)
    for i in range(n):
        for j in range(T):
            for q in range(s):
                L = sel_leaf[i, j, q]
                if L >= 0:
                    counts[L + 1] += 1
    for L in range(n_leaves_total):
        counts[L + 1] += counts[L]
    for L in range(n_leaves_total + 1):
        ptr[L] = counts[L]
    for i in range(n):
        for j in range(T):
            for q in range(s):
                L = sel_leaf[i, j, q]
                if L >= 0:
                    pos = counts[L]
                    idx[pos] = i
                    vals[pos] = sel_val[i, j, q]
                    counts[L] += 1
    return ptr[n_leaves_total]


# ------------------------------------------------------------------ LeafRefit
@njit
def _leaf_value(G, H, lam, alpha, eta):
    if alpha > 0.0:
        if G > alpha:
            G = G - alpha
        elif G < -alpha:
            G = G + alpha
        else:
            return 0.0
    d = H + lam
    if d <= 0.0:
        return 0.0
    return -eta * G / d


@pnjit
def refit_kernel(update_set, objective, factor, eta, alpha, y, y_new, w, remove,
                 margin_before, leaves_T, tree_round, tree_output, leaf_offset, ptr, idx,
                 G, H, lam, leaf_base, test_leaves, test_margin, test_y, diag_only, i_start,
                 i_stop, out):
    """Exact fixed-structure refit without (or with a relabelled) training row.

    For each row i (parallel): walk the trees, recompute every leaf whose
    statistics change, with g, h at the refitted margins before the round,
    and accumulate the leaf changes; then the test loss change
    l(y_e, F(x_e) + dF) - l(y_e, F(x_e)) goes to out[i, e].

    update_set : -1 all rows, 0 only the removed row, k >= 1 rows of the k
        leaves with the largest sum |Delta| (and the removed row).
    remove : True to drop row i; False to change its label to y_new[i].
    margin_before : (n_rounds, K, n) original margins before each round.
    G, H : (n_leaves_total,) original weighted leaf sums; lam per leaf;
    leaf_base : the leaf values those sums give (the change is measured from them).
    diag_only : the test rows are the training rows and only out[i, 0], row i's
        change of its own loss, is wanted (self-influence).
    i_start, i_stop : the rows i refitted (rows i_start..i_stop-1 of out are written).
    """
    n_trees, n = leaves_T.shape
    K = margin_before.shape[1]
    m = test_leaves.shape[0]
    n_leaves = leaf_base.shape[0]
    max_leaves = 0
    for j in range(n_trees):
        max_leaves = max(max_leaves, leaf_offset[j + 1] - leaf_offset[j])
    for i in prange(i_start, i_stop):
        delta = np.zeros((K, n))
        pend = np.zeros((K, n))
        touched = np.zeros(n, dtype=np.bool_)
        tlist = np.empty(n, dtype=np.int64)
        nt = 0
        change = np.zeros(n_leaves)
        dG = np.zeros(max_leaves)
        dH = np.zeros(max_leaves)
        score = np.zeros(max_leaves)
        upd = np.zeros(max_leaves, dtype=np.bool_)
        z = np.empty(K)
        g = np.empty(K)
        h = np.empty(K)
        k3 = np.empty(K)
        g0 = np.empty(K)
        h0 = np.empty(K)
        j = 0
        while j < n_trees:
            rd = tree_round[j]
            j_end = round_end(tree_round, j)
            nt_round = nt  # rows whose margins have moved before this round
            for jj in range(j, j_end):
                c = tree_output[jj]
                off = leaf_offset[jj]
                n_l = leaf_offset[jj + 1] - off
                lcol = leaves_T[jj]
                for l in range(n_l):
                    dG[l] = 0.0
                    dH[l] = 0.0
                for t in range(nt_round):
                    rr = tlist[t]
                    if rr == i:
                        continue
                    for cc in range(K):
                        z[cc] = margin_before[rd, cc, rr] + delta[cc, rr]
                    grad_hess_row(objective, z, y[rr], factor, g, h, k3)
                    for cc in range(K):
                        z[cc] = margin_before[rd, cc, rr]
                    grad_hess_row(objective, z, y[rr], factor, g0, h0, k3)
                    l = lcol[rr]
                    dG[l] += w[rr] * (g[c] - g0[c])
                    dH[l] += w[rr] * (h[c] - h0[c])
                # the removed (or relabelled) row: out at its original margin
                for cc in range(K):
                    z[cc] = margin_before[rd, cc, i]
                grad_hess_row(objective, z, y[i], factor, g0, h0, k3)
                li = lcol[i]
                dG[li] -= w[i] * g0[c]
                dH[li] -= w[i] * h0[c]
                if not remove:  # back in with its new label at its refitted margin
                    for cc in range(K):
                        z[cc] = margin_before[rd, cc, i] + delta[cc, i]
                    grad_hess_row(objective, z, y_new[i], factor, g, h, k3)
                    dG[li] += w[i] * g[c]
                    dH[li] += w[i] * h[c]
                for l in range(n_l):
                    L = off + l
                    if dG[l] != 0.0 or dH[l] != 0.0:
                        change[L] = _leaf_value(G[L] + dG[l], H[L] + dH[l], lam[L], alpha,
                                                eta) - leaf_base[L]
                    else:
                        change[L] = 0.0
                # the leaves whose rows follow the refit
                for l in range(n_l):
                    upd[l] = update_set < 0
                if update_set > 0:
                    for l in range(n_l):
                        score[l] = 0.0
                    for t in range(nt_round):
                        rr = tlist[t]
                        score[lcol[rr]] += abs(delta[c, rr])
                    for s in range(min(update_set, n_l)):
                        best = -1
                        for l in range(n_l):
                            if not upd[l] and (best < 0 or score[l] > score[best]):
                                best = l
                        upd[best] = True
                for l in range(n_l):
                    L = off + l
                    if upd[l] and change[L] != 0.0:
                        for p in range(ptr[L], ptr[L + 1]):
                            rr = idx[p]
                            pend[c, rr] += change[L]
                            if not touched[rr]:
                                touched[rr] = True
                                tlist[nt] = rr
                                nt += 1
                if not upd[li] and change[off + li] != 0.0:
                    pend[c, i] += change[off + li]
                    if not touched[i]:
                        touched[i] = True
                        tlist[nt] = i
                        nt += 1
            # margins move after the whole round
            for t in range(nt):
                rr = tlist[t]
                for cc in range(K):
                    delta[cc, rr] += pend[cc, rr]
                    pend[cc, rr] = 0.0
            j = j_end
        for e in range(i, i + 1) if diag_only else range(m):
            for cc in range(K):
                z[cc] = test_margin[e, cc]
            for jj in range(n_trees):
                z[tree_output[jj]] += change[leaf_offset[jj] + test_leaves[e, jj]]
            col = 0 if diag_only else e
            out[i, col] = _row_loss(objective, z, test_y[e]) - _row_loss(
                objective, test_margin[e], test_y[e])


@njit
def _row_loss(objective, z, y):
    if objective == 0:
        d = y - z[0]
        return 0.5 * d * d
    if objective == 1:
        if z[0] >= 0:
            p = 1.0 / (1.0 + math.exp(-z[0]))
        else:
            ez = math.exp(z[0])
            p = ez / (1.0 + ez)
        p = min(max(p, 1e-5), 1.0 - 1e-5)
        return -math.log(p) if y == 1.0 else -math.log(1.0 - p)
    mx = z[0]
    for c in range(z.shape[0]):
        mx = max(mx, z[c])
    s = 0.0
    for c in range(z.shape[0]):
        s += math.exp(z[c] - mx)
    p = math.exp(z[int(y)] - mx) / s
    p = min(max(p, 1e-5), 1.0 - 1e-5)
    return -math.log(p)
