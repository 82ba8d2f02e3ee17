"""Similarity-based influence and simple baselines.

``TreeSim`` and ``InputSim`` score a training row by how similar it is to the
test row (in the trees' leaf space or in input space), signed by whether the
two rows "agree" (:func:`sign` below). ``Target``, ``Random`` and ``Loss``
are the reference points a real method should beat.

Sign s(i, e) of a training row i for a test row e:

* classification: +1 if y_i == y_e, else -1;
* regression, with p the model's prediction for x_e: +1 if y_i and y_e lie
  on the same side of p, else -1. A target equal to p counts as above it,
  i.e. s = +1 exactly when ``(y_i >= p) == (y_e >= p)``.
"""
import numbers
import warnings

import numpy as np
from sklearn.utils import check_random_state

from .._kernels.coleaf import (TILE_DENSE_FRACTION, coleaf_tiled_kernel, gather_dot_kernel,
                               tile_csr_kernel, tile_size)
from .._kernels.similarity import (COSINE, DOT, EUCLIDEAN, input_similarity_kernel,
                                   inverse_gap_kernel, leaf_distance_kernel,
                                   random_label_kernel, random_normal_diag_kernel,
                                   random_normal_kernel, random_uniform_diag_kernel,
                                   ranked_key_kernel, row_key_kernel, sign_kernel,
                                   sorted_leaf_prefix_kernel, threshold_gather_kernel)
from .._losses import output_loss
from .._stats import group_by_leaf, leaf_aggregate, leaf_index, tree_major_leaves
from .. import _checks as C
from .._validation import POSITIVE_REAL, RANDOM_STATE, StrOptions
from ..exceptions import DataValidationError, InfluenceNotDefinedError
from ._base import BaseInfluence, top_from_local
from ._progress import blocks, row_chunks

__all__ = ["TreeSim", "InputSim", "Target", "Random", "Loss"]

#: the generic global and top-k influence compute the dense matrix for blocks
#: of test rows holding at most this many entries (n_train x block), so memory
#: stays bounded however many rows are passed
BLOCK_ELEMENTS = 1 << 22

_MEASURES = {"dot": DOT, "cosine": COSINE, "euclidean": EUCLIDEAN}


#: eps bounds 1/distance by 1/eps for identical rows
_EPS = [POSITIVE_REAL]


def _seed_from(random_state):
    """A fixed 64-bit seed: the integer itself, or one drawn from the state."""
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(0, 2 ** 63 - 1, dtype=np.int64))


def _unit_rows(F):
    """Rows of F scaled to unit Euclidean norm; all-zero rows stay zero."""
    norm = np.sqrt(np.einsum("ij,ij->i", F, F))
    scale = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 0.0)
    return np.ascontiguousarray(F * scale[:, None])


def _row_keys(Xe, y):
    """uint64 key per row from its encoded values and target (equal rows, equal keys)."""
    X = np.where(np.isnan(Xe), np.nan, Xe) + 0.0  # one NaN pattern, no -0.0
    yy = np.where(np.isnan(y), np.nan, y) + 0.0
    out = np.empty(X.shape[0], dtype=np.uint64)
    row_key_kernel(np.ascontiguousarray(X).view(np.uint64),
                   np.ascontiguousarray(yy).view(np.uint64), out)
    return out


def _occurrence_rank(keys):
    """0 for the first row with a key, 1 for the second equal one, ... (uint64)."""
    n = keys.shape[0]
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    first = np.ones(n, dtype=bool)
    first[1:] = sk[1:] != sk[:-1]
    pos = np.arange(n)
    start = np.maximum.accumulate(np.where(first, pos, 0))
    rank = np.empty(n, dtype=np.uint64)
    rank[order] = (pos - start).astype(np.uint64)
    return rank


class _PairwiseInfluence(BaseInfluence):
    """Shared machinery: the sign, the model's prediction, blocked fallbacks."""

    _supported_kinds = ("boosting", "forest")

    def _regression(self):
        return self.ensemble_.objective == "regression"

    def _prediction(self, Xe=None, leaves=None):
        """Model prediction p (m,) used by the regression sign (zeros otherwise)."""
        if not self._regression():
            n = (Xe if leaves is None else leaves).shape[0]
            return np.zeros(n)
        ens = self.ensemble_
        if leaves is None:
            leaves = ens.apply_encoded(Xe)
        return np.ascontiguousarray(ens.margins_from_leaves(leaves)[:, 0])

    def _apply_sign(self, out, y, p):
        """Multiply the test-major matrix out (m, n_train) by s(i, e) in place."""
        sign_kernel(out, self._y, np.ascontiguousarray(y, dtype=np.float64), p,
                    self._regression())

    def _blocks(self, m):
        step = max(1, BLOCK_ELEMENTS // max(1, self.n_train_))
        return blocks([slice(s, min(m, s + step)) for s in range(0, m, step)],
                      self.verbose, f"{type(self).__name__} test rows", m)

    def _local(self, Xe, y):
        """Local influence (n_train, m); each test row's column depends only on
        that row, so verbose mode computes it in chunks under a progress bar."""
        m = Xe.shape[0]
        if not self.verbose:
            return self._local_rows(Xe, y)
        out = np.empty((self.n_train_, m))
        for a, z in row_chunks(m, True, f"{type(self).__name__} test rows"):
            out[:, a:z] = self._local_rows(Xe[a:z], y[a:z])
        return out

    def _global(self, Xe, y):
        out = np.zeros(self.n_train_)
        for b in self._blocks(Xe.shape[0]):
            out += self._local_rows(Xe[b], y[b]).sum(axis=1)
        return out

    def _top(self, Xe, y, k, largest):
        m = Xe.shape[0]
        idx = np.empty((m, k), dtype=np.int64)
        val = np.empty((m, k))
        for b in self._blocks(m):
            idx[b], val[b] = top_from_local(self._local_rows(Xe[b], y[b]), k, largest)
        return idx, val

    def _non_deterministic(self):
        return getattr(self, "random_state", 0) is None


class TreeSim(_PairwiseInfluence):
    """Similarity of training and test rows in the ensemble's leaf space.

    Every row is mapped to kernel features Phi(x) with one entry per tree
    (trees of all rounds and output columns): its leaf, valued by ``kernel``.
    With the default ``kernel='lpw'`` and ``similarity='dot'``::

        TreeSim(i, e) = s(i, e) * sum_trees 1[same leaf] / count(leaf)**2

    where count is the number of training rows in the leaf and s(i, e) is the
    sign of the module docstring (+1 when the rows agree).

    Parameters
    ----------
    kernel : {'lpw', 'lp_', 'lo_', 'low'}, default='lpw'
        Value of a row's leaf entry: 'lpw' 1/count, 'lp_' 1, 'lo_' the leaf
        value (its contribution to the margin), 'low' leaf value / count.
        Leaves holding no training row get 1/count = 0.
    similarity : {'dot', 'cosine', 'euclidean'}, default='dot'
        'dot' <Phi_i, Phi_e>; 'cosine' the dot product of the unit-normalised
        features (0 if either vector is zero); 'euclidean'
        1 / (||Phi_i - Phi_e|| + eps).
    eps : float, default=1e-8
        Added to the distance for ``similarity='euclidean'``, so rows in the
        same leaf of every tree get 1/eps instead of inf.
    n_jobs : int or None, default=None
        Threads for the kernels; None or -1 uses all cores.
    verbose : bool, default=False
        Show a progress bar (tqdm, on stderr) over the test rows of
        ``get_local_influence``, ``get_top_influence`` and
        ``get_global_influence``, and a one-line notice before numba compiles
        the kernels on their first use on a machine.

    Attributes
    ----------
    ensemble_ : FlatEnsemble
    n_train_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when the model was trained with named columns.

    Notes
    -----
    Sign convention: positive = helpful. Training rows similar to the test
    row that agree with it (same class; regression: target on the same side
    of the prediction) get positive values, similar rows that disagree get
    negative ones. Sample weights do not enter (count is a number of rows).

    Self-influence is the similarity of a row with itself (s = +1):
    ||Phi_i||**2 for 'dot', 1 (0 for a zero vector) for 'cosine', 1/eps for
    'euclidean'. Global influence for 'dot' and 'cosine' aggregates the test
    rows per leaf (per class, or sorted by prediction for regression) and
    sweeps the training rows once: O((n_train + n_rows) * n_trees * log), no
    dense matrix. 'euclidean' global and all top-k influence compute the dense
    matrix block by block. Works for boosted models and forests.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import TreeSim
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X[:400], y[:400])
    >>> explainer = TreeSim().fit(model, X[:400], y[:400])
    >>> explainer.get_local_influence(X[400:403], y[400:403]).shape
    (400, 3)
    """

    _KERNELS = ("lpw", "lp_", "lo_", "low")

    # saved state: per-tree features of the training rows; tiles are rebuilt
    _STATE = {
        "_leaf_phi": C.Arr("f8", ("L",), finite=True),
        "_y": C.Arr("f8", ("n",), values="label"),
        "_leaves_T": C.Arr("u1 u2 i4", ("T", "n"), values="leaf"),
        "_train_T": C.Arr("f8", ("T", "n"), finite=True),
        "_self_influence": C.Arr("f8", ("n",), finite=True),
    }
    _DERIVED = ("_tile", "_tile_ptr", "_tile_idx")

    def _set_state(self, state):
        dims = super()._set_state(state)
        if self.similarity != "euclidean":
            ens, (n_trees, n) = self.ensemble_, self._leaves_T.shape
            self._tile = tile_size(n)
            self._tile_ptr = np.empty((-(-n // self._tile), ens.leaf_offset[-1] + 1),
                                      dtype=np.int64)
            self._tile_idx = np.empty(n * n_trees, dtype=np.uint16)
            tile_csr_kernel(self._leaves_T, ens.leaf_offset, self._tile, self._tile_ptr,
                            self._tile_idx)
        return dims

    _parameter_constraints = {**BaseInfluence._parameter_constraints,
                              "kernel": [StrOptions(set(_KERNELS))],
                              "similarity": [StrOptions(set(_MEASURES))], "eps": _EPS}

    def __init__(self, kernel="lpw", similarity="dot", eps=1e-8, n_jobs=None, verbose=False):
        self.kernel = kernel
        self.similarity = similarity
        self.eps = eps
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _features(self, leaves):
        """Per-tree kernel features (m, n_trees), unit rows for 'cosine'."""
        F = self._leaf_phi[leaf_index(self.ensemble_, leaves)]
        return _unit_rows(F) if self.similarity == "cosine" else np.ascontiguousarray(F)

    def _fit(self, Xe, y, w):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        ptr, _ = group_by_leaf(ens, leaves)
        count = np.diff(ptr).astype(np.float64)
        inv = np.where(count > 0, 1.0 / np.where(count > 0, count, 1.0), 0.0)
        self._leaf_phi = {"lpw": inv, "lp_": np.ones_like(inv), "lo_": ens.leaf_value,
                          "low": ens.leaf_value * inv}[self.kernel]
        self._y = y
        self._leaves_T = tree_major_leaves(ens, leaves)
        F = self._features(leaves)
        n, n_trees = leaves.shape
        if self.similarity == "euclidean":
            self._train_T = np.ascontiguousarray((F * F).T)
            self._self_influence = np.full(n, 1.0 / self.eps)
            return
        self._train_T = np.ascontiguousarray(F.T)
        self._self_influence = np.einsum("ij,ij->i", F, F)
        self._tile = tile_size(n)
        self._tile_ptr = np.empty((-(-n // self._tile), ens.leaf_offset[-1] + 1),
                                  dtype=np.int64)
        self._tile_idx = np.empty(n * n_trees, dtype=np.uint16)
        tile_csr_kernel(self._leaves_T, ens.leaf_offset, self._tile, self._tile_ptr,
                        self._tile_idx)

    def _local_rows(self, Xe, y):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        F = self._features(leaves)
        out = np.empty((Xe.shape[0], self.n_train_))
        if self.similarity == "euclidean":
            leaf_distance_kernel(leaves, F * F, self._leaves_T, self._train_T,
                                 float(self.eps), out)
        else:
            coleaf_tiled_kernel(leaves, F, ens.leaf_offset, self._tile, self._tile_ptr,
                                self._tile_idx, self._leaves_T, self._train_T,
                                TILE_DENSE_FRACTION, out)
        self._apply_sign(out, y, self._prediction(leaves=leaves))
        return out.T

    def _self(self):
        return self._self_influence.copy()

    def _global(self, Xe, y):
        if self.similarity == "euclidean":
            return super()._global(Xe, y)
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        F = self._features(leaves)
        out = np.empty(self.n_train_)
        if self._regression():
            # s(i, e) = a_e * b_ie, a_e = +-1 (y_e >= p_e), b_ie = +-1 (y_i >= p_e):
            # per leaf, sort the test rows by p and sum a_e * phi_e below y_i
            p = self._prediction(leaves=leaves)
            a = np.where(y >= p, 1.0, -1.0)
            ptr, idx = group_by_leaf(ens, leaves)
            key_sorted = np.empty(idx.shape[0])
            csum = np.empty(idx.shape[0])
            sorted_leaf_prefix_kernel(ptr, idx, ens.leaf_offset, p,
                                      np.ascontiguousarray(F * a[:, None]), key_sorted, csum)
            threshold_gather_kernel(self._leaves_T, self._y, ens.leaf_offset, ptr,
                                    key_sorted, csum, self._train_T, out)
            return out
        # classification: sum_e s(i, e) phi_e = 2 * (same class) - (all)
        table_all = leaf_aggregate(ens, leaves, F)
        for c in np.unique(self._y):
            rows = np.flatnonzero(self._y == c)
            same = y == c
            table = 2.0 * leaf_aggregate(ens, np.ascontiguousarray(leaves[same]),
                                         np.ascontiguousarray(F[same])) - table_all
            part = np.empty(rows.shape[0])
            gather_dot_kernel(np.ascontiguousarray(self._leaves_T[:, rows]), table,
                              ens.leaf_offset, np.ascontiguousarray(self._train_T[:, rows]),
                              part)
            out[rows] = part
        return out


class InputSim(_PairwiseInfluence):
    """Similarity of training and test rows in input space, signed.

    ``InputSim(i, e) = s(i, e) * sim(x_i, x_e)`` with s the sign of the
    module docstring and sim measured on the encoded features (the matrix
    the trees split on: categorical columns as their category codes).

    Parameters
    ----------
    similarity : {'euclidean', 'dot', 'cosine'}, default='euclidean'
        'euclidean' 1 / (||x_i - x_e|| + eps); 'dot' <x_i, x_e>; 'cosine'
        <x_i, x_e> / (||x_i|| ||x_e||), 0 if either norm is 0.
    eps : float, default=1e-8
        Added to the distance, so identical rows get 1/eps, never inf.
    standardize : bool, default=False
        Centre and scale every column by the training rows' mean and standard
        deviation (after the missing-value fill below; constant columns are
        only centred) before measuring similarity.
    n_jobs : int or None, default=None
        Threads for the kernels; None or -1 uses all cores.
    verbose : bool, default=False
        Show a progress bar (tqdm, on stderr) over the test rows of
        ``get_local_influence``, ``get_top_influence`` and
        ``get_global_influence``, and a one-line notice before numba compiles
        the kernels on their first use on a machine.

    Attributes
    ----------
    ensemble_ : FlatEnsemble
    n_train_ : int
    fill_values_ : ndarray of shape (n_features,)
        Training median of every encoded column, used for NaN (0 for a
        column without finite values).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when the model was trained with named columns.

    Notes
    -----
    Sign convention: positive = helpful (a similar row that agrees with the
    test row). Non-finite features never reach the similarity: NaN becomes
    the training column's median, +inf / -inf the largest / smallest finite
    training value of the column, so the result never holds inf or NaN.

    Self-influence (s = +1): ||x_i||**2 for 'dot', 1 for 'cosine' (0 for a
    zero row), 1/eps for 'euclidean'. Global and top-k influence compute the
    dense matrix block by block (O(n_train * n_rows * n_features)).

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import InputSim
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X[:400], y[:400])
    >>> InputSim(standardize=True).fit(model, X[:400], y[:400]).get_self_influence().shape
    (400,)
    """

    # saved state: the prepared training matrix and the fill values; the
    # row norms are rebuilt
    _STATE = {
        "fill_values_": C.Arr("f8", ("F",), finite=True),
        "_low": C.Arr("f8", ("F",), finite=True),
        "_high": C.Arr("f8", ("F",), finite=True),
        "_center": C.Arr("f8", ("F",), finite=True, optional=True),
        "_scale": C.Arr("f8", ("F",), finite=True, optional=True),
        "_X": C.Arr("f8", ("n", "F"), finite=True),
        "_y": C.Arr("f8", ("n",), values="label"),
    }
    _DERIVED = ("_norm",)

    def _set_state(self, state):
        dims = super()._set_state(state)
        if ("_center" in self.__dict__) != bool(self.standardize) \
                or ("_scale" in self.__dict__) != bool(self.standardize):
            C.bad("InputSim's standardisation state does not match standardize="
                  f"{self.standardize!r}")
        self._norm = np.sqrt(np.einsum("ij,ij->i", self._X, self._X))
        return dims

    _parameter_constraints = {**BaseInfluence._parameter_constraints,
                              "similarity": [StrOptions(set(_MEASURES))], "eps": _EPS,
                              "standardize": ["boolean"]}

    def __init__(self, similarity="euclidean", eps=1e-8, standardize=False, n_jobs=None,
                 verbose=False):
        self.similarity = similarity
        self.eps = eps
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _prepare(self, Xe):
        """Fill non-finite values, optionally standardise; contiguous float64."""
        X = np.where(np.isnan(Xe), self.fill_values_[None, :], Xe)
        X = np.where(X == np.inf, self._high[None, :], X)
        X = np.where(X == -np.inf, self._low[None, :], X)
        if self.standardize:
            X = (X - self._center) / self._scale
        return np.ascontiguousarray(X, dtype=np.float64)

    def _fit(self, Xe, y, w):
        finite = np.where(np.isfinite(Xe), Xe, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            med = np.nanmedian(finite, axis=0)
            low = np.nanmin(finite, axis=0)
            high = np.nanmax(finite, axis=0)
        self.fill_values_ = np.where(np.isnan(med), 0.0, med)
        self._low = np.where(np.isnan(low), self.fill_values_, low)
        self._high = np.where(np.isnan(high), self.fill_values_, high)
        if self.standardize:
            self._center = np.zeros(Xe.shape[1])
            self._scale = np.ones(Xe.shape[1])
            X = self._prepare(Xe)
            self._center = X.mean(axis=0)
            sd = X.std(axis=0)
            self._scale = np.where(sd > 0, sd, 1.0)
        self._X = self._prepare(Xe)
        self._norm = np.sqrt(np.einsum("ij,ij->i", self._X, self._X))
        self._y = y

    def _local_rows(self, Xe, y):
        X = self._prepare(Xe)
        norm = np.sqrt(np.einsum("ij,ij->i", X, X))
        out = np.empty((X.shape[0], self.n_train_))
        input_similarity_kernel(X, self._X, norm, self._norm, _MEASURES[self.similarity],
                                float(self.eps), out)
        self._apply_sign(out, y, self._prediction(Xe=Xe))
        return out.T

    def _self(self):
        if self.similarity == "euclidean":
            return np.full(self.n_train_, 1.0 / self.eps)
        sq = np.einsum("ij,ij->i", self._X, self._X)
        if self.similarity == "dot":
            return sq
        den = self._norm * self._norm
        return np.where(den > 0, sq / np.where(den > 0, den, 1.0), 0.0)


class _Seeded(_PairwiseInfluence):
    """Keys and seed of the pseudo-random baselines."""

    # saved state: the seed and each training row's key; ranked keys rebuilt
    _STATE = {
        "seed_": C.Int(0, 2 ** 64 - 1),
        "_y": C.Arr("f8", ("n",), values="label"),
        "_own_key": C.Arr("u8", ("n",)),
    }
    _DERIVED = ("_key",)

    def _set_state(self, state):
        dims = super()._set_state(state)
        self._key = np.empty_like(self._own_key)
        ranked_key_kernel(self._own_key, _occurrence_rank(self._own_key), self._key)
        return dims

    _parameter_constraints = {**BaseInfluence._parameter_constraints,
                              "random_state": RANDOM_STATE}

    def _fit_keys(self, Xe, y):
        self.seed_ = _seed_from(self.random_state)
        self._y = y
        self._own_key = _row_keys(Xe, y)
        self._key = np.empty_like(self._own_key)
        ranked_key_kernel(self._own_key, _occurrence_rank(self._own_key), self._key)

    def _seed(self):
        return np.uint64(self.seed_)


_RANDOM_NOTES = """
    Reproducibility: a value is a pure function of (``seed_``, the training
    row, the test row), not of a generator's position. A training row is
    identified by its encoded values, its target and its occurrence among
    identical training rows (the first copy, the second, ...); a test row by
    its encoded values and its target. Hence, for a fixed ``random_state``,
    results do not depend on ``n_jobs``, on how test rows are batched or
    ordered, or on the order of the training rows: permuting the training
    rows permutes the influence rows (copies of one row keep their
    first/second/... values in order of appearance). Two test rows with the
    same values and target get the same column. With ``random_state=None``
    a seed is drawn at ``fit`` (``seed_``) and kept, also through pickling.
"""


class Random(_Seeded):
    __doc__ = """Random influence: i.i.d. standard normal values (a baseline).

    Parameters
    ----------
    random_state : int, RandomState or None, default=None
        Seed (an int is used as is). None draws a seed from numpy's global
        generator at ``fit``.
    n_jobs : int or None, default=None
        Threads for the kernels; None or -1 uses all cores.
    verbose : bool, default=False
        Show a progress bar (tqdm, on stderr) over the test rows of
        ``get_local_influence``, ``get_top_influence`` and
        ``get_global_influence``, and a one-line notice before numba compiles
        the kernels on their first use on a machine.

    Attributes
    ----------
    seed_ : int
        The seed in use.
    ensemble_ : FlatEnsemble
    n_train_ : int

    Notes
    -----
    Every (training row, test row) pair gets an independent N(0, 1) value;
    there is no sign convention to speak of. Self-influence is the value of
    the pair (training row, itself as a test row), i.e. the diagonal of
    ``get_local_influence(X_train, y_train)``.
    """ + _RANDOM_NOTES + """
    Examples
    --------
    >>> import lightgbm as lgb
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import Random
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X[:400], y[:400])
    >>> a = Random(random_state=0).fit(model, X[:400], y[:400])
    >>> b = Random(random_state=0, n_jobs=1).fit(model, X[:400], y[:400])
    >>> inf = a.get_local_influence(X[400:], y[400:])
    >>> inf.shape, np.array_equal(inf, b.get_local_influence(X[400:], y[400:]))
    ((400, 169), True)
    """

    def __init__(self, random_state=None, n_jobs=None, verbose=False):
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _fit(self, Xe, y, w):
        self._fit_keys(Xe, y)

    def _local_rows(self, Xe, y):
        out = np.empty((Xe.shape[0], self.n_train_))
        random_normal_kernel(self._seed(), _row_keys(Xe, y), self._key, out)
        return out.T

    def _self(self):
        out = np.empty(self.n_train_)
        random_normal_diag_kernel(self._seed(), self._key, self._own_key, out)
        return out


class Target(_Seeded):
    __doc__ = """Random influence that favours training rows with the test row's target.

    Classification: a value drawn from U(0, 1) if the training row has the
    test row's label, from U(-1, 0) otherwise (RandomSL). Regression
    (deterministic): ``1 / (|y_i - y_e| + eps)``.

    Parameters
    ----------
    random_state : int, RandomState or None, default=None
        Seed for classification (an int is used as is). None draws a seed
        from numpy's global generator at ``fit``.
    eps : float, default=1e-8
        Regression: added to |y_i - y_e| so equal targets give 1/eps, not inf.
    n_jobs : int or None, default=None
        Threads for the kernels; None or -1 uses all cores.
    verbose : bool, default=False
        Show a progress bar (tqdm, on stderr) over the test rows of
        ``get_local_influence``, ``get_top_influence`` and
        ``get_global_influence``, and a one-line notice before numba compiles
        the kernels on their first use on a machine.

    Attributes
    ----------
    seed_ : int
        The seed in use.
    ensemble_ : FlatEnsemble
    n_train_ : int

    Notes
    -----
    Sign convention: positive = helpful; same-label rows are always positive,
    other rows always negative; in regression every value is positive and
    larger for closer targets. Self-influence is the diagonal of
    ``get_local_influence(X_train, y_train)``: a U(0, 1) value for
    classification, 1/eps for regression.
    """ + _RANDOM_NOTES + """
    Examples
    --------
    >>> import lightgbm as lgb
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import Target
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X[:400], y[:400])
    >>> explainer = Target(random_state=0).fit(model, X[:400], y[:400])
    >>> inf = explainer.get_local_influence(X[400:403], y[400:403])
    >>> bool(np.all((inf > 0) == (y[:400, None] == y[None, 400:403])))  # same label: helpful
    True
    """

    _parameter_constraints = {**_Seeded._parameter_constraints, "eps": _EPS}

    def __init__(self, random_state=None, eps=1e-8, n_jobs=None, verbose=False):
        self.random_state = random_state
        self.eps = eps
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _fit(self, Xe, y, w):
        self._fit_keys(Xe, y)

    def _local_rows(self, Xe, y):
        out = np.empty((Xe.shape[0], self.n_train_))
        y = np.ascontiguousarray(y, dtype=np.float64)
        if self._regression():
            inverse_gap_kernel(y, self._y, float(self.eps), out)
        else:
            random_label_kernel(self._seed(), _row_keys(Xe, y), self._key, y, self._y, out)
        return out.T

    def _self(self):
        if self._regression():
            return np.full(self.n_train_, 1.0 / self.eps)
        out = np.empty(self.n_train_)
        random_uniform_diag_kernel(self._seed(), self._key, self._own_key, out)
        return out


class Loss(BaseInfluence):
    """Self-influence baseline: each training row's own loss under the model.

    Parameters
    ----------
    n_jobs : int or None, default=None
        Threads for the kernels; None or -1 uses all cores.
    verbose : bool, default=False
        Print a one-line notice (stderr) before numba compiles the kernels on
        their first use on a machine; this method has no long loop to show
        progress for.

    Attributes
    ----------
    ensemble_ : FlatEnsemble
    n_train_ : int
    n_features_in_ : int

    Notes
    -----
    ``get_self_influence()[i]`` is the unweighted loss of training row i at
    the model's output (the loss of the model's objective on the raw
    margin: squared error / 2, log loss or softmax cross-entropy, with
    probabilities clipped to [1e-5, 1 - 1e-5]; forest classifiers' averaged
    class probabilities are used as they are). Rows the model fits badly
    (e.g. mislabelled ones) score highest. The method defines nothing but
    self-influence: local, global and top-k influence raise
    :class:`~treeinf.exceptions.InfluenceNotDefinedError`.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import Loss
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y)
    >>> Loss().fit(model, X, y).get_self_influence().shape
    (569,)
    """

    _STATE = {"_loss": C.Arr("f8", ("n",), finite="nonan")}

    def __init__(self, n_jobs=None, verbose=False):
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _fit(self, Xe, y, w):
        ens = self.ensemble_
        margin = ens.margins_from_leaves(ens.apply_encoded(Xe))
        self._loss = output_loss(ens.objective, margin, y, link=ens.link)

    def _self(self):
        return self._loss.copy()

    def _not_defined(self, what):
        raise InfluenceNotDefinedError(
            f"Loss defines only self-influence (each training row's own loss); it has "
            f"no {what}. Use get_self_influence(), or a method such as BoostIn or "
            "TreeSim for the influence on other rows.")

    def get_local_influence(self, X, y):
        """Not defined for Loss; raises InfluenceNotDefinedError."""
        self._not_defined("local influence")

    def get_global_influence(self, X, y):
        """Not defined for Loss; raises InfluenceNotDefinedError."""
        self._not_defined("global influence")

    def get_top_influence(self, X, y, k=10, kind="helpful"):
        """Not defined for Loss; raises InfluenceNotDefinedError."""
        self._not_defined("top-k influence")
