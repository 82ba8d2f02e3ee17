"""Per-round statistics of rows in an ensemble, and rows grouped by leaf."""
import numpy as np

from .._losses import grad_hess_row
from .._numba import njit, pnjit, prange


@njit
def round_end(tree_round, j):
    """One past the last tree of the round that tree ``j`` starts (trees are
    ordered by round; all trees of a round share the margins before it)."""
    j_end = j
    n_trees = tree_round.shape[0]
    while j_end < n_trees and tree_round[j_end] == tree_round[j]:
        j_end += 1
    return j_end


@pnjit
def round_derivatives_kernel(leaves, tree_round, tree_output, leaf_offset, leaf_value,
                             base, y, objective, factor, g_out, h_out, k_out):
    """g, h (and k) of every row for every tree, at the margin before its round.

    leaves : int32 (n, n_trees) compact leaf indices.
    g_out, h_out : float64 (n, n_trees); k_out : float64 (n, n_trees) or (0, 0)
    to skip the third derivative. Entry (i, j) is the derivative for output
    ``tree_output[j]`` at F^(round(j)-1)(x_i); trees of one round share it.
    """
    n = leaves.shape[0]
    n_trees = leaves.shape[1]
    K = base.shape[0]
    want_h = h_out.shape[0] > 0
    want_k = k_out.shape[0] > 0
    for i in prange(n):
        z = base.copy()
        g = np.empty(K)
        h = np.empty(K)
        k = np.empty(K)
        j = 0
        while j < n_trees:
            grad_hess_row(objective, z, y[i], factor, g, h, k)
            j_end = round_end(tree_round, j)
            for jj in range(j, j_end):
                c = tree_output[jj]
                g_out[i, jj] = g[c]
                if want_h:
                    h_out[i, jj] = h[c]
                if want_k:
                    k_out[i, jj] = k[c]
            for jj in range(j, j_end):
                z[tree_output[jj]] += leaf_value[leaf_offset[jj] + leaves[i, jj]]
            j = j_end


@pnjit
def group_by_leaf_kernel(leaves, leaf_offset, ptr, idx):
    """Rows of every leaf, in row order (a CSR layout per tree).

    Rows of leaf ``l`` of tree ``j`` are ``idx[ptr[leaf_offset[j] + l] :
    ptr[leaf_offset[j] + l + 1]]``. ptr : int64 (n_leaves_total + 1);
    idx : uint32 (n * n_trees). Each tree owns its slice.
    """
    n = leaves.shape[0]
    n_trees = leaves.shape[1]
    for j in prange(n_trees):
        off = leaf_offset[j]
        n_leaves = leaf_offset[j + 1] - off
        counts = np.zeros(n_leaves + 1, dtype=np.int64)
        for i in range(n):
            counts[leaves[i, j] + 1] += 1
        start = np.int64(j) * n
        for l in range(n_leaves):
            counts[l + 1] += counts[l]
            ptr[off + l] = start + counts[l]
        for i in range(n):
            l = leaves[i, j]
            idx[start + counts[l]] = i
            counts[l] += 1
    ptr[leaf_offset[n_trees]] = np.int64(n) * n_trees


@pnjit
def leaf_sums_kernel(ptr, idx, values, weight, leaf_offset, out):
    """out[leaf] = sum over the leaf's rows of weight[i] * values[i, tree]."""
    n_trees = values.shape[1]
    for j in prange(n_trees):
        for leaf in range(leaf_offset[j], leaf_offset[j + 1]):
            s = 0.0
            for p in range(ptr[leaf], ptr[leaf + 1]):
                i = idx[p]
                s += weight[i] * values[i, j]
            out[leaf] = s


@pnjit
def leaf_aggregate_kernel(leaves, values, leaf_offset, out):
    """out[leaf] = sum of values[e, tree] over rows e in the leaf (out zeroed)."""
    m = leaves.shape[0]
    n_trees = leaves.shape[1]
    for j in prange(n_trees):
        off = leaf_offset[j]
        for e in range(m):
            out[off + leaves[e, j]] += values[e, j]


#: statistics per leaf gathered by ``newton_sums_kernel``
NS_G, NS_H, NS_SCALE, NS_WEIGHT, NS_Y, NS_COUNT = 0, 1, 2, 3, 4, 5
N_NEWTON_SUMS = 6


@pnjit
def newton_sums_kernel(leaves, tree_round, tree_output, leaf_offset, leaf_value, base, y, w,
                       objective, factor, accumulate, out):
    """Per-leaf sums that recompute every leaf's Newton step, in one pass.

    leaves : (n, n_trees) compact leaf indices (any integer type).
    y, w : float64 (n,) targets (class index for classification) and weights.
    accumulate : bool; True for boosting (derivatives at the margin before
        each round), False for forests (every tree at the base margin).
    out : float64 (n_chunks, n_leaves_total, N_NEWTON_SUMS), any contents.
        Chunk c sums the rows ``c::n_chunks``, so the result does not depend
        on the thread count. Per leaf: ``NS_G`` sum w g, ``NS_H`` sum w h,
        ``NS_SCALE`` sum w (|g| + h (1 + |z|)) (the size of rounding errors
        in g a library computing in float32 makes), ``NS_WEIGHT`` sum w,
        ``NS_Y`` sum w y_c (y_c the row's target for the tree's output:
        the target for regression, 1[class == c] otherwise), ``NS_COUNT``
        the number of rows (with non-zero weight).
    """
    n = leaves.shape[0]
    n_trees = leaves.shape[1]
    K = base.shape[0]
    n_chunks = out.shape[0]
    n_leaves = out.shape[1]
    for c in prange(n_chunks):
        acc = out[c]
        for L in range(n_leaves):
            for s in range(N_NEWTON_SUMS):
                acc[L, s] = 0.0
        z = np.empty(K)
        g = np.empty(K)
        h = np.empty(K)
        k = np.empty(K)
        for i in range(c, n, n_chunks):
            wi = w[i]
            if wi == 0.0:
                continue
            for q in range(K):
                z[q] = base[q]
            j = 0
            while j < n_trees:
                grad_hess_row(objective, z, y[i], factor, g, h, k)
                j_end = round_end(tree_round, j) if accumulate else j + 1
                for jj in range(j, j_end):
                    q = tree_output[jj]
                    L = leaf_offset[jj] + leaves[i, jj]
                    acc[L, NS_G] += wi * g[q]
                    acc[L, NS_H] += wi * h[q]
                    acc[L, NS_SCALE] += wi * (abs(g[q]) + h[q] * (1.0 + abs(z[q])))
                    acc[L, NS_WEIGHT] += wi
                    acc[L, NS_COUNT] += 1.0
                    if objective == 0:
                        acc[L, NS_Y] += wi * y[i]
                    elif (K == 1 and y[i] == 1.0) or (K > 1 and int(y[i]) == q):
                        acc[L, NS_Y] += wi
                if accumulate:
                    for jj in range(j, j_end):
                        z[tree_output[jj]] += leaf_value[leaf_offset[jj] + leaves[i, jj]]
                j = j_end
