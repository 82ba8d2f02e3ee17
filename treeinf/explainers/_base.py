"""The shared public contract of every influence estimator.

Public methods validate and encode their input, then call a private hook
(``_fit``, ``_local``, ``_self``, ``_global``, ``_top``) that works on plain
arrays. Subclasses implement the hooks; the generic ``_self``/``_global``/
``_top`` fall back to the dense local matrix only where a method has no
faster path.
"""
import numpy as np
from sklearn.base import BaseEstimator

from .. import _checks as C
from .._numba import num_threads, resolve_n_jobs
from .._trees import parse_model
from .._validation import check_k, check_sample_weight, encode_target
from ..exceptions import (DataValidationError, NotFittedError, PersistenceError,
                          UnsupportedModelError)


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

    #: fitted attributes a saved file stores, {name: spec from treeinf._checks};
    #: each class adds its own, merged along the class hierarchy
    _STATE = {
        "ensemble_": C.Ensemble(),
        "n_train_": C.Int(1, dim="n"),
        "n_features_in_": C.Int(1, dim="F_in"),
        "feature_names_in_": C.Names("F_in", optional=True),
    }
    #: fitted attributes not stored but rebuilt by ``_set_state``
    _DERIVED = ()
    #: whether loading needs the model object (retraining methods)
    _needs_model = False

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

    def _check_params(self):
        """Validate constructor parameters (subclasses extend)."""

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
    def get_local_influence(self, X, y):
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

    def get_self_influence(self):
        """Influence of each training row on its own training loss.

        Returns
        -------
        ndarray of shape (n_train,), float64
        """
        self._check_fitted()
        with num_threads(getattr(self, "n_jobs", None)):
            return self._self()

    def get_global_influence(self, X, y):
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

    def get_top_influence(self, X, y, k=10, kind="helpful"):
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
        if kind not in ("helpful", "harmful"):
            raise DataValidationError(
                f"kind must be 'helpful' or 'harmful', got {kind!r}.")
        Xe, y_enc = self._encode_query(X, y)
        k = check_k(k, self.n_train_)
        with num_threads(getattr(self, "n_jobs", None)):
            return self._top(Xe, y_enc, k, kind == "helpful")

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

    def save(self, file, compress=False):
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

    def get_label_edit_influence(self, X, y, target):
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
