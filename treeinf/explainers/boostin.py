"""BoostIn: TracIn for gradient-boosted trees."""
import numpy as np

from .._kernels.boostin import (chunk_rows, fit_leaves_kernel, fit_terms_kernel, leaf_abs_max,
                               rescore_kernel, sum_parts)
from .._kernels.coleaf import (TILE_DENSE_FRACTION, coleaf_tiled_kernel,
                               coleaf_tiled_topk_kernel, gather_dot_kernel, merge_topk_kernel,
                               tile_csr_kernel, tile_size, topk_rows_kernel)
from .._losses import OBJECTIVE_CODES
from .._stats import effective_l2, leaf_aggregate, leaf_id_dtype, round_derivatives
from .. import _checks as C
from .._validation import StrOptions
from ..exceptions import DataValidationError
from ._base import BaseInfluence, LabelEditMixin
from ._progress import row_chunks

_EMPTY_F = np.empty(0)
_NO_SUMS = np.empty((0, 0, 0))
_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_2D = np.empty((0, 0))

#: rows per block of ``fit_terms_kernel``
TERM_BLOCK = 256
#: test rows per call of the dense kernel in ``get_local_influence`` (one
#: progress-bar step)
LOCAL_CHUNK = 64
#: per-tile candidate lists are used for k up to this; larger k selects from
#: dense chunks
TILE_TOPK_MAX = 64
#: bytes of scratch for one chunk of top-k queries
TOPK_SCRATCH = 64 * 2**20


class BoostIn(LabelEditMixin, BaseInfluence):
    """BoostIn influence of training rows on predictions of a boosted model.

    For training row i and test row e, BoostIn sums over boosting rounds t
    and output columns c, for every tree where both rows share a leaf l, the
    test row's loss gradient at the margin before round t times the
    first-order change of the leaf value when row i is removed::

        BoostIn(i, e) = sum_{t,c} 1[same leaf] * g_e(t,c) * eta * w_i
                        * (g_i + v_l h_i) / (H_l + lambda)

    with v_l the leaf's unshrunk value (``variant='exact'``) or its shrunk
    value as published (``variant='paper'``).

    Parameters
    ----------
    variant : {'exact', 'paper'}, default='exact'
        'exact' uses the unshrunk leaf value v = phi / eta in the numerator,
        which makes the training term exactly the derivative of the leaf
        value in the row's weight. 'paper' uses the shrunk value phi, as in
        Brophy, Hammoudeh & Lowd (JMLR 2023).
    n_jobs : int or None, default=None
        Threads for the kernels; None or -1 uses all cores.
    verbose : bool, default=False
        Show a progress bar (tqdm, on stderr) over the test rows of
        ``get_local_influence``, ``get_top_influence`` and
        ``get_label_edit_influence``, and a one-line notice before numba
        compiles the kernels on their first use on a machine.
    dtype : {'float64', 'float32'}, default='float64'
        Storage type of the per-row training terms, the largest fitted array
        (n_trees x n_train values). 'float32' halves it (2 GB instead of 4
        GB at 1M rows x 500 trees). Self-influence, global influence,
        label-edit influence and the rows *and values* returned by
        :meth:`get_top_influence` are exactly the float64 results in both
        modes (float64 terms are recomputed from the leaf ids where needed;
        top-k candidates are rescored in float64). Only
        :meth:`get_local_influence` uses the rounded terms: each entry is
        within ``2**-23 * sum_j |G[e, j]| * |D[i, j]|`` (over the trees
        where the rows share a leaf) of the float64 value, i.e. a relative
        error of at most about 1.2e-7 of the sum of absolute contributions
        (measured: 2e-8 of the largest entry on the test models).

    Attributes
    ----------
    ensemble_ : FlatEnsemble
        The parsed, verified model.
    n_train_ : int
        Number of training rows.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when the model was trained with named columns.

    Notes
    -----
    Sign convention: positive = helpful. ``get_local_influence(X, y)[i, e] >
    0`` means removing training row i would increase the loss of row e.

    Cost: fitting is O(n_train * n_trees) in two fused numba passes (one
    traversal). It keeps the leaf ids (n_trees x n_train, uint8 up to 256
    leaves per tree), the terms (n_trees x n_train, ``dtype``) and a per-tile
    row index (n_trees x n_train, uint16): 7 bytes per row and tree in
    float32, 11 in float64. One test row costs the number of training rows
    sharing its leaves (summed over trees), computed in parallel over tiles
    of training rows, so a single query uses every thread. Self-influence is
    O(n_train * n_trees) and global influence O((n_train + n_rows) *
    n_trees); neither builds a dense matrix, and neither does
    :meth:`get_top_influence`. :meth:`get_local_influence` and label-edit
    influence run in chunks of test rows, with a progress bar when the
    estimator's ``verbose`` is true.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import BoostIn
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X[:400], y[:400])
    >>> explainer = BoostIn().fit(model, X[:400], y[:400])
    >>> explainer.get_local_influence(X[400:403], y[400:403]).shape
    (400, 3)
    """

    _supported_kinds = ("boosting",)
    _parameter_constraints = {**BaseInfluence._parameter_constraints,
                              "variant": [StrOptions({"exact", "paper"})]}

    # saved state: leaf ids, targets, weights and leaf denominators; the
    # training terms, self-influence and tiles are rebuilt on load (one pass)
    _STATE = {
        "_y": C.Arr("f8", ("n",), values="label"),
        "_w": C.Arr("f8", ("n",), finite=True),
        "_denom": C.Arr("f8", ("L",), finite=True),
        "_leaves_T": C.Arr("u1 u2 u4 i4", ("T", "n"), values="leaf"),
    }
    _DERIVED = ("_train_T", "_self_influence", "_tile", "_tile_ptr", "_tile_idx",
                "_term_absmax")

    def __init__(self, variant="exact", n_jobs=None, dtype="float64", verbose=False):
        self.variant = variant
        self.n_jobs = n_jobs
        self.dtype = dtype
        self.verbose = verbose

    def _check_params(self):
        super()._check_params()
        if self.variant not in ("exact", "paper"):
            raise DataValidationError(
                f"variant must be 'exact' or 'paper', got {self.variant!r}.")
        try:  # (np.dtype(None) is float64, and a dtype compares equal to None)
            ok = self.dtype is not None and np.dtype(self.dtype).name in ("float64", "float32")
        except TypeError:
            ok = False
        if not ok:
            raise DataValidationError(
                f"dtype must be 'float64' or 'float32', got {self.dtype!r}.")

    # ---------------------------------------------------------------- fit
    def _numerator_value(self):
        """v of SPEC §3 per leaf: unshrunk (exact) or shrunk (paper)."""
        ens = self.ensemble_
        if self.variant == "exact":
            return ens.leaf_value / ens.learning_rate
        return ens.leaf_value

    def _fit(self, Xe, y, w):
        ens = self.ensemble_
        n = Xe.shape[0]
        T = ens.n_trees
        L = int(ens.leaf_offset[-1])
        obj = OBJECTIVE_CODES[ens.objective]
        hint = getattr(self, "_fit_hint", None)
        if hint is not None:
            # the data check at fit already traversed the rows and summed
            # their hessians per leaf: pass 1 is done
            leaves_T = np.ascontiguousarray(hint[0], dtype=leaf_id_dtype(ens))
            H = np.ascontiguousarray(hint[1], dtype=np.float64)
        else:
            # pass 1: traverse + h + leaf sums (per fixed chunk, added in order)
            leaves_T = np.empty((T, n), dtype=leaf_id_dtype(ens))
            chunk = chunk_rows(n)
            H_part = np.empty((max(1, -(-n // chunk)), L))
            fit_leaves_kernel(Xe, ens.tree_root, ens.node_left, ens.node_right,
                              ens.node_feature, ens.node_threshold, ens.node_kind,
                              ens.node_missing, ens.node_default_left, ens.node_cat_start,
                              ens.node_cat_len, ens.cat_bits, ens.node_leaf, ens.tree_round,
                              ens.tree_output, ens.leaf_offset, ens.leaf_value,
                              ens.base_margin, y, w, obj, ens.hessian_factor, chunk,
                              leaves_T, H_part, _NO_SUMS)
            H = np.empty(L)
            sum_parts(H_part, H)
            del H_part
        lam = np.ascontiguousarray(effective_l2(ens, w), dtype=np.float64)
        self._y, self._w = y, w
        self._denom = H + lam
        self._leaves_T = leaves_T
        self._build_derived()

    def _build_derived(self):
        """Training terms, self-influence and tiles from the stored state
        (leaf ids, targets, weights, leaf denominators): ``fit`` pass 2, and
        what loading a saved BoostIn rebuilds."""
        ens = self.ensemble_
        leaves_T = self._leaves_T
        T, n = leaves_T.shape
        L = int(ens.leaf_offset[-1])
        # pass 2: g, h again from the stored leaves, terms in their final layout
        self._train_T = np.empty((T, n), dtype=np.dtype(self.dtype))
        self._self_influence = np.empty(n)
        self._terms(_EMPTY_I, _EMPTY_F, _EMPTY_F, self._train_T, self._self_influence)
        # per-tile CSR for the co-leaf kernels
        self._tile = tile_size(n)
        self._tile_ptr = np.empty((-(-n // self._tile), L + 1), dtype=np.int64)
        self._tile_idx = np.empty(n * T, dtype=np.uint16)
        tile_csr_kernel(leaves_T, ens.leaf_offset, self._tile, self._tile_ptr, self._tile_idx)
        if self._train_T.dtype != np.float64:
            # per-leaf max |term|: bounds the float32 error of a query (exact top-k)
            self._term_absmax = np.empty(L)
            leaf_abs_max(leaves_T, ens.leaf_offset, self._train_T, self._term_absmax)
        elif hasattr(self, "_term_absmax"):
            del self._term_absmax

    def _set_state(self, state):
        dims = super()._set_state(state)
        if self._leaves_T.dtype.kind != "u":
            self._leaves_T = np.ascontiguousarray(self._leaves_T,
                                                  dtype=leaf_id_dtype(self.ensemble_))
        self._build_derived()
        return dims

    def _terms(self, rows, y_edit, leaf_table, terms_T, dot_out):
        """``fit_terms_kernel`` on the fitted state (see its docstring)."""
        ens = self.ensemble_
        fit_terms_kernel(self._leaves_T, rows, ens.tree_round, ens.tree_output, ens.leaf_offset,
                         ens.leaf_value, self._numerator_value(), self._denom,
                         ens.base_margin, self._y, y_edit, self._w, ens.learning_rate,
                         OBJECTIVE_CODES[ens.objective], ens.hessian_factor, leaf_table,
                         TERM_BLOCK, terms_T, dot_out)

    # ------------------------------------------------------------ queries
    def _test_terms(self, Xe, y):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        G, _, _ = round_derivatives(ens, leaves, y, hessian=False)
        return leaves, G

    def _tiled_args(self, train_T=None):
        return (self.ensemble_.leaf_offset, self._tile, self._tile_ptr, self._tile_idx,
                self._leaves_T, self._train_T if train_T is None else train_T,
                TILE_DENSE_FRACTION)

    def _dense_into(self, Xe, y, out, train_T=None):
        """out (m, n_train) = influence of the rows Xe on every training row."""
        leaves, G = self._test_terms(Xe, y)
        coleaf_tiled_kernel(leaves, G, *self._tiled_args(train_T), out)

    def _chunks(self, m, size, desc):
        """(start, stop) chunks of m query rows, under a progress bar when
        ``self.verbose`` is true."""
        bounds = [(e0, min(m, e0 + size)) for e0 in range(0, m, size)]
        if not getattr(self, "verbose", False):
            yield from bounds
            return
        from tqdm.auto import tqdm
        with tqdm(total=m, desc=f"BoostIn {desc} test rows", unit="row") as bar:
            for e0, e1 in bounds:
                yield e0, e1
                bar.update(e1 - e0)

    def _local(self, Xe, y):
        out = np.empty((Xe.shape[0], self.n_train_))
        for e0, e1 in self._chunks(Xe.shape[0], LOCAL_CHUNK, "local"):
            self._dense_into(Xe[e0:e1], y[e0:e1], out[e0:e1])
        return out.T

    def _label_edit(self, Xe, y, value):
        """Label-edit BoostIn: D_LE = eta w (g - g*) / (H + lambda) (SPEC §3).

        For the supported losses h does not depend on the label, so the
        hessian sums of SPEC's second term equal H. The edited terms are
        recomputed in float64 from the stored leaf ids, whatever ``dtype``.
        """
        D = np.empty(self._train_T.shape)
        self._terms(_EMPTY_I, np.full(self.n_train_, value), _EMPTY_F, D, _EMPTY_F)
        out = np.empty((Xe.shape[0], self.n_train_))
        for e0, e1 in self._chunks(Xe.shape[0], LOCAL_CHUNK, "label edit"):
            self._dense_into(Xe[e0:e1], y[e0:e1], out[e0:e1], train_T=D)
        return out.T

    def _self(self):
        return self._self_influence.copy()

    def _global(self, Xe, y):
        leaves, G = self._test_terms(Xe, y)
        table = leaf_aggregate(self.ensemble_, leaves, G)
        out = np.empty(self.n_train_)
        if self._train_T.dtype == np.float64:
            gather_dot_kernel(self._leaves_T, table, self.ensemble_.leaf_offset,
                              self._train_T, out)
        else:  # float64 terms recomputed on the fly: exact in either dtype
            self._terms(_EMPTY_I, _EMPTY_F, table, _EMPTY_2D, out)
        return out

    def _top(self, Xe, y, k, largest):
        m, n = Xe.shape[0], self.n_train_
        out_idx = np.empty((m, k), dtype=np.int64)
        out_val = np.empty((m, k))
        exact = self._train_T.dtype == np.float64
        if k <= TILE_TOPK_MAX:
            n_tiles = self._tile_ptr.shape[0]
            # float32: keep twice as many per tile, then rescore exactly
            kk = min(k if exact else 2 * k, self._tile)
            size = max(1, TOPK_SCRATCH // (n_tiles * kk * 16))
            for e0, e1 in self._chunks(m, size, f"top-{k}"):
                leaves, G = self._test_terms(Xe[e0:e1], y[e0:e1])
                cand_idx = np.empty((e1 - e0, n_tiles, kk), dtype=np.int64)
                cand_key = np.empty((e1 - e0, n_tiles, kk))
                cand_n = np.empty((e1 - e0, n_tiles), dtype=np.int64)
                coleaf_tiled_topk_kernel(leaves, G, *self._tiled_args(), largest, cand_idx,
                                         cand_key, cand_n)
                if exact:
                    merge_topk_kernel(cand_idx, cand_key, cand_n, largest, out_idx[e0:e1],
                                      out_val[e0:e1])
                else:
                    self._top_rescored(leaves, G, k, largest, cand_idx, cand_key, cand_n,
                                       out_idx[e0:e1], out_val[e0:e1])
        else:
            size = max(1, min(LOCAL_CHUNK, TOPK_SCRATCH // (8 * n)))
            buf = np.empty((min(m, size), n))
            for e0, e1 in self._chunks(m, size, f"top-{k}"):
                b = buf[:e1 - e0]
                leaves, G = self._test_terms(Xe[e0:e1], y[e0:e1])
                coleaf_tiled_kernel(leaves, G, *self._tiled_args(), b)
                if exact:
                    topk_rows_kernel(b, k, largest, out_idx[e0:e1], out_val[e0:e1])
                else:
                    self._top_rescored(leaves, G, k, largest, None, None, None,
                                       out_idx[e0:e1], out_val[e0:e1], dense=b)
        return out_idx, out_val

    def _error_bound(self, leaves, G):
        """Per test row, a bound on |float32-term influence - float64 influence|
        for every training row: 2^-23 * sum_j |a_j| max|D| over the test
        row's leaf (covers the rounding of the stored terms, 2^-24 relative,
        and the float64 sums' own rounding)."""
        pos = self.ensemble_.leaf_offset[:-1][None, :] + leaves
        return np.ldexp(np.abs(G) * self._term_absmax[pos], -23).sum(axis=1)

    def _top_rescored(self, leaves, G, k, largest, cand_idx, cand_key, cand_n, out_idx,
                      out_val, dense=None):
        """Exact top-k from float32 candidates (float32 terms only).

        Every training row whose approximate key is within twice the error
        bound of the k-th best approximate key is a candidate; candidates are
        rescored with float64 terms recomputed from the leaf ids, so the
        returned rows and values equal the float64 explainer's. A tile whose
        list was full and whose last key is still within the margin cannot
        prove that it holds every candidate: that test row's dense
        approximate row is computed and scanned instead.
        """
        m = leaves.shape[0]
        bound = self._error_bound(leaves, G)
        sign = 1.0 if largest else -1.0
        per_row = []
        for e in range(m):
            if dense is None:
                key = cand_key[e]
                cnt = cand_n[e]
                valid = np.arange(key.shape[1])[None, :] < cnt[:, None]
                keys, rows = key[valid], cand_idx[e][valid]
                tau = np.partition(keys, keys.size - k)[keys.size - k]
                cut = tau - 2.0 * bound[e]
                full = cnt == key.shape[1]
                if np.any(full & (key[np.arange(key.shape[0]), np.maximum(cnt - 1, 0)] >= cut)):
                    buf = np.empty((1, self.n_train_))
                    coleaf_tiled_kernel(leaves[e:e + 1], G[e:e + 1], *self._tiled_args(), buf)
                    keys, rows = sign * buf[0], np.arange(self.n_train_)
                else:
                    keep = keys >= cut
                    per_row.append(np.sort(rows[keep]))
                    continue
            else:
                keys, rows = sign * dense[e], np.arange(self.n_train_)
                tau = np.partition(keys, keys.size - k)[keys.size - k]
                cut = tau - 2.0 * bound[e]
            per_row.append(np.sort(rows[keys >= cut]))
        rows = np.unique(np.concatenate(per_row))
        c = max(len(r) for r in per_row)
        cand = np.zeros((m, c), dtype=np.int64)
        cnt = np.empty(m, dtype=np.int64)
        for e, r in enumerate(per_row):
            cand[e, :len(r)] = np.searchsorted(rows, r)
            cnt[e] = len(r)
        vals = np.empty((m, c))
        n_trees = self._train_T.shape[0]
        block = max(1, TOPK_SCRATCH // (8 * n_trees))
        for lo in range(0, rows.size, block):  # float64 terms of a block of candidates
            D = np.empty((n_trees, min(rows.size, lo + block) - lo))
            self._terms(rows[lo:lo + block], _EMPTY_F, _EMPTY_F, D, _EMPTY_F)
            rescore_kernel(leaves, G, self._leaves_T, rows, lo, D, cand, cnt, vals)
        for e in range(m):
            v = sign * vals[e, :cnt[e]]
            r = rows[cand[e, :cnt[e]]]
            order = np.lexsort((r, -v))[:k]  # best first, ties to the lower row
            out_idx[e] = r[order]
            out_val[e] = vals[e, :cnt[e]][order]
