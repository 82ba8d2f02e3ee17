"""The benchmark's models and methods: the paper's settings, as factories.

Fixed settings (BENCHMARK.md): random_state 1; XGBoost ``tree_method='hist'``;
CatBoost ``leaf_estimation_iterations=1``; HistGradientBoosting
``early_stopping=False``; everything else library defaults, except the tuned
values of the table below. Every model is single-threaded: the benchmark runs
many fits side by side, one per worker.
"""
from ..exceptions import DataValidationError

#: The four benchmark GBDTs, by the paper's short names.
MODELS = ("lgb", "xgb", "cb", "sgb")

_NAMES = {"lgb": "LightGBM", "xgb": "XGBoost", "cb": "CatBoost",
          "sgb": "sklearn HistGradientBoosting"}

#: Tuned values of the paper, per data set:
#: lgb (n_estimators, num_leaves); sgb (max_iter, max_leaf_nodes, max_bins);
#: cb (n_estimators, max_depth, learning_rate); xgb (n_estimators, max_depth).
PAPER_SETTINGS = {
    "adult": ((100, 31), (200, 15, 250), (200, 4, 0.6), (200, 3)),
    "bank_marketing": ((50, 31), (50, 31, 100), (200, 7, 0.1), (100, 4)),
    "bean": ((25, 15), (25, 15, 50), (200, 3, 0.3), (25, 5)),
    "compas": ((25, 91), (50, 15, 50), (50, 4, 0.3), (50, 3)),
    "concrete": ((200, 15), (200, 15, 250), (200, 4, 0.3), (200, 4)),
    "credit_card": ((50, 15), (25, 15, 100), (50, 5, 0.1), (10, 3)),
    "diabetes": ((200, 31), (200, 31, 100), (200, 5, 0.3), (200, 3)),
    "energy": ((200, 15), (200, 15, 50), (200, 4, 0.9), (200, 5)),
    "flight_delays": ((100, 91), (200, 61, 250), (200, 7, 0.3), (200, 7)),
    "german_credit": ((25, 15), (25, 15, 100), (100, 5, 0.1), (10, 4)),
    "htru2": ((100, 15), (50, 15, 50), (200, 3, 0.3), (100, 2)),
    "life": ((200, 61), (200, 31, 250), (200, 6, 0.3), (200, 5)),
    "naval": ((200, 91), (200, 91, 250), (200, 7, 0.6), (100, 7)),
    "no_show": ((50, 61), (50, 61, 100), (200, 7, 0.3), (100, 5)),
    "obesity": ((200, 91), (200, 91, 250), (200, 6, 0.6), (200, 7)),
    "power": ((200, 61), (200, 61, 250), (200, 6, 0.6), (200, 7)),
    "protein": ((200, 91), (200, 91, 250), (200, 7, 0.3), (200, 7)),
    "spambase": ((200, 31), (200, 91, 250), (200, 5, 0.3), (200, 4)),
    "surgical": ((200, 15), (100, 31, 250), (200, 4, 0.1), (50, 5)),
    "twitter": ((200, 91), (200, 91, 250), (200, 7, 0.6), (200, 7)),
    "vaccine": ((100, 15), (100, 15, 50), (200, 4, 0.1), (100, 3)),
    "wine": ((200, 91), (200, 91, 100), (200, 7, 0.3), (100, 7)),
}


def model_params(library, dataset):
    """Constructor keyword arguments of ``library``'s model for ``dataset``.

    Parameters
    ----------
    library : {'lgb', 'xgb', 'cb', 'sgb'}
    dataset : str
        A benchmark data set name (a key of :data:`PAPER_SETTINGS`).

    Returns
    -------
    dict
        JSON-serialisable keyword arguments; they are part of every result's
        configuration hash.
    """
    if library not in MODELS:
        raise DataValidationError(
            f"unknown model {library!r}; the benchmark models are {', '.join(MODELS)}.")
    if dataset not in PAPER_SETTINGS:
        raise DataValidationError(
            f"no paper settings for data set {dataset!r}; known: "
            f"{', '.join(sorted(PAPER_SETTINGS))}.")
    lgb, sgb, cb, xgb = PAPER_SETTINGS[dataset]
    if library == "lgb":
        return {"n_estimators": lgb[0], "num_leaves": lgb[1], "random_state": 1,
                "n_jobs": 1, "verbose": -1}
    if library == "xgb":
        return {"n_estimators": xgb[0], "max_depth": xgb[1], "tree_method": "hist",
                "random_state": 1, "n_jobs": 1}
    if library == "cb":
        return {"n_estimators": cb[0], "max_depth": cb[1], "learning_rate": cb[2],
                "leaf_estimation_iterations": 1, "random_state": 1,
                "thread_count": 1, "verbose": False, "allow_writing_files": False}
    return {"max_iter": sgb[0], "max_leaf_nodes": sgb[1], "max_bins": sgb[2],
            "early_stopping": False, "random_state": 1}


def make_model(library, dataset, task):
    """An unfitted model with the paper's settings for ``dataset``.

    Parameters
    ----------
    library : {'lgb', 'xgb', 'cb', 'sgb'}
    dataset : str
    task : {'binary', 'multiclass', 'regression'}

    Returns
    -------
    estimator
        A scikit-learn compatible regressor or classifier (single-threaded).
    """
    params = model_params(library, dataset)
    regression = task == "regression"
    if library == "lgb":
        import lightgbm as lgb
        cls = lgb.LGBMRegressor if regression else lgb.LGBMClassifier
    elif library == "xgb":
        import xgboost as xgb
        cls = xgb.XGBRegressor if regression else xgb.XGBClassifier
    elif library == "cb":
        import catboost as cb
        cls = cb.CatBoostRegressor if regression else cb.CatBoostClassifier
    else:
        from sklearn import ensemble
        cls = (ensemble.HistGradientBoostingRegressor if regression
               else ensemble.HistGradientBoostingClassifier)
    return cls(**params)


# ------------------------------------------------------------------ methods
#: name -> (estimator class name, constructor parameters, capabilities).
#: Capabilities: 'local' (per-test-row influence), 'edit' (label-edit
#: influence), 'self' (self-influence), 'global'.
METHODS = {
    "boostin": ("BoostIn", {}, {"local", "edit", "self", "global"}),
    "leafinfluence": ("LeafInfluence", {"update_set": -1}, {"local", "edit", "self", "global"}),
    "leafinfsp": ("LeafInfluence", {"update_set": 0}, {"local", "edit", "self", "global"}),
    "leafrefit": ("LeafRefit", {"update_set": -1}, {"local", "edit", "self", "global"}),
    "trex": ("TREX", {}, {"local", "self", "global"}),
    "treesim": ("TreeSim", {}, {"local", "self", "global"}),
    "inputsim": ("InputSim", {}, {"local", "self", "global"}),
    "target": ("Target", {"random_state": 1}, {"local", "self", "global"}),
    "random": ("Random", {"random_state": 1}, {"local", "self", "global"}),
    "loss": ("Loss", {}, {"self"}),
    "loo": ("LOO", {}, {"local", "self", "global"}),
    "subsample": ("SubSample", {"random_state": 1}, {"local", "self", "global"}),
    "dshap": ("DShap", {"random_state": 1}, {"local", "self", "global"}),
}

#: The slow methods, run only on the LI data sets (BENCHMARK.md).
SLOW_METHODS = ("leafinfluence", "leafrefit")
#: Methods whose influence costs no retraining: the default method list.
FAST_METHODS = ("boostin", "leafinfsp", "trex", "treesim", "inputsim", "target",
                "random", "loss")


#: Leaf-value tolerance (``atol``) of the fixed-structure methods
#: (LeafInfluence, LeafRefit) per model library. Libraries that compute
#: gradients and hessians in float32 (XGBoost, whose margins are float32
#: too; HistGradientBoosting; LightGBM) make leaf values that a float64
#: Newton step reproduces only approximately, so the benchmark gives them the
#: tolerance the estimators' error message recommends, 1e-4; CatBoost
#: computes in float64 and keeps the default 1e-5. Largest tolerance a model
#: of the LI data sets needed: XGBoost 1e-4 (life, power; 1e-5 refused
#: them), LightGBM 1e-6, CatBoost 1e-6, HistGradientBoosting 1e-7.
LEAF_ATOL = {"lgb": 1e-4, "xgb": 1e-4, "sgb": 1e-4, "cb": 1e-5}
_TAKES_ATOL = ("LeafInfluence", "LeafRefit")


def method_params(name, library=None):
    """Constructor parameters of benchmark method ``name`` for a model library.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.
    library : {'lgb', 'xgb', 'cb', 'sgb'} or None
        The model the method explains; the fixed-structure methods get the
        library's tolerance from :data:`LEAF_ATOL`. None: the estimator's own
        defaults.

    Returns
    -------
    dict
        JSON-serialisable keyword arguments (part of each unit's configuration).
    """
    if name not in METHODS:
        raise DataValidationError(
            f"unknown method {name!r}; the benchmark methods are {', '.join(METHODS)}.")
    cls_name, params, _ = METHODS[name]
    params = dict(params)
    if library is not None and cls_name in _TAKES_ATOL:
        if library not in LEAF_ATOL:
            raise DataValidationError(
                f"unknown model {library!r}; the benchmark models are {', '.join(MODELS)}.")
        params["atol"] = LEAF_ATOL[library]
    return params


def make_method(name, n_jobs=1, library=None):
    """An unfitted treeinf estimator for the benchmark method ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`METHODS`.
    n_jobs : int, default=1
    library : {'lgb', 'xgb', 'cb', 'sgb'} or None
        The model it will explain (see :func:`method_params`).
    """
    params = method_params(name, library)
    import treeinf
    return getattr(treeinf, METHODS[name][0])(n_jobs=n_jobs, **params)


def capabilities(name):
    """The set of influence kinds method ``name`` provides."""
    if name not in METHODS:
        raise DataValidationError(
            f"unknown method {name!r}; the benchmark methods are {', '.join(METHODS)}.")
    return METHODS[name][2]
