"""BoostIn: TracIn for gradient-boosted trees."""
import numpy as np

from .._kernels.coleaf import (TILE_DENSE_FRACTION, coleaf_dense_kernel, coleaf_tiled_kernel,
                               coleaf_topk_kernel, dense_threshold, gather_dot_kernel,
                               tile_csr_kernel, tile_size)
from .._stats import (effective_l2, group_by_leaf, leaf_aggregate, leaf_index, leaf_sums,
                      round_derivatives, sort_by_leaf, tree_major_leaves)
from .. import _checks as C
from .._validation import StrOptions
from ._base import BaseInfluence, LabelEditMixin
from ._progress import row_chunks


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

    Cost: fitting is O(n_train * n_trees); one test row costs the number of
    training rows sharing its leaves (summed over trees), computed in
    parallel over test rows. Self-influence is O(n_train * n_trees) and global
    influence O((n_train + n_rows) * n_trees); neither builds a dense matrix,
    and neither does :meth:`get_top_influence`.

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

    # saved state: the training terms; the leaf groupings are rebuilt on load
    _STATE = {
        "_y": C.Arr("f8", ("n",), values="label"),
        "_w": C.Arr("f8", ("n",), finite=True),
        "_inv_denom": C.Arr("f8", ("L",), finite=True),
        "_self_influence": C.Arr("f8", ("n",), finite=True),
        "_leaves_T": C.Arr("u1 u2 i4", ("T", "n"), values="leaf"),
        "_train_T": C.Arr("f8", ("T", "n"), finite=True),
    }
    _DERIVED = ("_ptr", "_idx", "_train_sorted", "_tile", "_tile_ptr", "_tile_idx")

    def __init__(self, variant="exact", n_jobs=None, verbose=False):
        self.variant = variant
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _fit(self, Xe, y, w):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        g, h, _ = round_derivatives(ens, leaves, y)
        ptr, idx = group_by_leaf(ens, leaves)
        H = leaf_sums(ens, ptr, idx, h, w)
        eta = ens.learning_rate
        value = ens.leaf_value / eta if self.variant == "exact" else ens.leaf_value
        pos = leaf_index(ens, leaves)
        lam = effective_l2(ens, w)  # per leaf: LightGBM cat_l2, CatBoost weight scaling
        denom = H[pos] + lam[pos]
        with np.errstate(divide="ignore", invalid="ignore"):
            D = np.where(denom > 0, eta * w[:, None] * (g + value[pos] * h) / denom, 0.0)
        self._y, self._w = y, w
        leaf_denom = H + lam
        self._inv_denom = np.where(leaf_denom > 0, 1.0 / np.where(leaf_denom > 0, leaf_denom, 1.0), 0.0)
        self._self_influence = np.einsum("ij,ij->i", g, D)
        self._ptr, self._idx = ptr, idx
        self._train_sorted = sort_by_leaf(D, idx)
        self._leaves_T = tree_major_leaves(ens, leaves)
        self._train_T = np.ascontiguousarray(D.T)
        # per-tile CSR for the dense matrix (coleaf_tiled_kernel)
        n, n_trees = leaves.shape
        self._tile = tile_size(n)
        self._tile_ptr = np.empty((-(-n // self._tile), ens.leaf_offset[-1] + 1), dtype=np.int64)
        self._tile_idx = np.empty(n * n_trees, dtype=np.uint16)
        tile_csr_kernel(self._leaves_T, ens.leaf_offset, self._tile, self._tile_ptr,
                        self._tile_idx)

    def _set_state(self, state):
        dims = super()._set_state(state)
        ens = self.ensemble_
        leaves = np.ascontiguousarray(self._leaves_T.T, dtype=np.int32)
        self._ptr, self._idx = group_by_leaf(ens, leaves)
        self._train_sorted = sort_by_leaf(self._train_T.T, self._idx)
        n, n_trees = leaves.shape
        self._tile = tile_size(n)
        self._tile_ptr = np.empty((-(-n // self._tile), ens.leaf_offset[-1] + 1), dtype=np.int64)
        self._tile_idx = np.empty(n * n_trees, dtype=np.uint16)
        tile_csr_kernel(self._leaves_T, ens.leaf_offset, self._tile, self._tile_ptr,
                        self._tile_idx)
        return dims

    def _coleaf_args(self):
        return (self.ensemble_.leaf_offset, self._ptr, self._idx, self._train_sorted,
                self._leaves_T, self._train_T, dense_threshold(self.n_train_))

    def _label_edit(self, Xe, y, value):
        """Label-edit BoostIn: D_LE = eta w (g - g*) / (H + lambda).

        The general label-edit term is ``eta (g + v h) / (H + lambda) - eta
        (g* + v h*) / (H - h + h* + lambda)`` with g*, h* at the new label;
        for the supported losses h does not depend on the label (h* = h), so
        both denominators equal H + lambda and the v h terms cancel.
        """
        ens = self.ensemble_
        leaves = np.ascontiguousarray(self._leaves_T.T, dtype=np.int32)
        g, _, _ = round_derivatives(ens, leaves, self._y, hessian=False)
        g_new, _, _ = round_derivatives(ens, leaves, np.full(self.n_train_, value),
                                        hessian=False)
        D = (ens.learning_rate * self._w[:, None] * (g - g_new)
             * self._inv_denom[leaf_index(ens, leaves)])
        test_leaves, G = self._test_terms(Xe, y)
        out = np.empty((Xe.shape[0], self.n_train_))
        D_sorted, D_T = sort_by_leaf(D, self._idx), np.ascontiguousarray(D.T)
        for a, z in self._chunks(Xe.shape[0], "label edits"):
            coleaf_dense_kernel(test_leaves[a:z], G[a:z], ens.leaf_offset, self._ptr,
                                self._idx, D_sorted, self._leaves_T, D_T,
                                dense_threshold(self.n_train_), out[a:z])
        return out.T

    def _chunks(self, total, what):
        return row_chunks(total, self.verbose, f"BoostIn {what}")

    def _test_terms(self, Xe, y):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        G, _, _ = round_derivatives(ens, leaves, y, hessian=False)
        return leaves, G

    def _local(self, Xe, y):
        leaves, G = self._test_terms(Xe, y)
        out = np.empty((Xe.shape[0], self.n_train_))
        for a, z in self._chunks(Xe.shape[0], "test rows"):
            coleaf_tiled_kernel(leaves[a:z], G[a:z], self.ensemble_.leaf_offset, self._tile,
                                self._tile_ptr, self._tile_idx, self._leaves_T,
                                self._train_T, TILE_DENSE_FRACTION, out[a:z])
        return out.T

    def _self(self):
        return self._self_influence.copy()

    def _global(self, Xe, y):
        leaves, G = self._test_terms(Xe, y)
        table = leaf_aggregate(self.ensemble_, leaves, G)
        out = np.empty(self.n_train_)
        gather_dot_kernel(self._leaves_T, table, self.ensemble_.leaf_offset,
                          self._train_T, out)
        return out

    def _top(self, Xe, y, k, largest):
        leaves, G = self._test_terms(Xe, y)
        m = Xe.shape[0]
        out_idx = np.empty((m, k), dtype=np.int64)
        out_val = np.empty((m, k))
        for a, z in self._chunks(m, "test rows"):
            coleaf_topk_kernel(leaves[a:z], G[a:z], *self._coleaf_args(), k, largest,
                               out_idx[a:z], out_val[a:z])
        return out_idx, out_val
