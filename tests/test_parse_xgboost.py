"""Parsing of XGBoost models: parity with XGBoost's own margins and leaf ids,
recomputed Newton leaves (base margin, learning rate, lambda, hessian factor),
categorical re-coding and the settings that are refused."""
import numpy as np
import pandas as pd
import pytest

import xgboost as xgb  # installed by the [test] extra; a missing library must fail, not skip

from conftest import make_data  # noqa: E402

import treeinf  # noqa: E402
from treeinf.exceptions import (DataValidationError, NotFittedError,  # noqa: E402
                                ParseMismatchError, UnsupportedModelError)

RTOL = 1e-5  # XGBoost predicts in float32

TASKS = {
    "regression": ("regression", "reg:squarederror"),
    "binary": ("binary", "binary:logistic"),
    "logitraw": ("binary", "binary:logitraw"),
    "softprob": ("multiclass", "multi:softprob"),
    "softmax": ("multiclass", "multi:softmax"),
}


# ------------------------------------------------------------------ helpers
def _model_class(task):
    return xgb.XGBRegressor if task == "regression" else xgb.XGBClassifier


def _library(model, X):
    """XGBoost's own raw margin (n, K) and leaf ids (n, n_trees, XGBoost order)."""
    if isinstance(model, xgb.Booster):
        if isinstance(X, pd.DataFrame):
            dm = xgb.DMatrix(X, enable_categorical=True)
        else:
            dm = xgb.DMatrix(np.asarray(X), feature_names=model.feature_names,
                             feature_types=model.feature_types, enable_categorical=True)
        margin = model.predict(dm, output_margin=True)
        leaves = model.predict(dm, pred_leaf=True)
    elif isinstance(X, pd.DataFrame):
        margin = model.predict(X, output_margin=True)
        leaves = model.apply(X)
    else:  # model.apply refuses arrays when trained on named columns
        margin = model.predict(X, output_margin=True)
        booster = model.get_booster()
        try:
            rounds = model.best_iteration + 1
        except AttributeError:
            rounds = 0
        leaves = booster.predict(
            xgb.DMatrix(np.asarray(X), feature_names=booster.feature_names,
                        feature_types=booster.feature_types, missing=model.missing,
                        enable_categorical=True),
            pred_leaf=True, iteration_range=(0, rounds))
    n = len(X)
    return np.asarray(margin, dtype=np.float64).reshape(n, -1), \
        np.asarray(leaves).reshape(n, -1).astype(np.int64)


def _xgb_index(ens):
    """XGBoost's index of each flat tree, derived independently of the parser:
    XGBoost stores round r as K classes x P parallel trees, class-major."""
    K, P = ens.n_outputs, ens.params["num_parallel_tree"]
    idx = []
    for s in range(ens.n_rounds):
        r, p = divmod(s, P)
        for c in range(K):
            idx.append(r * K * P + c * P + p)
    return np.asarray(idx)


def assert_parity(model, X_fit, *others):
    """parse_model verifies on X_fit; check margins and leaf ids ourselves on
    every frame (training and held-out rows)."""
    ens = treeinf.parse_model(model, X_fit)
    assert ens.library == "xgboost"
    for X in (X_fit,) + others:
        margin, leaves = _library(model, X)
        ours = ens.predict_raw(X)
        assert ours.shape == margin.shape
        err = np.abs(ours - margin) / (1.0 + np.abs(margin))
        assert err.max() <= RTOL, err.max()
        ids = ens.apply(X, library_ids=True)
        assert ids.shape == (len(X), ens.n_rounds, ens.n_outputs)
        expected = leaves[:, _xgb_index(ens)].reshape(ids.shape)
        np.testing.assert_array_equal(ids, expected)
    return ens


def _split(X, y, n_fit):
    return X.iloc[:n_fit], y[:n_fit], X.iloc[n_fit:], y[n_fit:]


def _draw(rng, task, categorical):
    """One random hyperparameter set."""
    kw = dict(
        n_estimators=int(rng.integers(3, 9)),
        learning_rate=float(rng.choice([0.05, 0.3, 1.0])),
        min_child_weight=float(rng.choice([0.0, 0.5, 3.0])),
        reg_lambda=float(rng.choice([0.0, 1.0, 5.0])),
        reg_alpha=float(rng.choice([0.0, 0.5])),
        max_bin=int(rng.choice([8, 32, 256])),
        subsample=float(rng.choice([0.7, 1.0])),
        colsample_bytree=float(rng.choice([0.6, 1.0])),
        tree_method=str(rng.choice(["hist", "approx"])),
        random_state=int(rng.integers(1000)), n_jobs=1,
    )
    if rng.random() < 0.5:
        kw["max_depth"] = int(rng.integers(1, 6))
    else:
        kw.update(grow_policy="lossguide", max_leaves=int(rng.integers(2, 12)),
                  max_depth=0)
    if categorical:
        kw.update(enable_categorical=True,
                  max_cat_to_onehot=int(rng.choice([1, 10])))
    if task == "binary" and rng.random() < 0.5:
        kw["base_score"] = 0.3
        kw["scale_pos_weight"] = 2.0
    if task == "regression" and rng.random() < 0.5:
        kw["base_score"] = 5.0
    return kw


# ------------------------------------------------------------------- parity
@pytest.mark.parametrize("data", ["plain", "nan", "categorical"])
@pytest.mark.parametrize("task", list(TASKS))
def test_parity_sklearn(task, data):
    kind, objective = TASKS[task]
    n_cat = 2 if data == "categorical" else 0
    nan = 0.0 if data == "plain" else 0.15
    X, y = make_data(kind, n=260, n_num=4, n_cat=n_cat, nan_frac=nan,
                     seed=len(task) + n_cat)
    Xf, yf, Xh, _ = _split(X, y, 200)
    rng = np.random.default_rng(7 * len(task) + len(data))
    for draw in range(2):
        kw = _draw(rng, kind, n_cat > 0)
        w = rng.uniform(0.2, 3.0, size=len(yf)) if draw == 1 else None
        model = _model_class(kind)(objective=objective, **kw)
        model.fit(Xf, yf, sample_weight=w)
        ens = assert_parity(model, Xf, Xh)
        K = 3 if kind == "multiclass" else 1
        assert ens.n_outputs == K
        assert ens.n_rounds == kw["n_estimators"]
        assert ens.objective == kind
        assert ens.hessian_factor == (2.0 if kind == "multiclass" else 1.0)
        np.testing.assert_allclose(ens.learning_rate, kw["learning_rate"], rtol=1e-7)
        assert ens.reg_lambda == kw["reg_lambda"] and ens.reg_alpha == kw["reg_alpha"]
        if kind != "regression":
            np.testing.assert_array_equal(ens.classes, model.classes_)
        spw = kw.get("scale_pos_weight")
        if spw is not None:
            np.testing.assert_array_equal(ens.class_weight, [1.0, spw])
        else:
            assert ens.class_weight is None
        # the raw Booster of the same model parses to the same ensemble
        booster = model.get_booster()
        ens_b = assert_parity(booster, Xf, Xh)
        assert ens_b.classes is None
        np.testing.assert_array_equal(ens_b.leaf_value, ens.leaf_value)
        # numpy input: the model keeps the column order
        if n_cat == 0:
            assert_parity(model, Xf.to_numpy(), Xh.to_numpy())


def test_base_margin_forms():
    """base_score: logit for binary:logistic, identity for the others; a string
    "[v]" in 3.x, a vector for multiclass; auto-estimated or user set."""
    X, y = make_data("binary", n=200, seed=3)
    for base in (None, 0.3):
        m = xgb.XGBClassifier(n_estimators=2, max_depth=2, base_score=base,
                              n_jobs=1).fit(X, y)
        ens = assert_parity(m, X)
        p = 0.3 if base is not None else ens.params["base_score"][0]
        np.testing.assert_allclose(ens.base_margin, [np.log(p / (1 - p))], rtol=1e-6)
        raw = xgb.XGBClassifier(n_estimators=2, max_depth=2, base_score=base,
                                objective="binary:logitraw", n_jobs=1).fit(X, y)
        ens = assert_parity(raw, X)
        if base is not None:
            np.testing.assert_allclose(ens.base_margin, [0.3], rtol=1e-6)
    X, y = make_data("multiclass", n=200, seed=4)
    m = xgb.XGBClassifier(n_estimators=2, max_depth=2, base_score=[0.2, 0.3, 0.5],
                          n_jobs=1).fit(X, y)
    ens = assert_parity(m, X)
    np.testing.assert_allclose(ens.base_margin, [0.2, 0.3, 0.5], rtol=1e-6)
    m = xgb.XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1).fit(X, y)
    ens = assert_parity(m, X)
    assert ens.base_margin.shape == (3,)
    assert np.ptp(ens.base_margin) > 0  # estimated per class
    # base margin = margin minus the trees' contribution, per XGBoost itself
    margin, leaves = _library(m, X)
    trees = [np.asarray(t["split_conditions"]) for t in _model_json(m)["trees"]]
    contrib = np.zeros_like(margin)
    for j, t in enumerate(trees):
        contrib[:, j % 3] += t[leaves[:, j]]
    np.testing.assert_allclose(margin - contrib, np.tile(ens.base_margin, (len(X), 1)),
                               atol=1e-6)


def _model_json(model):
    import json
    booster = model if isinstance(model, xgb.Booster) else model.get_booster()
    return json.loads(bytes(booster.save_raw(raw_format="json")))["learner"][
        "gradient_booster"]["model"]


def test_early_stopping_best_iteration():
    """The sklearn wrapper predicts with best_iteration + 1 rounds, a raw
    Booster with all of them: each parse matches its own default."""
    for kind, K in (("binary", 1), ("multiclass", 3)):
        X, y = make_data(kind, n=300, nan_frac=0.1, seed=11)
        Xf, yf, Xv, yv = _split(X, y, 150)  # tiny training set: overfits early
        m = _model_class(kind)(n_estimators=40, max_depth=4, learning_rate=0.8,
                               early_stopping_rounds=3, n_jobs=1)
        m.fit(Xf, yf, eval_set=[(Xv, yv)], verbose=False)
        total = m.get_booster().num_boosted_rounds()
        assert m.best_iteration + 1 < total
        ens = assert_parity(m, Xf, Xv)
        assert ens.n_rounds == m.best_iteration + 1
        assert ens.params["best_iteration"] == m.best_iteration
        assert ens.params["n_rounds_total"] == total
        booster = m.get_booster()
        ens_b = assert_parity(booster, Xf, Xv)
        assert ens_b.n_rounds == total
        # xgb.train with early stopping: Booster.predict uses every round too
        dtrain = xgb.DMatrix(Xf, yf)
        params = {"objective": "binary:logistic" if K == 1 else "multi:softprob",
                  "eta": 0.8, "max_depth": 4, "nthread": 1}
        if K > 1:
            params["num_class"] = K
        b = xgb.train(params, dtrain, 40, evals=[(xgb.DMatrix(Xv, yv), "v")],
                      early_stopping_rounds=3, verbose_eval=False)
        ens_t = assert_parity(b, Xf, Xv)
        assert ens_t.n_rounds == b.num_boosted_rounds() > b.best_iteration + 1


def test_parallel_trees_and_random_forest():
    """num_parallel_tree > 1: P trees per class and round, emitted as P
    consecutive flat rounds whose tree_round is the true boosting round."""
    for kind in ("regression", "binary", "multiclass"):
        X, y = make_data(kind, n=240, n_cat=1, nan_frac=0.1, seed=5)
        Xf, yf, Xh, _ = _split(X, y, 180)
        K = 3 if kind == "multiclass" else 1
        m = _model_class(kind)(n_estimators=3, num_parallel_tree=2, max_depth=3,
                               colsample_bynode=0.6, subsample=0.8,
                               enable_categorical=True, n_jobs=1).fit(Xf, yf)
        ens = assert_parity(m, Xf, Xh)
        assert ens.n_rounds == 6 and ens.n_trees == 6 * K
        np.testing.assert_array_equal(ens.tree_round, np.repeat([0, 1, 2], 2 * K))
        np.testing.assert_array_equal(ens.tree_output, np.tile(np.arange(K), 6))
        np.testing.assert_allclose(ens.learning_rate, 0.3 / 2, rtol=1e-6)
        rf = (xgb.XGBRFRegressor if kind == "regression" else xgb.XGBRFClassifier)(
            n_estimators=4, max_depth=3, enable_categorical=True, n_jobs=1).fit(Xf, yf)
        ens = assert_parity(rf, Xf, Xh)
        assert ens.n_rounds == 4 and set(ens.tree_round) == {0}
        assert ens.params["num_parallel_tree"] == 4
        np.testing.assert_allclose(ens.learning_rate, 1.0 / 4)
        assert ens.exact_leaves is False  # XGBRF subsamples rows


# ------------------------------------------------------- missing values etc.
def test_float32_thresholds_and_default_direction():
    """x < threshold compared in float32: values that round to the threshold
    in float32 go right; NaN follows default_left in both directions."""
    X, y = make_data("regression", n=300, n_num=3, nan_frac=0.2, seed=8)
    m = xgb.XGBRegressor(n_estimators=6, max_depth=4, n_jobs=1).fit(X, y)
    tree = _model_json(m)["trees"]
    rows = []
    for t in tree:
        for f, thr, left in zip(t["split_indices"], t["split_conditions"],
                                t["left_children"]):
            if left < 0:
                continue
            t32 = np.float32(thr)
            for v in (float(t32), np.nextafter(float(t32), -np.inf),
                      float(np.nextafter(t32, np.float32(-np.inf))),
                      np.nextafter(float(t32), np.inf), np.nan):
                row = X.iloc[len(rows) % len(X)].to_numpy().copy()
                row[f] = v
                rows.append(row)
    Xe = pd.DataFrame(np.asarray(rows), columns=X.columns)
    dl = np.concatenate([np.asarray(t["default_left"]) for t in tree])
    assert dl.any() and not dl[np.concatenate([np.asarray(t["left_children"]) >= 0
                                               for t in tree])].all()
    assert_parity(m, X, Xe)
    # the float64 value just below a float32 threshold is not "less than" it
    ens = treeinf.parse_model(m)
    assert ens.encoder.input_dtype == np.float32


def test_sklearn_missing_value():
    X, y = make_data("binary", n=250, nan_frac=0.2, seed=9)
    Xm = X.fillna(-999.0)
    m = xgb.XGBClassifier(n_estimators=4, max_depth=3, missing=-999.0,
                          n_jobs=1).fit(Xm, y)
    ens = assert_parity(m, Xm)
    np.testing.assert_allclose(ens.predict_raw(X), ens.predict_raw(Xm))


@pytest.mark.filterwarnings("ignore:.*updater:UserWarning")
def test_deleted_nodes_are_not_leaves():
    """Pruning leaves deleted nodes in XGBoost's arrays; only reachable leaves
    are kept and leaf ids stay XGBoost's node ids."""
    X, y = make_data("regression", n=200, seed=12)
    dtrain = xgb.DMatrix(X, y)
    b = xgb.train({"max_depth": 4, "nthread": 1}, dtrain, 3)
    b2 = xgb.train({"process_type": "update", "updater": "prune", "gamma": 50.0,
                    "nthread": 1}, dtrain, 3, xgb_model=b)
    ens = assert_parity(b2, X)
    deleted = sum(int(t["tree_param"]["num_deleted"]) for t in _model_json(b2)["trees"])
    n_nodes = sum(len(t["left_children"]) for t in _model_json(b2)["trees"])
    assert deleted > 0
    assert ens.node_left.shape[0] == n_nodes - deleted


# -------------------------------------------------------------- categorical
def test_categorical_recoding_by_name():
    """XGBoost 3.x stores category names and re-codes by name: a frame whose
    category list is in another order, or a subset, predicts alike."""
    X, y = make_data("multiclass", n=300, n_cat=2, nan_frac=0.1, seed=13)
    m = xgb.XGBClassifier(n_estimators=4, max_depth=4, enable_categorical=True,
                          max_cat_to_onehot=1, n_jobs=1).fit(X, y)
    ens = treeinf.parse_model(m, X)
    assert ens.encoder.categories[5] == list("abcdef")
    X2 = X.copy()
    X2["c0"] = X2["c0"].cat.reorder_categories(list("fdbeca"))
    X2["c1"] = X2["c1"].cat.set_categories(list("edcba"))  # 'f' becomes NaN
    assert_parity(m, X, X2)
    np.testing.assert_allclose(ens.predict_raw(X2.assign(c1=X["c1"])), ens.predict_raw(X))
    # object (string) columns are looked up by name as well
    X3 = X.astype({"c0": object, "c1": object})
    np.testing.assert_allclose(ens.predict_raw(X3), ens.predict_raw(X))
    # a value never seen in training: XGBoost refuses, so do we
    X4 = X.copy()
    X4["c0"] = X4["c0"].cat.add_categories(["zz"])
    X4.loc[0, "c0"] = "zz"
    with pytest.raises(Exception):
        m.predict(X4)
    with pytest.raises(DataValidationError, match="zz"):
        ens.predict_raw(X4)
    # numeric category values are looked up by value too. (XGBoost 3.2 itself
    # mis-recodes a numeric category list given in another order, so only the
    # training order is compared with XGBoost.)
    Xi = X.copy()
    Xi["c0"] = pd.Categorical.from_codes(
        X["c0"].cat.codes, categories=pd.Index(np.arange(6) * 10 + 5, dtype=np.int64))
    mi = xgb.XGBRegressor(n_estimators=3, max_depth=3, enable_categorical=True,
                          max_cat_to_onehot=1, n_jobs=1).fit(Xi, y.astype(float))
    ens_i = assert_parity(mi, Xi, Xi.iloc[::-1])
    assert ens_i.encoder.categories[5] == [5, 15, 25, 35, 45, 55]
    Xi2 = Xi.copy()
    Xi2["c0"] = Xi2["c0"].cat.reorder_categories(Xi2["c0"].cat.categories[::-1])
    np.testing.assert_array_equal(ens_i.apply(Xi2), ens_i.apply(Xi))


def test_categorical_codes_negative_and_out_of_range():
    """Numpy codes on a model trained with feature_types 'c': the categories
    of a split go right; negative, unseen, large and fractional codes."""
    X, y = make_data("binary", n=300, n_cat=2, nan_frac=0.1, seed=14)
    A = X.copy()
    for c in ("c0", "c1"):
        A[c] = A[c].cat.codes.replace(-1, np.nan).astype(float)
    A = A.to_numpy()
    types = ["q"] * 5 + ["c"] * 2
    b = xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1,
                   "max_cat_to_onehot": 1},
                  xgb.DMatrix(A, y, feature_types=types, enable_categorical=True), 5)
    assert any(1 in t["split_type"] for t in _model_json(b)["trees"])
    B = A.copy()
    B[:40, 5] = -1.0
    B[40:80, 5] = 37.0
    B[80:120, 5] = B[80:120, 5] + 0.7
    B[120:140, 5] = 1e9
    B[140:160, 6] = -3.5
    ens = assert_parity(b, A, B)
    assert ens.encoder.categorical_columns == [5, 6]
    # a pandas frame with categories for a model that stored no names: codes
    b2 = xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1},
                   xgb.DMatrix(A, y, feature_types=types, feature_names=list(X.columns),
                               enable_categorical=True), 3)
    ens2 = assert_parity(b2, X)
    margin, _ = _library(b2, pd.DataFrame(A, columns=X.columns))
    np.testing.assert_allclose(ens2.predict_raw(X), margin, rtol=1e-6, atol=1e-6)


def test_categorical_non_ascii_names():
    """XGBoost 3.2 stores non-ASCII category names garbled (offsets count
    characters, bytes are UTF-8): the training category list still works,
    another list is refused (XGBoost fails on it too)."""
    X, y = make_data("regression", n=250, n_cat=1, seed=15)
    X["c0"] = X["c0"].cat.rename_categories(["éa", "b", "ñ", "x€z", "q", "日本"])
    m = xgb.XGBRegressor(n_estimators=3, max_depth=4, enable_categorical=True,
                         max_cat_to_onehot=1, n_jobs=1).fit(X, y)
    ens = assert_parity(m, X, X.iloc[::-1])
    X2 = X.copy()
    X2["c0"] = X2["c0"].cat.reorder_categories(X2["c0"].cat.categories[::-1])
    with pytest.raises(DataValidationError, match="non-ASCII"):
        ens.predict_raw(X2)


# ---------------------------------------------- recomputed Newton leaf values
def _recompute_leaves(ens, X, y, w, hessian_factor):
    """Every leaf from the training data, emulating XGBoost's float32
    gradients (sums in float64); returns the worst scaled error."""
    leaves = ens.apply_encoded(ens.encode(X))
    n, K = len(y), ens.n_outputs
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    cw = ens.class_weight
    if cw is not None:
        w = w * cw[y.astype(int)]
    w32, y32 = w.astype(np.float32), y.astype(np.float32)
    F = np.tile(ens.base_margin, (n, 1)).astype(np.float32)
    worst, worst_h = 0.0, 0.0
    for r in np.unique(ens.tree_round):  # trees of one round share F^(t-1)
        if ens.objective == "regression":
            g, h = F - y32[:, None], np.ones((n, 1), np.float32)
        elif ens.objective == "binary":
            p = (1.0 / (1.0 + np.exp(-F.astype(np.float64)))).astype(np.float32)
            g, h = p - y32[:, None], p * (1 - p)
        else:
            z = F.astype(np.float64)
            e = np.exp(z - z.max(1, keepdims=True))
            p = (e / e.sum(1, keepdims=True)).astype(np.float32)
            g = p - np.eye(K, dtype=np.float32)[y.astype(int)]
            h = np.float32(hessian_factor) * p * (1 - p)
        update = np.zeros_like(F)
        for t in np.flatnonzero(ens.tree_round == r):
            c, nl, off = ens.tree_output[t], ens.n_leaves[t], ens.leaf_offset[t]
            G = np.bincount(leaves[:, t], (w32 * g[:, c]).astype(np.float64), nl)
            H = np.bincount(leaves[:, t], (w32 * h[:, c]).astype(np.float64), nl)
            G = np.sign(G) * np.maximum(np.abs(G) - ens.reg_alpha, 0.0)
            value = -ens.learning_rate * G / (H + ens.reg_lambda)
            got = ens.leaf_value[off:off + nl]
            scale = np.abs(got) + 1e-2 * np.abs(got).max()
            worst = max(worst, float(np.max(np.abs(value - got) / scale)))
            cover = ens.params["leaf_sum_hessian"][off:off + nl]
            worst_h = max(worst_h, float(np.max(np.abs(H - cover) / H)))
            update[:, c] += got[leaves[:, t]].astype(np.float32)
        F = F + update
    return worst, worst_h


@pytest.mark.parametrize("task,extra", [
    ("regression", {}),
    ("binary", {"scale_pos_weight": 2.5}),
    ("logitraw", {}),
    ("softprob", {}),
    ("softmax", {"num_parallel_tree": 2, "colsample_bynode": 0.5}),
    ("binary", {"reg_alpha": 0.7, "num_parallel_tree": 3, "colsample_bynode": 0.5}),
])
def test_recomputed_leaves(task, extra):
    """Plain Newton leaves: pins base_margin, learning_rate, reg_lambda,
    reg_alpha, hessian factor 2 (multiclass) and class_weight; the leaves'
    training hessian sums equal XGBoost's stored cover."""
    kind, objective = TASKS[task]
    X, y = make_data(kind, n=300, n_cat=1, nan_frac=0.05, seed=21)
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    m = _model_class(kind)(n_estimators=8, max_depth=3, objective=objective,
                           min_child_weight=0.0, reg_lambda=1.5, learning_rate=0.3,
                           enable_categorical=True, n_jobs=1,
                           **extra).fit(X, y, sample_weight=w)
    ens = treeinf.parse_model(m, X)
    # XGBoost 3.2 clips no leaf by default (max_delta_step 0 for these objectives)
    assert ens.params["max_delta_step"] == 0.0
    assert ens.exact_leaves is True
    err, err_h = _recompute_leaves(ens, X, y.astype(np.float64), w, ens.hessian_factor)
    # agreement at float32 level (XGBoost's gradients are float32)
    assert err < 1e-5, err
    assert err_h < 1e-5, err_h
    if kind == "multiclass":
        assert ens.hessian_factor == 2.0
        wrong, wrong_h = _recompute_leaves(ens, X, y.astype(np.float64), w, 1.5)
        assert wrong > 1e-2 and wrong_h > 1e-2


def test_other_entry_points():
    """Pipeline, the XGBModel base class, pickling, a model file, and leaf
    clipping (parsed exactly, flagged as not plain Newton)."""
    import pickle

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = make_data("regression", n=200, nan_frac=0.1, seed=40)
    pipe = make_pipeline(StandardScaler(), xgb.XGBRegressor(n_estimators=3, max_depth=3,
                                                            n_jobs=1)).fit(X, y)
    ens = treeinf.parse_model(pipe, X)
    np.testing.assert_allclose(ens.predict_raw(X)[:, 0],
                               pipe.predict(X, output_margin=True), rtol=1e-5, atol=1e-5)
    m = xgb.XGBModel(objective="binary:logistic", n_estimators=3, max_depth=3,
                     reg_lambda=4.0, max_delta_step=0.5, n_jobs=1)
    m.fit(X, (y > np.median(y)).astype(int))
    ens = assert_parity(m, X)
    assert ens.objective == "binary" and ens.classes is None
    assert ens.params["max_delta_step"] == 0.5 and ens.exact_leaves is False
    ens_p = assert_parity(pickle.loads(pickle.dumps(m)), X)
    assert ens_p.reg_lambda == 4.0
    # a model file keeps the trees but not the training parameters
    booster = xgb.Booster()
    booster.load_model(bytearray(m.get_booster().save_raw(raw_format="ubj")))
    ens_f = assert_parity(booster, X)
    np.testing.assert_array_equal(ens_f.leaf_value, ens.leaf_value)
    assert ens_f.reg_lambda == 1.0  # XGBoost's default: lambda was not stored


# ----------------------------------------------------------------- refusals
def _small(kind="regression", n=120):
    return make_data(kind, n=n, seed=30)


@pytest.mark.parametrize("objective", ["reg:logistic", "count:poisson",
                                       "reg:absoluteerror", "reg:pseudohubererror",
                                       "reg:gamma", "binary:hinge", "reg:quantileerror"])
def test_unsupported_objectives(objective):
    X, y = _small("binary" if objective in ("reg:logistic", "binary:hinge") else "regression")
    if objective in ("count:poisson", "reg:gamma"):
        y = np.abs(y)
    extra = {"quantile_alpha": 0.5} if objective == "reg:quantileerror" else {}
    m = xgb.XGBRegressor(n_estimators=2, max_depth=2, objective=objective,
                         n_jobs=1, **extra).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=objective):
        treeinf.parse_model(m)
    with pytest.raises(UnsupportedModelError, match=objective):
        treeinf.parse_model(m.get_booster())


def test_unsupported_boosters_and_outputs():
    X, y = _small()
    for booster in ("dart", "gblinear"):
        m = xgb.XGBRegressor(n_estimators=2, booster=booster, n_jobs=1).fit(X, y)
        with pytest.raises(UnsupportedModelError, match=booster):
            treeinf.parse_model(m)
    Y = np.c_[y, -y]
    m = xgb.XGBRegressor(n_estimators=2, max_depth=2, n_jobs=1).fit(X, Y)
    with pytest.raises(UnsupportedModelError, match="multi-output"):
        treeinf.parse_model(m)
    m = xgb.XGBRegressor(n_estimators=2, max_depth=2, tree_method="hist",
                         multi_strategy="multi_output_tree", n_jobs=1).fit(X, Y)
    with pytest.raises(UnsupportedModelError, match="multi_output_tree"):
        treeinf.parse_model(m)
    m = xgb.XGBRegressor(n_estimators=2, max_depth=2, scale_pos_weight=3.0,
                         n_jobs=1).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="scale_pos_weight"):
        treeinf.parse_model(m)
    Xr, yr = make_data("multiclass", n=120, seed=31)
    ranker = xgb.XGBRanker(n_estimators=2, max_depth=2, n_jobs=1)
    ranker.fit(Xr, yr, qid=np.repeat(np.arange(12), 10))
    with pytest.raises(UnsupportedModelError, match="rank:"):
        treeinf.parse_model(ranker)


def test_custom_objective_and_unfitted():
    X, y = _small()

    def squared(y_true, y_pred):
        return y_pred - y_true, np.ones_like(y_pred)

    m = xgb.XGBRegressor(n_estimators=2, max_depth=2, objective=squared,
                         n_jobs=1).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="custom objective"):
        treeinf.parse_model(m)
    with pytest.raises(NotFittedError):
        treeinf.parse_model(xgb.XGBClassifier())
    empty = xgb.train({"nthread": 1}, xgb.DMatrix(X, y), 0)
    with pytest.raises(NotFittedError, match="no trees"):
        treeinf.parse_model(empty)


def test_mismatch_is_detected():
    """A corrupted parse is reported, never silently accepted."""
    from treeinf._trees import _xgboost
    X, y = make_data("binary", n=150, nan_frac=0.2, seed=32)
    m = xgb.XGBClassifier(n_estimators=3, max_depth=3, n_jobs=1).fit(X, y)
    ens = _xgboost.parse(m)
    ens.node_default_left[:] = ~ens.node_default_left
    from treeinf._trees._verify import verify_ensemble
    with pytest.raises(ParseMismatchError):
        verify_ensemble(ens, m, X, _xgboost.reference)
