"""The shared public contract of every influence estimator.

Public methods validate and encode their input, then call a private hook
(``_fit``, ``_local``, ``_self``, ``_global``, ``_top``) that works on plain
arrays. Subclasses implement the hooks; the generic ``_self``/``_global``/
``_top`` fall back to the dense local matrix only where a method has no
faster path.
"""
from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from .. import _checks as C
from .._numba import num_threads, resolve_n_jobs
from .._trees import parse_model
from .._validation import (N_JOBS, VERBOSE, StrOptions, check_k, check_params,
                           check_sample_weight, check_value, encode_target)
from ..exceptions import (DataValidationError, NotFittedError, PersistenceError,
                          UnverifiedInfluenceWarning,
                          UnsupportedModelError)
from ._progress import compile_notice


def top_from_local(local, k, largest):
    """Top-k of each column of a dense influence matrix, as ``get_top_influence``.

    Parameters
    ----------
    local : ndarray of shape (n_train, n_test)
    k : int
    largest : bool
        True: largest values first (helpful); False: smallest first (harmful).
        Ties go to the lower training index.

    Returns
    -------
    indices : ndarray of shape (n_test, k), int64
    values : ndarray of shape (n_test, k), float64
    """
    local = local.T
    order = np.argsort(-local if largest else local, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(local, order, axis=1)


def _set_training_params(ens, learning_rate, reg_lambda, missing):
    """Apply training parameters given to ``fit`` to a freshly parsed ensemble."""
    if learning_rate is not None:
        lr = float(learning_rate)
        if not (np.isfinite(lr) and lr > 0):
            raise DataValidationError(
                f"learning_rate must be a positive number, got {learning_rate!r}.")
        P = int(ens.params.get("num_parallel_tree", 1) or 1)
        ens.learning_rate = lr / P
        ens.params_source["learning_rate"] = "user"
    if reg_lambda is not None:
        lam = float(reg_lambda)
        if not (np.isfinite(lam) and lam >= 0):
            raise DataValidationError(
                f"reg_lambda must be a non-negative number, got {reg_lambda!r}.")
        ens.leaf_reg_lambda = ens.leaf_reg_lambda - ens.reg_lambda + lam
        ens.reg_lambda = lam
        ens.params_source["reg_lambda"] = "user"
    if missing is not None:
        if not hasattr(ens.encoder, "missing"):
            raise DataValidationError(
                f"missing= is for xgboost Boosters trained on a DMatrix with a "
                f"missing-value sentinel; {ens.library} {ens.model_name} records how it "
                "treats missing values itself.")
        ens.encoder.missing = float(missing)


def _check_data(ens, Xe, y, w, check, user_params):
    """Rows the model trained on and the fidelity report (see treeinf._fidelity).

    Tries the early-stopping split the model records first, then all rows
    (scikit-learn does not record a validation set passed to fit). For
    XGBoost, whose model files store neither learning rate nor L2, estimates
    them from the leaves when the stored ones do not reproduce the leaves.
    """
    from .. import _fidelity as fid
    n = Xe.shape[0]
    rows = fid.training_rows(ens, y, n)
    if not check:
        if ens.library == "xgboost" and user_params == (None, None):
            warnings.warn(
                "check_data=False with an XGBoost model: its learning rate and L2 are "
                f"taken from the booster's configuration (eta={ens.learning_rate:g} per "
                f"tree, lambda={ens.reg_lambda:g}), which for a Booster loaded from a "
                "file are XGBoost's defaults, not the training values, and nothing "
                "verifies them. Pass learning_rate= and reg_lambda= to fit, or leave "
                "check_data=True so they are checked (and estimated when missing).",
                UnverifiedInfluenceWarning, stacklevel=4)
        return rows, {"checked": False, "passed": None, "exact": bool(ens.exact_leaves),
                      "params_source": dict(ens.params_source)}, None
    candidates = [rows, None] if rows is not None else [None]
    first_error = None
    leaves_T = None
    for cand in candidates:
        wc = w if cand is None else _mask_weights(w, cand)
        if ens.kind == "boosting":   # one fused pass: traversal and leaf sums
            leaves_T, sums = fid.fused_newton_sums(ens, Xe, y, wc)
            leaves = leaves_T.T
        else:
            leaves = ens.apply_encoded(Xe)
            sums = fid.newton_sums(ens, leaves, y, wc)
        wcls = fid.class_sampling_weights(ens, y, wc)
        stat_sums = None if wcls is None else fid.newton_sums(ens, leaves, y, wcls)
        report = fid._judge(ens, sums, wc, raise_error=False, stat_sums=stat_sums)
        if not report["passed"] and ens.library == "xgboost" and report["exact"] \
                and user_params == (None, None):
            report = _estimate_xgboost(ens, sums, wc, report)
        if report["passed"]:
            report["checked"] = True
            report["held_out_rows"] = 0 if cand is None else int(n - cand.size)
            # the leaves and hessian sums the check computed, for _fit to reuse
            if leaves_T is None:
                hint = None
            else:
                hint = (leaves_T if cand is None else
                        np.ascontiguousarray(leaves_T[:, cand]), sums["H"])
            return cand, report, hint
        if first_error is None:
            try:
                fid._judge(ens, sums, wc, raise_error=True, stat_sums=stat_sums)
            except Exception as exc:  # keep the message of the likeliest layout
                first_error = exc
    raise first_error


def _mask_weights(w, rows):
    out = np.zeros_like(w)
    out[rows] = w[rows]
    return out


def _estimate_xgboost(ens, sums, w, report):
    """Re-estimate XGBoost's learning rate and L2 (model files lack them)."""
    from .. import _fidelity as fid
    est = fid.estimate_training_params(ens, sums)
    if est is None:
        return report
    P = int(ens.params.get("num_parallel_tree", 1) or 1)
    eta = float(np.float32(fid.snap(est[0] * P))) / P
    lam = fid.snap(est[1])
    lam_leaf = ens.leaf_reg_lambda - ens.reg_lambda + lam
    trial = fid._judge(ens, sums, w, raise_error=False, eta=eta, lam=lam_leaf)
    if not trial["passed"]:
        return report
    ens.learning_rate = eta
    ens.reg_lambda = lam
    ens.leaf_reg_lambda = np.ascontiguousarray(lam_leaf)
    ens.params_source.update(learning_rate="estimated", reg_lambda="estimated")
    trial["params_source"] = dict(ens.params_source)
    return trial


class BaseInfluence(BaseEstimator):
    """Base class of the influence estimators (not for direct use).

    Sign convention: positive influence is *helpful*: removing the training
    row would increase the test row's loss. Negative is harmful.
    """

    #: model kinds ('boosting', 'forest') the method supports
    _supported_kinds = ("boosting", "forest")
    #: compute on the rows the model trained on only (rows held out for
    #: early stopping get influence 0)
    _restrict_to_train_rows = True

    #: fitted attributes a saved file stores, {name: spec from treeinf._checks};
    #: each class adds its own, merged along the class hierarchy
    _STATE = {
        "ensemble_": C.Ensemble(),
        "n_train_": C.Int(1, dim="n"),
        "n_features_in_": C.Int(1, dim="F_in"),
        "feature_names_in_": C.Names("F_in", optional=True),
        "fidelity_": C.Report(),
        "n_rows_in_": C.Int(1, dim="n_in"),
        "train_rows_": C.Arr("i8", ("*",), none=True, values=(0, "n_in")),
    }
    #: fitted attributes not stored but rebuilt by ``_set_state``
    _DERIVED = ()
    #: whether loading needs the model object (retraining methods)
    _needs_model = False

    # ------------------------------------------------------------- fitting
    def fit(self, model, X, y, sample_weight=None, *, learning_rate=None, reg_lambda=None,
            missing=None, check_data=True):
        """Prepare influence computations for ``model`` and its training data.

        Parameters
        ----------
        model : trained tree model or Pipeline
            See :data:`treeinf.SUPPORTED_MODELS`. It is parsed and verified
            against the library's own predictions on ``X``; it is not modified.
        X : array-like or DataFrame of shape (n_train, n_features)
            The training data the model was fitted on, as passed to the model,
            in the same row order as ``y``.
        y : array-like of shape (n_train,)
            Training targets (class labels as the model knows them).
        sample_weight : array-like of shape (n_train,), default=None
            The training weights the model was fitted with.
        learning_rate, reg_lambda : float, default=None
            Training parameters the model does not store (XGBoost model files
            keep neither: a loaded Booster reports XGBoost's defaults). When
            None they are read from the model and, for XGBoost, estimated
            from the data if the stored ones do not reproduce its leaves.
            Given values are used as they are (``fidelity_['params_source']``
            says 'user') and checked like the stored ones.
        missing : float, default=None
            The missing-value sentinel the model was trained with, for a raw
            ``xgboost.Booster`` trained on ``DMatrix(..., missing=value)``:
            values equal to it are routed as missing. (The sklearn wrapper's
            ``missing`` is read from the model.)
        check_data : bool, default=True
            Verify that ``(X, y, sample_weight)`` are the model's training
            data by recomputing every leaf value (see ``fidelity_``). Setting
            it to False is unsafe: influence computed on data that is not the
            training data is silently wrong.

        Returns
        -------
        self

        Raises
        ------
        TrainingDataMismatchError
            If leaves recomputed from the data disagree with the model's.
        """
        resolve_n_jobs(getattr(self, "n_jobs", None))
        self._check_params()
        if not isinstance(check_data, (bool, np.bool_)):
            raise DataValidationError(
                f"check_data must be True or False, got {check_data!r} "
                f"({type(check_data).__name__}).")
        ens = parse_model(model, X)
        if ens.kind not in self._supported_kinds:
            raise UnsupportedModelError(
                f"{type(self).__name__} supports {' and '.join(self._supported_kinds)} "
                f"models; {ens.model_name} is a {ens.kind} model. For forests use a "
                "method that does not need boosting rounds (e.g. TREX, TreeSim, LOO).")
        _set_training_params(ens, learning_rate, reg_lambda, missing)
        Xe = ens.encode(X)
        n = Xe.shape[0]
        y_enc = encode_target(ens, y, n)
        w = check_sample_weight(sample_weight, n)
        cw = ens.class_weight
        if cw is not None and ens.objective != "regression":
            w = w * np.asarray(cw, dtype=np.float64)[y_enc.astype(np.int64)]
        with num_threads(getattr(self, "n_jobs", None)):
            rows, self.fidelity_, hint = _check_data(ens, Xe, y_enc, w, check_data,
                                                     user_params=(learning_rate, reg_lambda))
        self.ensemble_ = ens
        if not self._restrict_to_train_rows:
            rows = None
        self.train_rows_ = rows
        self.n_rows_in_ = n
        if rows is not None:
            Xe, y_enc, w = Xe[rows], y_enc[rows], w[rows]
        self.n_train_ = Xe.shape[0]
        self.n_features_in_ = self._n_input_features(model, X, ens)
        names = self._input_names(model, X, ens)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        # leaves (n_train_, n_trees) and per-leaf hessian sums of the data
        # check, which _fit may reuse instead of computing them again
        self._fit_hint = hint
        try:
            with num_threads(getattr(self, "n_jobs", None)):
                self._fit(Xe, y_enc, w)
        finally:
            self.__dict__.pop("_fit_hint", None)
        return self

    # ------------------------------------------- rows the model trained on
    def _expand_rows(self, out):
        """Rows of ``out`` (n_train_, ...) placed at the rows passed to fit;
        rows the model held out (early stopping) get 0."""
        rows = getattr(self, "train_rows_", None)
        if rows is None:
            return out
        full = np.zeros((self.n_rows_in_,) + out.shape[1:], dtype=out.dtype)
        full[rows] = out
        return full

    def _expand_top(self, idx, val, k, largest):
        """Top-k over the rows passed to fit: held-out rows count as 0."""
        rows = getattr(self, "train_rows_", None)
        if rows is None:
            return idx, val
        m = idx.shape[0]
        full_idx = rows[idx]
        # held-out rows have influence 0: merge them in as candidates
        held = np.setdiff1d(np.arange(self.n_rows_in_), rows)[:k]
        cand_idx = np.concatenate([full_idx, np.broadcast_to(held, (m, held.size))], axis=1)
        cand_val = np.concatenate([val, np.zeros((m, held.size))], axis=1)
        # best value first, ties to the lower training index (as everywhere)
        by_index = np.argsort(cand_idx, axis=1, kind="stable")
        cand_idx = np.take_along_axis(cand_idx, by_index, axis=1)
        cand_val = np.take_along_axis(cand_val, by_index, axis=1)
        order = np.argsort(-cand_val if largest else cand_val, axis=1, kind="stable")[:, :k]
        return (np.take_along_axis(cand_idx, order, axis=1),
                np.take_along_axis(cand_val, order, axis=1))

    @staticmethod
    def _n_input_features(model, X, ens):
        if ens.encoder.preprocessor is not None:
            return int(np.shape(X)[1])
        return ens.n_features

    @staticmethod
    def _input_names(model, X, ens):
        if ens.encoder.preprocessor is not None:
            names = getattr(model, "feature_names_in_", None)
            return None if names is None else list(names)
        return ens.encoder.feature_names

    #: scikit-learn style constraints of the constructor parameters, checked
    #: by ``_check_params`` at ``fit`` (subclasses extend the dict)
    _parameter_constraints: dict = {"n_jobs": N_JOBS, "verbose": VERBOSE}

    def _check_params(self):
        """Validate constructor parameters; announce first-use compilation.

        Subclasses with further checks call ``super()._check_params()`` first.
        """
        check_params(self)
        compile_notice(getattr(self, "verbose", False))

    def __sklearn_is_fitted__(self):
        return hasattr(self, "ensemble_")

    def __sklearn_tags__(self):
        # an explainer is neither a classifier nor a regressor (estimator_type
        # stays None); fit needs y; X may hold NaN and categorical columns as
        # the model saw them (the model decides what it accepts)
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.non_deterministic = self._non_deterministic()
        return tags

    def _non_deterministic(self):
        """Whether two fits of this instance can give different influences."""
        return False

    def _check_fitted(self):
        if not hasattr(self, "ensemble_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call "
                "fit(model, X_train, y_train) first.")

    def _encode_query(self, X, y):
        self._check_fitted()
        Xe = self.ensemble_.encode(X)
        y_enc = encode_target(self.ensemble_, y, Xe.shape[0])
        return Xe, y_enc

    # --------------------------------------------------------- public API
    def get_local_influence(self, X: ArrayLike, y: ArrayLike) -> np.ndarray:
        """Influence of every training row on the loss of every given row.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_test, n_features)
        y : array-like of shape (n_test,)
            Targets to measure the loss against (usually the true labels).

        Returns
        -------
        ndarray of shape (n_train, n_test), float64
            Rows in training order. Positive = helpful (removing the training
            row would increase the test loss), negative = harmful.
        """
        Xe, y_enc = self._encode_query(X, y)
        with num_threads(getattr(self, "n_jobs", None)):
            return self._expand_rows(self._local(Xe, y_enc))

    def get_self_influence(self) -> np.ndarray:
        """Influence of each training row on its own training loss.

        Returns
        -------
        ndarray of shape (n_train,), float64
        """
        self._check_fitted()
        with num_threads(getattr(self, "n_jobs", None)):
            return self._expand_rows(self._self())

    def get_global_influence(self, X: ArrayLike, y: ArrayLike) -> np.ndarray:
        """Summed influence of each training row over the given rows.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_rows, n_features)
        y : array-like of shape (n_rows,)

        Returns
        -------
        ndarray of shape (n_train,), float64
            ``get_local_influence(X, y).sum(axis=1)``, computed without the
            dense matrix where the method allows.
        """
        Xe, y_enc = self._encode_query(X, y)
        with num_threads(getattr(self, "n_jobs", None)):
            return self._expand_rows(self._global(Xe, y_enc))

    def get_top_influence(self, X: ArrayLike, y: ArrayLike, k: int = 10,
                          kind: Literal["helpful", "harmful"] = "helpful"
                          ) -> tuple[np.ndarray, np.ndarray]:
        """The k most helpful (or harmful) training rows for each given row.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_test, n_features)
        y : array-like of shape (n_test,)
        k : int, default=10
        kind : {'helpful', 'harmful'}, default='helpful'
            'helpful' returns the largest influences first, 'harmful' the most
            negative first. Ties are broken by the lower training index.

        Returns
        -------
        indices : ndarray of shape (n_test, k), int64
            Training row indices.
        values : ndarray of shape (n_test, k), float64
            Their influence on each test row.
        """
        check_value(kind, "kind", [StrOptions({"helpful", "harmful"})])
        Xe, y_enc = self._encode_query(X, y)
        k = check_k(k, self.n_rows_in_)
        k_fit = min(k, self.n_train_)
        with num_threads(getattr(self, "n_jobs", None)):
            idx, val = self._top(Xe, y_enc, k_fit, kind == "helpful")
        return self._expand_top(idx, val, k, kind == "helpful")

    # ------------------------------------------------------- persistence
    @classmethod
    def _state_table(cls):
        """{attribute: spec} of the stored state, base classes first."""
        table, derived = {}, set()
        for klass in reversed(cls.__mro__):
            table.update(vars(klass).get("_STATE", {}))
            derived.update(vars(klass).get("_DERIVED", ()))
        return {k: v for k, v in table.items() if k not in derived}, derived

    def _get_state(self):
        """The fitted attributes to store: everything in ``_STATE``.

        Derived attributes (``_DERIVED``) are left out; any other fitted
        attribute raises, so a new one cannot be dropped silently.
        """
        table, derived = self._state_table()
        params = self.get_params(deep=False)
        state = {}
        for key, value in vars(self).items():
            if key in params or key in derived:
                continue
            if key not in table:
                raise PersistenceError(
                    f"Cannot save {type(self).__name__}: its fitted attribute {key!r} is "
                    "in neither its _STATE table (stored and checked on load) nor its "
                    "_DERIVED list (rebuilt on load). Add it to one of them.")
            state[key] = value
        return {key: state[key] for key in table if key in state}  # in table order

    def _state_dims(self):
        """Named dimensions the state's shapes may use besides the ensemble's."""
        return {}

    def _set_state(self, state):
        """Validate a loaded state against ``_STATE`` and set it.

        The parameters are checked first, then every stored attribute in
        table order (the ensemble first, whose sizes the others are checked
        against). Subclasses rebuild their derived attributes afterwards.
        Returns the named dimensions (n, T, L, K, ...); raises
        PersistenceError for anything out of place.
        """
        try:
            resolve_n_jobs(getattr(self, "n_jobs", None))
            self._check_params()
        except (DataValidationError, TypeError, ValueError) as exc:
            C.bad(f"the saved {type(self).__name__} parameters are invalid ({exc})")
        table, _ = self._state_table()
        dims = self._state_dims()
        self.__dict__.update(C.check_state(state, table, dims, type(self).__name__))
        return dims

    def save(self, file: Any, compress: bool = False) -> None:
        """Write the fitted explainer to a file that loads without executing code.

        The file is a zip archive of ``.npy`` arrays (written without pickle)
        and JSON metadata: the class, its parameters, the fitted state, the
        treeinf version and a fingerprint of the model. Read it back with
        :func:`treeinf.load`; the loaded explainer's influences equal this
        one's exactly. Pickling works as well.

        Model objects are not stored (that would need pickle). Explainers that
        keep one need it at load, ``treeinf.load(file, model=model)``: LOO,
        SubSample and DShap (they refit the model; SubSample refits its
        ``n_models`` clones again at load) and any explainer fitted on a
        ``Pipeline`` with preprocessing steps.

        Parameters
        ----------
        file : str, path-like or binary file object
            Written atomically when a path (a temporary file in the same
            directory is renamed), so a failed save leaves no partial file.
        compress : bool, default=False
            Deflate the members (smaller, slower).

        Raises
        ------
        NotFittedError
            If the explainer is not fitted.
        PersistenceError
            If an attribute (e.g. a parameter) holds an object that cannot be
            stored without pickle; the message names it.
        """
        from ._io import save
        save(self, file, compress=compress)

    # ------------------------------------------------ generic fallbacks
    def _global(self, Xe, y_enc):
        return self._local(Xe, y_enc).sum(axis=1)

    def _top(self, Xe, y_enc, k, largest):
        return top_from_local(self._local(Xe, y_enc), k, largest)


class LabelEditMixin:
    """``get_label_edit_influence`` for methods with a ``_label_edit`` hook."""

    def get_label_edit_influence(self, X: ArrayLike, y: ArrayLike,
                                 target: ArrayLike) -> np.ndarray:
        """Influence of relabelling each training row on each given row.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_test, n_features)
        y : array-like of shape (n_test,)
            Labels the test loss is measured against (usually the truth).
        target : array-like of shape (n_test,)
            For test row e, the label every training row would be changed to
            (a class label the model knows, or a regression target).

        Returns
        -------
        ndarray of shape (n_train, n_test), float64
            Positive = changing the training row's label to ``target[e]``
            increases the loss of test row e. Rows whose label already is
            ``target[e]`` get 0.
        """
        Xe, y_enc = self._encode_query(X, y)
        t_enc = encode_target(self.ensemble_, target, Xe.shape[0], name="target")
        out = np.empty((self.n_train_, Xe.shape[0]))
        with num_threads(getattr(self, "n_jobs", None)):
            for value in np.unique(t_enc):  # rows sharing a target share the work
                cols = np.flatnonzero(t_enc == value)
                out[:, cols] = self._label_edit(Xe[cols], y_enc[cols], float(value))
        return self._expand_rows(out)
