"""Kernels of TREX: sparse kernel features and representer-point influence.

Kernel features are built from per-leaf *entry lists*: every leaf of every
tree owns a short list of (column, value) pairs (one pair for the leaf
kernels, one per node of its root-to-leaf path for the path kernels), and a
row's feature vector concatenates the lists of the leaves it reaches. Rows'
node paths are never traversed again: path membership comes from the leaf
(a leaf determines its path), see :func:`leaf_path_length_kernel`.
"""
import math

import numpy as np

from .._losses import BINARY, P_CLIP, REGRESSION, sigmoid
from .._numba import njit, pnjit, prange


# ------------------------------------------------------------- node paths
@njit
def leaf_path_length_kernel(leaf_node, parent, out):
    """Number of nodes on the root-to-leaf path of every leaf.

    leaf_node : int64 (n_leaves_total,) global node of each global leaf;
    parent : int64 (n_nodes,), -1 at roots; out : int64 (n_leaves_total,).
    """
    for g in range(leaf_node.shape[0]):
        node = leaf_node[g]
        count = 0
        while node >= 0:
            count += 1
            node = parent[node]
        out[g] = count


@njit
def leaf_path_fill_kernel(leaf_node, parent, ptr, out):
    """Nodes of every leaf's path, ascending node index, into ``out[ptr[g]:ptr[g+1]]``."""
    for g in range(leaf_node.shape[0]):
        node = leaf_node[g]
        pos = ptr[g]
        while node >= 0:
            out[pos] = node
            pos += 1
            node = parent[node]
        out[ptr[g]:ptr[g + 1]] = np.sort(out[ptr[g]:ptr[g + 1]])


# ---------------------------------------------------------- feature rows
@pnjit
def row_length_kernel(leaves, leaf_offset, entry_ptr, out):
    """Non-zeros of each row's feature vector: out (n,) int64."""
    n = leaves.shape[0]
    n_trees = leaves.shape[1]
    for i in prange(n):
        s = 0
        for j in range(n_trees):
            g = leaf_offset[j] + leaves[i, j]
            s += entry_ptr[g + 1] - entry_ptr[g]
        out[i] = s


@pnjit
def gather_rows_kernel(leaves, leaf_offset, entry_ptr, entry_col, entry_val, row_ptr,
                       out_col, out_val):
    """CSR feature rows: row i concatenates the entry lists of its leaves.

    leaves : int32 (n, n_trees); entry_* : per global leaf (CSR); row_ptr :
    int64 (n + 1,) from :func:`row_length_kernel`; out_col int32 and out_val
    float64 of length row_ptr[-1], written in place.
    """
    n = leaves.shape[0]
    n_trees = leaves.shape[1]
    for i in prange(n):
        pos = row_ptr[i]
        for j in range(n_trees):
            g = leaf_offset[j] + leaves[i, j]
            for q in range(entry_ptr[g], entry_ptr[g + 1]):
                out_col[pos] = entry_col[q]
                out_val[pos] = entry_val[q]
                pos += 1


# ------------------------------------------------------------ the solver
@njit
def surrogate_terms_kernel(objective, Z, y, w, R, loss):
    """Per-row weighted loss and residual of the surrogate at outputs Z (n, K).

    R (n, K) receives ``w_i * dl/dz``; loss (n,) receives ``w_i * l``.
    Regression l = 0.5 (y - z)^2; binary logistic; multiclass softmax
    cross-entropy (y holds class indices). No probability clipping here:
    the surrogate objective must be smooth. Serial: it is called once per
    solver iteration, where thread start-up would cost more than the loop.
    """
    n = Z.shape[0]
    K = Z.shape[1]
    for i in range(n):
        wi = w[i]
        if objective == REGRESSION:
            d = Z[i, 0] - y[i]
            R[i, 0] = wi * d
            loss[i] = wi * 0.5 * d * d
        elif objective == BINARY:
            z = Z[i, 0]
            # log(1 + exp(z)) - y z, computed stably
            if z > 0:
                sp = z + math.log1p(math.exp(-z))
            else:
                sp = math.log1p(math.exp(z))
            loss[i] = wi * (sp - y[i] * z)
            R[i, 0] = wi * (sigmoid(z) - y[i])
        else:
            m = Z[i, 0]
            for c in range(1, K):
                if Z[i, c] > m:
                    m = Z[i, c]
            s = 0.0
            for c in range(K):
                e = math.exp(Z[i, c] - m)
                R[i, c] = e
                s += e
            yi = int(y[i])
            loss[i] = wi * (m + math.log(s) - Z[i, yi])
            for c in range(K):
                R[i, c] = wi * (R[i, c] / s - (1.0 if c == yi else 0.0))


# --------------------------------------------------------- influence
@njit
def _row_loss(objective, z, y, p):
    """Loss of one row at margin z (K,); probabilities clipped as in ``_losses``.

    p : scratch (K,).
    """
    if objective == REGRESSION:
        d = y - z[0]
        return 0.5 * d * d
    if objective == BINARY:
        q = min(max(sigmoid(z[0]), P_CLIP), 1.0 - P_CLIP)
        return -math.log(q) if y == 1.0 else -math.log(1.0 - q)
    K = z.shape[0]
    m = z[0]
    for c in range(1, K):
        if z[c] > m:
            m = z[c]
    s = 0.0
    for c in range(K):
        p[c] = math.exp(z[c] - m)
        s += p[c]
    q = min(max(p[int(y)] / s, P_CLIP), 1.0 - P_CLIP)
    return -math.log(q)


@njit
def _influence_row(objective, acc, alpha, s, y, z, p):
    """Replace similarities ``acc`` (n,) of one given row by its influences.

    ``acc[i] = l(y, s - alpha_i acc[i]) - l(y, s)``; rows with similarity
    exactly 0 keep 0 (removing their term changes nothing). z, p : scratch (K,).
    """
    K = alpha.shape[1]
    base = _row_loss(objective, s, y, p)
    for i in range(acc.shape[0]):
        k = acc[i]
        if k == 0.0:
            continue
        for c in range(K):
            z[c] = s[c] - alpha[i, c] * k
        acc[i] = _row_loss(objective, z, y, p) - base


@pnjit
def trex_scatter_kernel(objective, t_ptr, t_col, t_val, c_ptr, c_row, c_val, alpha, s,
                        y, out):
    """TREX influence of every training row on every given row (leaf kernels).

    t_* : CSR features of the m given rows; c_* : CSR of the training
    features' transpose (column -> training rows); alpha : (n, K)
    representer weights; s : (m, K) representer outputs
    sum_j alpha_j <Phi_j, Phi_e>; y : (m,). out : (m, n), written in place:
    ``out[e, i] = l(y_e, s_e - alpha_i k_ie) - l(y_e, s_e)``, with
    k_ie = <Phi_i, Phi_e> first accumulated in ``out[e]`` over the training
    rows that share a feature with row e.
    """
    m = out.shape[0]
    n = out.shape[1]
    K = alpha.shape[1]
    for e in prange(m):
        acc = out[e]
        for i in range(n):
            acc[i] = 0.0
        for q in range(t_ptr[e], t_ptr[e + 1]):
            col = t_col[q]
            v = t_val[q]
            for r in range(c_ptr[col], c_ptr[col + 1]):
                acc[c_row[r]] += v * c_val[r]
        _influence_row(objective, acc, alpha, s[e], y[e], np.empty(K), np.empty(K))


@pnjit
def trex_table_kernel(objective, table, leaves_T, leaf_offset, scale, alpha, s, y, out):
    """TREX influence through per-row leaf tables ('to_' and path kernels).

    table : (m, n_leaves_total), ``table[e, g] = <Phi_e, E_g>`` with E_g the
    entries of leaf g (trees own disjoint columns, so only leaves of one tree
    meet); leaves_T : (n_trees, n) training leaves; scale : (n,) training row
    scales. ``k_ie = scale_i sum_t table[e, leaf_offset[t] + leaves_T[t, i]]``,
    then as :func:`trex_scatter_kernel`. out : (m, n), written in place.
    """
    m = out.shape[0]
    n = out.shape[1]
    n_trees = leaves_T.shape[0]
    K = alpha.shape[1]
    for e in prange(m):
        acc = out[e]
        for i in range(n):
            acc[i] = 0.0
        for t in range(n_trees):
            off = leaf_offset[t]
            for i in range(n):
                acc[i] += table[e, off + leaves_T[t, i]]
        for i in range(n):
            acc[i] *= scale[i]
        _influence_row(objective, acc, alpha, s[e], y[e], np.empty(K), np.empty(K))
