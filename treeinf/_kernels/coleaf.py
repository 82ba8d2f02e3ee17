"""Co-leaf accumulation: sum over trees of a test term times a training term
for every training row that shares the test row's leaf.

Training terms are kept twice, in the two layouts the two access patterns
need: ``train_sorted`` in the CSR order of ``stats.group_by_leaf_kernel``
(``idx``, ``ptr``), and ``train_T`` tree-major (n_trees, n_train) with the
matching leaf ids ``leaves_T``. For a small leaf the kernel visits only its
rows (a scatter into the output row); for a leaf holding at least
``min_dense`` rows a sequential masked pass over the tree's column is
cheaper. Both add exactly the same terms in the same tree order, so the
result does not depend on the choice. All kernels are parallel over test
rows; each test row owns its output row or buffer.
"""
import numpy as np

from .._numba import njit, pnjit, prange

#: a leaf holding at least this fraction of the training rows is visited by a
#: masked pass over the whole column instead of a scatter (measured in
#: benchmarks/bench_boostin.py; the result is identical either way)
DENSE_FRACTION = 0.5


def dense_threshold(n_train):
    """Smallest leaf size (rows) visited by a masked pass."""
    return max(1, int(np.ceil(DENSE_FRACTION * n_train)))


@njit
def _accumulate(e, test_leaves, test_values, leaf_offset, ptr, idx, train_sorted,
                leaves_T, train_T, min_dense, buf):
    n_trees = test_leaves.shape[1]
    n = buf.shape[0]
    for j in range(n_trees):
        a = test_values[e, j]
        if a == 0.0:
            continue
        leaf = test_leaves[e, j]
        pos = leaf_offset[j] + leaf
        p0 = ptr[pos]
        p1 = ptr[pos + 1]
        if p1 - p0 >= min_dense:
            lcol = leaves_T[j]
            dcol = train_T[j]
            for i in range(n):
                if lcol[i] == leaf:
                    buf[i] += a * dcol[i]
        else:
            for p in range(p0, p1):
                buf[idx[p]] += a * train_sorted[p]


@pnjit
def coleaf_dense_kernel(test_leaves, test_values, leaf_offset, ptr, idx, train_sorted,
                        leaves_T, train_T, min_dense, out):
    """out[e, i] = sum_j 1[same leaf] test_values[e, j] * train[j, i].

    out : float64 (m, n_train), overwritten (each thread zeroes its own rows).
    """
    m = test_leaves.shape[0]
    for e in prange(m):
        out[e, :] = 0.0
        _accumulate(e, test_leaves, test_values, leaf_offset, ptr, idx, train_sorted,
                    leaves_T, train_T, min_dense, out[e])


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
                       leaves_T, train_T, min_dense, k, largest, out_idx, out_val):
    """Top-k training rows per test row without the dense matrix.

    out_idx : int64 (m, k); out_val : float64 (m, k).
    """
    m = test_leaves.shape[0]
    n = train_T.shape[1]
    for e in prange(m):
        buf = np.zeros(n)
        _accumulate(e, test_leaves, test_values, leaf_offset, ptr, idx, train_sorted,
                    leaves_T, train_T, min_dense, buf)
        _top_k(buf, k, largest, out_idx[e], out_val[e])


@pnjit
def gather_dot_kernel(leaves_T, leaf_table, leaf_offset, train_T, out):
    """out[i] = sum_j leaf_table[leaf of row i in tree j] * train_T[j, i].

    Parallel over blocks of training rows, trees in order within a block.
    """
    n_trees, n = train_T.shape
    block = 2048
    for b in prange((n + block - 1) // block):
        i0 = b * block
        i1 = min(n, i0 + block)
        out[i0:i1] = 0.0
        for j in range(n_trees):
            off = leaf_offset[j]
            for i in range(i0, i1):
                out[i] += leaf_table[off + leaves_T[j, i]] * train_T[j, i]
