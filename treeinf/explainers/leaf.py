"""Fixed-structure methods: LeafInfluence and LeafRefit.

Both keep every tree's structure and recompute leaf values; they are exact
only for models whose leaves are plain Newton steps on the training data, so
``fit`` first recomputes every leaf and raises if the model's leaves differ.
"""
import numbers

import numpy as np

from .._kernels.coleaf import coleaf_dense_kernel, dense_threshold, gather_dot_kernel
from .._kernels.fixed import (adjoint_single, all_points_kernel,
                              all_points_self_kernel, refit_kernel, row_terms_kernel,
                              single_point_kernel, sparse_to_csr, top_k_leaves_kernel)
from .._fidelity import newton_leaves
from .._losses import OBJECTIVE_CODES, gradient
from .._stats import (effective_l2, group_by_leaf, leaf_aggregate, leaf_index, leaf_sums,
                      round_derivatives, sort_by_leaf, tree_major_leaves)
from .. import _checks as C
from .._validation import NON_NEGATIVE_REAL, Interval
from ..exceptions import DataValidationError, LeafValueMismatchError
from ._base import BaseInfluence, LabelEditMixin
from ._progress import row_chunks as _row_chunks

_ADVICE = {
    "lightgbm": "train without bagging (bagging_fraction=1), GOSS, max_delta_step, "
                "path_smooth, monotone constraints or quantized gradients",
    "xgboost": "train without row subsampling (subsample=1), max_delta_step=0 and "
               "without monotone constraints; XGBoost computes gradients in float32, "
               "so atol=1e-4 may be needed",
    "catboost": "train with leaf_estimation_method='Newton', "
                "leaf_estimation_iterations=1, boosting_type='Plain', "
                "bootstrap_type='No' (MultiClass models use a full-hessian step and "
                "are not supported)",
    "sklearn": "GradientBoosting with subsample=1 and no early-stopping split; "
               "HistGradientBoosting without a validation split (it computes "
               "gradients in float32, so atol=1e-4 may be needed)",
}


#: most removed rows whose Delta vectors TopKLeaves carries side by side
TOP_K_BATCH = 32
#: bytes of one batch's Delta block (n_outputs x n_train x batch float64)
TOP_K_BATCH_BYTES = 8 << 20


def top_k_batch(n, n_outputs):
    """Removed rows per batch of the TopKLeaves kernel: up to TOP_K_BATCH, fewer
    when the batch's Delta block would exceed TOP_K_BATCH_BYTES."""
    return int(max(1, min(TOP_K_BATCH, TOP_K_BATCH_BYTES // (8 * n * n_outputs))))


def score_floor(src_T):
    """TopKLeaves scores below this are rounding noise (ties go to the lower index)."""
    return 1e-12 * float(np.max(np.abs(src_T))) if src_T.size else 0.0




class _FixedStructure(LabelEditMixin, BaseInfluence):
    """Shared fitting of the fixed-structure methods."""

    _supported_kinds = ("boosting",)

    # saved state: per-row terms; the leaf grouping and margins are rebuilt
    _STATE = {
        "_leaves_T": C.Arr("u1 u2 i4", ("T", "n"), values="leaf"),
        "_b": C.Arr("f8", ("L",), finite=True),
        "_lam": C.Arr("f8", ("L",), finite=True),
        "_g": C.Arr("f8", ("n", "T"), finite=True),
        "_w": C.Arr("f8", ("n",), finite=True),
        "_y": C.Arr("f8", ("n",), values="label"),
        "_cmul_T": C.Arr("f8", ("T", "n"), finite=True),
    }
    _DERIVED = ("_ptr", "_idx", "_margin")

    def _set_state(self, state):
        dims = super()._set_state(state)
        ens = self.ensemble_
        leaves = np.ascontiguousarray(self._leaves_T.T, dtype=np.int32)
        self._ptr, self._idx = group_by_leaf(ens, leaves)
        self._margin = ens.margins_from_leaves(leaves)
        return dims

    # update_set: -1 all rows, 0 the removed row only, k >= 1 leaves per tree
    _parameter_constraints = {**BaseInfluence._parameter_constraints,
                              "update_set": [Interval(numbers.Integral, -1, None,
                                                      closed="left")],
                              "atol": [NON_NEGATIVE_REAL]}
    _parameter_hints = {"update_set": "Use -1 (all rows), 0 (the removed row only) or "
                                      "a positive number of leaves per tree."}

    def _chunks(self, total, what, step=1):
        return _row_chunks(total, self.verbose, f"{type(self).__name__} {what}", step)

    def _prepare(self, Xe, y, w):
        """Leaves, derivatives and leaf sums; checks the model's leaf values."""
        ens = self.ensemble_
        eta, alpha = ens.learning_rate, ens.reg_alpha
        leaves = ens.apply_encoded(Xe)
        g, h, k = round_derivatives(ens, leaves, y, third=True)
        ptr, idx = group_by_leaf(ens, leaves)
        lam = effective_l2(ens, w)
        G = leaf_sums(ens, ptr, idx, g, w)
        H = leaf_sums(ens, ptr, idx, h, w)
        phi = newton_leaves(G, H, lam, alpha, eta)
        err = np.abs(phi - ens.leaf_value)
        tol = self.atol * (1.0 + np.abs(ens.leaf_value))
        if not np.all(err <= tol):
            L = int(np.argmax(err - tol))
            tree = int(np.searchsorted(ens.leaf_offset, L, side="right") - 1)
            reasons = ens.exact_leaves_reasons
            why = f" ({'; '.join(map(str, reasons))})" if reasons else ""
            raise LeafValueMismatchError(
                f"{type(self).__name__} needs leaf values that are Newton steps on "
                f"the training data, but leaf {L - ens.leaf_offset[tree]} of tree "
                f"{tree} (round {ens.tree_round[tree]}) is {ens.leaf_value[L]:.6g} in "
                f"the model and {phi[L]:.6g} recomputed (difference {err[L]:.3g}, "
                f"atol {self.atol:g}); {int(np.sum(err > tol))} leaves differ{why}. "
                f"Check that X, y and sample_weight are the training data, and "
                f"{_ADVICE.get(ens.library, 'train without row subsampling')}; "
                "or raise atol.")
        v = phi / eta
        # with L1 a leaf inside the dead zone (|G| <= alpha) stays at 0; without
        # L1 every leaf moves, including one whose gradients sum to exactly 0
        live = ((alpha == 0.0) | (np.abs(G) > alpha)) & (H + lam > 0)
        b = np.where(live, -eta / np.where(H + lam > 0, H + lam, 1.0), 0.0)
        self._leaves_T = tree_major_leaves(ens, leaves)
        self._ptr, self._idx = ptr, idx
        self._b = b
        self._lam = lam
        self._g = g
        self._w = w
        self._y = y
        self._margin = ens.margins_from_leaves(leaves)
        self._cmul_T = np.empty((ens.n_trees, self.n_train_))
        src_T = np.empty((ens.n_trees, self.n_train_))
        row_terms_kernel(leaves, ens.leaf_offset, v, w, g, h, k, self._cmul_T, src_T)
        return leaves, g, h, G, H, lam, phi, src_T

    def _final_gradients(self, leaves, margin, y):
        """q (m, n_trees): loss gradient at the final margin, per tree's output."""
        ens = self.ensemble_
        grad = gradient(ens.objective, margin, y, ens.hessian_factor)
        return np.ascontiguousarray(grad[:, ens.tree_output])

    def _edit_source(self, target_value):
        """w * (g - g*) (n, n_trees): own term of relabelling every row."""
        ens = self.ensemble_
        leaves = self._leaves_T.T.astype(np.int32)
        g_new, _, _ = round_derivatives(ens, np.ascontiguousarray(leaves),
                                        np.full(self.n_train_, target_value), hessian=False)
        return self._w[:, None] * (self._g - g_new)


class LeafInfluence(_FixedStructure):
    """Influence functions for boosted trees with a fixed structure.

    The derivative of the test loss in a training row's weight, propagated
    through every later round's leaf values while the tree structures stay
    fixed (Sharchilev et al., 2018). For a removed row i the trees are
    walked in boosting order, keeping the derivative of every affected row's
    margin in i's weight; each leaf's derivative is its Newton step's
    derivative given those margin changes and, if i is in the leaf, i's own
    gradient and hessian.

    Parameters
    ----------
    update_set : int, default=-1
        Which rows' margins follow the removed row's leaf changes: -1 all
        rows (``AllPoints``), 0 only the removed row (``SinglePoint``),
        k >= 1 the rows of the k leaves of each tree with the largest summed
        change so far (``TopKLeaves:top=k``).
    atol : float, default=1e-5
        Tolerance of the leaf-value check (relative to 1 + |leaf value|).
    n_jobs : int or None, default=None
        Threads for the kernels.
    verbose : bool, default=False
        Show a progress bar (tqdm) over the long loops: the forward pass per
        removed row of TopKLeaves (in ``fit`` and
        ``get_label_edit_influence``) and the backward sweeps of AllPoints
        per test row (``get_local_influence``, ``get_label_edit_influence``)
        and per training row (``get_self_influence``).

    Notes
    -----
    Sign convention: positive = helpful (removing the row would increase the
    test loss, to first order). Equals CatBoost's ``get_object_importance``
    up to its sign. AllPoints is computed exactly with one backward (adjoint)
    sweep per test row, O(n_train * n_trees), instead of one forward pass
    per training row; TopKLeaves needs the forward pass per training row,
    O(n_train^2 * n_trees), done once in ``fit``.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import LeafInfluence
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X[:400], y[:400])
    >>> explainer = LeafInfluence(update_set=-1).fit(model, X[:400], y[:400])
    >>> explainer.get_local_influence(X[400:403], y[400:403]).shape
    (400, 3)
    """

    # TopKLeaves' sparse derivatives (O(n^2) to compute) are stored as a CSR;
    # SinglePoint's are rebuilt (O(n * n_trees)); AllPoints has none
    _STATE = {
        "_src_T": C.Arr("f8", ("T", "n"), finite=True),
        "_sparse_ptr": C.Arr("i8", ("L+1",), optional=True),
        "_sparse_idx": C.Arr("u4", ("*",), optional=True),
        "_sparse_vals": C.Arr("f8", ("*",), finite=True, optional=True),
    }
    _DERIVED = ("_sparse",)

    def __init__(self, update_set=-1, atol=1e-5, n_jobs=None, verbose=False):
        self.update_set = update_set
        self.atol = atol
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _get_state(self):
        state = super()._get_state()
        if self.update_set >= 1:
            state["_sparse_ptr"], state["_sparse_idx"], state["_sparse_vals"], _ = self._sparse
        return state

    def _set_state(self, state):
        dims = super()._set_state(state)
        keys = ("_sparse_ptr", "_sparse_idx", "_sparse_vals")
        stored = [self.__dict__.pop(k, None) for k in keys]
        want = self.update_set >= 1
        if any(a is not None for a in stored) != want \
                or want and not all(a is not None for a in stored):
            C.bad(f"LeafInfluence(update_set={self.update_set}) "
                  f"{'lacks' if want else 'has'} TopKLeaves derivatives")
        if self.update_set >= 1:
            ptr, idx, vals = stored
            C.check_csr(ptr, idx, dims["L"], dims["n"], "LeafInfluence._sparse_ptr")
            if vals.shape != idx.shape:
                C.bad("LeafInfluence._sparse_vals and _sparse_idx differ in length")
            self._sparse = (ptr, idx, vals, None)
        else:
            self._sparse = self._sparse_derivatives(self._src_T) if self.update_set == 0 \
                else None
        return dims

    def _fit(self, Xe, y, w):
        self._src_T = self._prepare(Xe, y, w)[-1]
        self._sparse = self._sparse_derivatives(self._src_T) if self.update_set >= 0 else None

    def _sparse_derivatives(self, src_T):
        """(ptr, idx, vals) of the removed rows' nonzero leaf derivatives."""
        ens = self.ensemble_
        n = self.n_train_
        if self.update_set == 0:
            J_T = np.empty_like(src_T)
            single_point_kernel(self._leaves_T, ens.tree_round, ens.tree_output,
                                ens.leaf_offset, self._b, self._cmul_T, src_T,
                                ens.n_outputs, J_T)
            return self._ptr, self._idx, sort_by_leaf(-J_T.T, self._idx), -J_T
        k = int(self.update_set)
        sel_leaf = np.empty((n, ens.n_trees, k + 1), dtype=np.int64)
        sel_val = np.empty((n, ens.n_trees, k + 1))
        floor = score_floor(src_T)
        batch = top_k_batch(n, ens.n_outputs)
        for start, stop in self._chunks(n, "removed rows", batch):
            top_k_leaves_kernel(k, self._leaves_T, ens.tree_round, ens.tree_output,
                                ens.leaf_offset, self._b, self._cmul_T, src_T, ens.n_outputs,
                                floor, batch, start, stop, sel_leaf, sel_val)
        ptr = np.empty(ens.leaf_offset[-1] + 1, dtype=np.int64)
        idx = np.empty(sel_leaf.size, dtype=np.uint32)
        vals = np.empty(sel_leaf.size)
        nnz = sparse_to_csr(sel_leaf, -sel_val, ens.leaf_offset[-1], ptr, idx, vals)
        return ptr, idx[:nnz].copy(), vals[:nnz].copy(), None

    def _influence(self, Xe, y, src_T, sparse):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        q = self._final_gradients(leaves, ens.margins_from_leaves(leaves), y)
        out = np.empty((Xe.shape[0], self.n_train_))
        if sparse is None:
            for a, z in self._chunks(Xe.shape[0], "test rows"):
                all_points_kernel(leaves[a:z], q[a:z], self._leaves_T, ens.tree_round,
                                  ens.tree_output, ens.leaf_offset, self._b, self._cmul_T,
                                  src_T, ens.n_outputs, out[a:z])
        else:
            ptr, idx, vals, train_T = sparse
            if train_T is None:  # TopKLeaves: several leaves per row and tree
                train_T, min_dense = np.zeros((1, 1)), self.n_train_ + 1
            else:
                min_dense = dense_threshold(self.n_train_)
            coleaf_dense_kernel(leaves, q, ens.leaf_offset, ptr, idx, vals,
                                self._leaves_T, train_T, min_dense, out)
        return out.T

    def _local(self, Xe, y):
        return self._influence(Xe, y, self._src_T, self._sparse)

    def _label_edit(self, Xe, y, value):
        src_T = np.ascontiguousarray(self._edit_source(value).T)
        sparse = self._sparse_derivatives(src_T) if self.update_set >= 0 else None
        return self._influence(Xe, y, src_T, sparse)

    def _self(self):
        ens = self.ensemble_
        leaves = np.ascontiguousarray(self._leaves_T.T, dtype=np.int32)
        q = self._final_gradients(leaves, self._margin, self._y)
        n = self.n_train_
        if self._sparse is None:
            out = np.empty(n)
            for start, stop in self._chunks(n, "training rows"):
                all_points_self_kernel(q, self._leaves_T, ens.tree_round, ens.tree_output,
                                       ens.leaf_offset, self._b, self._cmul_T, self._src_T,
                                       ens.n_outputs, start, stop, out)
            return out
        ptr, idx, vals, train_T = self._sparse
        if train_T is not None:
            return np.einsum("ij,ji->i", q, train_T)
        # TopKLeaves: the entries of row i in its own leaves
        pos = leaf_index(ens, leaves)
        out = np.zeros(n)
        for j in range(ens.n_trees):  # loop over trees only; rows vectorised
            lo, hi = ens.leaf_offset[j], ens.leaf_offset[j + 1]
            seg = slice(ptr[lo], ptr[hi])
            rows = idx[seg].astype(np.int64)
            leaf_of = np.repeat(np.arange(lo, hi), np.diff(ptr[lo:hi + 1]))
            own = pos[rows, j] == leaf_of
            np.add.at(out, rows[own], q[rows[own], j] * vals[seg][own])
        return out

    def _global(self, Xe, y):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        q = self._final_gradients(leaves, ens.margins_from_leaves(leaves), y)
        table = leaf_aggregate(ens, leaves, q)
        if self._sparse is None:
            return adjoint_single(table, self._leaves_T, ens.tree_round, ens.tree_output,
                                  ens.leaf_offset, self._b, self._cmul_T, self._src_T,
                                  ens.n_outputs)
        ptr, idx, vals, train_T = self._sparse
        if train_T is not None:
            out = np.empty(self.n_train_)
            gather_dot_kernel(self._leaves_T, table, ens.leaf_offset, train_T, out)
            return out
        leaf_of = np.repeat(np.arange(ens.leaf_offset[-1]), np.diff(ptr))
        return np.bincount(idx.astype(np.int64), weights=table[leaf_of] * vals,
                           minlength=self.n_train_)


class LeafRefit(_FixedStructure):
    """Exact leave-one-out with fixed tree structures.

    For each training row, every leaf value is recomputed in boosting order
    with the row's weight set to 0, using g and h at the refitted margins
    before each round (the refitted model's, not the original's); the
    influence is the resulting change of
    the test loss.

    Parameters
    ----------
    update_set : int, default=-1
        -1: every row's margin follows the refit (exact); 0: only the removed
        row's; k >= 1: the rows of the k leaves with the largest change.
    atol : float, default=1e-5
        Tolerance of the leaf-value check.
    n_jobs : int or None, default=None
        Threads for the kernels.
    verbose : bool, default=False
        Show a progress bar (tqdm) over the refits, one per training row
        (``get_local_influence``, ``get_self_influence``,
        ``get_label_edit_influence``).

    Notes
    -----
    Sign convention: positive = helpful: ``l(y_e, F_without_i(x_e)) -
    l(y_e, F(x_e)) > 0``. Cost: O(n_train^2 * n_trees) time for the refits,
    O(n_train) memory per thread.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import LeafRefit
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X[:200], y[:200])
    >>> influence = LeafRefit().fit(model, X[:200], y[:200]).get_local_influence(X[200:202], y[200:202])
    >>> influence.shape
    (200, 2)
    """

    _STATE = {
        "_G": C.Arr("f8", ("L",), finite=True),
        "_H": C.Arr("f8", ("L",), finite=True),
        "_phi": C.Arr("f8", ("L",), finite=True),
        "_before": C.Arr("f8", ("R", "K", "n"), finite=True),
    }

    def __init__(self, update_set=-1, atol=1e-5, n_jobs=None, verbose=False):
        self.update_set = update_set
        self.atol = atol
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _fit(self, Xe, y, w):
        leaves, g, h, G, H, lam, phi, _ = self._prepare(Xe, y, w)
        ens = self.ensemble_
        self._G, self._H, self._phi = G, H, phi
        # original margins before each round, (n_rounds, K, n)
        n_rounds = int(ens.tree_round.max()) + 1
        before = np.empty((n_rounds, ens.n_outputs, self.n_train_))
        z = np.tile(ens.base_margin, (self.n_train_, 1))
        vals = ens.leaf_value[leaf_index(ens, leaves)]
        for r in range(n_rounds):  # rounds only; rows and trees vectorised
            before[r] = z.T
            in_round = np.flatnonzero(ens.tree_round == r)
            np.add.at(z.T, ens.tree_output[in_round], vals[:, in_round].T)
        self._before = before

    def _refit(self, Xe, y, y_new, remove, diag_only=False):
        ens = self.ensemble_
        if diag_only:
            leaves = np.ascontiguousarray(self._leaves_T.T, dtype=np.int32)
            margin, y = self._margin, self._y
        else:
            leaves = ens.apply_encoded(Xe)
            margin = ens.margins_from_leaves(leaves)
        out = np.empty((self.n_train_, 1 if diag_only else leaves.shape[0]))
        y = np.ascontiguousarray(y, dtype=np.float64)
        for start, stop in self._chunks(self.n_train_, "refits"):
            refit_kernel(int(self.update_set), OBJECTIVE_CODES[ens.objective],
                         ens.hessian_factor, ens.learning_rate, ens.reg_alpha, self._y, y_new,
                         self._w, remove, self._before, self._leaves_T, ens.tree_round,
                         ens.tree_output, ens.leaf_offset, self._ptr, self._idx, self._G,
                         self._H, self._lam, self._phi, leaves, margin, y, diag_only, start,
                         stop, out)
        return out

    def _local(self, Xe, y):
        return self._refit(Xe, y, self._y, True)

    def _self(self):
        return self._refit(None, None, self._y, True, diag_only=True)[:, 0]

    def _label_edit(self, Xe, y, value):
        return self._refit(Xe, y, np.full(self.n_train_, value), False)
