"""Parsing of scikit-learn tree ensembles: parity with the library, leaf
recomputation (base margin, learning rate, lambda, hessian factor, class
weights) and the settings that are refused."""
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor,
                              GradientBoostingClassifier, GradientBoostingRegressor,
                              HistGradientBoostingClassifier,
                              HistGradientBoostingRegressor, RandomForestClassifier,
                              RandomForestRegressor)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

import treeinf
from treeinf._trees import _sklearn
from treeinf.exceptions import (DataValidationError, NotFittedError,
                                UnsupportedModelError)
from conftest import make_data

TASKS = ["regression", "binary", "multiclass"]
FAMILIES = ["gb", "hgb", "rf", "et"]


# ------------------------------------------------------------------ helpers
def _model(family, task, rng, **extra):
    """A small model with hyperparameters drawn from ``rng``."""
    reg = task == "regression"
    if family == "gb":
        cls = GradientBoostingRegressor if reg else GradientBoostingClassifier
        kw = dict(n_estimators=int(rng.integers(3, 8)),
                  learning_rate=float(rng.choice([0.05, 0.3, 1.0])),
                  max_depth=int(rng.choice([1, 2, 4])),
                  max_leaf_nodes=[None, 5][int(rng.integers(2))],
                  min_samples_leaf=int(rng.choice([1, 5, 20])),
                  subsample=float(rng.choice([1.0, 0.7])),
                  max_features=[None, 0.6][int(rng.integers(2))],
                  init=[None, "zero"][int(rng.integers(2))],
                  random_state=int(rng.integers(100)))
    elif family == "hgb":
        cls = HistGradientBoostingRegressor if reg else HistGradientBoostingClassifier
        kw = dict(max_iter=int(rng.integers(3, 8)),
                  learning_rate=float(rng.choice([0.05, 0.3, 1.0])),
                  max_leaf_nodes=int(rng.choice([3, 8, 31])),
                  max_depth=[None, 3][int(rng.integers(2))],
                  min_samples_leaf=int(rng.choice([2, 10, 20])),
                  l2_regularization=float(rng.choice([0.0, 1.0, 5.0])),
                  max_bins=int(rng.choice([8, 255])),
                  max_features=float(rng.choice([1.0, 0.6])),
                  early_stopping=False, random_state=int(rng.integers(100)))
        if not reg and rng.random() < 0.5:
            kw["class_weight"] = {0: 1.0, 1: float(rng.uniform(0.5, 3.0))}
    else:
        if family == "rf":
            cls = RandomForestRegressor if reg else RandomForestClassifier
        else:
            cls = ExtraTreesRegressor if reg else ExtraTreesClassifier
        kw = dict(n_estimators=int(rng.integers(2, 7)),
                  max_depth=[None, 3][int(rng.integers(2))],
                  min_samples_leaf=int(rng.choice([1, 5])),
                  max_features=[None, "sqrt", 0.5][int(rng.integers(3))],
                  bootstrap=bool(rng.integers(2)), random_state=int(rng.integers(100)),
                  n_jobs=1)
        if kw["bootstrap"] and rng.random() < 0.5:
            kw["max_samples"] = 0.7
        if not reg and rng.random() < 0.5:
            kw["class_weight"] = {0: float(rng.uniform(0.5, 3.0))}
    kw.update(extra)
    return cls(**kw)


def _tree_thresholds(model):
    """float64 split thresholds of a model (sklearn trees or HGB predictors)."""
    if hasattr(model, "_predictors"):
        vals = [p.nodes["num_threshold"][(p.nodes["is_leaf"] == 0)
                                         & (p.nodes["is_categorical"] == 0)]
                for ps in model._predictors for p in ps]
        feats = [p.nodes["feature_idx"][(p.nodes["is_leaf"] == 0)
                                        & (p.nodes["is_categorical"] == 0)]
                 for ps in model._predictors for p in ps]
    else:
        ests = np.ravel(model.estimators_)
        vals = [e.tree_.threshold[e.tree_.children_left >= 0] for e in ests]
        feats = [e.tree_.feature[e.tree_.children_left >= 0] for e in ests]
    return np.concatenate(feats).astype(int), np.concatenate(vals)


def _boundary_rows(model, X, n_max=60, seed=0):
    """Rows of X whose numeric features sit exactly on, or one ulp around, a
    split threshold, and on its float32 rounding (float32 vs float64 pitfall)."""
    feats, thr = _tree_thresholds(model)
    keep = np.isfinite(thr)
    feats, thr = feats[keep], thr[keep]
    rng = np.random.default_rng(seed)
    base = X.iloc[rng.integers(0, len(X), n_max)].copy().reset_index(drop=True)
    if len(thr) == 0:
        return base
    pick = rng.integers(0, len(thr), n_max)
    variants = [lambda v: v, lambda v: np.nextafter(v, np.inf),
                lambda v: np.nextafter(v, -np.inf),
                lambda v: float(np.float32(v)),
                lambda v: float(np.nextafter(np.float32(v), np.float32(np.inf)))]
    for r in range(n_max):
        f, v = feats[pick[r]], thr[pick[r]]
        col = base.columns[f]
        if str(base[col].dtype) == "category":
            continue
        base.loc[r, col] = variants[r % len(variants)](v)
    return base


def _library_margin(model, X):
    name = type(model).__name__
    if name.startswith("Hist"):
        return model._raw_predict(X)
    if name.startswith("GradientBoosting"):
        raw = model.decision_function(X) if name.endswith("Classifier") else model.predict(X)
        return np.asarray(raw).reshape(len(X), -1)
    if name.endswith("Classifier"):
        proba = model.predict_proba(X)
        return proba[:, 1:2] if proba.shape[1] == 2 else proba
    return model.predict(X).reshape(-1, 1)


def _hgb_tree_outputs(model, X):
    """Each HGB predictor's output through the library's TreePredictor.predict."""
    Xp = model._preprocess_X(X, reset=False)
    known, fmap = model._bin_mapper.make_known_categories_bitsets()
    return np.stack([np.stack([p.predict(Xp, known, fmap, 1) for p in ps], axis=1)
                     for ps in model._predictors], axis=1)


def _library_leaves(model, X):
    """(n, n_rounds, K) leaf ids from the library's own ``apply``."""
    name = type(model).__name__
    if name.startswith("GradientBoosting"):
        # its apply() validates DataFrames with a nameless tree (spurious warning)
        Xa = X.to_numpy(dtype=np.float32) if hasattr(X, "columns") else X
        leaves = np.asarray(model.apply(Xa))
        return leaves.reshape(len(X), leaves.shape[1], -1)
    leaves = np.asarray(model.apply(X))
    K = _library_margin(model, X[:1]).shape[1]
    return np.repeat(leaves[:, :, None], K, axis=2)


def check_parity(model, X_train, X_test):
    """parse_model verification plus our own margin / leaf / tree-output checks."""
    ens = treeinf.parse_model(model, X_train)
    rtol = 1e-5 if ens.encoder.input_dtype == np.float32 else 1e-6
    for X in (X_train, X_test):
        lib = np.asarray(_library_margin(model, X), dtype=np.float64)
        ours = ens.predict_raw(X)
        np.testing.assert_allclose(ours, lib, rtol=rtol, atol=rtol)
        ids = ens.apply(X, library_ids=True)
        if type(model).__name__.startswith("Hist"):
            # HGB has no apply(): leaf ids from its traversal (reference), and
            # each tree's output from the library's own TreePredictor.predict
            np.testing.assert_array_equal(ids, _sklearn.reference(model, X)["leaves"])
            compact = ens.apply(X)
            n, T, K = compact.shape
            offs = ens.leaf_offset[:-1].reshape(T, K)
            tree_out = ens.leaf_value[offs[None] + compact]
            np.testing.assert_allclose(tree_out, _hgb_tree_outputs(model, X),
                                       rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_array_equal(ids, _library_leaves(model, X))
    assert ens.link in ("identity", "sigmoid", "softmax")
    assert ens.class_weight is None or ens.class_weight.ndim == 1
    return ens


def _numeric(X):
    return X[[c for c in X.columns if c.startswith("f")]]


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize("draw", range(3))
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_parity_numeric(family, task, draw):
    rng = np.random.default_rng(1000 * draw + 7)
    nan = family != "gb" and draw > 0   # GradientBoosting rejects NaN
    X, y = make_data(task, n=260, n_num=5, nan_frac=0.1 if nan else 0.0, seed=draw)
    X = _numeric(X)
    Xtr, ytr, Xte = X.iloc[:200], y[:200], X.iloc[200:]
    w = rng.uniform(0.2, 3.0, len(ytr)) if draw == 2 else None
    model = _model(family, task, rng).fit(Xtr, ytr, sample_weight=w)
    X_test = pd.concat([Xte, _boundary_rows(model, Xtr, seed=draw)], ignore_index=True)
    if family != "gb":  # NaN at predict time also in columns trained without NaN
        X_test.iloc[::7, draw % X.shape[1]] = np.nan
    ens = check_parity(model, Xtr, X_test)
    # numpy input works too (no feature names)
    np.testing.assert_allclose(ens.predict_raw(X_test.to_numpy()),
                               ens.predict_raw(X_test), rtol=0, atol=0)
    K = 1 if task != "multiclass" else 3
    assert ens.n_outputs == K
    assert ens.objective == task
    assert ens.encoder.input_dtype == (np.float64 if family == "hgb" else np.float32)
    if family in ("rf", "et"):
        assert ens.kind == "forest" and ens.learning_rate == 1.0
        assert ens.params["bootstrap"] == model.bootstrap
        assert ens.link == "identity"
        np.testing.assert_array_equal(ens.base_margin, np.zeros(K))
        if task != "regression":
            cw = model.class_weight
            expected = None if cw is None else [cw.get(c, 1.0) for c in model.classes_]
            if expected is None:
                assert ens.class_weight is None
            else:
                np.testing.assert_allclose(ens.class_weight, expected)
    else:
        assert ens.kind == "boosting"
        assert ens.link == {"regression": "identity", "binary": "sigmoid",
                                      "multiclass": "softmax"}[task]


def test_forest_trained_without_nan_routes_nan_like_library():
    """Nodes that saw no missing value still send NaN to missing_go_to_left."""
    X, y = make_data("multiclass", n=250, n_num=4, seed=3)
    X = _numeric(X)
    for cls in (RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor):
        yy = X["f0"].to_numpy() if cls is RandomForestRegressor else y
        model = cls(n_estimators=4, random_state=0).fit(X, yy)
        Xt = X.copy()
        rng = np.random.default_rng(0)
        Xt = Xt.mask(rng.random(Xt.shape) < 0.3)
        check_parity(model, X, Xt)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("draw", range(2))
def test_parity_hgb_pandas_categorical(task, draw):
    rng = np.random.default_rng(draw)
    X, y = make_data(task, n=300, n_num=3, n_cat=2, nan_frac=0.08 * draw, seed=10 + draw)
    # a level that never occurs in training is unknown to the model
    X["c1"] = X["c1"].cat.add_categories(["zz"])
    Xtr, ytr = X.iloc[:240], y[:240]
    Xte = X.iloc[240:].copy()
    Xte.iloc[::3, 4] = "zz"
    Xte.iloc[1::5, 3] = np.nan
    Xte.iloc[2::6, 0] = np.inf
    model = _model("hgb", task, rng, max_bins=255).fit(Xtr, ytr)
    ens = check_parity(model, Xtr, Xte)
    assert ens.params["categorical_columns"] == [3, 4]
    assert ens.encoder.feature_names == list(X.columns)
    # object-dtype values are mapped the same way as the pandas categorical
    Xobj = Xte.astype({"c0": object, "c1": object})
    np.testing.assert_array_equal(ens.apply(Xobj), ens.apply(Xte))


@pytest.mark.parametrize("task", TASKS)
def test_parity_hgb_numeric_categorical_codes(task):
    """categorical_features=[...] on numeric X: the model ordinal-encodes the
    values it saw (here non-contiguous codes), unseen values are missing."""
    rng = np.random.default_rng(5)
    X, y = make_data(task, n=300, n_num=3, n_cat=1, nan_frac=0.05, seed=21)
    codes = np.asarray([0.0, 3.0, 7.0, 10.0, 11.0, 40.0])[X["c0"].cat.codes.to_numpy()]
    codes[X["c0"].isna().to_numpy()] = np.nan
    Xn = np.column_stack([X[["f0", "f1", "f2"]].to_numpy(), codes])
    Xn = Xn[:, [3, 0, 1, 2]]  # categorical column first
    model = _model("hgb", task, rng, categorical_features=[0]).fit(Xn[:240], y[:240])
    Xte = Xn[240:].copy()
    Xte[::4, 0] = np.asarray([5.0, -1.0, 300.0, 3.0])[np.arange(len(Xte[::4])) % 4]
    ens = check_parity(model, Xn[:240], Xte)
    assert ens.encoder.categories[0] == [0.0, 3.0, 7.0, 10.0, 11.0, 40.0]
    # features are reported in the user's column order
    assert set(ens.node_feature[ens.node_kind >= 2]) <= {0}


def test_hgb_categorical_missing_side_both_ways():
    """Categorical splits whose missing side is left and right both occur and
    are reproduced (unknown categories follow the missing side)."""
    seen = set()
    for seed in range(6):
        X, y = make_data("binary", n=300, n_num=3, n_cat=2, nan_frac=0.15, seed=40 + seed)
        model = HistGradientBoostingClassifier(max_iter=6, max_leaf_nodes=8,
                                               min_samples_leaf=5, random_state=0).fit(X, y)
        ens = check_parity(model, X, X.sample(frac=1.0, random_state=seed))
        seen |= set(ens.node_kind[(ens.node_kind >= 2) & (ens.node_left >= 0)].tolist())
    assert seen == {2, 3}


# ------------------------------------------------- early stopping, init, stages
def test_gb_early_stopping_and_multiclass_layout():
    X, y = make_data("multiclass", n=300, n_num=4, seed=2)
    X = _numeric(X)
    model = GradientBoostingClassifier(n_estimators=60, n_iter_no_change=2,
                                       validation_fraction=0.3, learning_rate=0.5,
                                       max_depth=3, random_state=0).fit(X, y)
    assert model.n_estimators_ < 60
    ens = check_parity(model, X, X)
    assert ens.n_rounds == model.n_estimators_
    # trained on a reproducible split of X: exact, the held-out rows are known
    assert ens.train_split is not None and ens.exact_leaves
    rep = treeinf.BoostIn().fit(model, X, y).fidelity_
    assert rep["passed"] and rep["exact"] and rep["held_out_rows"] == 90
    # tree (t, c) is estimators_[t, c]: leaf values are tree_.value * eta
    t, c = 1, 2
    j = t * 3 + c
    tree_ = model.estimators_[t, c].tree_
    leaf_nodes = np.flatnonzero(tree_.children_left < 0)
    np.testing.assert_allclose(ens.leaf_value[ens.leaf_offset[j]:ens.leaf_offset[j + 1]],
                               tree_.value[leaf_nodes, 0, 0] * model.learning_rate)
    np.testing.assert_array_equal(
        ens.leaf_library_id[ens.leaf_offset[j]:ens.leaf_offset[j + 1]], leaf_nodes)


def test_hgb_early_stopping_uses_n_iter():
    X, y = make_data("binary", n=400, n_num=4, nan_frac=0.05, seed=4)
    model = HistGradientBoostingClassifier(max_iter=80, early_stopping=True,
                                           n_iter_no_change=2, validation_fraction=0.3,
                                           learning_rate=0.8, random_state=0).fit(X, y)
    assert model.n_iter_ < 80
    ens = check_parity(model, X, X)
    assert ens.n_rounds == model.n_iter_
    assert ens.train_split is not None and ens.exact_leaves
    rep = treeinf.BoostIn().fit(model, X, y).fidelity_
    assert rep["passed"] and rep["exact"] and rep["held_out_rows"] == 120


@pytest.mark.parametrize("task", TASKS)
def test_gb_base_margin_from_init(task):
    X, y = make_data(task, n=200, n_num=3, seed=6)
    X = _numeric(X)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    cls = GradientBoostingRegressor if task == "regression" else GradientBoostingClassifier
    model = cls(n_estimators=3, random_state=0).fit(X, y, sample_weight=w)
    ens = treeinf.parse_model(model, X)
    if task == "regression":
        expected = [np.average(y, weights=w)]
    else:
        prior = np.bincount(y, weights=w) / w.sum()
        # multinomial: symmetric logit, log p - mean(log p)
        expected = [np.log(prior[1] / prior[0])] if task == "binary" else \
            np.log(prior) - np.log(prior).mean()
    np.testing.assert_allclose(ens.base_margin, expected, rtol=1e-10)
    np.testing.assert_allclose(ens.base_margin,
                               model._raw_predict_init(X.to_numpy(np.float32)[:1])[0])
    zero = cls(n_estimators=3, init="zero", random_state=0).fit(X, y)
    np.testing.assert_array_equal(treeinf.parse_model(zero, X).base_margin, 0.0)


def test_hgb_base_margin():
    X, y = make_data("multiclass", n=200, n_num=3, seed=8)
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, y)
    ens = treeinf.parse_model(model, X)
    np.testing.assert_array_equal(ens.base_margin, model._baseline_prediction.ravel())


# ---------------------------------------------------------- leaf recompute
def _recompute_leaves(ens, X, y, w, factor, float32_grad=False):
    """Largest relative difference between parsed leaves and -eta G / (H + lambda)."""
    leaves = ens.apply(X)
    n, T, K = leaves.shape
    if ens.objective == "regression":
        Y = np.asarray(y, dtype=np.float64)[:, None]
        ww = w.copy()
    else:
        idx = np.searchsorted(ens.classes, y)
        Y = (idx[:, None] == np.arange(K)).astype(float) if K > 1 else idx[:, None] * 1.0
        cw = ens.class_weight
        ww = w * (cw[idx] if cw is not None else 1.0)
    F = np.tile(ens.base_margin, (n, 1))
    worst = 0.0
    for t in range(T):
        if ens.objective == "regression":
            g, h = F - Y, np.ones_like(F)
        elif ens.objective == "binary":
            p = 1.0 / (1.0 + np.exp(-F))
            g, h = p - Y, p * (1 - p)
        else:
            e = np.exp(F - F.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            g, h = p - Y, factor * p * (1 - p)
        wg, wh = ww[:, None] * g, ww[:, None] * h
        if float32_grad:  # HGB stores (weighted) gradients/hessians in float32
            wg, wh = wg.astype(np.float32) * 1.0, wh.astype(np.float32) * 1.0
        step = np.zeros_like(F)
        for c in range(K):
            j = t * K + c
            lv = ens.leaf_value[ens.leaf_offset[j]:ens.leaf_offset[j + 1]]
            L = leaves[:, t, c]
            G = np.bincount(L, wg[:, c], lv.shape[0])
            H = np.bincount(L, wh[:, c], lv.shape[0])
            rec = -ens.learning_rate * G / (H + ens.reg_lambda)
            scale = np.abs(lv).max() + 1e-300
            worst = max(worst, float(np.max(np.abs(rec - lv)) / scale))
            step[:, c] = lv[L]
        F = F + step
    return worst


@pytest.mark.parametrize("task", TASKS)
def test_gb_leaves_are_newton_steps(task):
    X, y = make_data(task, n=300, n_num=4, seed=12)
    X = _numeric(X)
    w = np.random.default_rng(1).uniform(0.3, 3.0, len(y))
    cls = GradientBoostingRegressor if task == "regression" else GradientBoostingClassifier
    model = cls(n_estimators=6, learning_rate=0.4, max_depth=3, random_state=0)
    model.fit(X, y, sample_weight=w)
    ens = treeinf.parse_model(model, X)
    assert ens.exact_leaves and ens.reg_lambda == 0.0
    K = ens.n_outputs
    f = K / (K - 1.0) if K > 1 else 1.0
    assert ens.hessian_factor == f
    assert _recompute_leaves(ens, X, y, w, ens.hessian_factor) < 1e-9
    if K > 1:  # the factor is pinned: f = 1 does not reproduce the leaves
        assert _recompute_leaves(ens, X, y, w, 1.0) > 0.1


@pytest.mark.parametrize("task", TASKS)
def test_hgb_leaves_are_newton_steps(task):
    X, y = make_data(task, n=300, n_num=3, n_cat=1, nan_frac=0.05, seed=13)
    w = np.random.default_rng(2).uniform(0.3, 3.0, len(y))
    kw = {"regression": {}, "binary": {"class_weight": {0: 2.5}},
          "multiclass": {"class_weight": {0: 2.5, 2: 0.5}}}[task]
    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    model = cls(max_iter=6, learning_rate=0.4, max_leaf_nodes=6, min_samples_leaf=5,
                l2_regularization=2.0, early_stopping=False, random_state=0, **kw)
    model.fit(X, y, sample_weight=w)
    ens = treeinf.parse_model(model, X)
    assert ens.exact_leaves and ens.reg_lambda == 2.0
    assert ens.hessian_factor == 1.0
    if task != "regression":
        np.testing.assert_allclose(ens.class_weight,
                                   [2.5, 1.0] if task == "binary" else [2.5, 1.0, 0.5])
    assert _recompute_leaves(ens, X, y, w, 1.0, float32_grad=True) < 1e-9
    if ens.n_outputs > 1:
        assert _recompute_leaves(ens, X, y, w, 1.5, float32_grad=True) > 0.1


# ---------------------------------------------------------------- pipeline
def test_pipeline_with_column_transformer():
    X, y = make_data("binary", n=260, n_num=3, n_cat=2, nan_frac=0.0, seed=30)
    num, cat = ["f0", "f1", "f2"], ["c0", "c1"]
    pre = ColumnTransformer([("num", StandardScaler(), num),
                             ("cat", OrdinalEncoder(), cat)])
    Xtr, ytr, Xte = X.iloc[:200], y[:200], X.iloc[200:]
    gb = Pipeline([("pre", pre), ("gb", GradientBoostingClassifier(n_estimators=5,
                                                                   random_state=0))])
    gb.fit(Xtr, ytr)
    ens = treeinf.parse_model(gb, Xtr)
    np.testing.assert_allclose(ens.predict_raw(Xte)[:, 0], gb.decision_function(Xte),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ens.apply(Xte, library_ids=True)[:, :, 0],
                                  gb[-1].apply(gb[:-1].transform(Xte).astype(np.float32))[:, :, 0])

    hgb = Pipeline([("pre", pre), ("hgb", HistGradientBoostingClassifier(
        max_iter=5, categorical_features=[3, 4], random_state=0))])
    Xn = X.copy()
    Xn.iloc[::9, 0] = np.nan
    hgb.fit(Xn.iloc[:200], ytr)
    ens = treeinf.parse_model(hgb, Xn.iloc[:200])
    assert ens.params["categorical_columns"] == [3, 4]
    np.testing.assert_allclose(ens.predict_raw(Xn.iloc[200:])[:, 0],
                               hgb.decision_function(Xn.iloc[200:]), rtol=1e-6, atol=1e-9)
    with pytest.raises(DataValidationError):
        ens.predict_raw(Xn.iloc[200:, ::-1].to_numpy())


# ---------------------------------------------------------- input checking
def test_gb_rejects_nan_and_inf_like_sklearn():
    X, y = make_data("regression", n=100, n_num=3, seed=1)
    X = _numeric(X)
    model = GradientBoostingRegressor(n_estimators=2).fit(X, y)
    ens = treeinf.parse_model(model, X)
    bad = X.copy()
    bad.iloc[3, 1] = np.nan
    with pytest.raises(DataValidationError, match="NaN"):
        ens.predict_raw(bad)
    bad.iloc[3, 1] = 1e39  # overflows float32, which sklearn rejects
    with pytest.raises(DataValidationError, match="infinite"):
        ens.predict_raw(bad)
    with pytest.raises(DataValidationError):
        ens.predict_raw(X[X.columns[::-1]])


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize("model", [
    GradientBoostingRegressor(n_estimators=2, loss="huber"),
    GradientBoostingRegressor(n_estimators=2, loss="absolute_error"),
    GradientBoostingRegressor(n_estimators=2, loss="quantile"),
    GradientBoostingClassifier(n_estimators=2, loss="exponential"),
    GradientBoostingRegressor(n_estimators=2, init=DummyRegressor(strategy="median")),
    HistGradientBoostingRegressor(max_iter=2, loss="poisson"),
    HistGradientBoostingRegressor(max_iter=2, loss="gamma"),
    HistGradientBoostingRegressor(max_iter=2, loss="absolute_error"),
    HistGradientBoostingRegressor(max_iter=2, loss="quantile", quantile=0.3),
    HistGradientBoostingClassifier(max_iter=2, class_weight="balanced"),
    RandomForestClassifier(n_estimators=2, class_weight="balanced"),
    ExtraTreesClassifier(n_estimators=2, class_weight="balanced_subsample",
                         bootstrap=True),
], ids=lambda m: f"{type(m).__name__}-{m.get_params().get('loss', m.get_params().get('class_weight'))}")
def test_unsupported_settings_raise(model):
    X, y = make_data("binary", n=120, n_num=3, seed=2)
    X = _numeric(X)
    yy = y if model.__class__.__name__.endswith("Classifier") else y + 1.0
    model.fit(X, yy)
    with pytest.raises(UnsupportedModelError) as exc:
        treeinf.parse_model(model, X)
    assert type(model).__name__ in str(exc.value)


def test_multi_output_forest_raises():
    X, y = make_data("regression", n=100, n_num=3, seed=3)
    X = _numeric(X)
    model = RandomForestRegressor(n_estimators=2).fit(X, np.column_stack([y, -y]))
    with pytest.raises(UnsupportedModelError, match="multi-output"):
        treeinf.parse_model(model)


@pytest.mark.parametrize("cls", [GradientBoostingRegressor, HistGradientBoostingClassifier,
                                 RandomForestClassifier, ExtraTreesRegressor])
def test_unfitted_models_raise(cls):
    with pytest.raises(NotFittedError):
        treeinf.parse_model(cls())
