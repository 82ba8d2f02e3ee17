"""Kernels of the similarity and baseline methods (SPEC §5).

Dense outputs are test-major ``(n_test, n_train)`` and parallel over test
rows: each test row owns its output row, and every element is computed by the
same sequence of operations whatever the thread count, so results do not
depend on ``n_jobs``.

The pseudo-random methods draw every value from a counter-based generator: a
value is a pure function of (seed, training-row key, test-row key), with
SplitMix64's finaliser as the mixing function. No generator state is shared
between threads or carried between calls.
"""
import math

import numpy as np

from .._numba import njit, pnjit, prange

# similarity measures (InputSim and the sign kernel share the codes)
DOT = 0
COSINE = 1
EUCLIDEAN = 2

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ROW_SEED = np.uint64(0x243F6A8885A308D3)
_RANK_SALT = np.uint64(0x13198A2E03707344)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


# ------------------------------------------------------------------ signs
@pnjit
def sign_kernel(out, y_train, y_test, p_test, regression):
    """Multiply out[e, i] by the sign s(i, e) of SPEC §5, in place.

    Classification: s = +1 if y_train[i] == y_test[e] else -1. Regression:
    with p = p_test[e], s = +1 if (y_train[i] >= p) == (y_test[e] >= p), else
    -1 (a target equal to the prediction counts as above it).

    out : float64 (m, n); y_train (n,), y_test (m,), p_test (m,) float64.
    """
    m, n = out.shape
    for e in prange(m):
        o = out[e]
        ye = y_test[e]
        if regression:
            p = p_test[e]
            above = ye >= p
            for i in range(n):
                if (y_train[i] >= p) != above:
                    o[i] = -o[i]
        else:
            for i in range(n):
                if y_train[i] != ye:
                    o[i] = -o[i]


# ------------------------------------------------------- tree-space kernels
@pnjit
def leaf_distance_kernel(test_leaves, test_sq, leaves_T, train_sq_T, eps, out):
    """out[e, i] = 1 / (||Phi_e - Phi_i|| + eps) for one-hot leaf features.

    Two rows' feature vectors differ only in trees where their leaves differ,
    and there by both entries, so the squared distance is the sum over those
    trees of ``train_sq_T[j, i] + test_sq[e, j]`` (squared feature values).
    Summing only the differing trees makes identical leaf vectors give
    exactly 0 (no cancellation), hence exactly ``1 / eps``.

    test_leaves : int32 (m, n_trees); test_sq : float64 (m, n_trees);
    leaves_T : (n_trees, n) integer; train_sq_T : float64 (n_trees, n);
    out : float64 (m, n), overwritten.
    """
    m, n_trees = test_leaves.shape
    n = leaves_T.shape[1]
    for e in prange(m):
        o = out[e]
        o[:] = 0.0
        for j in range(n_trees):
            le = test_leaves[e, j]
            a = test_sq[e, j]
            lcol = leaves_T[j]
            scol = train_sq_T[j]
            for i in range(n):
                if lcol[i] != le:
                    o[i] += scol[i] + a
        for i in range(n):
            o[i] = 1.0 / (math.sqrt(o[i]) + eps)


@pnjit
def sorted_leaf_prefix_kernel(ptr, idx, leaf_offset, key, values, key_sorted, csum):
    """Per leaf, rows sorted by ``key`` and inclusive cumulative sums of values.

    ptr, idx : CSR of rows by leaf (``stats.group_by_leaf_kernel``) for the
        rows ``key``/``values`` describe; segment ``ptr[pos]:ptr[pos + 1]``
        holds the rows of leaf position ``pos``.
    key : float64 (m,); values : float64 (m, n_trees).
    key_sorted, csum : float64 (m * n_trees,), written: within each segment,
        keys ascending (ties by row order) and the running sum of
        ``values[row, tree]`` in that order.
    """
    n_trees = values.shape[1]
    for j in prange(n_trees):
        for pos in range(leaf_offset[j], leaf_offset[j + 1]):
            p0 = ptr[pos]
            p1 = ptr[pos + 1]
            if p1 == p0:
                continue
            rows = idx[p0:p1].astype(np.int64)
            order = np.argsort(key[rows], kind="mergesort")
            s = 0.0
            for q in range(p1 - p0):
                r = rows[order[q]]
                key_sorted[p0 + q] = key[r]
                s += values[r, j]
                csum[p0 + q] = s


@njit
def _count_le(a, p0, p1, v):
    """Number of entries of the ascending a[p0:p1] that are <= v."""
    lo = p0
    hi = p1
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo - p0


@pnjit
def threshold_gather_kernel(leaves_T, threshold, leaf_offset, ptr, key_sorted, csum,
                            train_T, out):
    """out[i] = sum_j train_T[j, i] * (2 * below - total) over row i's leaves.

    For row i's leaf in tree j, ``below`` is the sum of the leaf's values
    (from ``sorted_leaf_prefix_kernel``) whose key is <= threshold[i] and
    ``total`` the sum of all of them; i.e. each value enters with +1 if its
    key is <= threshold[i] and -1 otherwise. Parallel over training rows.
    """
    n_trees, n = train_T.shape
    for i in prange(n):
        s = 0.0
        t = threshold[i]
        for j in range(n_trees):
            pos = leaf_offset[j] + leaves_T[j, i]
            p0 = ptr[pos]
            p1 = ptr[pos + 1]
            if p1 == p0:
                continue
            k = _count_le(key_sorted, p0, p1, t)
            below = csum[p0 + k - 1] if k > 0 else 0.0
            s += train_T[j, i] * (2.0 * below - csum[p1 - 1])
        out[i] = s


# ------------------------------------------------------ input-space kernel
@pnjit
def input_similarity_kernel(X_test, X_train, norm_test, norm_train, measure, eps, out):
    """Similarity of every test row to every training row in input space.

    measure DOT: <x_e, x_i>; COSINE: <x_e, x_i> / (|x_e| |x_i|), 0 if either
    norm is 0; EUCLIDEAN: 1 / (||x_e - x_i|| + eps), the distance summed from
    the differences (identical rows give exactly 1 / eps).

    X_test (m, d), X_train (n, d), norm_test (m,), norm_train (n,) float64
    (norms only read for COSINE); out : float64 (m, n), overwritten.
    """
    m, d = X_test.shape
    n = X_train.shape[0]
    for e in prange(m):
        xe = X_test[e]
        for i in range(n):
            xi = X_train[i]
            s = 0.0
            if measure == EUCLIDEAN:
                for k in range(d):
                    diff = xe[k] - xi[k]
                    s += diff * diff
                out[e, i] = 1.0 / (math.sqrt(s) + eps)
            else:
                for k in range(d):
                    s += xe[k] * xi[k]
                if measure == COSINE:
                    den = norm_test[e] * norm_train[i]
                    s = s / den if den > 0.0 else 0.0
                out[e, i] = s


@pnjit
def inverse_gap_kernel(y_test, y_train, eps, out):
    """out[e, i] = 1 / (|y_train[i] - y_test[e]| + eps); out float64 (m, n)."""
    m, n = out.shape
    for e in prange(m):
        ye = y_test[e]
        for i in range(n):
            out[e, i] = 1.0 / (abs(y_train[i] - ye) + eps)


# ------------------------------------------------- counter-based randomness
@njit
def mix64(z):
    """SplitMix64 finaliser: a bijection of uint64 with good avalanche."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit
def _uniform(h):
    """uint64 -> float64 in the open interval (0, 1)."""
    return (float(h >> _S11) + 0.5) * _TWO_M53


@pnjit
def row_key_kernel(bits, y_bits, out):
    """A 64-bit key per row from the bit patterns of its values and target.

    bits : uint64 (n, d) (float64 values viewed as integers, canonicalised by
    the caller: one NaN pattern, no negative zero); y_bits : uint64 (n,);
    out : uint64 (n,).
    """
    n, d = bits.shape
    for r in prange(n):
        h = _ROW_SEED
        for k in range(d):
            h = mix64(h ^ bits[r, k])
        out[r] = mix64(h ^ y_bits[r])


@pnjit
def ranked_key_kernel(key, rank, out):
    """Keys made distinct among equal rows: mix(key ^ mix(rank + salt))."""
    for r in prange(key.shape[0]):
        out[r] = mix64(key[r] ^ mix64(rank[r] + _RANK_SALT))


@njit
def _pair_hash(seed_h, ki, ke):
    return mix64(mix64(seed_h ^ ki) + ke)


@pnjit
def random_normal_kernel(seed, key_test, key_train, out):
    """out[e, i] ~ N(0, 1), a pure function of (seed, key_train[i], key_test[e]).

    Box-Muller on two uniforms derived from the pair's hash.
    """
    m, n = out.shape
    seed_h = mix64(seed)
    for e in prange(m):
        ke = key_test[e]
        for i in range(n):
            h = _pair_hash(seed_h, key_train[i], ke)
            u1 = _uniform(h)
            u2 = _uniform(mix64(h + _GOLDEN))
            out[e, i] = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@pnjit
def random_label_kernel(seed, key_test, key_train, y_test, y_train, out):
    """out[e, i] = u if y_train[i] == y_test[e] else -u, u ~ U(0, 1) as above."""
    m, n = out.shape
    seed_h = mix64(seed)
    for e in prange(m):
        ke = key_test[e]
        ye = y_test[e]
        for i in range(n):
            u = _uniform(_pair_hash(seed_h, key_train[i], ke))
            out[e, i] = u if y_train[i] == ye else -u


@pnjit
def random_normal_diag_kernel(seed, key_a, key_b, out):
    """out[r] = the value random_normal_kernel gives the pair (key_a[r], key_b[r])."""
    seed_h = mix64(seed)
    for r in prange(out.shape[0]):
        h = _pair_hash(seed_h, key_a[r], key_b[r])
        u1 = _uniform(h)
        u2 = _uniform(mix64(h + _GOLDEN))
        out[r] = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@pnjit
def random_uniform_diag_kernel(seed, key_a, key_b, out):
    """out[r] = U(0, 1) of the pair (key_a[r], key_b[r]) (same label: positive)."""
    seed_h = mix64(seed)
    for r in prange(out.shape[0]):
        out[r] = _uniform(_pair_hash(seed_h, key_a[r], key_b[r]))
