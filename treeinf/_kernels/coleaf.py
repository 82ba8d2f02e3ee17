"""Co-leaf accumulation: sum over trees of a test term times a training term
for every training row that shares the test row's leaf.

The training term lives in ``train_sorted`` in the CSR order of
``stats.group_by_leaf_kernel`` (``idx``, ``ptr``), so one test row costs the
number of training rows in its leaves, not n_train x n_trees. All kernels are
parallel over test rows; each test row owns its output row or buffer.
"""
import numpy as np

from .._numba import njit, pnjit, prange


@njit
def _accumulate(e, test_leaves, test_values, leaf_offset, ptr, idx, train_sorted, buf):
    n_trees = test_leaves.shape[1]
    for j in range(n_trees):
        a = test_values[e, j]
        if a == 0.0:
            continue
        leaf = leaf_offset[j] + test_leaves[e, j]
        for p in range(ptr[leaf], ptr[leaf + 1]):
            buf[idx[p]] += a * train_sorted[p]


@pnjit
def coleaf_dense_kernel(test_leaves, test_values, leaf_offset, ptr, idx, train_sorted, out):
    """out[e, i] = sum_j 1[same leaf] test_values[e, j] * train[i, j]; out (m, n) zeroed."""
    m = test_leaves.shape[0]
    for e in prange(m):
        _accumulate(e, test_leaves, test_values, leaf_offset, ptr, idx, train_sorted, out[e])


@njit
def _top_k(buf, k, largest, out_idx, out_val):
    """k largest (or smallest) values of buf, ties by lower index; sorted."""
    n = buf.shape[0]
    sign = 1.0 if largest else -1.0
    key = buf * sign
    kth = np.partition(key, n - k)[n - k]
    chosen = np.empty(k, dtype=np.int64)
    c = 0
    for i in range(n):
        if key[i] > kth:
            chosen[c] = i
            c += 1
    for i in range(n):
        if c >= k:
            break
        if key[i] == kth:
            chosen[c] = i
            c += 1
    vals = key[chosen]
    order = np.argsort(-vals, kind="mergesort")  # stable: ties keep index order
    for r in range(k):
        out_idx[r] = chosen[order[r]]
        out_val[r] = buf[chosen[order[r]]]


@pnjit
def coleaf_topk_kernel(test_leaves, test_values, leaf_offset, ptr, idx, train_sorted,
                       n_train, k, largest, out_idx, out_val):
    """Top-k training rows per test row without the dense matrix.

    out_idx : int64 (m, k); out_val : float64 (m, k).
    """
    m = test_leaves.shape[0]
    for e in prange(m):
        buf = np.zeros(n_train)
        _accumulate(e, test_leaves, test_values, leaf_offset, ptr, idx, train_sorted, buf)
        _top_k(buf, k, largest, out_idx[e], out_val[e])


@pnjit
def gather_dot_kernel(leaves, leaf_table, leaf_offset, train_values, out):
    """out[i] = sum_j leaf_table[leaf of row i in tree j] * train_values[i, j]."""
    n = leaves.shape[0]
    n_trees = leaves.shape[1]
    for i in prange(n):
        s = 0.0
        for j in range(n_trees):
            s += leaf_table[leaf_offset[j] + leaves[i, j]] * train_values[i, j]
        out[i] = s
