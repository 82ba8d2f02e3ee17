"""Parsing LightGBM models: parity with LightGBM's own raw scores and leaf ids,
the init score taken out of tree 0, the multiclass hessian factor, and the
settings that are refused."""
import zlib

import numpy as np
import pandas as pd
import pytest

import lightgbm as lgb

import treeinf
from treeinf._kernels.traversal import (MISS_AS_ZERO, MISS_DEFAULT,
                                        MISS_ZERO_DEFAULT, SPLIT_CAT_LEFT)
from treeinf._trees import _lightgbm
from treeinf.exceptions import (DataValidationError, NotFittedError,
                                UnsupportedModelError)

from conftest import make_data

TASKS = ("regression", "binary", "multiclass")
N_CLASSES = 3


# ----------------------------------------------------------------- helpers
def _rel_err(ours, theirs):
    return np.max(np.abs(ours - theirs) / (1.0 + np.abs(theirs)))


def assert_parity(model, X, **kw):
    """Our margins and leaf ids equal LightGBM's on X; returns the ensemble."""
    ens = _lightgbm.parse(model, **kw)
    ref = _lightgbm.reference(model, X, **kw)
    ours = ens.predict_raw(X)
    assert ours.shape == ref["margin"].shape
    assert _rel_err(ours, ref["margin"]) <= 1e-6
    leaves = ens.apply(X, library_ids=True)
    assert leaves.shape == ref["leaves"].shape
    bad = leaves != ref["leaves"]
    assert not bad.any(), f"{bad.sum()} leaf ids differ, first at {np.argwhere(bad)[0]}"
    return ens


def _frame_to_codes(X):
    """numpy matrix with the pandas category codes as floats (NaN missing)."""
    out = np.empty(X.shape)
    for j, name in enumerate(X.columns):
        col = X[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(float)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        else:
            out[:, j] = col.to_numpy(dtype=float, na_value=np.nan)
    return out


def _awkward_rows(X, rng, n=40):
    """Held-out rows full of LightGBM's edge cases.

    Numeric columns: exact zeros, -0.0, tiny values around kZeroThreshold
    (1e-35f), NaN, +-inf. Categorical columns (codes): NaN, negatives,
    values in (-1, 0), non-integers, codes beyond the training range; as
    pandas: a category unseen in training.
    """
    cat_cols = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    num_cols = [c for c in X.columns if c not in cat_cols]
    idx = rng.integers(0, len(X), n)
    num_vals = np.array([0.0, -0.0, 1e-36, -1e-36, 1.000000001e-35, -1.000000001e-35,
                         1e-35, 1.0000000180025095e-35, np.nan, np.inf, -np.inf, 1e-300])
    rows = {}
    for c in num_cols:
        v = X[c].to_numpy(dtype=float, na_value=np.nan)[idx].copy()
        mask = rng.random(n) < 0.5
        v[mask] = rng.choice(num_vals, mask.sum())
        rows[c] = v
    codes = {}
    for c in cat_cols:
        v = X[c].cat.codes.to_numpy().astype(float)[idx]
        v[v < 0] = np.nan
        mask = rng.random(n) < 0.5
        v[mask] = rng.choice(np.array([np.nan, -1.0, -0.5, -0.999, -3.0, 0.0, 0.7, 2.5,
                                       1.0, 3.0, 40.0, 1e10, -1e10, 2.0 ** 31]), mask.sum())
        codes[c] = v
    return pd.DataFrame(rows), codes


def _held_out_frame(X, rng):
    """Held-out DataFrame (pandas categories, one unseen category)."""
    num, codes = _awkward_rows(X, rng)
    out = {}
    for c in X.columns:
        if c in codes:
            levels = list(X[c].cat.categories)
            v = codes[c]
            ok = (v >= 0) & (v < len(levels)) & (v == np.floor(v))
            vals = np.array([levels[int(x)] if k else None for x, k in zip(v, ok)], dtype=object)
            vals[~ok & ~np.isnan(v)] = "unseen"
            out[c] = pd.Categorical(vals, categories=levels + ["unseen"])
        else:
            out[c] = num[c]
    return pd.DataFrame(out)[list(X.columns)]


def _held_out_codes(X, rng):
    num, codes = _awkward_rows(X, rng)
    return np.column_stack([codes[c] if c in codes else num[c] for c in X.columns])


# ------------------------------------------------------ hyperparameter draws
def _draw_params(rng, task, with_cat, classifier):
    p = dict(
        n_estimators=int(rng.integers(3, 16)),
        num_leaves=int(rng.choice([2, 4, 7, 15])),
        max_depth=int(rng.choice([-1, -1, 3])),
        min_child_samples=int(rng.choice([2, 5, 20])),
        min_child_weight=float(rng.choice([1e-5, 1e-3, 0.5])),
        reg_alpha=float(rng.choice([0.0, 0.1, 1.0])),
        reg_lambda=float(rng.choice([0.0, 0.5, 5.0])),
        max_bin=int(rng.choice([7, 15, 63, 255])),
        learning_rate=float(rng.uniform(0.05, 0.5)),
        verbose=-1, n_jobs=1, random_state=int(rng.integers(1000)),
    )
    extra = str(rng.choice(["none", "bagging", "goss", "colsample", "extra_trees",
                            "path_smooth", "max_delta_step", "zero_as_missing",
                            "no_missing", "no_boost_from_average"]))
    if extra == "bagging":
        p.update(subsample=0.7, subsample_freq=1)
    elif extra == "goss":
        p.update(data_sample_strategy="goss", top_rate=0.3, other_rate=0.2)
    elif extra == "colsample":
        p.update(colsample_bytree=0.7, feature_fraction_bynode=0.8)
    elif extra == "extra_trees":
        p.update(extra_trees=True)
    elif extra == "path_smooth":
        p.update(path_smooth=1.0)
    elif extra == "max_delta_step":
        p.update(max_delta_step=0.3)
    elif extra == "zero_as_missing":
        p.update(zero_as_missing=True)
    elif extra == "no_missing":
        p.update(use_missing=False)
    elif extra == "no_boost_from_average":
        p.update(boost_from_average=False)
    if with_cat:
        p.update(max_cat_to_onehot=int(rng.choice([2, 4, 8])),
                 cat_l2=float(rng.choice([0.0, 10.0])),
                 cat_smooth=float(rng.choice([1.0, 10.0])),
                 min_data_per_group=int(rng.choice([2, 10])))
    if task == "binary" and rng.random() < 0.4:
        p["scale_pos_weight"] = 2.5
    if classifier and rng.random() < 0.4:
        p["class_weight"] = ({0: 1.5, 1: 0.7} if task == "binary"
                             else {0: 1.5, 2: 0.6})
    return p


def _data(task, variant, seed):
    n_cat = 2 if variant in ("cat", "codes") else 0
    nan = 0.0 if variant == "plain" else 0.15
    X, y = make_data(task, n=260, n_num=4, n_cat=n_cat, n_classes=N_CLASSES,
                     nan_frac=nan, seed=seed)
    if variant == "plain":
        # exact zeros so that Zero missing types and zero bins appear
        X.loc[X.index[::7], "f1"] = 0.0
    else:
        X.loc[X.index[::9], "f2"] = 0.0
    return X, y


def _fit_sklearn(cls_name, task, variant, seed):
    rng = np.random.default_rng(seed)
    X, y = _data(task, variant, seed)
    classifier = cls_name == "LGBMClassifier"
    p = _draw_params(rng, task, variant in ("cat", "codes"), classifier)
    fit = {}
    if variant == "codes":
        Xfit = _frame_to_codes(X)
        fit["categorical_feature"] = [4, 5]
    else:
        Xfit = X
    if rng.random() < 0.5:
        fit["sample_weight"] = rng.uniform(0.2, 3.0, len(y))
    if cls_name == "LGBMRegressor":
        model = lgb.LGBMRegressor(**p)
    elif classifier:
        model = lgb.LGBMClassifier(**p)
    else:
        p.pop("class_weight", None)
        p["objective"] = task
        if task == "multiclass":
            p["num_class"] = N_CLASSES
        model = lgb.LGBMModel(**p)
    if rng.random() < 0.3:
        # early stopping on a validation set
        n_tr = 200
        model.set_params(n_estimators=20)
        fit["eval_X"] = (Xfit[n_tr:] if variant == "codes" else Xfit.iloc[n_tr:],)
        fit["eval_y"] = (y[n_tr:],)
        fit["callbacks"] = [lgb.early_stopping(2, verbose=False)]
        if "sample_weight" in fit:
            fit["sample_weight"] = fit["sample_weight"][:n_tr]
        Xtr = Xfit[:n_tr] if variant == "codes" else Xfit.iloc[:n_tr]
        model.fit(Xtr, y[:n_tr], **fit)
    else:
        model.fit(Xfit, y, **fit)
    return model, X, Xfit, rng


# -------------------------------------------------------------- parity tests
MODEL_TASKS = [("LGBMRegressor", "regression"), ("LGBMClassifier", "binary"),
               ("LGBMClassifier", "multiclass"), ("LGBMModel", "regression"),
               ("LGBMModel", "binary"), ("LGBMModel", "multiclass")]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("variant", ["plain", "nan", "cat", "codes"])
@pytest.mark.parametrize("cls_name, task", MODEL_TASKS)
def test_sklearn_parity(cls_name, task, variant, seed):
    model, X, Xfit, rng = _fit_sklearn(cls_name, task, variant,
                                       zlib.crc32(f"{cls_name}{task}{variant}{seed}".encode()))
    ens = treeinf.parse_model(model, Xfit)
    assert ens.library == "lightgbm" and ens.model_name == cls_name
    assert ens.objective == task
    assert ens.n_outputs == (N_CLASSES if task == "multiclass" else 1)
    assert ens.hessian_factor == (N_CLASSES / (N_CLASSES - 1) if task == "multiclass" else 1.0)
    assert ens.n_rounds == model.booster_.best_iteration or model.booster_.best_iteration == 0
    assert_parity(model, Xfit)
    if variant == "codes":
        assert_parity(model, _held_out_codes(X, rng))
    else:
        held = _held_out_frame(X, rng) if variant == "cat" else _awkward_rows(X, rng)[0]
        assert_parity(model, held)
    if cls_name == "LGBMClassifier":
        np.testing.assert_array_equal(ens.classes, model.classes_)
        # the link applied to our margin is LightGBM's probability
        z = ens.predict_raw(Xfit)
        if task == "binary":
            prob = 1.0 / (1.0 + np.exp(-z[:, 0]))
            np.testing.assert_allclose(prob, model.predict_proba(Xfit)[:, 1], rtol=1e-9, atol=1e-12)
        else:
            e = np.exp(z - z.max(1, keepdims=True))
            np.testing.assert_allclose(e / e.sum(1, keepdims=True), model.predict_proba(Xfit),
                                       rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("variant", ["nan", "cat", "codes"])
@pytest.mark.parametrize("task", TASKS)
def test_booster_parity(task, variant, seed):
    rng = np.random.default_rng(zlib.crc32(f"booster{task}{variant}{seed}".encode()))
    X, y = _data(task, variant, seed + 50)
    p = _draw_params(rng, task, variant != "nan", classifier=False)
    p.pop("class_weight", None)
    n_rounds = p.pop("n_estimators")
    p["objective"] = task
    if task == "multiclass":
        p["num_class"] = N_CLASSES
    data = X
    kw = {}
    if variant == "codes":
        data = _frame_to_codes(X)
        kw["categorical_feature"] = [4, 5]
    w = rng.uniform(0.5, 2.0, len(y)) if seed else None
    booster = lgb.train(p, lgb.Dataset(data, y, weight=w, **kw), num_boost_round=n_rounds)
    ens = treeinf.parse_model(booster, data)
    assert ens.classes is None and ens.model_name == "Booster"
    assert_parity(booster, data)
    held = (_held_out_codes(X, rng) if variant == "codes" else
            _held_out_frame(X, rng) if variant == "cat" else _awkward_rows(X, rng)[0])
    assert_parity(booster, held)
    # a Booster rebuilt from its model string parses to the same ensemble
    again = lgb.Booster(model_str=booster.model_to_string())
    ens2 = assert_parity(again, held)
    np.testing.assert_array_equal(ens2.leaf_value, ens.leaf_value)
    np.testing.assert_array_equal(ens2.base_margin, ens.base_margin)


# ------------------------------------------------- missing values, categories
def _node_rules(ens):
    internal = ens.node_left >= 0
    numeric = internal & (ens.node_kind != SPLIT_CAT_LEFT)
    return set(ens.node_missing[numeric].tolist()), int(np.sum(ens.node_kind == SPLIT_CAT_LEFT))


@pytest.mark.parametrize("setting, rule", [
    (dict(), MISS_DEFAULT),                       # missing_type NaN
    (dict(zero_as_missing=True), MISS_ZERO_DEFAULT),  # missing_type Zero
    (dict(use_missing=False), MISS_AS_ZERO),       # missing_type None
])
def test_missing_types(setting, rule):
    X, y = make_data("regression", n=300, n_num=4, nan_frac=0.2, seed=11)
    X.loc[X.index[::5], "f0"] = 0.0
    X.loc[X.index[1::5], "f1"] = 0.0
    model = lgb.LGBMRegressor(n_estimators=10, num_leaves=8, min_child_samples=3,
                              verbose=-1, **setting).fit(X, y)
    ens = assert_parity(model, X)
    rules, _ = _node_rules(ens)
    assert rule in rules
    rng = np.random.default_rng(3)
    held = _awkward_rows(X, rng, n=200)[0]
    assert_parity(model, held)
    # every row of NaN, zeros and values around LightGBM's zero threshold
    special = np.array([np.nan, 0.0, -0.0, 1e-35, -1e-35, 1.0000000180025095e-35,
                        -1.0000000180025095e-35, 1.00000001e-35, -1.00000001e-35,
                        1e-36, 2e-35, -2e-35])
    grid = np.array(np.meshgrid(special, special[:4], special[4:8], [0.3])).reshape(4, -1).T
    assert_parity(model, pd.DataFrame(grid, columns=X.columns))



# kZeroThreshold (1e-35f) as a double, and values around it
_KZERO = float(np.float32(1e-35))
_TINY = np.array([0.0, -0.0, np.nan, 1e-35, -1e-35, 1e-36, -1e-36, 2e-35, -2e-35,
                  _KZERO, -_KZERO, np.nextafter(_KZERO, 0.0), np.nextafter(-_KZERO, 0.0),
                  np.nextafter(_KZERO, 1.0), np.nextafter(-_KZERO, -1.0),
                  5e-324, -5e-324, 1.0, -1.0])


@pytest.mark.parametrize("setting", [dict(use_missing=False),        # missing_type None
                                     dict(zero_as_missing=True),     # missing_type Zero
                                     dict()])                        # missing_type NaN
def test_zero_threshold_routing(setting):
    """LightGBM's predict turns |x| <= kZeroThreshold into 0.0 before any
    comparison, and splits a column of zeros and negatives at -kZeroThreshold:
    x = -kZeroThreshold goes right there (it is 0.0), not left (x <= threshold).
    Checked against pred_leaf for every missing type, from arrays (float64
    and float32) and DataFrames."""
    rng = np.random.default_rng(0)
    n = 400
    x = rng.choice([0.0, -1.0, -2.0, 1.0, 2.0, np.nan], size=n,
                   p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.1])
    X = np.c_[x, rng.normal(size=n)]
    y = 3.0 * (x == 0) + 0.5 * np.nan_to_num(x) + 1.5 * np.isnan(x) + 0.1 * rng.normal(size=n)
    model = lgb.LGBMRegressor(n_estimators=5, min_child_samples=5, verbose=-1,
                              **setting).fit(X, y)
    thresholds = model.booster_.trees_to_dataframe()["threshold"].dropna().to_numpy()
    if not setting.get("zero_as_missing"):  # Zero puts zeros on the default side instead
        assert -_KZERO in thresholds
    assert _KZERO in thresholds or -_KZERO in thresholds
    Q = np.array(np.meshgrid(_TINY, [0.0, -1e-35, np.nan])).reshape(2, -1).T
    ens = _lightgbm.parse(model)
    for q in (Q, Q.astype(np.float32), pd.DataFrame(Q, columns=["Column_0", "Column_1"])):
        ours = ens.apply(q, library_ids=True)[:, :, 0]
        theirs = model.predict(q, pred_leaf=True)
        bad = np.flatnonzero((ours != theirs).any(axis=1))
        assert bad.size == 0, f"rows {Q[bad[:5]].tolist()} are routed differently"
        np.testing.assert_allclose(ens.predict_raw(q)[:, 0], model.predict(q, raw_score=True),
                                   rtol=1e-12)
    # the user's array is not modified
    Q2 = Q.copy()
    ens.apply(Q2)
    np.testing.assert_array_equal(Q2.view(np.int64), Q.view(np.int64))


def test_missing_type_none_for_features_without_nan():
    # no NaN at training time: LightGBM stores missing_type None, and a NaN
    # at prediction time is compared as 0.0
    X, y = make_data("binary", n=300, n_num=4, seed=12)
    model = lgb.LGBMClassifier(n_estimators=8, num_leaves=6, verbose=-1).fit(X, y)
    ens = assert_parity(model, X)
    assert _node_rules(ens)[0] == {MISS_AS_ZERO}
    held = X.copy()
    held.iloc[::2, :] = np.nan
    held.iloc[1::4, 1] = 0.0
    assert_parity(model, held)


@pytest.mark.parametrize("setting", [dict(), dict(use_missing=False), dict(zero_as_missing=True)])
def test_categorical_codes_edge_values(setting):
    """Numeric input on categorical features: the values are codes; NaN and
    negatives go right whatever the missing type; (-1, 0) truncates to 0."""
    rng = np.random.default_rng(5)
    n = 400
    code = rng.integers(0, 8, n).astype(float)
    x1 = rng.normal(size=n)
    y = np.isin(code, [0, 3, 6]) * 2.0 + x1 + rng.normal(scale=0.1, size=n)
    Xtr = np.c_[code, x1]
    Xtr[rng.random(n) < 0.1, 0] = np.nan
    model = lgb.LGBMRegressor(n_estimators=6, num_leaves=6, min_child_samples=5,
                              max_cat_to_onehot=2, cat_smooth=1, min_data_per_group=5,
                              verbose=-1, **setting)
    model.fit(Xtr, y, categorical_feature=[0])
    ens = assert_parity(model, Xtr)
    assert _node_rules(ens)[1] > 0
    edge = np.array([np.nan, 0.0, -0.0, -0.5, -0.999999, -1.0, -1.5, 0.5, 3.0, 3.9,
                     6.2, 7.0, 8.0, 31.0, 32.0, 1e10, -1e10, np.inf, -np.inf,
                     2.0 ** 31, 2.0 ** 32])
    held = np.c_[edge, np.zeros_like(edge)]
    assert_parity(model, held)
    lib = model.booster_.predict(held, pred_leaf=True)
    # what LightGBM itself does: int(-0.5) == int(-0.999999) == 0 is category
    # 0; NaN goes where -1 goes (right), whatever the missing type
    np.testing.assert_array_equal(lib[3], lib[1])
    np.testing.assert_array_equal(lib[4], lib[1])
    np.testing.assert_array_equal(lib[0], lib[5])


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_pandas_categories_mapped_like_lightgbm():
    X, y = make_data("multiclass", n=300, n_num=3, n_cat=2, nan_frac=0.1, seed=21)
    model = lgb.LGBMClassifier(n_estimators=6, num_leaves=6, min_child_samples=5,
                               verbose=-1).fit(X, y)
    ens = assert_parity(model, X)
    assert ens.encoder.pandas_categorical == [list("abcdef"), list("abcdef")]
    # same values, categories listed in another order and with extra levels:
    # LightGBM re-maps them to the training categories (set_categories)
    other = X.copy()
    for c in ("c0", "c1"):
        other[c] = pd.Categorical(X[c].astype(object), categories=list("fzedcba"))
    other.loc[other.index[:20], "c0"] = "z"   # unseen -> NaN
    assert_parity(model, other)
    np.testing.assert_allclose(ens.predict_raw(other.iloc[20:]), ens.predict_raw(X.iloc[20:]))
    # LightGBM matches category columns by position: a frame with a different
    # number of category columns is refused
    bad = X.copy()
    bad["c1"] = bad["c1"].cat.codes.astype(float)
    with pytest.raises(DataValidationError, match="category"):
        ens.encode(bad)
    # numeric codes are accepted as they are
    assert_parity(model, _frame_to_codes(X))


def test_feature_names_with_whitespace():
    X, y = make_data("regression", n=200, n_num=3, seed=4)
    X.columns = ["a b", "c", "d e"]
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, y)
    ens = assert_parity(model, X)
    assert ens.encoder.feature_names == ["a_b", "c", "d_e"]
    with pytest.raises(DataValidationError):
        ens.encode(X[["c", "a b", "d e"]])
    # numpy-trained: no names recorded
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X.to_numpy(), y)
    assert _lightgbm.parse(model).encoder.feature_names is None


@pytest.mark.parametrize("task", TASKS)
def test_stumps(task):
    # min_child_samples > n: every tree is a single leaf; LightGBM keeps one
    # constant iteration holding the init score
    X, y = make_data(task, n=100, n_num=3, seed=8)
    M = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    model = M(n_estimators=4, min_child_samples=500, verbose=-1).fit(X, y)
    ens = assert_parity(model, X)
    assert ens.n_rounds == 1 and np.all(ens.n_leaves == 1)
    np.testing.assert_array_equal(ens.leaf_value, 0.0)
    np.testing.assert_allclose(ens.base_margin, _true_init(task, y, None), rtol=1e-12)
    assert ens.params["init_score_folded"].all()


def test_later_stumps_in_multiclass():
    # once a class is fitted its trees stop splitting (min_child_weight) while
    # the other classes go on: single-leaf trees inside the ensemble
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = np.where(X[:, 0] > 0.5, 0, np.where(X[:, 1] > 0, 1, 2))
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=4, min_child_weight=1,
                               learning_rate=0.5, min_child_samples=2, verbose=-1).fit(X, y)
    ens = assert_parity(model, X)
    assert np.any(ens.n_leaves[3:] == 1)
    assert_parity(model, rng.normal(size=(50, 3)))


# ------------------------------------------------------ iterations, rf, dart
def test_early_stopping_and_num_iteration():
    X, y = make_data("binary", n=400, n_num=4, nan_frac=0.1, seed=31)
    tr, va = lgb.Dataset(X.iloc[:250], y[:250]), lgb.Dataset(X.iloc[250:], y[250:])
    booster = lgb.train(dict(objective="binary", learning_rate=0.5, num_leaves=15,
                             min_data_in_leaf=3, verbose=-1), tr, num_boost_round=40,
                        valid_sets=[va], keep_training_booster=True,
                        callbacks=[lgb.early_stopping(3, verbose=False)])
    best, total = booster.best_iteration, booster.current_iteration()
    assert 0 < best < total
    ens = assert_parity(booster, X)
    assert ens.n_rounds == best and ens.params["n_iterations_total"] == total
    np.testing.assert_allclose(ens.predict_raw(X)[:, 0], booster.predict(X, raw_score=True),
                               rtol=1e-12, atol=1e-12)
    ens2 = assert_parity(booster, X, num_iteration=2)
    assert ens2.n_rounds == 2
    ens_all = assert_parity(booster, X, num_iteration=total)
    assert ens_all.n_rounds == total
    # sklearn wrapper: best_iteration_
    model = lgb.LGBMRegressor(n_estimators=40, learning_rate=0.5, verbose=-1)
    model.fit(X.iloc[:250], y[:250], eval_X=(X.iloc[250:],), eval_y=(y[250:],),
              callbacks=[lgb.early_stopping(2, verbose=False)])
    ens = treeinf.parse_model(model, X)
    assert ens.n_rounds == model.best_iteration_
    np.testing.assert_allclose(ens.predict_raw(X)[:, 0], model.predict(X), rtol=1e-12)


@pytest.mark.parametrize("task", TASKS)
def test_random_forest_mode(task):
    X, y = make_data(task, n=300, n_num=4, n_cat=1, nan_frac=0.1, seed=41)
    M = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    model = M(boosting_type="rf", subsample=0.6, subsample_freq=1, n_estimators=7,
              num_leaves=8, min_child_samples=5, verbose=-1).fit(X, y)
    ens = treeinf.parse_model(model, X)
    assert ens.kind == "forest" and ens.params["boosting"] == "rf"
    np.testing.assert_array_equal(ens.base_margin, 0.0)
    assert_parity(model, X)
    # LightGBM's raw_score is the sum of the trees; predict() links the mean
    raw = np.asarray(model.booster_.predict(X, raw_score=True)).reshape(len(X), -1)
    np.testing.assert_allclose(ens.predict_raw(X), raw / 7, rtol=1e-12)
    z = ens.predict_raw(X)
    if task == "regression":
        np.testing.assert_allclose(z[:, 0], model.predict(X), rtol=1e-12)
    elif task == "binary":
        np.testing.assert_allclose(1 / (1 + np.exp(-z[:, 0])), model.predict_proba(X)[:, 1],
                                   rtol=1e-9)
    else:
        e = np.exp(z - z.max(1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(1, keepdims=True), model.predict_proba(X), rtol=1e-9)


# ---------------------------------------- base margin and Newton leaf values
def _true_init(task, y, w, class_weight=None, classes=None):
    """LightGBM's boost_from_average init score (BoostFromScore)."""
    y = np.asarray(y)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float32).astype(float)
    if task == "regression":   # labels are float32 in LightGBM (label_t)
        y32 = y.astype(np.float32).astype(float)
        return np.array([np.sum(w * y32) / np.sum(w)])
    if task == "binary":
        p = np.sum(w * (y > 0)) / np.sum(w)
        return np.array([np.log(p / (1 - p))])
    return np.log(np.bincount(y, w, minlength=N_CLASSES) / np.sum(w))


def recompute_leaves(ens, X, y, sample_weight=None, hessian_factor=None, leaf_lambda=None):
    """Every leaf value recomputed as a Newton step from the training data.

    F^(t-1) = base_margin + earlier rounds' leaf values; g, h per SPEC 1 with
    hessian factor f; weights w = sample weight x class_weight[label] (LightGBM
    rounds sample weights and every g, h to float32, mimicked here);
    value = -eta * T_alpha(sum w g) / (sum w h + lambda).
    """
    f = ens.hessian_factor if hessian_factor is None else hessian_factor
    leaves = ens.apply(X).reshape(len(X), -1)             # compact, (n, n_trees)
    n, K, T = len(X), ens.n_outputs, ens.n_rounds
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float32).astype(float)
    labels = np.searchsorted(ens.classes, y) if ens.classes is not None else np.asarray(y)
    if ens.objective == "regression":
        Y = np.asarray(y, dtype=np.float32).astype(float)[:, None]
    elif ens.objective == "binary":
        Y = labels.astype(float)[:, None]
    else:
        Y = np.eye(K)[labels.astype(int)]
    cw = ens.class_weight
    if cw is not None:
        w = w * cw[labels.astype(int)]
    lam = (np.full(ens.leaf_value.shape, ens.reg_lambda) if leaf_lambda is None
           else leaf_lambda)
    F = np.tile(ens.base_margin, (n, 1))
    out = np.empty_like(ens.leaf_value)
    for t in range(T):
        if ens.objective == "regression":
            g, h = F - Y, np.ones_like(F)
        elif ens.objective == "binary":
            p = 1.0 / (1.0 + np.exp(-F))
            g, h = p - Y, p * (1 - p)
        else:
            e = np.exp(F - F.max(1, keepdims=True))
            p = e / e.sum(1, keepdims=True)
            g, h = p - Y, f * p * (1 - p)
        G = (g * w[:, None]).astype(np.float32).astype(float)
        H = (h * w[:, None]).astype(np.float32).astype(float)
        for c in range(K):
            j = t * K + c
            lo, hi = ens.leaf_offset[j], ens.leaf_offset[j + 1]
            Gs = np.bincount(leaves[:, j], G[:, c], minlength=hi - lo)
            Hs = np.bincount(leaves[:, j], H[:, c], minlength=hi - lo)
            Gs = np.sign(Gs) * np.maximum(np.abs(Gs) - ens.reg_alpha, 0.0)
            out[lo:hi] = -ens.learning_rate * Gs / (Hs + lam[lo:hi])
            F[:, c] += ens.leaf_value[lo + leaves[:, j]]
    return out


def assert_leaves_match(ens, ours, rtol=1e-6):
    for j in range(ens.n_trees):
        lo, hi = ens.leaf_offset[j], ens.leaf_offset[j + 1]
        theirs = ens.leaf_value[lo:hi]
        scale = np.max(np.abs(theirs)) + 1e-12
        err = np.abs(ours[lo:hi] - theirs)
        assert np.all(err <= rtol * (np.abs(theirs) + scale)), (
            f"tree {j}: recomputed {ours[lo:hi]} vs parsed {theirs}")


NEWTON = dict(n_estimators=8, num_leaves=6, min_child_samples=3, min_child_weight=1e-12,
              learning_rate=0.3, reg_lambda=0.8, verbose=-1)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("task", TASKS)
def test_newton_leaves_and_base_margin(task, weighted):
    X, y = make_data(task, n=300, n_num=4, nan_frac=0.1, n_classes=N_CLASSES, seed=61)
    w = np.random.default_rng(0).uniform(0.3, 3.0, len(y)) if weighted else None
    M = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    model = M(**NEWTON).fit(X, y, sample_weight=w)
    ens = treeinf.parse_model(model, X)
    assert ens.exact_leaves and ens.params["base_margin_exact"]
    assert np.all(ens.params["init_score_folded"])
    # the init score LightGBM folded into tree 0, recovered exactly
    np.testing.assert_allclose(ens.base_margin, _true_init(task, y, w), rtol=1e-7, atol=1e-7)
    # tree 0 keeps only its own shrunk Newton step
    assert_leaves_match(ens, recompute_leaves(ens, X, y, w))
    if task == "multiclass":
        # the factor K/(K-1) is pinned: 1 and 2 do not reproduce the leaves
        for wrong in (1.0, 2.0):
            ours = recompute_leaves(ens, X, y, w, hessian_factor=wrong)
            assert np.max(np.abs(ours - ens.leaf_value)) > 1e-3


@pytest.mark.parametrize("task, setting", [
    ("binary", dict(scale_pos_weight=3.0)),
    ("binary", dict(scale_pos_weight=0.4, reg_alpha=0.5)),
    ("binary", dict(class_weight={0: 2.0, 1: 0.5}, scale_pos_weight=1.5)),
    ("multiclass", dict(class_weight={0: 2.0, 2: 0.5})),
    ("regression", dict(reg_alpha=2.0, reg_lambda=0.0)),
    ("multiclass", dict(reg_alpha=0.3)),
    ("regression", dict(data_sample_strategy="goss", learning_rate=0.125)),  # 8 full-data iterations
])
def test_newton_leaves_with_settings(task, setting):
    X, y = make_data(task, n=300, n_num=4, nan_frac=0.1, n_classes=N_CLASSES, seed=62)
    w = np.random.default_rng(1).uniform(0.3, 3.0, len(y))
    M = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    model = M(**{**NEWTON, **setting}).fit(X, y, sample_weight=w)
    ens = treeinf.parse_model(model, X)
    assert ens.exact_leaves and ens.params["base_margin_exact"]
    cw = ens.class_weight
    if "scale_pos_weight" in setting:
        assert cw[1] / cw[0] == pytest.approx(setting["scale_pos_weight"] * (
            setting.get("class_weight", {1: 1.0})[1] / setting.get("class_weight", {0: 1.0})[0]))
    if "class_weight" not in setting:
        # without sklearn class weights LightGBM's init score ignores
        # scale_pos_weight: the plain weighted label average
        np.testing.assert_allclose(ens.base_margin, _true_init(task, y, w), rtol=1e-7, atol=1e-7)
    assert_leaves_match(ens, recompute_leaves(ens, X, y, w))


@pytest.mark.parametrize("task", TASKS)
def test_newton_leaves_categorical_per_leaf_lambda(task):
    # many-vs-many categorical splits compute their children with
    # lambda_l2 + cat_l2; with cat_l2=0 every leaf is a plain Newton step
    X, y = make_data(task, n=300, n_num=3, n_cat=2, nan_frac=0.1, seed=63)
    M = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    for cat_l2 in (0.0, 10.0):
        model = M(**NEWTON, cat_l2=cat_l2, cat_smooth=1.0, max_cat_to_onehot=2,
                  min_data_per_group=3).fit(X, y)
        ens = treeinf.parse_model(model, X)
        assert np.sum(ens.node_kind == SPLIT_CAT_LEFT) > 0
        lam = ens.leaf_reg_lambda
        np.testing.assert_allclose(ens.base_margin, _true_init(task, y, None), rtol=1e-7, atol=1e-7)
        assert_leaves_match(ens, recompute_leaves(ens, X, y, leaf_lambda=lam))
        # the per-leaf lambda reproduces every leaf: the model stays exact
        assert ens.exact_leaves
        if cat_l2 == 0.0:
            assert_leaves_match(ens, recompute_leaves(ens, X, y))
        else:
            assert np.any(lam != ens.reg_lambda)


@pytest.mark.parametrize("task", TASKS)
def test_no_boost_from_average_and_init_score(task):
    X, y = make_data(task, n=300, n_num=4, seed=64)
    M = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    model = M(**NEWTON, boost_from_average=False).fit(X, y)
    ens = treeinf.parse_model(model, X)
    np.testing.assert_array_equal(ens.base_margin, 0.0)
    assert not np.any(ens.params["init_score_folded"])
    assert_leaves_match(ens, recompute_leaves(ens, X, y))
    # a user init_score disables boost_from_average; LightGBM's prediction
    # does not include it, neither does the parsed ensemble
    K = ens.n_outputs
    init = np.full((len(y), K), 0.25) if K > 1 else np.full(len(y), 0.25)
    model = M(**NEWTON).fit(X, y, init_score=init)
    ens = assert_parity(model, X)
    np.testing.assert_array_equal(ens.base_margin, 0.0)


def test_bagging_flags_inexact_base_margin():
    X, y = make_data("regression", n=300, n_num=4, seed=65)
    model = lgb.LGBMRegressor(**NEWTON, subsample=0.5, subsample_freq=1).fit(X, y)
    ens = assert_parity(model, X)
    assert not ens.exact_leaves and not ens.params["base_margin_exact"]
    assert ens.params["subsample"] == 0.5
    model = lgb.LGBMRegressor(**{**NEWTON, "learning_rate": 0.3},
                              data_sample_strategy="goss").fit(X, y)
    ens = assert_parity(model, X)
    # GOSS samples from iteration int(1/0.3) = 3 on; tree 0 saw every row
    assert not ens.exact_leaves and ens.params["base_margin_exact"]


# ------------------------------------------------------------- refusals
def _xy(task="regression", n=120):
    return make_data(task, n=n, n_num=3, seed=70)


@pytest.mark.parametrize("make, match", [
    (lambda: lgb.LGBMRegressor(boosting_type="dart", n_estimators=3), "dart"),
    (lambda: lgb.LGBMRegressor(linear_tree=True, n_estimators=3), "linear_tree"),
    (lambda: lgb.LGBMRegressor(objective="huber", n_estimators=3), "huber"),
    (lambda: lgb.LGBMRegressor(objective="poisson", n_estimators=3), "poisson"),
    (lambda: lgb.LGBMRegressor(reg_sqrt=True, n_estimators=3), "sqrt"),
    (lambda: lgb.LGBMRegressor(objective=lambda y, p: (p - y, np.ones_like(p)),
                               n_estimators=3), "custom"),
])
def test_unsupported_regressors(make, match):
    X, y = _xy()
    if match in ("poisson", "sqrt"):
        y = np.abs(y)
    model = make().set_params(verbose=-1).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=match):
        treeinf.parse_model(model)


@pytest.mark.parametrize("task, kw, match", [
    ("binary", dict(is_unbalance=True), "is_unbalance"),
    ("binary", dict(class_weight="balanced"), "balanced"),
    ("binary", dict(objective="cross_entropy"), "cross_entropy"),
    ("binary", dict(sigmoid=2.0), "sigmoid"),
    ("multiclass", dict(objective="multiclassova"), "multiclassova"),
])
def test_unsupported_classifiers(task, kw, match):
    X, y = _xy(task)
    model = lgb.LGBMClassifier(n_estimators=3, verbose=-1, **kw).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=match):
        treeinf.parse_model(model)


def test_unsupported_booster_settings():
    X, y = _xy()
    booster = lgb.train(dict(objective=lambda p, d: (p - d.get_label(), np.ones_like(p)),
                             verbose=-1), lgb.Dataset(X, y), 3)
    with pytest.raises(UnsupportedModelError, match="custom"):
        treeinf.parse_model(booster)
    booster = lgb.train(dict(objective="regression", verbose=-1), lgb.Dataset(X, y), 6,
                        callbacks=[lgb.reset_parameter(learning_rate=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1])])
    with pytest.raises(UnsupportedModelError, match="learning-rate schedule"):
        treeinf.parse_model(booster)
    booster = lgb.train(dict(objective="lambdarank", verbose=-1),
                        lgb.Dataset(X, (y > y.mean()).astype(int), group=[60, 60]), 3)
    with pytest.raises(UnsupportedModelError, match="lambdarank"):
        treeinf.parse_model(booster)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        treeinf.parse_model(lgb.LGBMRegressor())
    with pytest.raises(NotFittedError):
        treeinf.parse_model(lgb.LGBMClassifier())
