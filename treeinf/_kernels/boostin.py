"""BoostIn's fused fit kernels and training-term recomputation.

``fit_leaves_kernel`` walks every training row through every tree once
(groups of rows, tree by tree), writes the leaf ids (tree-major, smallest
unsigned type), then walks the group's margins in boosting order, evaluating
the loss derivatives before each round and accumulating the weighted hessian
sum of every leaf. Rows are cut
into fixed chunks (their size depends on n only, never on the thread count);
each chunk owns one row of partial sums, added in chunk order afterwards, so
results do not depend on the number of threads.

``fit_terms_kernel`` then rebuilds the margins from the stored leaf ids (no
second traversal), evaluates g and h again and writes the training term
``D[j, i] = eta * w_i * (g_i + v_l h_i) / (H_l + lambda_l)`` directly in its
final layout and dtype, together with the float64 self-influence
``sum_j g_i D[j, i]``. The same kernel recomputes float64 terms of any rows
from the leaf ids alone (``rows``), which is how label edits and the exact
rescoring of float32 candidates get float64 terms without storing them, and
global influence in float32 mode is a float64 dot product on the fly
(``leaf_table``). ``rescore_kernel`` sums candidates' float64 terms exactly as
the co-leaf kernels would.

No kernel allocates an n x n_trees temporary; every output is allocated by
the caller.
"""
import numpy as np

from .._losses import grad_hess_1, grad_hess_row
from .._numba import njit, pnjit, prange
from .stats import NS_COUNT, NS_G, NS_H, NS_SCALE, NS_WEIGHT, NS_Y, round_end
from .traversal import _leaf_of


#: rows traversed together, tree by tree (a tree's nodes stay in cache for the
#: group), before their derivative chains are walked (the traversals are
#: independent and overlap; the margin chain of one row is serial)
GROUP = 32


def chunk_rows(n):
    """Rows per chunk of ``fit_leaves_kernel``: a function of n only (so the
    leaf sums do not depend on the thread count), about 64 chunks, between
    256 and 16384 rows."""
    c = -(-n // 64)
    return int(min(16384, max(256, c)))


@njit
def _block_derivatives(objective, factor, z, y, ids, B, G, Hh, kk):
    """G, Hh (B, K) of the rows ids[:B] at their margins z (B, K)."""
    K = z.shape[1]
    if K == 1:
        for p in range(B):
            g, h = grad_hess_1(objective, z[p, 0], y[ids[p]])
            G[p, 0] = g
            Hh[p, 0] = h
    else:
        for p in range(B):
            grad_hess_row(objective, z[p], y[ids[p]], factor, G[p], Hh[p], kk)


@pnjit
def fit_leaves_kernel(X, tree_root, left, right, feature, threshold, kind, missing,
                      default_left, cat_start, cat_len, cat_bits, node_leaf, tree_round,
                      tree_output, leaf_offset, leaf_value, base, y, w, objective, factor,
                      chunk, leaves_T, H_part, S_part):
    """Leaf ids and per-chunk weighted hessian sums of every leaf.

    S_part : float64 (n_chunks, n_leaves_total, N_NEWTON_SUMS) or (0, 0, 0).
        When given, also written: the per-leaf sums of the data check
        (``treeinf._kernels.stats.newton_sums_kernel``'s layout) of each
        chunk, so that the check and BoostIn's fit share one pass.

    X : float64 (n, n_features) encoded rows.
    leaves_T : unsigned integer (n_trees, n), written: compact leaf id of row i
        in tree j at [j, i].
    H_part : float64 (n_chunks, n_leaves_total), written: row c holds the
        sum of w_i h_i(tree j) over the rows i of chunk c (rows
        [c*chunk, (c+1)*chunk)) in each leaf, rows added in ascending order;
        h at the margin before the tree's round.
    """
    n = X.shape[0]
    n_trees = tree_root.shape[0]
    K = base.shape[0]
    n_chunks = H_part.shape[0]
    want_sums = S_part.shape[0] > 0
    for c in prange(n_chunks):
        Hc = H_part[c]
        Hc[:] = 0.0
        if want_sums:
            S_part[c] = 0.0
        z = np.empty((GROUP, K))
        G = np.empty((GROUP, K))
        Hh = np.empty((GROUP, K))
        kk = np.empty(K)
        ids = np.empty(GROUP, dtype=np.int64)
        i1 = min(n, (c + 1) * chunk)
        for g0 in range(c * chunk, i1, GROUP):
            B = min(i1, g0 + GROUP) - g0
            for p in range(B):
                ids[p] = g0 + p
                for q in range(K):
                    z[p, q] = base[q]
            # tree by tree over the group: a tree's nodes stay in cache
            for jj in range(n_trees):
                r = tree_root[jj]
                for p in range(B):
                    i = g0 + p
                    leaves_T[jj, i] = _leaf_of(X[i], r, left, right, feature, threshold, kind,
                                               missing, default_left, cat_start, cat_len,
                                               cat_bits, node_leaf)
            j = 0
            while j < n_trees:
                _block_derivatives(objective, factor, z, y, ids, B, G, Hh, kk)
                j_end = round_end(tree_round, j)
                for jj in range(j, j_end):
                    q = tree_output[jj]
                    off = leaf_offset[jj]
                    lrow = leaves_T[jj]
                    for p in range(B):
                        i = g0 + p
                        pos = off + lrow[i]
                        Hc[pos] += w[i] * Hh[p, q]
                        if want_sums and w[i] != 0.0:
                            wi = w[i]
                            gq = G[p, q]
                            hq = Hh[p, q]
                            S_part[c, pos, NS_G] += wi * gq
                            S_part[c, pos, NS_H] += wi * hq
                            S_part[c, pos, NS_SCALE] += wi * (abs(gq) + hq * (1.0 + abs(z[p, q])))
                            S_part[c, pos, NS_WEIGHT] += wi
                            S_part[c, pos, NS_COUNT] += 1.0
                            if objective == 0:
                                S_part[c, pos, NS_Y] += wi * y[i]
                            elif (K == 1 and y[i] == 1.0) or (K > 1 and int(y[i]) == q):
                                S_part[c, pos, NS_Y] += wi
                        z[p, q] += leaf_value[pos]
                j = j_end


@pnjit
def fit_terms_kernel(leaves_T, rows, tree_round, tree_output, leaf_offset, leaf_value, value,
                     denom, base, y, y_edit, w, eta, objective, factor, leaf_table, block,
                     terms_T, dot_out):
    """Training terms of the rows ``rows`` from their leaf ids, in float64.

    leaves_T : (n_trees, n) compact leaf ids of all training rows.
    rows : int64 (r,) the rows to compute, or an empty array for all rows
        0..n-1 in order.
    value : float64 (n_leaves_total,) numerator leaf value v (unshrunk for
        the exact variant); denom : float64 (n_leaves_total,) H + lambda.
    y : float64 (n,) labels; y_edit : float64 (n,) edited labels, or an
        empty array. Without an edit the term is
        ``eta * w (g + v h) / denom``; with one it is the label-edit term
        ``eta * w (g - g_edit) / denom`` (h does not depend on the label for
        the supported losses). A leaf with denom <= 0 gives 0.
    leaf_table : float64 (n_leaves_total,) or empty. dot_out[p] receives
        sum_j a_j D[j, p] in float64 (before any rounding of the stored
        terms), with a_j the row's own gradient g (self-influence) when
        ``leaf_table`` is empty, else ``leaf_table`` at the row's leaf.
    terms_T : float32 or float64 (n_trees, r), written: the term of the
        p-th computed row in tree j at [j, p] (rounded to its dtype); or an
        array of shape (0, 0) to skip storing terms.
    dot_out : float64 (r,), written; or empty to skip the sum.
    """
    n_trees = leaves_T.shape[0]
    use_rows = rows.shape[0] > 0
    r_all = rows.shape[0] if use_rows else leaves_T.shape[1]
    edit = y_edit.shape[0] > 0
    want_dot = dot_out.shape[0] > 0
    use_table = leaf_table.shape[0] > 0
    store = terms_T.shape[0] > 0
    K = base.shape[0]
    n_blocks = (r_all + block - 1) // block
    for b in prange(n_blocks):
        p0 = b * block
        B = min(r_all, p0 + block) - p0
        z = np.empty((B, K))
        G = np.empty((B, K))
        Hh = np.empty((B, K))
        Ge = np.empty((B, K))
        He = np.empty((B, K))
        kk = np.empty(K)
        ids = np.empty(B, dtype=np.int64)
        acc = np.zeros(B)
        for p in range(B):
            ids[p] = rows[p0 + p] if use_rows else p0 + p
            for q in range(K):
                z[p, q] = base[q]
        j = 0
        while j < n_trees:
            _block_derivatives(objective, factor, z, y, ids, B, G, Hh, kk)
            if edit:
                _block_derivatives(objective, factor, z, y_edit, ids, B, Ge, He, kk)
            j_end = round_end(tree_round, j)
            for jj in range(j, j_end):
                q = tree_output[jj]
                off = leaf_offset[jj]
                lrow = leaves_T[jj]
                for p in range(B):
                    i = ids[p]
                    pos = off + lrow[i]
                    d = denom[pos]
                    t = 0.0
                    if d > 0.0:
                        if edit:
                            t = eta * w[i] * (G[p, q] - Ge[p, q]) / d
                        else:
                            t = eta * w[i] * (G[p, q] + value[pos] * Hh[p, q]) / d
                    if store:
                        terms_T[jj, p0 + p] = t
                    if use_table:
                        acc[p] += leaf_table[pos] * t
                    else:
                        acc[p] += G[p, q] * t
                    z[p, q] += leaf_value[pos]
            j = j_end
        if want_dot:
            for p in range(B):
                dot_out[p0 + p] = acc[p]


@njit
def sum_parts(parts, out):
    """out[l] = sum over c of parts[c, l], in order of c (deterministic)."""
    out[:] = 0.0
    for c in range(parts.shape[0]):
        for l in range(parts.shape[1]):
            out[l] += parts[c, l]


@pnjit
def leaf_abs_max(leaves_T, leaf_offset, terms_T, out):
    """out[pos] = max |terms_T[j, i]| over rows i in leaf pos (0 if empty).

    Parallel over trees; each tree owns its leaves' entries."""
    n_trees, n = leaves_T.shape
    for j in prange(n_trees):
        off = leaf_offset[j]
        for pos in range(off, leaf_offset[j + 1]):
            out[pos] = 0.0
        for i in range(n):
            a = abs(np.float64(terms_T[j, i]))
            pos = off + leaves_T[j, i]
            if a > out[pos]:
                out[pos] = a


@pnjit
def rescore_kernel(test_leaves, test_values, leaves_T, rows, lo, terms_T, cand, cand_n, out):
    """Exact influence of candidate training rows on test rows.

    rows : int64 (r,) candidate training rows; terms_T : float64 (n_trees,
    hi - lo) the terms of rows[lo:hi]; cand : int64 (m, c) positions into
    ``rows`` of each test row's candidates, the first cand_n[e] valid;
    out : float64 (m, c), written where the position is in [lo, hi).
    The sum runs over trees in order, adding a_j * D[j] where the leaves
    match and a_j != 0: the same operations, in the same order, as the
    co-leaf kernels on float64 terms, so the values are bit-identical.
    """
    m, n_trees = test_leaves.shape
    for e in prange(m):
        for r in range(cand_n[e]):
            col = cand[e, r] - lo
            if col < 0 or col >= terms_T.shape[1]:
                continue
            i = rows[col + lo]
            s = 0.0
            for j in range(n_trees):
                a = test_values[e, j]
                if a == 0.0:
                    continue
                if leaves_T[j, i] == test_leaves[e, j]:
                    s += a * terms_T[j, col]
            out[e, r] = s
