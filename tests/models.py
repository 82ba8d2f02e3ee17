"""Tiny trained models of every GBDT family (and two forests), for explainer tests."""
import numpy as np

from conftest import make_data

GBDT_FAMILIES = ["lightgbm", "xgboost", "catboost", "sklearn_gb", "sklearn_hgb"]
TASKS = ["regression", "binary", "multiclass"]
FOREST_FAMILIES = ["sklearn_rf", "lightgbm_rf"]


def make_model(family, task, n_estimators=8, seed=0, **kw):
    """An unfitted model of ``family`` for ``task`` (small, single-threaded)."""
    if family == "lightgbm":
        import lightgbm as lgb
        cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
        return cls(n_estimators=n_estimators, num_leaves=7, learning_rate=0.3,
                   min_child_samples=5, n_jobs=1, verbose=-1, random_state=seed, **kw)
    if family == "xgboost":
        import xgboost as xgb
        cls = xgb.XGBRegressor if task == "regression" else xgb.XGBClassifier
        return cls(n_estimators=n_estimators, max_depth=3, learning_rate=0.3,
                   n_jobs=1, random_state=seed, **kw)
    if family == "catboost":
        import catboost as cb
        cls = cb.CatBoostRegressor if task == "regression" else cb.CatBoostClassifier
        kw = {"depth": 3, **kw}
        return cls(iterations=n_estimators, learning_rate=0.3, thread_count=1,
                   random_seed=seed, verbose=False, allow_writing_files=False, **kw)
    if family == "sklearn_gb":
        from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
        cls = GradientBoostingRegressor if task == "regression" else GradientBoostingClassifier
        return cls(n_estimators=n_estimators, max_depth=3, learning_rate=0.3,
                   random_state=seed, **kw)
    if family == "sklearn_hgb":
        from sklearn.ensemble import (HistGradientBoostingClassifier,
                                      HistGradientBoostingRegressor)
        cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
        return cls(max_iter=n_estimators, max_leaf_nodes=7, learning_rate=0.3,
                   early_stopping=False, random_state=seed, **kw)
    if family == "sklearn_rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
        cls = RandomForestRegressor if task == "regression" else RandomForestClassifier
        return cls(n_estimators=n_estimators, max_depth=4, random_state=seed, n_jobs=1, **kw)
    if family == "lightgbm_rf":
        import lightgbm as lgb
        cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
        return cls(boosting_type="rf", n_estimators=n_estimators, num_leaves=7,
                   bagging_fraction=0.7, bagging_freq=1, min_child_samples=5, n_jobs=1,
                   verbose=-1, random_state=seed, **kw)
    raise ValueError(family)


def trained(family, task, n=240, n_test=40, nan_frac=0.1, weights=False, seed=0,
            n_estimators=8):
    """(model, X_train, y_train, w_train, X_test, y_test) as numpy arrays."""
    X, y = make_data(task, n=n + n_test, n_num=5, nan_frac=nan_frac, seed=seed)
    X = X.to_numpy(dtype=np.float64)
    if family == "sklearn_gb":  # GradientBoosting* do not accept NaN
        X = np.nan_to_num(X, nan=0.0)
    Xtr, ytr, Xte, yte = X[:n], y[:n], X[n:], y[n:]
    w = None
    if weights:
        w = np.random.default_rng(seed + 1).uniform(0.2, 2.0, size=n)
    model = make_model(family, task, n_estimators=n_estimators, seed=seed)
    model.fit(Xtr, ytr, sample_weight=w)
    return model, Xtr, ytr, w, Xte, yte
