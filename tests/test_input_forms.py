"""Input forms: scipy sparse matrices (passed by the user, or produced by a
Pipeline's own steps such as a OneHotEncoder), and, for the retraining
methods (LOO, SubSample, DShap), every query form the other estimators accept.

References are the libraries' own predictions (``predict``/``pred_leaf``/
``apply`` through each parser's ``reference``) and the same explainer run on
the canonical form (the dense matrix, or the training DataFrame's format).
"""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.compose import make_column_transformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import treeinf
from treeinf._trees import _catboost, _lightgbm, _sklearn, _xgboost
from treeinf.exceptions import DataValidationError

from models import make_model

REFERENCE = {"lightgbm": _lightgbm.reference, "xgboost": _xgboost.reference,
             "catboost": _catboost.reference, "sklearn_rf": _sklearn.reference,
             "sklearn_gb": _sklearn.reference}


def _explainers(kind, n_jobs=1):
    """(name, estimator) of the methods checked on every input form."""
    out = [("TREX", treeinf.TREX()), ("TreeSim", treeinf.TreeSim()),
           ("InputSim", treeinf.InputSim()), ("LOO", treeinf.LOO(n_jobs=n_jobs))]
    if kind == "boosting":
        out = [("BoostIn", treeinf.BoostIn()), ("LeafInfluence", treeinf.LeafInfluence())] + out
    return out


# ------------------------------------------------------------ user sparse X
def _sparse_data(n, seed=0, nan=True):
    """(csr, y): 5 columns, ~60% implicit zeros, a few stored NaN and zeros."""
    rng = np.random.default_rng(seed)
    D = rng.normal(size=(n, 5))
    D[rng.random(D.shape) < 0.6] = 0.0
    y = (D[:, 0] - D[:, 1] + 2.0 * (D[:, 2] == 0) + 0.3 * rng.normal(size=n) > 0.5).astype(int)
    S = sp.csr_matrix(D)
    if nan:  # stored NaN entries
        S = S.tolil()
        for i, j in zip(rng.integers(0, n, n // 10), rng.integers(0, 5, n // 10)):
            S[i, j] = np.nan
        S = S.tocsr()
    # stored (explicit) zeros
    S = S.tocoo()
    extra_r, extra_c = rng.integers(0, n, n // 10), rng.integers(0, 5, n // 10)
    keep = np.asarray(S.todense())[extra_r, extra_c] == 0
    S = sp.coo_matrix((np.r_[S.data, np.zeros(keep.sum())],
                       (np.r_[S.row, extra_r[keep]], np.r_[S.col, extra_c[keep]])),
                      shape=S.shape).tocsr()
    return S, y


def _dense_equivalent(S, family):
    """The dense matrix that means the same to the library: implicit entries
    are 0.0, except for XGBoost, whose DMatrix treats them as missing."""
    D = S.toarray()
    if family == "xgboost":
        stored = np.zeros(S.shape, dtype=bool)
        coo = S.tocoo()
        stored[coo.row, coo.col] = True
        D[~stored] = np.nan
    return D


def _snapshot(S):
    return S.format, S.data.copy(), getattr(S, "indices", np.zeros(0)).copy(), S.shape


def _assert_unchanged(S, snap):
    fmt, data, indices, shape = snap
    assert S.format == fmt and S.shape == shape
    np.testing.assert_array_equal(S.data, data)
    np.testing.assert_array_equal(getattr(S, "indices", np.zeros(0)), indices)


SPARSE_FAMILIES = ["lightgbm", "xgboost", "catboost", "sklearn_rf", "sklearn_gb"]


@pytest.mark.filterwarnings("ignore:Converting data to scipy sparse matrix")
@pytest.mark.parametrize("family", SPARSE_FAMILIES)
def test_user_sparse_matches_the_library(family):
    """A model trained on a scipy sparse matrix: parse_model verifies margins
    and leaf ids against the library's own on the sparse matrix (CSR, CSC and
    COO queries too), and the sparse matrix means what its dense equivalent
    means to the library."""
    nan = family in ("lightgbm", "xgboost")  # sklearn trees refuse NaN in sparse X
    S, y = _sparse_data(200, nan=nan)
    Str, ytr, Sq = S[:160], y[:160], S[160:]
    model = make_model(family, "binary").fit(Str, ytr)
    snap = _snapshot(Str)
    ens = treeinf.parse_model(model, Str)       # raises ParseMismatchError on any difference
    _assert_unchanged(Str, snap)
    for fmt in ("csr", "csc", "coo"):
        treeinf.parse_model(model, Sq.asformat(fmt))
    D = _dense_equivalent(Sq, family)
    ref = REFERENCE[family]
    np.testing.assert_allclose(ref(model, D)["margin"], ref(model, Sq)["margin"], rtol=1e-12)
    np.testing.assert_array_equal(ens.predict_raw(Sq), ens.predict_raw(D))
    np.testing.assert_array_equal(ens.apply(Sq), ens.apply(D))
    if family == "xgboost":
        # implicit entries are missing, not zeros: the zero-filled matrix differs
        assert not np.allclose(ref(model, Sq.toarray())["margin"], ref(model, Sq)["margin"])


def test_sparse_refused_where_the_library_refuses_it():
    from sklearn.ensemble import HistGradientBoostingClassifier
    S, y = _sparse_data(120, nan=False)
    model = HistGradientBoostingClassifier(max_iter=3).fit(S.toarray(), y)
    with pytest.raises(TypeError):
        model.predict(S)  # sklearn's own refusal
    explainer = treeinf.TreeSim().fit(model, S.toarray(), y)
    with pytest.raises(DataValidationError, match="Sparse input .* not supported"):
        explainer.get_local_influence(S, y)


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "sklearn_rf"])
def test_every_method_on_user_sparse_equals_dense(family):
    """Each estimator fitted and queried with sparse matrices gives the
    influence it gives on the dense equivalent (same model)."""
    S, y = _sparse_data(50, seed=1, nan=family != "sklearn_rf")
    Str, ytr, Sq, yq = S[:40], y[:40], S[40:], y[40:]
    model = make_model(family, "binary", n_estimators=4).fit(Str, ytr)
    Dtr, Dq = _dense_equivalent(Str, family), _dense_equivalent(Sq, family)
    kind = "forest" if family == "sklearn_rf" else "boosting"
    for name, est in _explainers(kind):
        if name == "LeafInfluence" and family == "xgboost":
            est.set_params(atol=1e-4)
        a = est.fit(model, Str, ytr).get_local_influence(Sq, yq)
        b = est.fit(model, Dtr, ytr).get_local_influence(Dq, yq)
        assert a.shape == (40, 10)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=name)
        if name != "LOO":
            np.testing.assert_allclose(est.get_local_influence(Sq.tocsc(), yq), b,
                                       rtol=1e-12, atol=1e-15, err_msg=name)


def test_lightgbm_sparse_keeps_stored_tiny_values():
    """LightGBM's dense row reader turns |x| <= 1e-35f into 0.0, its CSR reader
    keeps stored values: a stored -1e-35f goes left at the threshold -1e-35f,
    the same value in a dense row goes right. treeinf follows both."""
    import lightgbm as lgb
    rng = np.random.default_rng(0)
    n = 400
    x = rng.choice([0.0, -1.0, -2.0, 1.0, 2.0], size=n, p=[0.4, 0.3, 0.1, 0.1, 0.1])
    X = np.c_[x, rng.normal(size=n)]
    y = 3.0 * (x == 0) + 0.5 * x + 0.1 * rng.normal(size=n)
    model = lgb.LGBMRegressor(n_estimators=3, min_child_samples=5, use_missing=False,
                              verbose=-1).fit(X, y)
    kzero = float(np.float32(1e-35))
    Q = np.array([[-kzero, 0.0], [kzero, 0.0], [-1e-36, 0.5], [0.0, 0.0]])
    Qs = sp.csr_matrix(Q)
    ens = treeinf.parse_model(model, X)
    for q in (Q, Qs):
        np.testing.assert_array_equal(ens.apply(q, library_ids=True)[:, :, 0],
                                      model.predict(q, pred_leaf=True))
    assert np.any(model.predict(Q, pred_leaf=True) != model.predict(Qs, pred_leaf=True))


# ------------------------------------------------ pipelines with sparse steps
def _categorical_frame(n, seed=0):
    """DataFrame with two string columns of 8 levels each (every level at least
    twice, so leaving one row out keeps every one-hot column) and two numbers."""
    rng = np.random.default_rng(seed)
    levels = [f"c{k}" for k in range(8)]
    m = min(n, 16)
    color = np.r_[np.repeat(levels, 2)[:m], rng.choice(levels, n - m)]
    size = np.r_[np.tile(levels, 2)[:m], rng.choice(levels, n - m)]
    X = pd.DataFrame({"a": rng.normal(size=n), "color": color, "b": rng.normal(size=n),
                      "size": size})
    signal = X.a + (X.color == "c1") - (X["size"] == "c2") + 0.5 * (X.color == "c3")
    y = (signal + 0.3 * rng.normal(size=n) > 0.3).astype(int).to_numpy()
    return X, y


def _final(kind):
    if kind == "lightgbm":
        import lightgbm as lgb
        return lgb.LGBMClassifier(n_estimators=4, num_leaves=5, min_child_samples=3,
                                  verbose=-1, n_jobs=1, random_state=0)
    from sklearn.ensemble import RandomForestClassifier
    return RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0, n_jobs=1)


@pytest.mark.parametrize("final", ["lightgbm", "forest"])
def test_pipeline_with_sparse_one_hot(final):
    """make_column_transformer((OneHotEncoder(), cats), remainder='passthrough')
    then a tree model: the pipeline's own step makes a sparse matrix from the
    user's DataFrame. Every method gives the influence it gives on the dense
    equivalent: the same final model on the transformed matrix (LOO: the same
    pipeline with a dense OneHotEncoder, which trains the same models)."""
    X, y = _categorical_frame(40)
    Xq, yq = _categorical_frame(12, seed=1)
    cats = ["color", "size"]
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), cats),
                                                 remainder="passthrough"), _final(final))
    pipe.fit(X, y)
    assert sp.issparse(pipe[0].transform(X))
    dense = make_pipeline(make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
        remainder="passthrough"), _final(final)).fit(X, y)
    np.testing.assert_array_equal(dense.predict_proba(Xq), pipe.predict_proba(Xq))
    Ztr, Zq = pipe[0].transform(X).toarray(), pipe[0].transform(Xq).toarray()
    X_before = X.copy()
    kind = "boosting" if final == "lightgbm" else "forest"
    for name, est in _explainers(kind):
        a = est.fit(pipe, X, y).get_local_influence(Xq, yq)
        assert a.shape == (40, 12)
        if name == "LOO":
            b = est.fit(dense, X, y).get_local_influence(Xq, yq)
        else:
            b = est.fit(pipe[-1], Ztr, y).get_local_influence(Zq, yq)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=name)
    pd.testing.assert_frame_equal(X, X_before)


# ---------------------------------------- retraining methods: query forms
def _retrainers():
    return [treeinf.LOO(n_jobs=1), treeinf.SubSample(n_models=6, random_state=0, n_jobs=1),
            treeinf.DShap(max_permutations=3, random_state=0, n_jobs=1)]


def _query_forms(Xq, cat_cols):
    """Every form of the query Xq (a DataFrame) the encoders accept, by name."""
    forms = {}
    strings = Xq.copy()
    for c in cat_cols:
        strings[c] = Xq[c].astype(object).where(Xq[c].notna(), None)
    forms["category values as strings"] = strings
    if cat_cols:
        codes = Xq.copy()
        for c in cat_cols:
            codes[c] = Xq[c].cat.codes.astype(float).where(Xq[c].cat.codes >= 0)
        forms["category codes"] = codes
        forms["codes as float array"] = codes.to_numpy(dtype=np.float64)
        other = Xq.copy()
        for c in cat_cols:
            other[c] = Xq[c].cat.reorder_categories(Xq[c].cat.categories[::-1])
        forms["categories in another order"] = other
    forms["object array"] = strings.to_numpy(dtype=object)
    forms["list of lists"] = strings.to_numpy(dtype=object).tolist()
    numeric_strings = strings.copy()
    for c in Xq.columns:
        if c not in cat_cols:
            numeric_strings[c] = [repr(float(v)) for v in Xq[c]]
    forms["numeric strings"] = numeric_strings
    forms["numeric strings, object array"] = numeric_strings.to_numpy(dtype=object)
    return forms


def _lightgbm_categorical():
    import lightgbm as lgb
    rng = np.random.default_rng(0)
    levels = list("abcdef")

    def frame(n):
        return pd.DataFrame({"f0": rng.normal(size=n),
                             "c": pd.Categorical(rng.choice(levels, n), categories=levels),
                             "f1": rng.normal(size=n)})
    X, Xq = frame(30), frame(8)
    Xq.loc[2, "c"] = np.nan
    Xq.loc[3, "f0"] = np.nan
    y = (X.f0 + X.c.isin(["a", "b"]) - 0.5 * X.f1 > 0.5).astype(int).to_numpy()
    yq = (Xq.f0.fillna(0) + Xq.c.isin(["a", "b"]) > 0.5).astype(int).to_numpy()
    model = lgb.LGBMClassifier(n_estimators=4, num_leaves=4, min_child_samples=3,
                               min_data_per_group=2, cat_smooth=1, verbose=-1, n_jobs=1,
                               random_state=0).fit(X, y)
    return model, X, y, Xq, yq, ["c"]


def _forest_named():
    from sklearn.ensemble import RandomForestRegressor
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(30, 3)), columns=["u", "v", "w"])
    Xq = pd.DataFrame(rng.normal(size=(8, 3)), columns=["u", "v", "w"])
    y = X.u - X.v + 0.1 * rng.normal(size=30)
    yq = Xq.u - Xq.v
    model = RandomForestRegressor(n_estimators=4, max_depth=3, random_state=0,
                                  n_jobs=1).fit(X, y)
    return model, X, y.to_numpy(), Xq, yq.to_numpy(), []


@pytest.mark.parametrize("case", ["lightgbm_categorical", "forest"])
def test_retraining_methods_accept_every_query_form(case):
    """LOO, SubSample and DShap take every query form the other estimators
    take (categories as strings or codes or in another order, object arrays,
    lists of lists, numeric strings) and give the influence of the DataFrame
    form: the query is converted to the representation the model was trained
    with through the ensemble's encoder."""
    model, X, y, Xq, yq, cats = (_lightgbm_categorical() if case == "lightgbm_categorical"
                                 else _forest_named())
    forms = _query_forms(Xq, cats)
    canonical = treeinf.TreeSim().fit(model, X, y).get_local_influence(Xq, yq)
    for name, q in forms.items():  # the forms every other estimator accepts
        np.testing.assert_array_equal(
            treeinf.TreeSim().fit(model, X, y).get_local_influence(q, yq), canonical,
            err_msg=name)
    for est in _retrainers():
        est.fit(model, X, y)
        ref = est.get_local_influence(Xq, yq)
        assert np.abs(ref).max() > 0
        for name, q in forms.items():
            snapshot = pd.DataFrame(q).copy() if not isinstance(q, list) else list(map(list, q))
            got = est.get_local_influence(q, yq)
            np.testing.assert_array_equal(got, ref, err_msg=f"{type(est).__name__}: {name}")
            if isinstance(q, pd.DataFrame):
                pd.testing.assert_frame_equal(q, snapshot)
        np.testing.assert_array_equal(est.get_global_influence(forms["list of lists"], yq),
                                      est.get_global_influence(Xq, yq))


@pytest.mark.parametrize("family", ["catboost", "xgboost", "sklearn_hgb"])
def test_loo_query_forms_other_libraries(family):
    """LOO on categorical models of the other libraries: CatBoost (the user's
    values are kept for its categorical columns: a clone may split on values
    the model's codes merge), XGBoost and HistGradientBoosting (category
    values rebuilt from the encoder's codes)."""
    import catboost as cb
    import xgboost as xgb
    from sklearn.ensemble import HistGradientBoostingClassifier
    rng = np.random.default_rng(2)
    levels = list("abcdef")

    def frame(n):
        return pd.DataFrame({"f0": rng.normal(size=n),
                             "c": pd.Categorical(rng.choice(levels, n), categories=levels)})
    X, Xq = frame(24), frame(6)
    y = (X.f0 + X.c.isin(["a", "b"]) > 0.5).astype(int).to_numpy()
    yq = (Xq.f0 + Xq.c.isin(["a", "b"]) > 0.5).astype(int).to_numpy()
    fit_params = None
    if family == "catboost":
        model = cb.CatBoostClassifier(iterations=3, depth=2, one_hot_max_size=10,
                                      random_seed=0, thread_count=1, verbose=0,
                                      allow_writing_files=False)
        X, Xq = X.astype({"c": object}), Xq.astype({"c": object})
        fit_params = {"cat_features": ["c"]}
    elif family == "xgboost":
        model = xgb.XGBClassifier(n_estimators=3, max_depth=2, enable_categorical=True,
                                  n_jobs=1, random_state=0)
    else:
        model = HistGradientBoostingClassifier(max_iter=3, categorical_features="from_dtype",
                                               random_state=0)
    model.fit(X, y, **(fit_params or {}))
    est = treeinf.LOO(n_jobs=1, fit_params=fit_params).fit(model, X, y)
    ref = est.get_local_influence(Xq, yq)
    assert np.abs(ref).max() > 0
    forms = _query_forms(Xq.astype({"c": pd.CategoricalDtype(levels)}), ["c"])
    if family in ("catboost", "sklearn_hgb"):
        # CatBoost takes no numeric category codes; HistGradientBoosting refuses
        # the integer codes of a string-category column (as scikit-learn does)
        forms = {k: v for k, v in forms.items() if "codes" not in k}
    for name, q in forms.items():
        np.testing.assert_array_equal(est.get_local_influence(q, yq), ref, err_msg=name)
