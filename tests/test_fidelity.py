"""Every fit proves that the model, its training parameters and the data belong together.

Each case here returned numbers with no error before the leaf-fidelity check:
data that is not the training data, XGBoost files without their learning rate
and L2, a missing-value sentinel, rows held out by early stopping, per-leaf L2.
"""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import naive
import treeinf
from conftest import make_data
from models import FOREST_FAMILIES, GBDT_FAMILIES, TASKS, make_model
from treeinf.exceptions import DataValidationError, TrainingDataMismatchError
from treeinf._validation import encode_target

# models whose leaves are not exactly reproducible: the correlation and the
# recorded per-leaf statistics carry the check
SAMPLED = {
    "lightgbm_bagging": ("lightgbm", dict(subsample=0.7, subsample_freq=1)),
    "lightgbm_goss": ("lightgbm", dict(data_sample_strategy="goss")),
    "xgboost_subsample": ("xgboost", dict(subsample=0.7)),
    "catboost_default": ("catboost", dict(depth=3)),
    "sklearn_gb_subsample": ("sklearn_gb", dict(subsample=0.7)),
}
EXACT_CATBOOST = dict(leaf_estimation_iterations=1, leaf_estimation_method="Newton",
                      bootstrap_type="No", boosting_type="Plain")
CASES = ([(f, f, {}) for f in GBDT_FAMILIES + FOREST_FAMILIES]
         + [(k, f, kw) for k, (f, kw) in SAMPLED.items()])


def _data(family, task, n=300, seed=0):
    X, y = make_data(task, n=n, n_num=5, nan_frac=0.0 if family == "sklearn_gb" else 0.1,
                     seed=seed)
    return X.to_numpy(np.float64), y


def _model(name, family, kw, task, X, y):
    if name == "catboost":
        kw = {**kw, **EXACT_CATBOOST}
    return make_model(family, task, n_estimators=12, **kw).fit(X, y)


def _wrong_data(X, y):
    rng = np.random.default_rng(7)
    shifted = np.roll(X, 1, axis=1)
    return {
        "permuted rows of X": (X[rng.permutation(len(X))], y),
        "permuted y": (X, y[rng.permutation(len(y))]),
        "first 80% of rows": (X[:int(0.8 * len(X))], y[:int(0.8 * len(y))]),
        "columns shifted by one": (shifted, y),
        "another matrix": (rng.normal(size=X.shape), y),
    }


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name,family,kw", CASES, ids=[c[0] for c in CASES])
def test_training_data_passes_and_other_data_raises(name, family, kw, task):
    X, y = _data(family, task)
    model = _model(name, family, kw, task, X, y)
    est = treeinf.Random(random_state=0).fit(model, X, y)
    rep = est.fidelity_
    assert rep["passed"] and rep["checked"]
    exact = name in GBDT_FAMILIES and not (name == "catboost" and task == "multiclass")
    assert rep["exact"] == exact
    if exact:
        assert rep["max_error"] <= 1e-6
    else:
        assert rep["correlation"] >= 0.75
    for what, (Xw, yw) in _wrong_data(X, y).items():
        with pytest.raises(TrainingDataMismatchError, match="Likely causes"):
            treeinf.Random(random_state=0).fit(model, Xw, yw)


@pytest.mark.parametrize("cls", [treeinf.BoostIn, treeinf.LeafInfluence, treeinf.LeafRefit,
                                 treeinf.TREX, treeinf.TreeSim, treeinf.InputSim,
                                 treeinf.Target, treeinf.Random, treeinf.Loss, treeinf.LOO,
                                 treeinf.SubSample, treeinf.DShap])
def test_every_estimator_checks_the_data(cls):
    X, y = _data("lightgbm", "binary")
    model = make_model("lightgbm", "binary", n_estimators=5).fit(X, y)
    with pytest.raises(TrainingDataMismatchError):
        cls().fit(model, X, y[::-1].copy())
    # the expert escape hatch skips it
    if cls not in (treeinf.LOO, treeinf.DShap, treeinf.SubSample):
        assert cls().fit(model, X, y, check_data=False).fidelity_["checked"] is False


def test_sample_weight_must_match():
    X, y = _data("lightgbm", "regression")
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    model = make_model("lightgbm", "regression", n_estimators=6).fit(X, y, sample_weight=w)
    assert treeinf.BoostIn().fit(model, X, y, sample_weight=w).fidelity_["passed"]
    with pytest.raises(TrainingDataMismatchError):
        treeinf.BoostIn().fit(model, X, y)
    with pytest.raises(TrainingDataMismatchError):
        treeinf.BoostIn().fit(model, X, y, sample_weight=w * np.linspace(0.9, 1.1, len(w)))


# ----------------------------------------------------- XGBoost model files
@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
@pytest.mark.parametrize("fmt", ["json", "ubj"])
def test_xgboost_file_without_eta_and_lambda(tmp_path, task, fmt):
    import xgboost as xgb
    X, y = _data("xgboost", task)
    cls = xgb.XGBRegressor if task == "regression" else xgb.XGBClassifier
    model = cls(n_estimators=10, max_depth=3, learning_rate=0.1, reg_lambda=5.0,
                n_jobs=1, random_state=0).fit(X, y)
    path = tmp_path / f"m.{fmt}"
    model.save_model(path)
    # the loaded booster reports XGBoost's defaults (eta 0.3, lambda 1)
    booster = xgb.Booster(model_file=str(path))
    cfg = json.loads(booster.save_config())["learner"]["gradient_booster"]["tree_train_param"]
    assert float(cfg["eta"]) == pytest.approx(0.3)
    Xte, yte = _data("xgboost", task, n=40, seed=5)
    ref = treeinf.BoostIn().fit(model, X, y)
    assert ref.fidelity_["params_source"] == {"learning_rate": "model", "reg_lambda": "model"}
    want = ref.get_local_influence(Xte, yte)
    for loaded in (booster, _sk_loaded(cls, path)):
        yy, yyte = y, yte  # labels are already 0..K-1
        est = treeinf.BoostIn().fit(loaded, X, yy)
        assert est.fidelity_["params_source"] == {"learning_rate": "estimated",
                                                  "reg_lambda": "estimated"}
        assert est.ensemble_.learning_rate == pytest.approx(0.1, rel=1e-7)
        assert est.ensemble_.reg_lambda == 5.0
        np.testing.assert_allclose(est.get_local_influence(Xte, yyte), want, rtol=1e-6,
                                   atol=1e-8)
        paper = treeinf.BoostIn(variant="paper").fit(loaded, X, yy)
        np.testing.assert_allclose(
            paper.get_local_influence(Xte, yyte),
            treeinf.BoostIn(variant="paper").fit(model, X, y).get_local_influence(Xte, yte),
            rtol=1e-6, atol=1e-8)
        # given explicitly, they are used and recorded as the user's
        est = treeinf.BoostIn().fit(loaded, X, yy, learning_rate=0.1, reg_lambda=5.0)
        assert est.fidelity_["params_source"] == {"learning_rate": "user",
                                                  "reg_lambda": "user"}
        np.testing.assert_allclose(est.get_local_influence(Xte, yyte), want, rtol=1e-6,
                                   atol=1e-8)
        # wrong explicit values are caught
        with pytest.raises(TrainingDataMismatchError):
            treeinf.BoostIn().fit(loaded, X, yy, learning_rate=0.3, reg_lambda=1.0)


def _sk_loaded(cls, path):
    m = cls()
    m.load_model(path)
    return m


def test_xgboost_loaded_with_subsampling_is_refused_with_advice(tmp_path):
    import xgboost as xgb
    X, y = _data("xgboost", "binary")
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3, learning_rate=0.1,
                              subsample=0.6, n_jobs=1, random_state=0).fit(X, y)
    model.save_model(tmp_path / "m.json")
    with pytest.raises(TrainingDataMismatchError, match="learning_rate=.*reg_lambda="):
        treeinf.BoostIn().fit(_sk_loaded(xgb.XGBClassifier, tmp_path / "m.json"), X, y)
    # in memory the model knows its subsample: checked by correlation, accepted
    assert treeinf.BoostIn().fit(model, X, y).fidelity_["passed"]


# ----------------------------------------------------- missing-value sentinel
@pytest.mark.parametrize("sentinel", [0.0, -999.0])
def test_xgboost_booster_missing_sentinel(sentinel):
    import xgboost as xgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    X[rng.random(X.shape) < 0.3] = sentinel
    y = X[:, 0] + (X[:, 1] == sentinel) + rng.normal(scale=0.1, size=300)
    booster = xgb.train({"max_depth": 3, "eta": 0.3, "nthread": 1},
                        xgb.DMatrix(X, label=y, missing=sentinel), num_boost_round=8)
    with pytest.raises(TrainingDataMismatchError, match="missing"):
        treeinf.BoostIn().fit(booster, X, y)
    est = treeinf.BoostIn().fit(booster, X, y, missing=sentinel)
    assert est.fidelity_["passed"] and est.fidelity_["exact"]
    own = booster.predict(xgb.DMatrix(X, missing=sentinel), output_margin=True)
    np.testing.assert_allclose(est.ensemble_.predict_raw(X)[:, 0], own, rtol=1e-6, atol=1e-6)
    # the booster's own view of its training data, row by row
    leaves = booster.predict(xgb.DMatrix(X, missing=sentinel), pred_leaf=True)
    ours = est.ensemble_.apply(X, library_ids=True).reshape(len(X), -1)
    np.testing.assert_array_equal(ours, leaves)


def test_missing_is_refused_for_other_libraries():
    X, y = _data("lightgbm", "binary")
    model = make_model("lightgbm", "binary", n_estimators=3).fit(X, y)
    with pytest.raises(DataValidationError, match="missing="):
        treeinf.BoostIn().fit(model, X, y, missing=0.0)


# ---------------------------------------------------- rows held out by the model
@pytest.mark.parametrize("task", ["regression", "binary"])
def test_hist_gradient_boosting_early_stopping_rows(task):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    X, y = _data("sklearn_hgb", task, n=400)
    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    model = cls(max_iter=15, max_leaf_nodes=7, learning_rate=0.3, early_stopping=True,
                validation_fraction=0.25, n_iter_no_change=100, random_state=3).fit(X, y)
    Xte, yte = _data("sklearn_hgb", task, n=30, seed=9)
    est = treeinf.BoostIn().fit(model, X, y)
    assert est.fidelity_["passed"] and est.fidelity_["held_out_rows"] == 100
    local = est.get_local_influence(Xte, yte)
    held = np.ones(len(y), dtype=bool)
    held[est.train_rows_] = False
    assert held.sum() == 100 and np.all(local[held] == 0.0)
    # the rows the model trained on get BoostIn computed on them alone
    rows = np.flatnonzero(~held)
    ens = est.ensemble_
    ref = naive.boostin(ens, X[rows], encode_target(ens, y[rows], len(rows)), np.ones(len(rows)),
                        Xte, encode_target(ens, yte, len(yte)),
                        eta=model.learning_rate, lam=float(model.l2_regularization))
    np.testing.assert_allclose(local[rows], ref, rtol=1e-9, atol=1e-12)
    # self, global and top-k agree with the dense matrix
    np.testing.assert_allclose(est.get_global_influence(Xte, yte), local.sum(axis=1),
                               rtol=1e-9, atol=1e-12)
    idx, val = est.get_top_influence(Xte, yte, k=5, kind="harmful")
    np.testing.assert_allclose(val, np.sort(local, axis=0)[:5].T, rtol=1e-9, atol=1e-12)
    assert np.all(est.get_self_influence()[held] == 0.0)
    # passing exactly the rows it trained on is right too (the split is then
    # not reproduced, every row passed was trained on)
    sub = treeinf.BoostIn().fit(model, X[rows], y[rows])
    assert sub.fidelity_["held_out_rows"] == 0 and sub.train_rows_ is None
    np.testing.assert_allclose(sub.get_local_influence(Xte, yte), local[rows], rtol=1e-9,
                               atol=1e-12)
    # a subset of them is not the training data
    with pytest.raises(TrainingDataMismatchError):
        treeinf.BoostIn().fit(model, X[rows[10:]], y[rows[10:]])


def test_hist_gradient_boosting_categorical_codes_are_refused():
    from sklearn.ensemble import HistGradientBoostingRegressor
    X, y = make_data("regression", n=300, n_num=3, n_cat=1, seed=2)
    model = HistGradientBoostingRegressor(max_iter=5, categorical_features="from_dtype",
                                          early_stopping=False).fit(X, y)
    codes = X.copy()
    codes["c0"] = codes["c0"].cat.codes.astype(float)
    est = treeinf.BoostIn().fit(model, X, y)
    with pytest.raises(DataValidationError, match="categor"):
        est.get_local_influence(codes.iloc[:5], y[:5])
    with pytest.raises(DataValidationError, match="categor"):
        treeinf.BoostIn().fit(model, codes, y)


# -------------------------------------------------------------- per-leaf L2
def test_catboost_l2_scaled_by_mean_weight_in_boostin():
    """CatBoost multiplies l2_leaf_reg by the mean weight: BoostIn's training
    term must be the derivative of the leaf the model computed."""
    X, y = _data("catboost", "regression")
    w = np.random.default_rng(1).uniform(0.2, 5.0, len(y))
    model = make_model("catboost", "regression", n_estimators=6, l2_leaf_reg=3.0,
                       **EXACT_CATBOOST).fit(X, y, sample_weight=w)
    Xte, yte = _data("catboost", "regression", n=20, seed=4)
    est = treeinf.BoostIn().fit(model, X, y, sample_weight=w)
    eta, lam = naive.model_training_params(model, X, w)
    assert lam == pytest.approx(3.0 * w.mean())
    ref = naive.boostin(est.ensemble_, X, y, w, Xte, yte, eta=eta, lam=lam)
    np.testing.assert_allclose(est.get_local_influence(Xte, yte), ref, rtol=1e-9,
                               atol=1e-12 * np.abs(ref).max())


def test_lightgbm_cat_l2_per_leaf_in_boostin():
    import lightgbm as lgb
    X, y = make_data("binary", n=400, n_num=3, n_cat=2, n_levels=12, seed=3)
    model = lgb.LGBMClassifier(n_estimators=6, num_leaves=7, learning_rate=0.3,
                               min_child_samples=5, max_cat_to_onehot=4, cat_l2=10.0,
                               cat_smooth=1.0, min_data_per_group=3, n_jobs=1,
                               verbose=-1).fit(X, y)
    Xte, yte = make_data("binary", n=30, n_num=3, n_cat=2, n_levels=12, seed=8)
    est = treeinf.BoostIn().fit(model, X, y)
    assert np.any(est.ensemble_.leaf_reg_lambda != est.ensemble_.reg_lambda)
    eta, lam = naive.model_training_params(model, X, np.ones(len(y)))
    ref = naive.boostin(est.ensemble_, X, y.astype(float), np.ones(len(y)), Xte,
                        yte.astype(float), eta=eta, lam=lam)
    np.testing.assert_allclose(est.get_local_influence(Xte, yte), ref, rtol=1e-9,
                               atol=1e-12 * np.abs(ref).max())


def test_fidelity_report_is_documented_fields():
    X, y = _data("lightgbm", "binary")
    model = make_model("lightgbm", "binary", n_estimators=4).fit(X, y)
    rep = treeinf.BoostIn().fit(model, X, y).fidelity_
    for key in ("exact", "passed", "max_error", "tolerance", "correlation",
                "median_relative_error", "round_agreement", "params_source", "checked"):
        assert key in rep
    assert rep["round_agreement"].shape == (4,)


@pytest.mark.parametrize("n_levels", [20, 40])
@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "sklearn_hgb"])
def test_many_categories_per_feature(family, n_levels):
    """More than 16 and more than 32 categories: the category sets span several
    32-bit words; routing equals the library's and the data check passes."""
    X, y = make_data("regression", n=600, n_num=3, n_cat=1, n_levels=n_levels, seed=5)
    # ASCII names (make_data's levels run past 'z' into non-ASCII characters)
    X["c0"] = X["c0"].cat.rename_categories([f"k{i:02d}" for i in range(n_levels)])
    codes = X["c0"].cat.codes.to_numpy()
    y = y + np.where(codes % 5 == 0, 6.0, 0.0) + np.where(codes >= 33, -4.0, 0.0)
    if family == "lightgbm":
        import lightgbm as lgb
        model = lgb.LGBMRegressor(n_estimators=8, num_leaves=8, min_child_samples=3,
                                  min_data_per_group=2, cat_smooth=1.0, max_cat_threshold=64,
                                  verbose=-1, n_jobs=1).fit(X, y)
    elif family == "xgboost":
        import xgboost as xgb
        model = xgb.XGBRegressor(n_estimators=8, max_depth=3, enable_categorical=True,
                                 tree_method="hist", max_cat_to_onehot=1, n_jobs=1).fit(X, y)
    else:
        from sklearn.ensemble import HistGradientBoostingRegressor
        model = HistGradientBoostingRegressor(max_iter=8, categorical_features="from_dtype",
                                              early_stopping=False).fit(X, y)
    est = treeinf.BoostIn().fit(model, X, y)   # parse verified against the library on X
    ens = est.ensemble_
    cat_nodes = (ens.node_left >= 0) & (ens.node_kind >= 2)
    assert cat_nodes.any()
    assert ens.node_cat_len[cat_nodes].max() >= (2 if n_levels > 32 else 1)
    assert est.fidelity_["passed"] and est.fidelity_["exact"]
    # unseen rows of every category route like the library
    Xq = X.iloc[:n_levels].copy()
    Xq["c0"] = pd.Categorical(X["c0"].cat.categories[:n_levels],
                              categories=X["c0"].cat.categories)
    treeinf.parse_model(model, Xq)


def test_gradient_boosting_early_stopping_without_seed_is_accepted():
    """n_iter_no_change with random_state=None: the held-out rows cannot be
    reconstructed, so the model is checked as a sampled one (its trees saw
    1 - validation_fraction of the rows) and its own training data passes."""
    from sklearn.ensemble import GradientBoostingRegressor
    X, y = _data("sklearn_gb", "regression", n=400)
    model = GradientBoostingRegressor(n_estimators=30, n_iter_no_change=100,
                                      validation_fraction=0.2, max_depth=3).fit(X, y)
    rep = treeinf.Random(random_state=0).fit(model, X, y).fidelity_
    assert rep["passed"] and not rep["exact"]
    with pytest.raises(TrainingDataMismatchError):
        treeinf.Random(random_state=0).fit(model, X, y[::-1].copy())


def test_unchecked_xgboost_warns_that_its_parameters_are_unverified(tmp_path):
    import xgboost as xgb
    from treeinf.exceptions import UnverifiedInfluenceWarning
    X, y = _data("xgboost", "binary")
    model = xgb.XGBClassifier(n_estimators=5, max_depth=3, learning_rate=0.1,
                              reg_lambda=5.0, n_jobs=1, random_state=0).fit(X, y)
    model.save_model(tmp_path / "m.json")
    booster = xgb.Booster(model_file=str(tmp_path / "m.json"))
    with pytest.warns(UnverifiedInfluenceWarning, match="learning_rate= and reg_lambda="):
        treeinf.BoostIn().fit(booster, X, y, check_data=False)
    with warnings.catch_warnings():   # given explicitly: nothing to warn about
        warnings.simplefilter("error", UnverifiedInfluenceWarning)
        treeinf.BoostIn().fit(booster, X, y, check_data=False, learning_rate=0.1,
                              reg_lambda=5.0)


@pytest.mark.parametrize("bad", [0, 1, "no", None, np.array([True])])
def test_check_data_must_be_a_bool(bad):
    X, y = _data("lightgbm", "binary")
    import lightgbm as lgb
    model = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
    with pytest.raises(DataValidationError, match="check_data must be True or False"):
        treeinf.BoostIn().fit(model, X, y, check_data=bad)


def _subset_raises(est_cls, model, X, y, frac=0.8, seed=3):
    sub = np.random.default_rng(seed).permutation(len(y))[:int(frac * len(y))]
    with pytest.raises(TrainingDataMismatchError, match="row sampling"):
        est_cls().fit(model, X[sub], y[sub])


def test_lightgbm_class_dependent_bagging_detects_missing_rows():
    # balanced bagging samples each class with its own fraction: the recorded
    # hessians are checked against the data weighted by those fractions
    import lightgbm as lgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=4000) > 0.8).astype(int)
    model = lgb.LGBMClassifier(n_estimators=30, bagging_freq=1, pos_bagging_fraction=0.9,
                               neg_bagging_fraction=0.3, verbose=-1,
                               random_state=0).fit(X, y)
    est = treeinf.BoostIn().fit(model, X, y)
    assert est.fidelity_["passed"] and abs(est.fidelity_["stat_ratio"] - 1) < 0.05
    np.testing.assert_array_equal(est.ensemble_.leaf_train_class_fraction, [0.3, 0.9])
    _subset_raises(treeinf.BoostIn, model, X, y)


def test_forest_with_absolute_max_samples_detects_missing_rows():
    from sklearn.ensemble import RandomForestRegressor
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 5))
    y = X[:, 0] + rng.normal(size=3000)
    model = RandomForestRegressor(n_estimators=20, max_samples=1200, max_depth=6,
                                  random_state=0).fit(X, y)
    est = treeinf.TreeSim().fit(model, X, y)
    assert est.fidelity_["passed"] and est.ensemble_.leaf_train_fraction == 0.4
    _subset_raises(treeinf.TreeSim, model, X, y)
