"""The ten ways fit used to return a silently wrong influence (issue #10).

Each case prints what treeinf does now: the right number (checked against a
reference computed another way) or a named error. Run:

    python benchmarks/issue10_cases.py
"""
import os
import sys
import tempfile
import warnings

import numpy as np
import pandas as pd

import treeinf
from treeinf.exceptions import TreeInfError

warnings.filterwarnings("ignore")
rng = np.random.default_rng(0)


def outcome(fn):
    try:
        return "OK: " + fn()
    except TreeInfError as exc:
        return f"{type(exc).__name__}: {str(exc)[:150]}..."
    except Exception as exc:  # noqa: BLE001 - a crash is what we report
        return f"CRASH {type(exc).__name__}: {str(exc)[:150]}"


def case1():
    import xgboost as xgb
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    m = xgb.XGBClassifier(n_estimators=20, max_depth=3, learning_rate=0.1, reg_lambda=5.0,
                          n_jobs=1).fit(X, y)
    path = os.path.join(tempfile.mkdtemp(), "m.json")
    m.save_model(path)
    loaded = xgb.Booster(model_file=path)
    a = treeinf.BoostIn().fit(m, X, y).get_local_influence(X[:20], y[:20])
    e = treeinf.BoostIn().fit(loaded, X, y)
    b = e.get_local_influence(X[:20], y[:20])
    return (f"params {e.fidelity_['params_source']}, eta={e.ensemble_.learning_rate:.9g}, "
            f"lambda={e.ensemble_.reg_lambda:g}; max |BoostIn(file) - BoostIn(memory)| = "
            f"{np.abs(a - b).max():.2e} (values up to {np.abs(a).max():.2e})")


def case2():
    import catboost as cb
    X = rng.normal(size=(400, 4))
    y = X[:, 0] + rng.normal(size=400)
    w = rng.uniform(0.2, 5, 400)
    m = cb.CatBoostRegressor(iterations=1, depth=3, learning_rate=0.3, l2_leaf_reg=3,
                             leaf_estimation_method="Newton", bootstrap_type="No",
                             boosting_type="Plain", verbose=False, thread_count=1
                             ).fit(X, y, sample_weight=w)
    e = treeinf.BoostIn().fit(m, X, y, sample_weight=w)
    # the training term is the exact derivative of CatBoost's own leaf, whose
    # L2 is l2_leaf_reg * mean(w): finite difference of the recomputed leaf
    leaves = m.calc_leaf_indexes(X)[:, 0]
    i = 7
    rows = leaves == leaves[i]
    lam = 3 * w.mean()
    g = (0.0 + e.ensemble_.base_margin[0]) - y
    phi = lambda ww: -0.3 * np.sum(ww[rows] * g[rows]) / (np.sum(ww[rows]) + lam)  # noqa
    eps = 1e-6
    w2 = w.copy()
    w2[i] *= 1 - eps
    fd = (phi(w2) - phi(w)) / eps
    D = e.get_self_influence()[i] / g[i]
    return f"BoostIn training term {D:.6g}, finite difference of the leaf {fd:.6g}"


def case3():
    import lightgbm as lgb
    X = rng.normal(size=(400, 5))
    y = X[:, 0] + rng.normal(size=400)
    m = lgb.LGBMRegressor(n_estimators=20, num_leaves=7, verbose=-1).fit(X, y)
    out = []
    for name, (Xw, yw) in {"random matrix": (rng.normal(size=X.shape), y),
                           "permuted rows": (X[rng.permutation(400)], y),
                           "permuted y": (X, y[rng.permutation(400)]),
                           "first 80%": (X[:320], y[:320]),
                           "column shifted": (np.roll(X, 1, axis=1), y)}.items():
        for cls in (treeinf.BoostIn, treeinf.TREX, treeinf.TreeSim, treeinf.InputSim,
                    treeinf.Target, treeinf.Random, treeinf.Loss):
            try:
                cls().fit(m, Xw, yw)
                out.append(f"{name}/{cls.__name__}: ACCEPTED")
            except TreeInfError as exc:
                out.append(type(exc).__name__)
    raised = sum(o == "TrainingDataMismatchError" for o in out)
    return f"{raised} of {len(out)} (data, estimator) pairs raise TrainingDataMismatchError"


def case4():
    import xgboost as xgb
    X = rng.normal(size=(300, 4))
    X[rng.random(X.shape) < 0.3] = 0.0
    y = X[:, 0] + (X[:, 1] == 0) + rng.normal(scale=0.1, size=300)
    b = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(X, label=y, missing=0.0), 10)
    try:
        treeinf.BoostIn().fit(b, X, y)
        first = "accepted without missing="
    except TreeInfError as exc:
        first = f"without missing=: {type(exc).__name__}"
    e = treeinf.BoostIn().fit(b, X, y, missing=0.0)
    own = b.predict(xgb.DMatrix(X, missing=0.0), output_margin=True)
    diff = np.abs(e.ensemble_.predict_raw(X)[:, 0] - own)
    return (f"{first}; with missing=0.0: {int((diff > 1e-5).sum())} of 300 training rows "
            f"differ from the booster's own margins")


def case5():
    from sklearn.ensemble import HistGradientBoostingRegressor
    X = rng.normal(size=(12000, 4))
    y = X[:, 0] + rng.normal(size=12000)
    m = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(X, y)
    e = treeinf.BoostIn().fit(m, X, y)
    inf = e.get_local_influence(X[:5], y[:5])
    held = np.setdiff1d(np.arange(12000), e.train_rows_)
    return (f"early stopping held out {e.fidelity_['held_out_rows']} rows; their influence "
            f"max |.| = {np.abs(inf[held]).max():g}; fidelity exact={e.fidelity_['exact']}, "
            f"max error {e.fidelity_['max_error']:.1e}")


def case6():
    from sklearn.ensemble import HistGradientBoostingRegressor
    X = pd.DataFrame({"a": rng.normal(size=300),
                      "c": pd.Categorical(rng.choice(list("xyz"), 300))})
    y = X["a"] + (X["c"] == "x") + rng.normal(size=300) * 0.1
    m = HistGradientBoostingRegressor(max_iter=5, categorical_features="from_dtype",
                                      early_stopping=False).fit(X, y)
    e = treeinf.BoostIn().fit(m, X, y)
    codes = X.assign(c=X["c"].cat.codes)
    e.get_local_influence(codes.iloc[:3], y[:3])
    return "integer codes accepted"


def case7():
    import lightgbm as lgb
    x = np.r_[np.zeros(200), -np.ones(200), np.ones(200)]
    X = np.c_[x, rng.normal(size=600)]
    y = (x < 0) * 2.0 + rng.normal(size=600) * 0.1
    m = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, verbose=-1).fit(X, y)
    probe = np.array([[-1e-35, 0], [1e-35, 0], [-2e-35, 0], [-1e-36, 0], [0.0, 0],
                      [-0.0, 0]])
    e = treeinf.parse_model(m, X)
    ours = e.apply(probe, library_ids=True).reshape(len(probe), -1)
    theirs = m.predict(probe, pred_leaf=True)
    return f"{int((ours != theirs).sum())} of {ours.size} leaf ids differ from pred_leaf"


def case8():
    import catboost as cb
    X = rng.normal(size=(200, 1))
    y = rng.normal(size=200)
    m = cb.CatBoostRegressor(iterations=20, rsm=0.5, depth=2, verbose=False,
                             thread_count=1, random_seed=0).fit(X, y)
    e = treeinf.parse_model(m, X)
    d = np.abs(e.predict_raw(X)[:, 0] - m.predict(X, prediction_type="RawFormulaVal")).max()
    return f"parsed; max margin difference {d:.1e}"


def case9():
    import lightgbm as lgb
    X = pd.DataFrame({"a": rng.normal(size=60),
                      "c": pd.Categorical(rng.choice(list("xyz"), 60))})
    y = X["a"] + (X["c"] == "x")
    m = lgb.LGBMRegressor(n_estimators=5, num_leaves=4, min_child_samples=3, verbose=-1,
                          n_jobs=1).fit(X, y)
    loo = treeinf.LOO().fit(m, X, y)
    ref = loo.get_local_influence(X.iloc[:3], y[:3])
    forms = {"strings": X.iloc[:3].astype({"c": object}),
             "object array": X.iloc[:3].to_numpy(dtype=object),
             "list of lists": X.iloc[:3].to_numpy(dtype=object).tolist()}
    res = []
    for name, q in forms.items():
        try:
            got = loo.get_local_influence(q, y[:3])
            res.append(f"{name}: max diff {np.abs(got - ref).max():.1e}")
        except TreeInfError as exc:
            res.append(f"{name}: {type(exc).__name__}")
    return "; ".join(res)


def case10():
    import lightgbm as lgb
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    X = pd.DataFrame({"a": rng.normal(size=300), "c": rng.choice(list("xyzw"), 300)})
    y = X["a"] + (X["c"] == "x") + rng.normal(size=300) * 0.1
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(), ["c"]),
                                                 remainder="passthrough"),
                         lgb.LGBMRegressor(n_estimators=10, verbose=-1)).fit(X, y)
    inf = treeinf.BoostIn().fit(pipe, X, y).get_local_influence(X.iloc[:5], y[:5])
    return f"BoostIn on the pipeline: influence {inf.shape}"


if __name__ == "__main__":
    cases = [case1, case2, case3, case4, case5, case6, case7, case8, case9, case10]
    only = {int(a) for a in sys.argv[1:]}
    for k, fn in enumerate(cases, 1):
        if not only or k in only:
            print(f"{k:2d}. {fn.__name__}: {outcome(fn)}", flush=True)
