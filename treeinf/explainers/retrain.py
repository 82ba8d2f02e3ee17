"""Retraining-based influence: LOO, SubSample and DShap.

These methods do not look inside the trees: they refit copies of the model
(``sklearn.base.clone``: same hyperparameters and seed) on subsets of the
training data and compare the copies' own predictions. Fitting parses and
verifies the model like every explainer (this validates the data and the
queries), and keeps the model and the training data in the user's format so
that copies can be refitted exactly as the original was.

Queries are validated and encoded by the ensemble's encoder like for every
explainer, then rebuilt in the representation of the training table (its
columns and dtypes; pandas categoricals with the training categories), so
every input form the other estimators accept (categories as values or codes,
object arrays, lists, numeric strings, sparse matrices) gives the influence of
the canonical form. A Pipeline's own steps read the query as it is given.

Every refit runs single-threaded (``n_jobs``/``thread_count``/``nthread`` set
to 1 where the model has such a parameter) inside a joblib worker, so
``n_jobs`` workers never oversubscribe the cores. Random choices (subsets,
permutations) are derived from ``random_state`` per task with
:class:`numpy.random.SeedSequence`, so results do not depend on ``n_jobs``.
"""
import numbers
import warnings

import numpy as np
from sklearn.base import clone

from .. import _checks as C
from .._losses import P_CLIP
from .._numba import resolve_n_jobs
from .._validation import NON_NEGATIVE_REAL, POSITIVE_INT, RANDOM_STATE, Interval
from ..exceptions import DataValidationError, ModelMismatchError, UnsupportedModelError
from ._base import BaseInfluence, LabelEditMixin

_THREAD_PARAMS = ("n_jobs", "thread_count", "nthread")


# ------------------------------------------------------------------ helpers
def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _take(X, rows):
    """Rows ``rows`` of X in X's own format (``.iloc`` for DataFrames)."""
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _as_table(X):
    """The user's X, copied; lists become arrays, DataFrames stay DataFrames,
    sparse matrices stay sparse (COO and others become CSR, for row selection)."""
    if hasattr(X, "iloc"):
        return X.copy()
    if hasattr(X, "tocsr"):
        return X.copy() if getattr(X, "format", None) in ("csr", "csc") else X.tocsr()
    return np.array(X)


def _is_category(dtype):
    return str(dtype) == "category"


def _raw_columns(X):
    """The user's query as a 2-D object array of its raw cell values."""
    if hasattr(X, "iloc"):
        return np.column_stack([X.iloc[:, j].to_numpy(dtype=object)
                                for j in range(X.shape[1])]) if X.shape[1] else \
            np.empty((X.shape[0], 0), dtype=object)
    return np.asarray(X, dtype=object)


def _column_values(plan, j, Xe, raw, encoder, train_dtype):
    """Values of query column j in the model's representation (see _like_training)."""
    if plan == "numeric":
        return Xe[:, j]
    if plan == "raw":
        return raw[:, j]
    cats = encoder.categories.get(j)
    if cats is None:
        cats = list(train_dtype.categories)
    codes = Xe[:, j]
    out = np.full(codes.shape[0], None, dtype=object)
    ok = np.isfinite(codes) & (codes >= 0) & (codes < len(cats))
    for i in np.flatnonzero(ok):
        out[i] = cats[int(codes[i])]
    return out


def _column_plan(encoder, j, train_dtype):
    """How query column j is given to the library.

    'numeric': the encoded number (numeric columns; categorical codes the
    library reads as numbers). 'categories': the category value the encoded
    code stands for (columns the model was trained on as pandas categoricals
    or with a recorded category list). 'raw': the user's own value (CatBoost
    categorical columns, whose code only says which of the model's one-hot
    splits the value matches, and a refitted clone may split on others).
    """
    from .._trees._catboost import CatBoostEncoder
    categorical = j in set(encoder.categorical_columns)
    if categorical and isinstance(encoder, CatBoostEncoder):
        return "raw"
    if categorical and (encoder.categories.get(j) is not None
                        or (train_dtype is not None and _is_category(train_dtype))):
        return "categories"
    return "numeric"


def _like_training(X, Xe, train, encoder):
    """The query X in the representation the model was trained with.

    ``Xe`` is X encoded by the ensemble's encoder (validated, categories
    looked up, numeric strings converted). The result has the training
    table's format: a DataFrame with its columns and dtypes (categorical
    columns as pandas categoricals with the training categories), or an array;
    refitted clones then read every accepted query form as they read the
    canonical one.
    """
    if hasattr(train, "iloc"):
        import pandas as pd
        raw = None
        data = {}
        for j in range(train.shape[1]):
            dtype = train.dtypes.iloc[j]
            plan = _column_plan(encoder, j, dtype)
            if plan == "raw" and raw is None:
                raw = _raw_columns(X)
            values = _column_values(plan, j, Xe, raw, encoder, dtype)
            if _is_category(dtype):
                values = pd.Categorical(values, dtype=dtype)
            elif plan != "numeric":
                values = np.asarray(values, dtype=object)
            data[j] = values
        frame = pd.DataFrame(data, index=pd.RangeIndex(Xe.shape[0]))
        frame.columns = train.columns
        return frame
    if hasattr(train, "nnz"):   # scipy sparse: the dense matrix means the same
        return Xe.copy()
    plans = [_column_plan(encoder, j, None) for j in range(Xe.shape[1])]
    if all(p == "numeric" for p in plans):
        return Xe.copy()
    raw = _raw_columns(X) if "raw" in plans else None
    out = np.empty(Xe.shape, dtype=object)
    for j, plan in enumerate(plans):
        out[:, j] = _column_values(plan, j, Xe, raw, encoder, None)
    if raw is None:  # numeric category values (e.g. HistGradientBoosting on an array)
        try:
            return np.array([[np.nan if v is None else v for v in row] for row in out],
                            dtype=np.float64)
        except (TypeError, ValueError):
            pass
    return out


def _final_step(model):
    steps = getattr(model, "steps", None)
    if steps and any(f"{c.__module__}.{c.__qualname__}" == "sklearn.pipeline.Pipeline"
                     for c in type(model).__mro__):
        return steps[-1][0] + "__", steps[-1][1]
    return "", model


def _single_threaded(model):
    """An unfitted clone of ``model`` whose every thread parameter is 1."""
    est = clone(model)
    params = est.get_params(deep=True)
    update = {k: 1 for k in params if k.rsplit("__", 1)[-1] in _THREAD_PARAMS}
    prefix, final = _final_step(est)
    if type(final).__module__.split(".")[0] == "catboost":
        update[prefix + "thread_count"] = 1  # CatBoost lists only explicit params
    est.set_params(**update)
    return est


def task_rng(entropy, task):
    """The random generator of task number ``task`` (permutation, subset).

    Derived from ``entropy`` alone, so a task draws the same numbers whichever
    worker runs it and however many workers there are.
    """
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(int(task),)))


class _Trainer:
    """Fits single-threaded clones of the model on subsets of the training data."""

    def __init__(self, template, X, y, sample_weight, fit_params, weight_key, name):
        self.template = template
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        self.fit_params = fit_params
        self.weight_key = weight_key
        self.name = name

    def fit(self, rows=None, edit=None):
        """A clone fitted on training rows ``rows`` (sorted; None = all).

        ``edit=(i, label)`` relabels training row i first (label-edit refits).
        """
        y = self.y
        if edit is not None:
            y = y.copy()
            y[edit[0]] = edit[1]
        if rows is None:
            rows = np.arange(len(y))
        kw = dict(self.fit_params)
        if self.sample_weight is not None:
            kw[self.weight_key] = self.sample_weight[rows]
        model = clone(self.template)
        try:
            model.fit(_take(self.X, rows), y[rows], **kw)
        except Exception as exc:
            exc.add_note(f"treeinf: refitting a clone of {self.name} on {len(rows)} of "
                         f"{len(self.y)} training rows failed.")
            raise
        return model


class _Scorer:
    """Per-row losses of a model's own predictions on query rows.

    Classifiers are scored with ``predict_proba`` (columns matched to the
    classes through the model's ``classes_``, probabilities clipped to
    [1e-5, 1-1e-5]); regressors with ``predict`` and the squared error
    ``(y - prediction)^2 / 2``.
    """

    def __init__(self, X, y, classes, name):
        self.X = X
        self.y = np.asarray(y, dtype=np.float64)
        self.classes = classes
        self.name = name

    def losses(self, model, rows=None):
        X = self.X if rows is None else _take(self.X, rows)
        y = self.y if rows is None else self.y[rows]
        if self.classes is None:
            pred = np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
            return 0.5 * (y - pred) ** 2
        import pandas as pd
        cols = pd.Index(model.classes_).get_indexer(self.classes)
        if np.any(cols < 0):
            missing = [c for c, j in zip(self.classes, cols) if j < 0]
            raise DataValidationError(
                f"A refitted clone of {self.name} does not know the classes {missing[:5]} "
                "(its training subset had no row of them, or only rows with weight 0); "
                "every class needs at least two training rows with positive weight.")
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        p = proba[np.arange(proba.shape[0]), cols[y.astype(np.int64)]]
        return -np.log(np.clip(p, P_CLIP, 1.0 - P_CLIP))


def _reduce(losses, mode, row=None):
    """What a task keeps of a loss vector: all of it, its sum, or one entry."""
    if mode == "local":
        return losses
    if mode == "global":
        return losses.sum()
    return losses[row]


class _Rows:
    """Query rows kept in the user's format, so models can predict on them.

    Behaves like the encoded matrix the base class passes to the hooks where
    it needs to (``shape[0]`` and row selection).
    """

    def __init__(self, X):
        self.X = X
        self.shape = (_n_rows(X),)

    def __getitem__(self, rows):
        return _Rows(_take(self.X, rows))


# -------------------------------------------------------------- workers
def _refit_task(trainer, scorer, mode, leave_out=None, edit=None):
    """Losses (reduced by ``mode``) of a clone refitted without row ``leave_out``
    (or on every row, with the label edit ``edit``)."""
    rows = None if leave_out is None else np.delete(np.arange(len(trainer.y)), leave_out)
    model = trainer.fit(rows, edit)
    if mode == "self":
        return scorer.losses(model, [leave_out])[0]
    return _reduce(scorer.losses(model), mode)


def _fit_task(trainer, rows):
    return trainer.fit(rows)


def _tmc_scan(trainer, scorer, perm, full, empty, constant, trainable, trunc_tol, mode):
    """One truncated Monte-Carlo permutation of data Shapley.

    Adds the rows of ``perm`` one at a time; the contribution of a row is the
    decrease of the query loss its addition causes (positive = helpful). The
    full set's losses are ``full`` (the original model); sets the model cannot
    be trained on use the constant predictor ``constant(rows)``.

    Returns
    -------
    contrib : ndarray of shape (n_train, n_query) ('local') or (n_train,)
    summary : ndarray of shape (n_train,)
        Contribution to the mean query loss (the convergence statistic).
    n_fits : int
    """
    n = perm.shape[0]
    q = full.shape[0]
    contrib = np.zeros((n, q) if mode == "local" else n)
    prev = empty
    target = full.mean()
    n_fits = 0
    for j in range(n):
        row = perm[j]
        if j == n - 1:
            cur = full
        else:
            rows = np.sort(perm[:j + 1])
            if trainable(rows):
                cur = scorer.losses(trainer.fit(rows))
                n_fits += 1
            else:
                cur = constant(rows)
        contrib[row] = _reduce(prev - cur, mode, row)
        prev = cur
        if abs(cur.mean() - target) <= trunc_tol * abs(target):
            break
    if mode == "local":
        summary = contrib.mean(axis=1)
    elif mode == "global":
        summary = contrib / q
    else:
        summary = contrib
    return contrib, summary, n_fits


# ----------------------------------------------------------- explainers
class _Retrain(BaseInfluence):
    """Shared fitting and execution of the retraining methods."""

    #: whether the method compares against the original model's predictions
    _uses_original = True

    # saved state: the training data in the user's format and the encoded
    # targets; the model is given back to load() and the trainer rebuilt
    _needs_model = True
    _STATE = {
        "_y_enc": C.Arr("f8", ("n",), values="label"),
        "_w_eff": C.Arr("f8", ("n",), finite=True),
        "_X": C.Table("n", "F_in"),
        "_y": C.AnyArr(("n",)),
        "_classes": C.AnyArr(lambda d: ("C",), none=True),
        "_model": C.Part(),
        "_sample_weight": C.Arr("f8", ("n",), finite=True, none=True),
        "refit_max_difference_": C.Float(0.0, nan=True, optional=True),
    }
    _DERIVED = ("_trainer",)

    def _get_state(self):
        state = super()._get_state()
        state["_sample_weight"] = self._trainer.sample_weight
        return state

    def _set_state(self, state):
        dims = super()._set_state(state)
        w = self.__dict__.pop("_sample_weight")
        ens = self.ensemble_
        if (self._classes is None) != (ens.objective == "regression"):
            C.bad(f"{type(self).__name__}._classes does not fit a {ens.objective} model")
        prefix, _ = _final_step(self._model)
        fit_params = {} if self.fit_params is None else self.fit_params
        self._trainer = _Trainer(_single_threaded(self._model), self._X, self._y, w,
                                 dict(fit_params), prefix + "sample_weight", ens.model_name)
        return dims

    #: refits see every row passed to fit, as the model's own fit did
    _restrict_to_train_rows = False

    def fit(self, model, X, y, sample_weight=None, *, check_data=True):
        """Keep the model and its training data for refitting copies of it.

        Parameters
        ----------
        model : scikit-learn-API tree model or Pipeline
            A fitted LGBM*/XGB*/CatBoost*/sklearn tree estimator (or a
            Pipeline ending in one). Raw Boosters cannot be refitted and are
            rejected. The model is parsed and verified on ``X`` like for every
            explainer; it is not modified.
        X : array-like or DataFrame of shape (n_train, n_features)
            The training data exactly as the model was fitted on it; refits
            take subsets of it in the same format (``.iloc`` for DataFrames).
        y : array-like of shape (n_train,)
            Training targets as the model was fitted on them.
        sample_weight : array-like of shape (n_train,), default=None
            The training weights the model was fitted with; each refit passes
            the weights of its rows.
        check_data : bool, default=True
            Verify that ``(X, y, sample_weight)`` are the model's training
            data (see :meth:`BaseInfluence.fit`); False is unsafe.

        Returns
        -------
        self
        """
        if not (hasattr(model, "get_params") and hasattr(model, "fit")):
            raise UnsupportedModelError(
                f"{type(self).__name__} refits the model, so it needs a scikit-learn-API "
                f"estimator (e.g. LGBMClassifier, XGBRegressor, CatBoostClassifier); got "
                f"{type(model).__module__}.{type(model).__qualname__}. Train through the "
                "library's scikit-learn wrapper instead of a raw Booster.")
        prefix, _ = _final_step(model)
        fit_params = {} if self.fit_params is None else self.fit_params
        super().fit(model, X, y, sample_weight, check_data=check_data)
        ens = self.ensemble_
        self._X = _as_table(X)
        if hasattr(y, "to_numpy"):
            y = y.to_numpy()
        y = np.array(y)
        if ens.objective == "regression":
            y = y.astype(np.float64)
        self._y = y
        self._classes = None if ens.objective == "regression" else np.asarray(ens.classes)
        w = None if sample_weight is None else np.asarray(
            sample_weight.to_numpy() if hasattr(sample_weight, "to_numpy") else sample_weight,
            dtype=np.float64)
        self._model = model
        self._trainer = _Trainer(_single_threaded(model), self._X, y, w, dict(fit_params),
                                 prefix + "sample_weight", ens.model_name)
        if self._classes is not None and not hasattr(model, "predict_proba"):
            raise UnsupportedModelError(
                f"{ens.model_name} has no predict_proba; {type(self).__name__} scores "
                "classifiers by their predicted probabilities.")
        self._fit_retrain()
        return self

    _parameter_constraints = {**BaseInfluence._parameter_constraints,
                              "fit_params": [dict, None]}
    _parameter_hints = {"fit_params": "Pass a dict of extra arguments to model.fit."}

    def _check_params(self):
        super()._check_params()
        if self.fit_params and any(k.endswith("sample_weight") for k in self.fit_params):
            raise DataValidationError(
                "fit_params must not contain sample_weight; pass the weights to "
                "fit(model, X, y, sample_weight=...) so each refit gets its rows' weights.")

    def _non_deterministic(self):
        return getattr(self, "random_state", 0) is None

    def _fit(self, Xe, y, w):
        self._y_enc = y
        self._w_eff = w

    def _fit_retrain(self):
        if self._uses_original:
            self._check_refit()

    def _check_refit(self):
        """Warn when a clone refitted on all rows does not reproduce the model.

        Then the influences mix the effect of removing a row with the
        difference between the model and its refit (an unseeded model, or
        one trained on other data or with other fit arguments).
        """
        refit = self._trainer.fit()
        ref, got = self._outputs(self._model), self._outputs(refit)
        diff = float(np.max(np.abs(ref - got))) if ref.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        self.refit_max_difference_ = diff
        if diff > 1e-6 * (1.0 + scale):
            warnings.warn(
                f"{type(self).__name__}: {self.ensemble_.model_name} refitted on all "
                f"{self.n_train_} training rows differs from the given model by up to "
                f"{diff:.3g} on the training data, so influences include that difference. "
                "Fix the model's random seed (random_state / random_seed), check that X, y "
                "and sample_weight are the data the model was fitted on, and pass any "
                "extra fit arguments in fit_params.", UserWarning, stacklevel=3)

    def _outputs(self, model):
        if self._classes is None:
            return np.asarray(model.predict(self._X), dtype=np.float64)
        return np.asarray(model.predict_proba(self._X), dtype=np.float64)

    def _encode_query(self, X, y):
        Xe, y_enc = super()._encode_query(X, y)  # checks X's columns and y's labels
        enc = self.ensemble_.encoder
        if enc.preprocessor is not None:
            # a Pipeline: its own steps read the query, as every estimator's encoder does
            return _Rows(_as_table(X) if isinstance(X, list) else X), y_enc
        return _Rows(_like_training(X, Xe, self._X, enc)), y_enc

    def _scorer(self, rows, y):
        return _Scorer(rows.X, y, self._classes, self.ensemble_.model_name)

    def _train_scorer(self):
        return _Scorer(self._X, self._y_enc, self._classes, self.ensemble_.model_name)

    def _n_workers(self):
        return resolve_n_jobs(self.n_jobs)

    def _progress(self, total, desc):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=f"{type(self).__name__} {desc}")

    def _run(self, func, args_list, desc):
        """``[func(*args) for args in args_list]`` on ``n_jobs`` workers, in order."""
        from joblib import Parallel, delayed
        bar = self._progress(len(args_list), desc)
        results = []
        try:
            gen = Parallel(n_jobs=self._n_workers(), return_as="generator")(
                delayed(func)(*args) for args in args_list)
            for res in gen:
                results.append(res)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return results

    def _entropy(self):
        """Entropy of this fit's or query's random choices: the integer
        ``random_state`` itself, a draw from a ``RandomState`` (which thereby
        advances), or fresh entropy for None."""
        rs = self.random_state
        if rs is None:
            return np.random.SeedSequence().entropy
        if isinstance(rs, numbers.Integral):
            return int(rs)
        return int(rs.randint(0, 2 ** 63 - 1, dtype=np.int64))


class LOO(LabelEditMixin, _Retrain):
    """Leave-one-out influence by refitting the model without each row.

    ``LOO(i, e) = loss(y_e, f_{-i}(x_e)) - loss(y_e, f(x_e))`` where ``f`` is
    the given model and ``f_{-i}`` a clone of it (same hyperparameters and
    seed) refitted on every training row but ``i``, with the others' sample
    weights.

    Parameters
    ----------
    fit_params : dict or None, default=None
        Extra keyword arguments for every refit's ``model.fit`` (e.g.
        ``cat_features``); not row-aligned arguments and not
        ``sample_weight`` (that is taken from :meth:`fit`).
    n_jobs : int or None, default=None
        Parallel refits (joblib workers, each single-threaded); None or -1
        uses all cores.
    verbose : bool, default=False
        Show a progress bar (tqdm) over the refits.

    Attributes
    ----------
    ensemble_ : FlatEnsemble
        The parsed, verified model (used to validate queries).
    n_train_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when the model was trained with named columns.
    refit_max_difference_ : float
        Largest difference between the model's outputs on the training data
        and those of a clone refitted on all rows (should be ~0; a warning is
        issued otherwise).

    Notes
    -----
    Sign convention: positive = helpful. ``get_local_influence(X, y)[i, e] >
    0`` means the model refitted without training row i has a larger loss on
    row e.

    Losses are computed from the models' own predictions: ``predict_proba``
    for classifiers (log loss, probabilities clipped to [1e-5, 1-1e-5]) and
    ``predict`` for regressors (``(y - prediction)^2 / 2``).

    Every query refits the model n_train times (``get_self_influence`` too),
    so pass all rows of interest in one call. For classifiers every class
    needs at least two training rows (removing the only row of a class would
    change the model's outputs); :meth:`fit` raises otherwise. A model without
    a fixed seed (e.g. ``random_state=None``) makes the refits random, and a
    bootstrapped forest redraws every bootstrap sample when a row is removed;
    :meth:`fit` warns when a refit on all rows does not reproduce the model.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import LOO
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X[:60], y[:60])
    >>> explainer = LOO(n_jobs=1).fit(model, X[:60], y[:60])
    >>> explainer.get_local_influence(X[400:403], y[400:403]).shape
    (60, 3)
    """

    def __init__(self, fit_params=None, n_jobs=None, verbose=False):
        self.fit_params = fit_params
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _fit_retrain(self):
        if self._classes is not None:
            counts = np.bincount(self._y_enc.astype(np.int64), minlength=len(self._classes))
            if np.any(counts < 2):
                lonely = [self._classes[c] for c in np.flatnonzero(counts < 2)][:5]
                raise DataValidationError(
                    f"Classes {lonely} have fewer than two training rows; removing such a "
                    "row leaves a model that does not know the class, so LOO is undefined "
                    "for it. Drop those rows (and retrain) or merge the classes.")
        super()._fit_retrain()

    def _loo(self, scorer, mode):
        args = [(self._trainer, scorer, mode, i) for i in range(self.n_train_)]
        return np.asarray(self._run(_refit_task, args, "refits"), dtype=np.float64)

    def _local(self, rows, y):
        scorer = self._scorer(rows, y)
        return self._loo(scorer, "local") - scorer.losses(self._model)[None, :]

    def _global(self, rows, y):
        scorer = self._scorer(rows, y)
        return self._loo(scorer, "global") - scorer.losses(self._model).sum()

    def _self(self):
        scorer = self._train_scorer()
        return self._loo(scorer, "self") - scorer.losses(self._model)

    def _label_edit(self, rows, y, value):
        """Refit with each training row relabelled to ``value`` (encoded)."""
        scorer = self._scorer(rows, y)
        label = value if self._classes is None else self._classes[int(value)]
        edit = np.flatnonzero(self._y_enc != value)
        args = [(self._trainer, scorer, "local", None, (i, label)) for i in edit]
        out = np.zeros((self.n_train_, rows.shape[0]))
        if edit.size:
            losses = np.asarray(self._run(_refit_task, args, "label-edit refits"))
            out[edit] = losses - scorer.losses(self._model)[None, :]
        return out


class SubSample(_Retrain):
    """Influence from models refitted on random subsets of the training data.

    ``n_models`` clones of the model are refitted, each on a random
    ``subsample`` fraction of the training rows (drawn without replacement)::

        SubSample(i, e) = mean_{k: i not in S_k} loss_k(e)
                          - mean_{k: i in S_k} loss_k(e)

    The models are trained once, in :meth:`fit`; queries only predict.

    Parameters
    ----------
    n_models : int, default=100
        Number of refitted models.
    subsample : float in (0, 1), default=0.7
        Fraction of the training rows each model is fitted on
        (``round(subsample * n_train)`` rows, at least 2 and at most
        ``n_train - 1``).
    random_state : int, RandomState or None, default=None
        Seed of the subsets. The model's own seed is kept (clones). A
        ``numpy.random.RandomState`` is drawn from once per ``fit``; None
        draws fresh entropy.
    fit_params : dict or None, default=None
        Extra keyword arguments for every refit's ``model.fit``.
    n_jobs : int or None, default=None
        Parallel refits (joblib workers, each single-threaded); None or -1
        uses all cores.
    verbose : bool, default=False
        Show a progress bar (tqdm) over the refits.

    Attributes
    ----------
    models_ : list of estimators
        The ``n_models`` refitted clones (single-threaded).
    in_subset_ : ndarray of shape (n_models, n_train), bool
        ``in_subset_[k, i]`` is True when training row i was in model k's
        subset.
    ensemble_, n_train_, n_features_in_, feature_names_in_
        As for every explainer.

    Notes
    -----
    Sign convention: positive = helpful (models without the row have a
    larger loss on average). A row that is in every subset or in none gets
    influence 0 (there is nothing to compare); with the default settings
    that is rare (probability ``0.7**100``).

    For classifiers a subset that misses a class is redrawn (from the same
    model's random stream), so every model knows every class; rows of a class
    too small to leave out are therefore in every subset and get 0.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import SubSample
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X[:100], y[:100])
    >>> explainer = SubSample(n_models=20, random_state=0, n_jobs=1).fit(model, X[:100], y[:100])
    >>> explainer.in_subset_.shape            # (n_models, n_train)
    (20, 100)
    >>> explainer.get_local_influence(X[400:403], y[400:403]).shape
    (100, 3)
    """

    _uses_original = False

    def __init__(self, n_models=100, subsample=0.7, random_state=None, fit_params=None,
                 n_jobs=None, verbose=False):
        self.n_models = n_models
        self.subsample = subsample
        self.random_state = random_state
        self.fit_params = fit_params
        self.n_jobs = n_jobs
        self.verbose = verbose

    _parameter_constraints = {**_Retrain._parameter_constraints,
                              "n_models": [POSITIVE_INT],
                              "subsample": [Interval(numbers.Real, 0, 1, closed="neither")],
                              "random_state": RANDOM_STATE}

    def _subset(self, entropy, k, size):
        rng = task_rng(entropy, k)
        n = self.n_train_
        for _ in range(1000):
            rows = np.sort(rng.choice(n, size=size, replace=False))
            if self._classes is None or np.unique(self._y_enc[rows]).size == len(self._classes):
                return rows
        raise DataValidationError(
            f"Could not draw a subset of {size} of {n} training rows that contains every "
            "class in 1000 attempts; increase subsample or merge rare classes.")

    # the refitted models are refitted again on load and checked against
    # fingerprints taken at save time
    _STATE = {
        "in_subset_": C.Arr("?", ("m", "n")),
        "_refit_fingerprints": C.AnyArr(("m",)),
    }
    _DERIVED = ("models_",)

    def _state_dims(self):
        return {"m": int(self.n_models)}

    def _get_state(self):
        from .._checks import model_fingerprint
        from .._trees import parse_model
        state = super()._get_state()
        state["_refit_fingerprints"] = np.array(
            [model_fingerprint(parse_model(m)) for m in self.models_])
        return state

    def _set_state(self, state):
        from .._checks import model_fingerprint
        from .._trees import parse_model
        dims = super()._set_state(state)
        fingerprints = self.__dict__.pop("_refit_fingerprints")
        if fingerprints.dtype.kind != "U":
            C.bad("SubSample's refit fingerprints are not strings")
        if not (self.in_subset_.sum(axis=1) >= 2).all():
            C.bad("a SubSample subset holds fewer than 2 rows")
        subsets = [np.flatnonzero(row) for row in self.in_subset_]
        models = self._run(_fit_task, [(self._trainer, rows) for rows in subsets], "refits")
        for k, (m, fp) in enumerate(zip(models, fingerprints)):
            if model_fingerprint(parse_model(m)) != fp:
                raise ModelMismatchError(
                    f"SubSample: model {k} refitted at load differs from the one refitted "
                    "before saving, so the saved influences cannot be reproduced. The "
                    "model must be deterministic: fix its seed (random_state / "
                    "random_seed) and fit the explainer again; or pickle SubSample, which "
                    "keeps the models.")
        self.models_ = models
        return dims

    def _fit_retrain(self):
        n = self.n_train_
        size = int(round(self.subsample * n))
        if size < 2 or size > n - 1:
            raise DataValidationError(
                f"subsample={self.subsample} of {n} training rows gives subsets of {size} "
                f"rows; each subset needs at least 2 rows and must leave at least one out. "
                "Change subsample.")
        entropy = self._entropy()
        subsets = [self._subset(entropy, k, size) for k in range(self.n_models)]
        mask = np.zeros((self.n_models, n), dtype=bool)
        for k, rows in enumerate(subsets):
            mask[k, rows] = True
        self.models_ = self._run(_fit_task, [(self._trainer, rows) for rows in subsets],
                                 "refits")
        self.in_subset_ = mask

    def _losses(self, scorer):
        """Losses (n_models, n_query) of every refitted model."""
        return np.stack([scorer.losses(m) for m in self.models_])

    def _contrast(self, L):
        """mean over models without i - mean over models with i; L (n_models, ...)."""
        M = self.in_subset_.astype(np.float64)
        n_in = M.sum(axis=0)
        n_out = M.shape[0] - n_in
        both = (n_in > 0) & (n_out > 0)
        s_in = M.T @ L
        s_out = L.sum(axis=0) - s_in
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (s_out.T / n_out - s_in.T / n_in).T
        d[~both] = 0.0
        return d

    def _local(self, rows, y):
        return self._contrast(self._losses(self._scorer(rows, y)))

    def _global(self, rows, y):
        return self._contrast(self._losses(self._scorer(rows, y)).sum(axis=1))

    def _self(self):
        L = self._losses(self._train_scorer())  # (n_models, n_train)
        M = self.in_subset_
        n_in = M.sum(axis=0)
        n_out = M.shape[0] - n_in
        s_in = np.where(M, L, 0.0).sum(axis=0)
        s_out = L.sum(axis=0) - s_in
        out = np.zeros(self.n_train_)
        both = (n_in > 0) & (n_out > 0)
        out[both] = s_out[both] / n_out[both] - s_in[both] / n_in[both]
        return out


class DShap(_Retrain):
    """Truncated Monte-Carlo data Shapley (TMC-Shapley) on the test loss.

    The value of a set S of training rows is ``v_e(S) = -loss(y_e, f_S(x_e))``
    with ``f_S`` a clone of the model refitted on S. The Shapley value of row
    i is its marginal contribution ``v(S + i) - v(S)`` averaged over random
    orderings of the rows, so positive = helpful.

    Each permutation adds rows one at a time. Truncation: once the mean
    query loss of the current set is within ``truncation_tol`` (relative) of
    the full model's, the scan stops and the remaining rows contribute 0.
    The full set's value is the given model's (it is not refitted). Sets the
    model cannot be trained on (fewer than 2 rows, or a classifier's set
    missing a class) are valued by the constant predictor of the set:
    weighted mean target (regression) or weighted class frequencies
    (classification, clipped). The empty set uses the constant predictor of
    all training rows.

    Convergence: with ``m_p`` the running estimate after p permutations (of
    the Shapley values for the mean query loss, shape (n_train,)), sampling
    stops at the first p > ``window`` with
    ``sum|m_p - m_{p-window}| <= tol * sum|m_p|``, or at
    ``max_permutations``.

    Parameters
    ----------
    max_permutations : int, default=200
    tol : float >= 0, default=0.05
        Relative change of the estimates over the last ``window``
        permutations below which sampling stops.
    window : int, default=10
    truncation_tol : float >= 0, default=0.01
        0 disables truncation (every permutation is scanned to the end).
    random_state : int, RandomState or None, default=None
        Seed of the permutations (permutation p uses
        ``SeedSequence(random_state, spawn_key=(p,))``). A
        ``numpy.random.RandomState`` is drawn from once per query (so
        queries differ); None draws fresh entropy per query.
    fit_params : dict or None, default=None
        Extra keyword arguments for every refit's ``model.fit``.
    n_jobs : int or None, default=None
        Permutations scanned in parallel (joblib workers, each
        single-threaded); None or -1 uses all cores. The result does not
        depend on it.
    verbose : bool, default=False
        Show a progress bar (tqdm) over the permutations.

    Attributes
    ----------
    n_permutations_ : int
        Permutations used by the last query.
    converged_ : bool
        Whether the last query stopped by the convergence criterion (False:
        it reached ``max_permutations``).
    n_fits_ : int
        Model refits done by the last query (for the permutations used).
    refit_max_difference_ : float
        As for :class:`LOO`.
    ensemble_, n_train_, n_features_in_, feature_names_in_
        As for every explainer.

    Notes
    -----
    Sign convention: positive = helpful. Per permutation the contributions of
    a test row sum to ``loss(empty set) - loss(model)``; without truncation
    this holds for the estimates too.

    Truncation and convergence are decided on the mean loss over the query
    rows, so local and global influence of the same rows use the same
    permutations and ``get_global_influence`` equals the row sums of
    ``get_local_influence``. Each query samples anew (same permutations for
    a fixed ``random_state``).

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import DShap
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=5, min_child_samples=5,
    ...                            verbose=-1).fit(X[:40], y[:40])
    >>> explainer = DShap(max_permutations=5, random_state=0, n_jobs=1)
    >>> explainer.fit(model, X[:40], y[:40]).get_local_influence(X[400:402], y[400:402]).shape
    (40, 2)
    >>> explainer.n_permutations_ <= 5
    True
    """

    def __init__(self, max_permutations=200, tol=0.05, window=10, truncation_tol=0.01,
                 random_state=None, fit_params=None, n_jobs=None, verbose=False):
        self.max_permutations = max_permutations
        self.tol = tol
        self.window = window
        self.truncation_tol = truncation_tol
        self.random_state = random_state
        self.fit_params = fit_params
        self.n_jobs = n_jobs
        self.verbose = verbose

    _parameter_constraints = {**_Retrain._parameter_constraints,
                              "max_permutations": [POSITIVE_INT], "window": [POSITIVE_INT],
                              "tol": [NON_NEGATIVE_REAL],
                              "truncation_tol": [NON_NEGATIVE_REAL],
                              "random_state": RANDOM_STATE}

    _STATE = {
        "_prior": C.Arr("f8", lambda d: (1,) if d["C"] is None else ("C",), finite=True),
        "n_permutations_": C.Int(0, optional=True),
        "converged_": C.Bool(optional=True),
        "n_fits_": C.Int(0, optional=True),
    }

    def _fit_retrain(self):
        n_classes = None if self._classes is None else len(self._classes)
        self._prior = _constant_prediction(self._y_enc, self._w_eff, n_classes)
        super()._fit_retrain()

    def _shapley(self, scorer, mode):
        n = self.n_train_
        full = scorer.losses(self._model)
        constant = _Constant(self._y_enc, self._w_eff, self._classes, scorer.y)
        empty = constant.prior_losses(self._prior)
        trainable = _Trainable(self._y_enc, None if self._classes is None else len(self._classes))
        entropy = self._entropy()
        workers = self._n_workers()
        total = None
        summary_sum = np.zeros(n)
        history = []  # running estimates m_{p-window} .. m_p
        p, n_fits, converged = 0, 0, False
        bar = self._progress(self.max_permutations, "permutations")
        from joblib import Parallel, delayed
        try:
            with Parallel(n_jobs=workers) as parallel:
                while p < self.max_permutations and not converged:
                    batch = range(p, min(p + workers, self.max_permutations))
                    results = parallel(
                        delayed(_tmc_scan)(self._trainer, scorer,
                                           task_rng(entropy, k).permutation(n), full, empty,
                                           constant, trainable, self.truncation_tol, mode)
                        for k in batch)
                    for contrib, summary, fits in results:  # in permutation order
                        p += 1
                        n_fits += fits
                        total = contrib.copy() if total is None else total + contrib
                        summary_sum += summary
                        history.append(summary_sum / p)
                        if len(history) > self.window + 1:
                            history.pop(0)
                        if bar is not None:
                            bar.update(1)
                        if len(history) == self.window + 1:
                            change = np.abs(history[-1] - history[0]).sum()
                            if change <= self.tol * np.abs(history[-1]).sum():
                                converged = True
                                break
        finally:
            if bar is not None:
                bar.close()
        self.n_permutations_ = p
        self.converged_ = converged
        self.n_fits_ = n_fits
        return total / p

    def _local(self, rows, y):
        return self._shapley(self._scorer(rows, y), "local")

    def _global(self, rows, y):
        return self._shapley(self._scorer(rows, y), "global")

    def _self(self):
        return self._shapley(self._train_scorer(), "self")


def _constant_prediction(y, w, n_classes):
    """Weighted mean target (shape (1,)) or class frequencies (n_classes,) of rows."""
    if not w.sum() > 0:
        w = np.ones(len(y))
    if n_classes is None:
        return np.array([np.average(y, weights=w)])
    f = np.bincount(y.astype(np.int64), weights=w, minlength=n_classes)
    return f / f.sum()


class _Constant:
    """Losses of the constant predictor of a set of training rows on query targets."""

    def __init__(self, y_train, w_train, classes, y_query):
        self.y_train = y_train
        self.w_train = w_train
        self.n_classes = None if classes is None else len(classes)
        self.y_query = y_query

    def prior_losses(self, prior):
        if self.n_classes is None:
            return 0.5 * (self.y_query - prior[0]) ** 2
        p = prior[self.y_query.astype(np.int64)]
        return -np.log(np.clip(p, P_CLIP, 1.0 - P_CLIP))

    def __call__(self, rows):
        return self.prior_losses(_constant_prediction(self.y_train[rows], self.w_train[rows],
                                                      self.n_classes))


class _Trainable:
    """Whether the model can be trained on a set of rows (>= 2 rows, every class)."""

    def __init__(self, y_train, n_classes):
        self.y_train = y_train
        self.n_classes = n_classes

    def __call__(self, rows):
        if len(rows) < 2:
            return False
        return self.n_classes is None or np.unique(self.y_train[rows]).size == self.n_classes
