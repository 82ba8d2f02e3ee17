"""The shared public contract of every influence estimator.

Public methods validate and encode their input, then call a private hook
(``_fit``, ``_local``, ``_self``, ``_global``, ``_top``) that works on plain
arrays. Subclasses implement the hooks; the generic ``_self``/``_global``/
``_top`` fall back to the dense local matrix only where a method has no
faster path.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator

from .._numba import num_threads, resolve_n_jobs
from .._trees import parse_model
from .._validation import (N_JOBS, VERBOSE, StrOptions, check_k, check_params,
                           check_sample_weight, check_value, encode_target)
from ..exceptions import DataValidationError, NotFittedError, UnsupportedModelError
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


class BaseInfluence(BaseEstimator):
    """Base class of the influence estimators (not for direct use).

    Sign convention: positive influence is *helpful*: removing the training
    row would increase the test row's loss. Negative is harmful.
    """

    #: model kinds ('boosting', 'forest') the method supports
    _supported_kinds = ("boosting", "forest")

    # ------------------------------------------------------------- fitting
    def fit(self, model, X, y, sample_weight=None):
        """Prepare influence computations for ``model`` and its training data.

        Parameters
        ----------
        model : trained tree model or Pipeline
            See :data:`treeinf.SUPPORTED_MODELS`. It is parsed and verified
            against the library's own predictions on ``X``; it is not modified.
        X : array-like or DataFrame of shape (n_train, n_features)
            The training data the model was fitted on, as passed to the model.
        y : array-like of shape (n_train,)
            Training targets (class labels as the model knows them).
        sample_weight : array-like of shape (n_train,), default=None
            The training weights the model was fitted with.

        Returns
        -------
        self
        """
        resolve_n_jobs(getattr(self, "n_jobs", None))
        self._check_params()
        ens = parse_model(model, X)
        if ens.kind not in self._supported_kinds:
            raise UnsupportedModelError(
                f"{type(self).__name__} supports {' and '.join(self._supported_kinds)} "
                f"models; {ens.model_name} is a {ens.kind} model. For forests use a "
                "method that does not need boosting rounds (e.g. TREX, TreeSim, LOO).")
        Xe = ens.encode(X)
        n = Xe.shape[0]
        y_enc = encode_target(ens, y, n)
        w = check_sample_weight(sample_weight, n)
        cw = ens.params.get("class_weight")
        if cw is not None and ens.objective != "regression":
            w = w * np.asarray(cw, dtype=np.float64)[y_enc.astype(np.int64)]
        self.ensemble_ = ens
        self.n_train_ = n
        self.n_features_in_ = self._n_input_features(model, X, ens)
        names = self._input_names(model, X, ens)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        with num_threads(getattr(self, "n_jobs", None)):
            self._fit(Xe, y_enc, w)
        return self

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
            return self._local(Xe, y_enc)

    def get_self_influence(self) -> np.ndarray:
        """Influence of each training row on its own training loss.

        Returns
        -------
        ndarray of shape (n_train,), float64
        """
        self._check_fitted()
        with num_threads(getattr(self, "n_jobs", None)):
            return self._self()

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
            return self._global(Xe, y_enc)

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
        k = check_k(k, self.n_train_)
        with num_threads(getattr(self, "n_jobs", None)):
            return self._top(Xe, y_enc, k, kind == "helpful")

    # ------------------------------------------------------- persistence
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
        from .._persist import save
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
        return out
