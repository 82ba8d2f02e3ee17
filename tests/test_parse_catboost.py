"""Parsing CatBoost models: parity with CatBoost's own margins and leaf indices,
the leaf values as Newton steps, categorical hashing, and what is refused."""
import json
import os
import random

import numpy as np
import pandas as pd
import pytest

import catboost as cb
from catboost import Pool

import treeinf
from treeinf._trees._catboost import catboost_cat_hash
from treeinf.exceptions import (DataValidationError, NotFittedError,
                                UnsupportedModelError)
from conftest import make_data

BASE = dict(verbose=0, thread_count=1, allow_writing_files=False)
NEWTON = dict(leaf_estimation_method="Newton", leaf_estimation_iterations=1,
              boosting_type="Plain", bootstrap_type="No", random_strength=0)
TASKS = ["regression", "binary", "multiclass"]


def f32(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


# --------------------------------------------------------------- references
def library_output(model, X):
    """CatBoost's raw margins (n, K) and leaf indices (n, T) on user input X."""
    cat = list(model.get_cat_feature_indices()) or None
    pool = Pool(X, cat_features=cat)
    margin = np.asarray(model.predict(pool, prediction_type="RawFormulaVal"))
    return margin.reshape(len(X), -1), np.asarray(model.calc_leaf_indexes(pool))


def check_parity(model, X_verify, X_all):
    """parse_model (which verifies on X_verify) plus our own checks on X_all."""
    ens = treeinf.parse_model(model, X_verify)
    margin, leaves = library_output(model, X_all)
    ours = ens.predict_raw(X_all)
    assert ours.shape == margin.shape
    err = np.abs(ours - margin) / (1.0 + np.abs(margin))
    assert err.max() <= 1e-5, err.max()
    ids = ens.apply(X_all, library_ids=True)
    K = margin.shape[1]
    assert ids.shape == (len(X_all), leaves.shape[1], K)
    for c in range(K):
        np.testing.assert_array_equal(ids[:, :, c], leaves)
    return ens


# ------------------------------------------------------------------- data
def parity_data(task, variant, draw):
    """(X_train, y_train, X_test, y_test, X_all): held-out rows get extra NaNs
    in numeric columns and, for categorical data, an unseen category."""
    n_cat = 2 if variant == "cat" else 0
    X, y = make_data(task, n=260, n_num=4, n_cat=n_cat, n_levels=5,
                     nan_frac=0.0 if variant == "plain" else 0.12, seed=10 + draw)
    rng = np.random.default_rng(100 + draw)
    num = [c for c in X.columns if c.startswith("f")]
    test = np.arange(len(X)) >= 200
    for c in num:  # NaN in held-out rows, also for features trained without NaN
        X.loc[test & (rng.random(len(X)) < 0.2), c] = np.nan
    cats = [c for c in X.columns if c.startswith("c")]
    for c in cats:  # CatBoost refuses NaN categories: they are strings
        vals = np.array(X[c].astype(object).where(X[c].notna(), "nan"), dtype=object)
        vals[test & (rng.random(len(X)) < 0.2)] = "zz"  # unseen at training
        X[c] = pd.Categorical(vals) if draw == 0 else pd.Series(vals, dtype=object)
    if variant == "cat" and draw == 2:  # numpy object array input
        X = X.to_numpy(dtype=object)
        return X[:200], y[:200], X[200:], y[200:], X
    return X.iloc[:200], y[:200], X.iloc[200:], y[200:], X


def draw_params(task, variant, draw):
    rng = random.Random(f"{task}-{variant}-{draw}")
    grow = ["SymmetricTree", "Depthwise", "Lossguide"][draw]
    kw = dict(iterations=rng.randint(5, 12), learning_rate=rng.uniform(0.1, 0.6),
              l2_leaf_reg=rng.uniform(0.5, 6.0), border_count=rng.choice([8, 32, 254]),
              random_strength=rng.uniform(0.0, 1.0), nan_mode=rng.choice(["Min", "Max"]),
              random_seed=draw, grow_policy=grow, depth=rng.randint(1, 4))
    if grow == "Lossguide":
        kw["max_leaves"] = rng.randint(3, 10)
    if grow != "SymmetricTree":
        kw["min_data_in_leaf"] = rng.randint(1, 20)
    boot = rng.choice(["No", "Bernoulli", "MVS", "Bayesian"])
    kw["bootstrap_type"] = boot
    if boot in ("Bernoulli", "MVS"):
        kw["subsample"] = rng.uniform(0.5, 0.9)
    if variant == "cat":
        kw["one_hot_max_size"] = 16
    return kw


def make_parity_model(task, variant, draw, cat_features):
    kw = draw_params(task, variant, draw)
    kw.update(BASE)
    if cat_features:
        kw["cat_features"] = cat_features
    if draw == 0 and task == "binary":
        kw["boost_from_average"] = True
    if draw == 1 and task == "binary":
        kw["loss_function"] = "CrossEntropy"
    if draw == 2:
        kw["model_shrink_rate"] = 0.05
        kw["loss_function"] = {"regression": "RMSE", "binary": "Logloss",
                               "multiclass": "MultiClass"}[task]
        if task != "regression":
            kw["class_weights"] = [1.0, 2.0] if task == "binary" else [1.0, 0.5, 2.0]
        return cb.CatBoost(kw)
    cls = cb.CatBoostRegressor if task == "regression" else cb.CatBoostClassifier
    return cls(**kw)


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize("draw", [0, 1, 2])
@pytest.mark.parametrize("variant", ["plain", "nan", "cat"])
@pytest.mark.parametrize("task", TASKS)
def test_parity(task, variant, draw):
    Xtr, ytr, Xte, yte, X_all = parity_data(task, variant, draw)
    cat = [4, 5] if variant == "cat" else None
    model = make_parity_model(task, variant, draw, cat)
    fit = {}
    if draw == 1:  # sample weights and early stopping on a validation set
        fit["sample_weight"] = np.random.default_rng(draw).uniform(0.2, 2.0, len(ytr))
        fit["eval_set"] = Pool(Xte, yte, cat_features=cat)
        fit["early_stopping_rounds"] = 2
    model.fit(Xtr, ytr, **fit)
    ens = check_parity(model, Xtr, X_all)
    assert ens.library == "catboost"
    assert ens.encoder.input_dtype == np.float32
    assert ens.objective == task
    assert ens.n_rounds == model.tree_count_
    K = 3 if task == "multiclass" else 1
    assert ens.n_outputs == K
    if task == "multiclass":
        np.testing.assert_array_equal(ens.classes, [0, 1, 2])
        assert ens.hessian_factor == pytest.approx(1.5)
    if variant == "cat":
        assert ens.encoder.categorical_columns == [4, 5]
    if isinstance(Xtr, pd.DataFrame):
        assert ens.encoder.feature_names == list(Xtr.columns)
    else:
        assert ens.encoder.feature_names is None


def test_oblivious_bit_order_and_leaf_layout():
    """splits[d] true (x > border, float32) sets bit d; leaf_values are leaf-major."""
    X, y = make_data("multiclass", n=200, n_num=4, nan_frac=0.1, seed=3)
    model = cb.CatBoostClassifier(iterations=4, depth=3, nan_mode="Max", **BASE).fit(X, y)
    path = os.path.join(os.path.dirname(__file__), "_tmp_catboost_bits.json")
    try:
        model.save_model(path, format="json")
        with open(path) as fh:
            J = json.load(fh)
    finally:
        os.remove(path)
    Xf = X.to_numpy(dtype=np.float64).astype(np.float32)
    _, leaves = library_output(model, X)
    margin = np.zeros((len(X), 3)) + np.asarray(J["scale_and_bias"][1])
    for t, tree in enumerate(J["oblivious_trees"]):
        idx = np.zeros(len(X), dtype=np.int64)
        for d, s in enumerate(tree["splits"]):
            x = Xf[:, s["float_feature_index"]]
            bit = np.where(np.isnan(x), True, x > np.float32(s["border"]))  # Max: NaN true
            idx |= bit.astype(np.int64) << d
        np.testing.assert_array_equal(idx, leaves[:, t])
        margin += np.asarray(tree["leaf_values"]).reshape(-1, 3)[idx]
    np.testing.assert_allclose(margin, library_output(model, X)[0], rtol=1e-12)
    ens = treeinf.parse_model(model, X)
    np.testing.assert_allclose(ens.predict_raw(X), margin, rtol=1e-12)


def test_symmetric_trees_of_different_depths():
    """Symmetric trees are built all at once, grouped by depth: trees of
    depths 2 and 5 in one model (sum_models) and a tree shallower than asked
    (no split left) route rows and sum leaves like CatBoost."""
    from treeinf._trees._catboost import (CatBoostEncoder, _model_json, _oblivious_arrays,
                                          _Splits, _walk_splits)
    from treeinf._trees._flat import assemble_ensemble
    X, y = make_data("binary", n=200, n_num=4, nan_frac=0.1, seed=5)
    short = cb.CatBoostClassifier(iterations=3, depth=2, nan_mode="Max", **BASE).fit(X, y)
    deep = cb.CatBoostClassifier(iterations=4, depth=5, nan_mode="Max", **BASE).fit(X, y)
    summed = cb.sum_models([short, deep, short])
    J = _model_json(summed)
    splits = _Splits(J, "summed")
    for split in _walk_splits(J):
        splits.collect(split)
    scale, bias = J["scale_and_bias"]
    ens = assemble_ensemble(
        **_oblivious_arrays(J["oblivious_trees"], splits, 1, float(scale)),
        base_margin=bias, objective="binary", kind="boosting", learning_rate=1.0,
        encoder=CatBoostEncoder(4, splits.codes), library="catboost", model_name="summed")
    assert list(ens.n_leaves) == [4] * 3 + [32] * 4 + [4] * 3
    margin, leaves = library_output(summed, X)
    np.testing.assert_allclose(ens.predict_raw(X), margin, rtol=1e-12)
    np.testing.assert_array_equal(ens.apply(X, library_ids=True)[:, :, 0], leaves)
    # two binary columns allow two splits per symmetric tree, not three
    Xb = pd.DataFrame({"a": np.tile([0.0, 1.0], 20), "b": np.repeat([0.0, 1.0], 20)})
    yb = ((Xb.a + Xb.b) % 2).astype(int)
    model = cb.CatBoostClassifier(iterations=3, depth=3, **BASE).fit(Xb, yb)
    assert max(check_parity(model, Xb, Xb).n_leaves) <= 4


def test_nonsymmetric_stump_and_lossguide_numbering():
    X, y = make_data("regression", n=120, n_num=3, seed=4)
    stump = cb.CatBoostRegressor(iterations=3, depth=3, grow_policy="Lossguide",
                                 min_data_in_leaf=1000, **BASE).fit(X, y)
    ens = check_parity(stump, X, X)
    assert list(ens.n_leaves) == [1, 1, 1]
    lossguide = cb.CatBoostRegressor(iterations=6, depth=4, max_leaves=7,
                                     grow_policy="Lossguide", **BASE).fit(X, y)
    ens = check_parity(lossguide, X, X)
    # CatBoost numbers a node's own leaf before the leaves below its other
    # child, which is not left-to-right order; check that the model has such a
    # tree (nodes are in depth-first order, compact leaves in CatBoost's order)
    ends = np.append(ens.tree_root[1:], ens.node_leaf.shape[0])
    orders = [ens.node_leaf[a:b][ens.node_leaf[a:b] >= 0] for a, b in zip(ens.tree_root, ends)]
    assert any(np.any(np.diff(o) < 0) for o in orders)


# ------------------------------------------------------------- categoricals
def test_cat_hash_matches_catboost():
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 _-."
    values = ["", "a", "é", "naïve", "日本語", "x" * 200, "123", "-7"]
    values += ["".join(rng.choice(alphabet) for _ in range(k)) for k in range(1, 140)]
    X = pd.DataFrame({"f": np.arange(2 * len(values), dtype=float), "c": values * 2})
    y = np.arange(len(X)) % 2
    model = cb.CatBoostClassifier(iterations=1, depth=1, cat_features=["c"], **BASE).fit(X, y)
    path = os.path.join(os.path.dirname(__file__), "_tmp_catboost_hash.json")
    try:
        model.save_model(path, format="json", pool=Pool(X, y, cat_features=["c"]))
        with open(path, encoding="utf-8") as fh:
            table = json.load(fh)["features_info"]["cat_features_hash"]
    finally:
        os.remove(path)
    assert len(table) == len(set(values))
    for entry in table:
        assert catboost_cat_hash(entry["value"]) % 2**32 == entry["hash"] % 2**32, entry
    # integers (and booleans) are hashed as their decimal string
    assert catboost_cat_hash(123) == catboost_cat_hash("123") == catboost_cat_hash(np.int64(123))
    assert catboost_cat_hash(True) == catboost_cat_hash("1")
    with pytest.raises(DataValidationError):
        catboost_cat_hash(1.5)


def test_integer_categories():
    """Integer categorical columns: CatBoost hashes str(int)."""
    rng = np.random.default_rng(5)
    n = 240
    codes = rng.integers(0, 6, size=n)
    Xi = np.column_stack([codes, rng.integers(-50, 50, size=n)])
    y = (codes % 3 == 0).astype(int) + (Xi[:, 1] > 0)
    model = cb.CatBoostClassifier(iterations=8, depth=3, cat_features=[0], one_hot_max_size=10,
                                  **BASE).fit(Xi, y)
    check_parity(model, Xi, Xi)
    Xo = Xi.astype(object)
    Xo[:5, 0] = [str(v) for v in Xi[:5, 0]]  # strings of the same numbers
    Xo[5:10, 0] = 99  # unseen
    check_parity(model, Xo, Xo)
    df = pd.DataFrame({"a": pd.Categorical(codes), "b": Xi[:, 1]})
    model_df = cb.CatBoostClassifier(iterations=6, depth=2, cat_features=["a"],
                                     one_hot_max_size=10, **BASE).fit(df, y)
    check_parity(model_df, df, df)
    check_parity(model_df, df, df.assign(a=df["a"].astype(np.int64)))


def test_categorical_codes_and_input_errors():
    X, y = make_data("binary", n=200, n_num=2 + 1, n_cat=1, n_levels=4, seed=6)
    model = cb.CatBoostClassifier(iterations=6, depth=2, cat_features=["c0"],
                                  one_hot_max_size=10, **BASE).fit(X, y)
    ens = treeinf.parse_model(model, X)
    codes = ens.encoder.hash_codes[3]
    # dense codes of the hashes of CatBoost's one-hot splits; unseen -> -1
    assert sorted(codes.values()) == list(range(len(codes)))
    assert set(codes) <= {catboost_cat_hash(v) for v in "abcd"}
    for form in (X["c0"].astype(object), X["c0"].astype(str)):  # object and str dtypes
        check_parity(model, X.assign(c0=form), X.assign(c0=form))
    Xe = ens.encode(X.assign(c0=X["c0"].astype(object).where(np.arange(200) > 0, "zz")))
    assert Xe[0, 3] == -1.0
    with pytest.raises(DataValidationError, match="missing values"):
        ens.encode(X.assign(c0=X["c0"].where(np.arange(200) > 0)))
    with pytest.raises(DataValidationError, match="float"):
        ens.encode(X.assign(c0=np.arange(200, dtype=float)))
    with pytest.raises(DataValidationError, match="float array"):
        ens.encode(np.zeros((3, 4)))
    with pytest.raises(DataValidationError, match="NaN"):
        ens.encode(X.assign(c0=X["c0"].astype(object).where(np.arange(200) > 0, np.nan)))


# ----------------------------------------------- leaf values as Newton steps
def recompute_leaves(ens, X, y, w, lam, multiclass_full=False):
    """Largest relative difference between parsed leaves and Newton steps.

    F^(t-1) from base_margin plus earlier rounds; g/h per SPEC 1 (multiclass
    diagonal hessian with ens.hessian_factor, or CatBoost's full hessian).
    """
    leaves = ens.apply(X)
    n, R, K = leaves.shape
    F = np.tile(ens.base_margin, (n, 1))
    worst = 0.0
    for t in range(R):
        if ens.objective == "regression":
            g, h = F - y[:, None], np.ones((n, 1))
        elif ens.objective == "binary":
            p = 1.0 / (1.0 + np.exp(-F))
            g, h = p - y[:, None], p * (1.0 - p)
        else:
            P = np.exp(F - F.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            g, h = P - np.eye(K)[y], ens.hessian_factor * P * (1.0 - P)
        step = np.zeros((n, K))
        for c in range(K):
            tree = t * K + c
            values = ens.leaf_value[ens.leaf_offset[tree]:ens.leaf_offset[tree + 1]]
            for leaf in range(values.shape[0]):
                rows = leaves[:, t, c] == leaf
                if not rows.any():
                    continue
                if multiclass_full:
                    G = (w[rows, None] * g[rows]).sum(axis=0)
                    Pw = w[rows, None] * P[rows]
                    H = np.diag(Pw.sum(axis=0)) - Pw.T @ P[rows]
                    v = -ens.learning_rate * np.linalg.solve(H + lam * np.eye(K), G)[c]
                else:
                    v = -ens.learning_rate * (w[rows] * g[rows, c]).sum() / (
                        (w[rows] * h[rows, c]).sum() + lam)
                worst = max(worst, abs(v - values[leaf]) / (1e-3 + abs(values[leaf])))
            step[:, c] = values[leaves[:, t, c]]
        F = F + step
    return worst


def newton_model(task, grow="SymmetricTree", **kw):
    X, y = make_data(task, n=300, n_num=4, nan_frac=0.1, seed=7)
    w = np.random.default_rng(8).uniform(0.2, 2.0, size=len(y))
    cls = cb.CatBoostRegressor if task == "regression" else cb.CatBoostClassifier
    model = cls(**{**dict(iterations=8, depth=3, learning_rate=0.3, l2_leaf_reg=2.0,
                          grow_policy=grow), **NEWTON, **BASE, **kw})
    model.fit(X, y, sample_weight=w)
    return model, X, y, w


@pytest.mark.parametrize("task,grow,kw", [
    ("regression", "SymmetricTree", {}),
    ("regression", "Depthwise", {"leaf_estimation_method": "Gradient"}),
    ("binary", "SymmetricTree", {"class_weights": [1.0, 2.5]}),
    ("binary", "Lossguide", {"boost_from_average": True}),
])
def test_leaf_values_are_newton_steps(task, grow, kw):
    model, X, y, w = newton_model(task, grow, **kw)
    ens = treeinf.parse_model(model, X)
    assert ens.exact_leaves is True
    assert ens.reg_alpha == 0.0 and ens.hessian_factor == 1.0
    # CatBoost keeps labels and weights in float32, multiplies the weights by
    # the class weights (in float32) and scales l2_leaf_reg by the mean weight
    cw = ens.class_weight
    wt = f32(w) if cw is None else f32(f32(w) * f32(cw)[y])
    lam = ens.reg_lambda * wt.mean()
    assert ens.l2_weight_scaling == "mean_weight"
    assert recompute_leaves(ens, X, f32(y), wt, lam) < 1e-9
    # the unscaled lambda is measurably wrong with non-unit weights
    assert recompute_leaves(ens, X, f32(y), wt, ens.reg_lambda) > 1e-3


def test_base_margin_boost_from_average():
    model, X, y, w = newton_model("regression")  # RMSE: boost_from_average default True
    ens = treeinf.parse_model(model, X)
    assert ens.params["boost_from_average"] is True
    assert ens.base_margin[0] == np.float32(np.average(f32(y), weights=f32(w)))
    model, X, y, w = newton_model("binary", boost_from_average=True)
    ens = treeinf.parse_model(model, X)
    p = np.average(y, weights=f32(w))
    assert ens.base_margin[0] == pytest.approx(np.log(p / (1 - p)), rel=1e-6)
    model, X, y, w = newton_model("regression", boost_from_average=False)
    assert treeinf.parse_model(model, X).base_margin[0] == 0.0
    model, X, y, w = newton_model("binary")  # Logloss: default False
    assert treeinf.parse_model(model, X).base_margin[0] == 0.0


def test_multiclass_leaves_are_full_hessian_newton_steps():
    model, X, y, w = newton_model("multiclass", class_weights=[1.0, 0.5, 2.0])
    ens = treeinf.parse_model(model, X)
    np.testing.assert_array_equal(ens.base_margin, [0.0, 0.0, 0.0])
    wt = f32(f32(w) * f32(ens.class_weight)[y])
    lam = ens.reg_lambda * wt.mean()
    assert ens.params["multiclass_newton"] == "full_hessian"
    assert recompute_leaves(ens, X, y, wt, lam, multiclass_full=True) < 1e-5
    # no diagonal factor reproduces them: the flag tells fixed-structure methods
    assert ens.exact_leaves is False
    assert recompute_leaves(ens, X, y, wt, lam) > 1e-2


# --------------------------------------------------- model-level settings
def test_scale_and_bias_folded():
    for task in ["binary", "multiclass"]:
        X, y = make_data(task, n=200, n_num=4, nan_frac=0.1, seed=9)
        model = cb.CatBoostClassifier(iterations=5, depth=2, **BASE).fit(X, y)
        plain = treeinf.parse_model(model, X)
        K = plain.n_outputs
        bias = [-0.3] if K == 1 else [-0.3, 0.1, 0.4]
        model.set_scale_and_bias(0.7, bias)
        ens = check_parity(model, X, X)
        np.testing.assert_allclose(ens.base_margin, bias)
        np.testing.assert_allclose(ens.leaf_value, 0.7 * plain.leaf_value)
        assert ens.params["scale"] == 0.7 and ens.exact_leaves is False


def test_early_stopping_uses_best_model_trees():
    X, y = make_data("binary", n=300, n_num=4, nan_frac=0.1, seed=11)
    model = cb.CatBoostClassifier(iterations=20, depth=3, learning_rate=0.9, **BASE)
    model.fit(X[:200], y[:200], eval_set=(X[200:], y[200:]), early_stopping_rounds=2)
    assert model.get_best_iteration() + 1 == model.tree_count_ < 20
    ens = check_parity(model, X, X)
    assert ens.n_rounds == model.tree_count_ == ens.params["n_trees"]
    assert ens.params["best_iteration"] == model.get_best_iteration()


def test_params_recorded():
    X, y = make_data("binary", n=200, n_num=4, seed=12)
    model = cb.CatBoostClassifier(iterations=4, depth=2, auto_class_weights="Balanced",
                                  **BASE).fit(X, y)
    ens = treeinf.parse_model(model, X)
    p = ens.params
    cw = np.asarray(model.get_all_params()["class_weights"])
    np.testing.assert_allclose(ens.class_weight, cw)
    assert p["loss_function"] == "Logloss" and p["leaf_estimation_method"] == "Newton"
    assert p["leaf_estimation_iterations"] == 1 and p["boosting_type"] == "Plain"
    assert p["bootstrap_type"] == "MVS" and ens.exact_leaves is False
    assert ens.learning_rate == pytest.approx(model.get_all_params()["learning_rate"], rel=1e-6)
    assert ens.reg_lambda == 3.0 and ens.kind == "boosting"
    np.testing.assert_array_equal(ens.classes, [0, 1])
    model = cb.CatBoostClassifier(iterations=3, depth=2, **NEWTON, **BASE).fit(X, y)
    ens = treeinf.parse_model(model, X)
    assert ens.class_weight is None and ens.exact_leaves is True


def test_string_class_labels_order():
    X, y = make_data("multiclass", n=200, n_num=4, seed=13)
    labels = np.array(["lo", "mid", "hi"], dtype=object)[y]
    model = cb.CatBoostClassifier(iterations=4, depth=2, **BASE).fit(X, labels)
    ens = check_parity(model, X, X)
    np.testing.assert_array_equal(ens.classes, model.classes_)


# ------------------------------------------------------------- refusals
def _fit_unsupported(case):
    X, y = make_data("binary", n=120, n_num=3, seed=14)
    small = dict(iterations=2, depth=2, **BASE)
    if case == "Quantile":
        return cb.CatBoostRegressor(loss_function="Quantile:alpha=0.3", **small).fit(X, y), X
    if case == "MultiRMSE":
        return cb.CatBoostRegressor(loss_function="MultiRMSE", **small).fit(
            X, np.column_stack([y, 1 - y])), X
    if case == "MultiLogloss":
        return cb.CatBoostClassifier(loss_function="MultiLogloss", **small).fit(
            X, np.column_stack([y, 1 - y])), X
    if case == "MultiClassOneVsAll":
        return cb.CatBoostClassifier(loss_function="MultiClassOneVsAll", **small).fit(X, y), X
    if case == "Poisson":
        return cb.CatBoostRegressor(loss_function="Poisson", **small).fit(X, y), X
    if case == "CTR":
        Xc, _ = make_data("binary", n=120, n_num=3, n_cat=1, n_levels=6, seed=14)
        yc = Xc["c0"].isin(["a", "b", "c"]).to_numpy().astype(int)  # only the category matters
        return cb.CatBoostClassifier(cat_features=["c0"], one_hot_max_size=2,
                                     **small).fit(Xc, yc), Xc
    if case == "text":
        Xt = X.assign(t=np.where(y == 1, "good day", "bad day"))
        return cb.CatBoostClassifier(text_features=["t"], **small).fit(Xt, y), Xt
    raise ValueError(case)


@pytest.mark.parametrize("case,match", [
    ("Quantile", "Quantile"), ("MultiRMSE", "MultiRMSE"),
    ("MultiLogloss", "MultiLogloss"), ("MultiClassOneVsAll", "MultiClassOneVsAll"),
    ("Poisson", "Poisson"), ("CTR", "CTR.*one_hot_max_size"), ("text", "text"),
])
def test_unsupported_models_raise(case, match):
    model, X = _fit_unsupported(case)
    with pytest.raises(UnsupportedModelError, match=match):
        treeinf.parse_model(model, X)


def test_unfitted_raises():
    with pytest.raises(NotFittedError):
        treeinf.parse_model(cb.CatBoostClassifier())
    with pytest.raises(NotFittedError):
        treeinf.parse_model(cb.CatBoost({"loss_function": "RMSE"}))


def test_flat_feature_index_with_interleaved_categoricals_and_ignored_features():
    """float_feature_index counts float features only; X's column is flat_feature_index."""
    X, y = make_data("regression", n=200, n_num=4, n_cat=2, n_levels=4, nan_frac=0.1, seed=15)
    for c in ["c0", "c1"]:
        X[c] = X[c].cat.add_categories(["nan"]).fillna("nan")
    X = X[["c0", "f0", "f1", "c1", "f2", "f3"]]
    model = cb.CatBoostRegressor(iterations=8, depth=3, cat_features=["c0", "c1"],
                                 one_hot_max_size=10, ignored_features=["f1"], **BASE)
    model.fit(X, y)
    ens = check_parity(model, X, X)
    assert ens.encoder.categorical_columns == [0, 3]
    assert 2 not in set(ens.node_feature[ens.node_left >= 0].tolist())  # f1 ignored
    assert {0, 3} <= set(ens.node_feature[ens.node_left >= 0].tolist())


def test_sum_models_is_refused_with_a_clear_error():
    import catboost as cb
    from treeinf.exceptions import UnsupportedModelError
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X[:, 0] + rng.normal(size=120)
    parts = [cb.CatBoostRegressor(iterations=4, depth=2, verbose=False, random_seed=s,
                                  allow_writing_files=False).fit(X, y) for s in (0, 1)]
    with pytest.raises(UnsupportedModelError, match="sum_models"):
        treeinf.parse_model(cb.sum_models(parts), X)


# ------------------------------------------------------- trees without a split
@pytest.mark.parametrize("task", TASKS)
def test_symmetric_trees_without_a_split(task):
    """A symmetric tree with no split (``"splits": null`` in CatBoost's JSON):
    with rsm=0.5 on one feature CatBoost skips the only feature in some
    rounds. Each such tree is one leaf (CatBoost's leaf index 0)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1))
    y = X[:, 0] + rng.normal(scale=0.1, size=200)
    if task == "binary":
        y = (y > 0).astype(int)
    elif task == "multiclass":
        y = np.digitize(y, [-0.5, 0.5])
    cls = cb.CatBoostRegressor if task == "regression" else cb.CatBoostClassifier
    model = cls(iterations=20, rsm=0.5, random_seed=0, **BASE).fit(X, y)
    from treeinf._trees._catboost import _model_json
    splits = [t["splits"] for t in _model_json(model)["oblivious_trees"]]
    assert any(s is None for s in splits) and any(s for s in splits)
    X_all = np.vstack([X, [[np.nan], [0.0], [-5.0], [5.0]]])
    ens = check_parity(model, X, X_all)
    assert min(ens.n_leaves) == 1
    # a model whose every tree is a single leaf (depth=0)
    flat = cls(iterations=5, depth=0, random_seed=0, **BASE).fit(X, y)
    ens = check_parity(flat, X, X_all)
    assert set(ens.n_leaves.tolist()) == {1}
