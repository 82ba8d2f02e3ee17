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

The dense matrix has its own kernel, parallel over tiles of training rows
(``coleaf_tiled_kernel``): a tile's slices of ``leaves_T`` / ``train_T`` and
its part of a per-tile CSR (``tile_ptr``, ``tile_idx``, built once by
``tile_csr_kernel``) stay in cache while every test row is processed, instead
of streaming each tree's whole column once per test row. Within a tile a
leaf's rows are visited by a scatter when few, otherwise by a masked pass that
covers up to four consecutive such trees at once (one load and store of the
output per element instead of four). Every output element still receives its
terms one tree at a time in tree order, so all paths, tilings and thread
counts give bit-for-bit the same result.
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


#: in the tiled kernel, a leaf holding at least this fraction of a tile's rows
#: is visited by a (fused) masked pass over the tile (measured in
#: benchmarks/bench_boostin.py; the result is identical either way)
TILE_DENSE_FRACTION = 0.2


def tile_size(n_train):
    """Training rows per tile of ``coleaf_tiled_kernel``: at most 4096 (the
    tile's slices of all trees then live in L2/L3 across test rows), at least
    512, and small enough to give about 16 tiles to balance threads."""
    t = -(-n_train // 16)
    t = -(-t // 64) * 64
    return int(min(4096, max(512, t)))


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


@pnjit
def tile_csr_kernel(leaves_T, leaf_offset, tile, tile_ptr, tile_idx):
    """Per-tile CSR grouping of training rows by leaf.

    Tile t holds rows [t*tile, min(n, (t+1)*tile)); its entries occupy
    tile_idx[t*tile*n_trees : ...], tree after tree, leaf after leaf, rows
    ascending, stored as offsets from the tile start.

    tile_ptr : int64 (n_tiles, n_leaves_total + 1); rows of leaf position
        ``pos`` in tile t are tile_idx[tile_ptr[t, pos]:tile_ptr[t, pos + 1]].
    tile_idx : uint16 (n_trees * n_train,); requires tile <= 65536.
    """
    n_trees, n = leaves_T.shape
    n_tiles = tile_ptr.shape[0]
    for t in prange(n_tiles):
        i0 = t * tile
        i1 = min(n, i0 + tile)
        L = i1 - i0
        acc = i0 * n_trees
        for j in range(n_trees):
            off = leaf_offset[j]
            nl = leaf_offset[j + 1] - off
            for l in range(nl):
                tile_ptr[t, off + l] = 0
            for i in range(i0, i1):
                tile_ptr[t, off + leaves_T[j, i]] += 1
            for l in range(nl):  # counts -> starts
                c = tile_ptr[t, off + l]
                tile_ptr[t, off + l] = acc
                acc += c
            for i in range(i0, i1):  # starts -> ends
                pos = off + leaves_T[j, i]
                p = tile_ptr[t, pos]
                tile_idx[p] = i - i0
                tile_ptr[t, pos] = p + 1
            for l in range(nl - 1, 0, -1):  # ends -> starts
                tile_ptr[t, off + l] = tile_ptr[t, off + l - 1]
            tile_ptr[t, off] = acc - L
        tile_ptr[t, leaf_offset[n_trees]] = acc


@njit
def _masked1(o, leaves_T, train_T, i0, L, j0, f0, a0):
    l0 = leaves_T[j0, i0:i0 + L]
    d0 = train_T[j0, i0:i0 + L]
    for i in range(L):
        o[i] += a0 * d0[i] if l0[i] == f0 else 0.0


@njit
def _masked2(o, leaves_T, train_T, i0, L, j0, f0, a0, j1, f1, a1):
    l0 = leaves_T[j0, i0:i0 + L]
    d0 = train_T[j0, i0:i0 + L]
    l1 = leaves_T[j1, i0:i0 + L]
    d1 = train_T[j1, i0:i0 + L]
    for i in range(L):
        v = o[i]
        v += a0 * d0[i] if l0[i] == f0 else 0.0
        v += a1 * d1[i] if l1[i] == f1 else 0.0
        o[i] = v


@njit
def _masked4(o, leaves_T, train_T, i0, L, j0, f0, a0, j1, f1, a1, j2, f2, a2, j3, f3, a3):
    l0 = leaves_T[j0, i0:i0 + L]
    d0 = train_T[j0, i0:i0 + L]
    l1 = leaves_T[j1, i0:i0 + L]
    d1 = train_T[j1, i0:i0 + L]
    l2 = leaves_T[j2, i0:i0 + L]
    d2 = train_T[j2, i0:i0 + L]
    l3 = leaves_T[j3, i0:i0 + L]
    d3 = train_T[j3, i0:i0 + L]
    for i in range(L):
        v = o[i]
        v += a0 * d0[i] if l0[i] == f0 else 0.0
        v += a1 * d1[i] if l1[i] == f1 else 0.0
        v += a2 * d2[i] if l2[i] == f2 else 0.0
        v += a3 * d3[i] if l3[i] == f3 else 0.0
        o[i] = v


@njit
def _flush_masked(o, leaves_T, train_T, i0, L, pj, pf, pa, r):
    """Masked passes for the r pending trees pj[:r] (leaf pf, test term pa),
    in order. Adding 0.0 where the leaf differs leaves a sum unchanged (a
    sum started at +0.0 is never -0.0), so this equals the scatter."""
    k = 0
    while r - k >= 4:
        _masked4(o, leaves_T, train_T, i0, L, pj[k], pf[k], pa[k], pj[k + 1], pf[k + 1],
                 pa[k + 1], pj[k + 2], pf[k + 2], pa[k + 2], pj[k + 3], pf[k + 3], pa[k + 3])
        k += 4
    if r - k >= 2:
        _masked2(o, leaves_T, train_T, i0, L, pj[k], pf[k], pa[k], pj[k + 1], pf[k + 1],
                 pa[k + 1])
        k += 2
    if r - k == 1:
        _masked1(o, leaves_T, train_T, i0, L, pj[k], pf[k], pa[k])


@njit
def _tile_accumulate(o, e, t, i0, L, lim, test_leaves, test_values, leaf_offset, tile_ptr,
                     tile_idx, leaves_T, train_T, pj, pf, pa):
    """o (L,) = the influence of test row e on the rows [i0, i0 + L) of tile t.

    Trees in order; a tree whose test leaf holds at least ``lim`` of the
    tile's rows is queued for a masked pass (up to four queued trees fused in
    one pass), any other tree first flushes the queue and then scatters its
    leaf's rows of the tile. pj, pf, pa: scratch of length 4.
    """
    n_trees = test_leaves.shape[1]
    o[:] = 0.0
    r = 0
    for j in range(n_trees):
        a = test_values[e, j]
        if a == 0.0:
            continue
        leaf = test_leaves[e, j]
        pos = leaf_offset[j] + leaf
        p0 = tile_ptr[t, pos]
        p1 = tile_ptr[t, pos + 1]
        if p1 - p0 >= lim:
            pj[r] = j
            pf[r] = leaf
            pa[r] = a
            r += 1
            if r == 4:
                _flush_masked(o, leaves_T, train_T, i0, L, pj, pf, pa, r)
                r = 0
        elif p1 > p0:
            if r > 0:
                _flush_masked(o, leaves_T, train_T, i0, L, pj, pf, pa, r)
                r = 0
            dcol = train_T[j, i0:i0 + L]
            for p in range(p0, p1):
                q = tile_idx[p]
                o[q] += a * dcol[q]
    if r > 0:
        _flush_masked(o, leaves_T, train_T, i0, L, pj, pf, pa, r)


@pnjit
def coleaf_tiled_kernel(test_leaves, test_values, leaf_offset, tile, tile_ptr, tile_idx,
                        leaves_T, train_T, dense_fraction, out):
    """Same result as ``coleaf_dense_kernel``, parallel over tiles of training rows.

    Each tile owns out[:, i0:i1] (zeroed here). For each test row, trees are
    taken in order; a tree whose test leaf holds at least ``dense_fraction``
    of the tile's rows is queued for a masked pass (up to four queued trees
    fused in one pass), any other tree first flushes the queue and then
    scatters its leaf's rows of the tile (``tile_ptr``, ``tile_idx`` from
    ``tile_csr_kernel`` with the same ``tile``), gathering ``train_T``
    (float32 or float64; products and sums are float64).
    """
    m = test_leaves.shape[0]
    n = train_T.shape[1]
    n_tiles = tile_ptr.shape[0]
    for t in prange(n_tiles):
        pj = np.empty(4, dtype=np.int64)
        pf = np.empty(4, dtype=np.int64)
        pa = np.empty(4)
        i0 = t * tile
        i1 = min(n, i0 + tile)
        L = i1 - i0
        lim = dense_fraction * L
        for e in range(m):
            _tile_accumulate(out[e, i0:i1], e, t, i0, L, lim, test_leaves, test_values,
                             leaf_offset, tile_ptr, tile_idx, leaves_T, train_T, pj, pf, pa)


@njit
def _insert_top(key, idx, c, kk, v, i):
    """Insert key v of row i into the descending list key[:c] (capacity kk).

    A key enters a full list only if strictly larger than its last; equal keys
    go after those already present, so when candidates arrive in ascending
    row order among equal keys, ties keep the lower row. Returns the new
    count."""
    if c == kk:
        if not (v > key[kk - 1]):
            return c
        p = kk - 1
    else:
        p = c
        c += 1
    while p > 0 and key[p - 1] < v:
        key[p] = key[p - 1]
        idx[p] = idx[p - 1]
        p -= 1
    key[p] = v
    idx[p] = i
    return c


@pnjit
def coleaf_tiled_topk_kernel(test_leaves, test_values, leaf_offset, tile, tile_ptr, tile_idx,
                             leaves_T, train_T, dense_fraction, largest, cand_idx, cand_key,
                             cand_n):
    """Per-tile top-kk candidates of every test row, without the dense matrix.

    Each tile computes a test row's influences on its rows exactly as
    ``coleaf_tiled_kernel`` (same operations, same values) in a tile-sized
    buffer while it is in cache, and keeps its kk best: keys (the value, or
    its negation when ``largest`` is False) in descending order, ties to the
    lower row. Parallel over tiles, so one test row uses every thread.

    cand_idx : int64 (m, n_tiles, kk); cand_key : float64 (m, n_tiles, kk);
    cand_n : int64 (m, n_tiles), the number of candidates of each tile.
    """
    m = test_leaves.shape[0]
    n = train_T.shape[1]
    n_tiles = tile_ptr.shape[0]
    kk = cand_idx.shape[2]
    for t in prange(n_tiles):
        pj = np.empty(4, dtype=np.int64)
        pf = np.empty(4, dtype=np.int64)
        pa = np.empty(4)
        i0 = t * tile
        i1 = min(n, i0 + tile)
        L = i1 - i0
        lim = dense_fraction * L
        o = np.empty(L)
        for e in range(m):
            _tile_accumulate(o, e, t, i0, L, lim, test_leaves, test_values, leaf_offset,
                             tile_ptr, tile_idx, leaves_T, train_T, pj, pf, pa)
            key = cand_key[e, t]
            idx = cand_idx[e, t]
            c = 0
            for i in range(L):
                v = o[i] if largest else -o[i]
                c = _insert_top(key, idx, c, kk, v, i0 + i)
            cand_n[e, t] = c


@pnjit
def merge_topk_kernel(cand_idx, cand_key, cand_n, largest, out_idx, out_val):
    """Top-k of each test row from its per-tile candidates (tiles in row order).

    out_idx : int64 (m, k); out_val : float64 (m, k), sorted best first, ties
    to the lower row (requires at least k candidates per row).
    """
    m, n_tiles, kk = cand_idx.shape
    k = out_idx.shape[1]
    for e in prange(m):
        key = np.empty(k)
        idx = np.empty(k, dtype=np.int64)
        c = 0
        for t in range(n_tiles):
            for r in range(cand_n[e, t]):
                c = _insert_top(key, idx, c, k, cand_key[e, t, r], cand_idx[e, t, r])
        for r in range(k):
            out_idx[e, r] = idx[r]
            out_val[e, r] = key[r] if largest else -key[r]


@pnjit
def topk_rows_kernel(buf, k, largest, out_idx, out_val):
    """Top-k of every row of a dense buffer (m, n), parallel over rows."""
    for e in prange(buf.shape[0]):
        _top_k(buf[e], k, largest, out_idx[e], out_val[e])
