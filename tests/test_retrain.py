"""LOO, SubSample and DShap against brute-force refitting, and invariants.

Every reference below refits ``sklearn.base.clone(model)`` explicitly and
scores the refits with the libraries' own predict/predict_proba, so it shares
no code with the explainers. Data are tiny (12-30 rows, <= 4 trees).
"""
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from conftest import make_data
from models import make_model, trained
from treeinf import DShap, LOO, SubSample
from treeinf.exceptions import DataValidationError, NotFittedError, UnsupportedModelError
from treeinf.explainers.retrain import _single_threaded, task_rng

N, N_TEST, TREES = 30, 6, 4


# ------------------------------------------------------------ references
def _take(X, rows):
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _fit_kw(model, w):
    if w is None:
        return {}
    if isinstance(model, Pipeline):
        return {model.steps[-1][0] + "__sample_weight": w}
    return {"sample_weight": w}


def ref_losses(model, X, y):
    """Per-row loss of the model's own predictions against raw labels y."""
    if not hasattr(model, "predict_proba"):
        return 0.5 * (np.asarray(y, float) - np.asarray(model.predict(X), float)) ** 2
    P = np.asarray(model.predict_proba(X), dtype=np.float64)
    col = {c: j for j, c in enumerate(model.classes_.tolist())}
    p = P[np.arange(len(y)), [col[v] for v in np.asarray(y).tolist()]]
    return -np.log(np.clip(p, 1e-5, 1 - 1e-5))


def refit(model, X, y, w, rows):
    return clone(model).fit(_take(X, rows), y[rows],
                            **_fit_kw(model, None if w is None else w[rows]))


def ref_loo(model, X, y, w, Xq, yq):
    """Explicit loop: (local (n, q), self (n,))."""
    n = len(y)
    base = ref_losses(model, Xq, yq)
    local, own = [], []
    for i in range(n):
        m = refit(model, X, y, w, np.delete(np.arange(n), i))
        local.append(ref_losses(m, Xq, yq) - base)
        own.append((ref_losses(m, _take(X, [i]), y[[i]])
                    - ref_losses(model, _take(X, [i]), y[[i]]))[0])
    return np.array(local), np.array(own)


def ref_tmc(model, X, y, w, Xq, yq, perms, trunc_tol):
    """Per-permutation TMC-Shapley contributions (P, n, q) and scan lengths."""
    n = len(y)
    classes = getattr(model, "classes_", None)
    full = ref_losses(model, Xq, yq)
    ww = np.ones(n) if w is None else w

    def constant(rows):
        if classes is None:
            return 0.5 * (yq - np.average(y[rows], weights=ww[rows])) ** 2
        freq = np.array([ww[rows][y[rows] == c].sum() for c in classes]) / ww[rows].sum()
        p = freq[[classes.tolist().index(v) for v in yq.tolist()]]
        return -np.log(np.clip(p, 1e-5, 1 - 1e-5))

    out, lengths = np.zeros((len(perms), n, len(yq))), []
    for k, perm in enumerate(perms):
        prev = constant(np.arange(n))
        for j in range(n):
            rows = np.sort(perm[:j + 1])
            if j == n - 1:
                cur = full
            elif len(rows) >= 2 and (classes is None or len(set(y[rows])) == len(classes)):
                cur = ref_losses(refit(model, X, y, w, rows), Xq, yq)
            else:
                cur = constant(rows)
            out[k, perm[j]] = prev - cur
            prev = cur
            if abs(cur.mean() - full.mean()) <= trunc_tol * abs(full.mean()):
                break
        lengths.append(j + 1)
    return out, np.array(lengths)


def _forest(task, **kw):
    cls = RandomForestRegressor if task == "regression" else RandomForestClassifier
    return cls(**{"n_estimators": 3, "max_depth": 4, "random_state": 0, "n_jobs": 2, **kw})


def _case(family, task, n=N, n_test=N_TEST, weights=True):
    if family in ("forest", "pipeline"):
        X, y = make_data(task, n=n + n_test, seed=1)
        X = X.to_numpy()
        w = np.random.default_rng(2).uniform(0.5, 2.0, n) if weights else None
        if family == "forest":
            model = _forest(task)
        else:
            model = Pipeline([("scale", StandardScaler()),
                              ("gbm", make_model("lightgbm", task, n_estimators=TREES))])
        model.fit(X[:n], y[:n], **_fit_kw(model, w))
        return model, X[:n], y[:n], w, X[n:], y[n:]
    return trained(family, task, n=n, n_test=n_test, weights=weights, n_estimators=TREES)


# -------------------------------------------------------------------- LOO
@pytest.mark.parametrize("family,task", [
    ("lightgbm", "regression"), ("lightgbm", "multiclass"), ("xgboost", "binary"),
    ("catboost", "regression"), ("catboost", "multiclass"),
    ("sklearn_gb", "binary"), ("forest", "multiclass"), ("forest", "regression"),
    ("pipeline", "binary")])
def test_loo_matches_explicit_refits(family, task):
    model, Xtr, ytr, w, Xte, yte = _case(family, task)
    exp = LOO(n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    local = exp.get_local_influence(Xte, yte)
    assert local.shape == (N, N_TEST) and local.dtype == np.float64
    ref_local, ref_self = ref_loo(model, Xtr, ytr, w, Xte, yte)
    assert np.abs(ref_local).max() > 1e-3  # removing rows changes these models
    np.testing.assert_allclose(local, ref_local, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exp.get_global_influence(Xte, yte), ref_local.sum(axis=1),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exp.get_self_influence(), ref_self, rtol=1e-9, atol=1e-12)
    assert exp.refit_max_difference_ <= 1e-9


def test_loo_dataframe_categorical():
    X, y = make_data("binary", n=36, n_cat=1, nan_frac=0.1, seed=4)
    model = make_model("lightgbm", "binary", n_estimators=TREES).fit(X[:30], y[:30])
    exp = LOO(n_jobs=1).fit(model, X[:30], y[:30])
    ref_local, _ = ref_loo(model, X[:30], y[:30], None, X[30:], y[30:])
    np.testing.assert_allclose(exp.get_local_influence(X[30:], y[30:]), ref_local,
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_loo_label_edit_matches_explicit_refits(task):
    model, Xtr, ytr, w, Xte, yte = _case("lightgbm", task, n_test=4)
    exp = LOO(n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    if task == "regression":
        target = np.array([0.0, 25.0, 0.0, 7.5])
    else:
        target = np.array([0, 2, 2, 1])
    got = exp.get_label_edit_influence(Xte, yte, target)
    assert got.shape == (N, 4)
    base = ref_losses(model, Xte, yte)
    ref = np.zeros((N, 4))
    for value in np.unique(target):
        cols = np.flatnonzero(target == value)
        for i in range(N):
            if ytr[i] == value:
                continue  # already has that label: no edit, 0
            y2 = ytr.astype(float) if task == "regression" else ytr.copy()
            y2[i] = value
            m = clone(model).fit(Xtr, y2, sample_weight=w)
            ref[i, cols] = (ref_losses(m, Xte, yte) - base)[cols]
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    if task != "regression":
        assert np.all(got[ytr == 2][:, target == 2] == 0)


def test_single_threaded_clones():
    import catboost as cb
    import lightgbm as lgb
    import xgboost as xgb
    models = [lgb.LGBMRegressor(n_jobs=4), xgb.XGBClassifier(n_jobs=4),
              cb.CatBoostRegressor(thread_count=4), cb.CatBoostClassifier(),
              RandomForestRegressor(n_jobs=3),
              Pipeline([("s", StandardScaler()), ("m", lgb.LGBMClassifier(n_jobs=-1))])]
    for model in models:
        est = _single_threaded(model)
        params = est.get_params(deep=True)
        threads = {k: v for k, v in params.items()
                   if k.rsplit("__", 1)[-1] in ("n_jobs", "thread_count", "nthread")}
        assert threads and all(v == 1 for v in threads.values()), (model, threads)
        assert model.get_params(deep=True) != params  # the user's model is untouched
    assert models[0].get_params()["n_jobs"] == 4


# -------------------------------------------------------------- SubSample
@pytest.mark.parametrize("family,task", [("lightgbm", "binary"), ("sklearn_gb", "regression")])
def test_subsample_matches_explicit_refits(family, task):
    model, Xtr, ytr, w, Xte, yte = _case(family, task)
    exp = SubSample(n_models=8, random_state=5, n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    mask = exp.in_subset_
    assert mask.shape == (8, N) and mask.dtype == bool
    assert np.all(mask.sum(axis=1) == round(0.7 * N))
    L = np.array([ref_losses(refit(model, Xtr, ytr, w, np.flatnonzero(r)), Xte, yte)
                  for r in mask])
    S = np.array([ref_losses(refit(model, Xtr, ytr, w, np.flatnonzero(r)), Xtr, ytr)
                  for r in mask])
    ref = np.zeros((N, N_TEST))
    ref_self = np.zeros(N)
    for i in range(N):
        inn, out = mask[:, i], ~mask[:, i]
        if inn.any() and out.any():
            ref[i] = L[out].mean(axis=0) - L[inn].mean(axis=0)
            ref_self[i] = S[out, i].mean() - S[inn, i].mean()
    got = exp.get_local_influence(Xte, yte)
    assert got.shape == (N, N_TEST) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exp.get_global_influence(Xte, yte), ref.sum(axis=1),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exp.get_self_influence(), ref_self, rtol=1e-9, atol=1e-12)


def test_subsample_rows_never_left_out_get_zero():
    model, Xtr, ytr, w, Xte, yte = _case("lightgbm", "regression", weights=False)
    exp = SubSample(n_models=2, random_state=0, n_jobs=1).fit(model, Xtr, ytr)
    mask = exp.in_subset_
    always, never = mask.all(axis=0), ~mask.any(axis=0)
    once = ~always & ~never
    assert always.any() and once.any()
    got = exp.get_local_influence(Xte, yte)
    assert np.all(got[always | never] == 0.0)
    assert np.all(np.abs(got[once]).max(axis=1) > 0)
    assert np.all(exp.get_self_influence()[always | never] == 0.0)


def test_subsample_keeps_every_class():
    model, Xtr, ytr, w, Xte, yte = _case("lightgbm", "multiclass", weights=False)
    ytr = ytr.copy()
    ytr[ytr == 2] = 1
    ytr[[3, 17]] = 2  # a rare class of two rows
    model = clone(model).fit(Xtr, ytr)
    exp = SubSample(n_models=12, random_state=1, n_jobs=1).fit(model, Xtr, ytr)
    assert np.all(exp.in_subset_[:, [3, 17]].any(axis=1))
    assert all(len(m.classes_) == 3 for m in exp.models_)


# ------------------------------------------------------------------ DShap
DSHAP_N = 12


@pytest.mark.parametrize("family,task,trunc", [
    ("sklearn_gb", "regression", 0.0), ("lightgbm", "binary", 0.05),
    ("catboost", "multiclass", 0.3)])
def test_dshap_matches_explicit_tmc(family, task, trunc):
    model, Xtr, ytr, w, Xte, yte = _case(family, task, n=DSHAP_N, n_test=5)
    P = 3
    exp = DShap(max_permutations=P, window=P, truncation_tol=trunc, random_state=11,
                n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    got = exp.get_local_influence(Xte, yte)
    assert got.shape == (DSHAP_N, 5) and got.dtype == np.float64
    assert exp.n_permutations_ == P and not exp.converged_
    perms = [task_rng(11, k).permutation(DSHAP_N) for k in range(P)]
    contrib, lengths = ref_tmc(model, Xtr, ytr, w, Xte, yte, perms, trunc)
    ref = contrib.mean(axis=0)
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exp.get_global_influence(Xte, yte), got.sum(axis=1),
                               rtol=1e-9, atol=1e-12)
    if trunc == 0:
        # efficiency: each test row's values sum to loss(empty set) - loss(model)
        assert np.all(lengths == DSHAP_N)
        np.testing.assert_allclose(got.sum(axis=0), contrib[0].sum(axis=0), rtol=1e-9)
    else:
        assert lengths.min() < DSHAP_N  # truncation happened
    if family == "sklearn_gb":
        self_contrib, _ = ref_tmc(model, Xtr, ytr, w, Xtr, ytr, perms, trunc)
        np.testing.assert_allclose(exp.get_self_influence(),
                                   np.diagonal(self_contrib.mean(axis=0)),
                                   rtol=1e-9, atol=1e-12)


def test_dshap_stops_by_its_convergence_criterion():
    model, Xtr, ytr, w, Xte, yte = _case("sklearn_gb", "regression", n=DSHAP_N, n_test=5)
    tol, window, max_p = 0.2, 3, 200
    exp = DShap(max_permutations=max_p, tol=tol, window=window, truncation_tol=0.05,
                random_state=2, n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    got = exp.get_local_influence(Xte, yte)
    p_star = exp.n_permutations_
    assert exp.converged_ and window < p_star < max_p
    perms = [task_rng(2, k).permutation(DSHAP_N) for k in range(p_star)]
    contrib, _ = ref_tmc(model, Xtr, ytr, w, Xte, yte, perms, 0.05)
    np.testing.assert_allclose(got, contrib.mean(axis=0), rtol=1e-9, atol=1e-12)
    running = np.cumsum(contrib.mean(axis=2), axis=0) / np.arange(1, p_star + 1)[:, None]
    met = [np.abs(running[p] - running[p - window]).sum() <= tol * np.abs(running[p]).sum()
           for p in range(window, p_star)]
    assert met[-1] and not any(met[:-1])
    # capped one permutation earlier, it has not converged
    short = DShap(max_permutations=p_star - 1, tol=tol, window=window, truncation_tol=0.05,
                  random_state=2, n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    short.get_local_influence(Xte, yte)
    assert short.n_permutations_ == p_star - 1 and not short.converged_


# ------------------------------------------------- determinism and n_jobs
def test_n_jobs_does_not_change_results():
    model, Xtr, ytr, w, Xte, yte = _case("lightgbm", "binary", n=20, n_test=4)
    sub = [SubSample(n_models=6, random_state=3, n_jobs=j).fit(model, Xtr, ytr, sample_weight=w)
           for j in (1, 2)]
    np.testing.assert_array_equal(sub[0].in_subset_, sub[1].in_subset_)
    np.testing.assert_array_equal(sub[0].get_local_influence(Xte, yte),
                                  sub[1].get_local_influence(Xte, yte))
    # odd convergence point: n_jobs=2 scans a permutation past it and must discard it
    kw = dict(max_permutations=60, tol=0.3, window=2, truncation_tol=0.05, random_state=1)
    shap = [DShap(n_jobs=j, **kw).fit(model, Xtr, ytr, sample_weight=w) for j in (1, 2)]
    vals = [e.get_local_influence(Xte, yte) for e in shap]
    assert shap[0].n_permutations_ == shap[1].n_permutations_
    assert shap[0].converged_ and shap[0].n_permutations_ % 2 == 1
    assert shap[0].converged_ == shap[1].converged_
    np.testing.assert_array_equal(vals[0], vals[1])
    loo = [LOO(n_jobs=j).fit(model, Xtr, ytr, sample_weight=w) for j in (1, 2)]
    np.testing.assert_array_equal(loo[0].get_local_influence(Xte, yte),
                                  loo[1].get_local_influence(Xte, yte))


# ------------------------------------------------------- sign convention
@pytest.mark.parametrize("method", [
    LOO(n_jobs=1), SubSample(n_models=10, random_state=0, n_jobs=1),
    DShap(max_permutations=3, window=3, truncation_tol=0.0, random_state=0, n_jobs=1)])
def test_sign_convention(method):
    """A lone training row far away with target 100 decides the prediction there:
    helpful for a test row there labelled 100, harmful for one labelled 0."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 2))
    y = rng.normal(scale=0.1, size=16)
    X[7], y[7] = [10.0, 10.0], 100.0
    model = RandomForestRegressor(n_estimators=3, bootstrap=False, max_features=None,
                                  random_state=0).fit(X, y)
    exp = clone(method).fit(model, X, y)
    Xq = np.array([[10.0, 10.0], [10.0, 10.0]])
    local = exp.get_local_influence(Xq, np.array([100.0, 0.0]))
    assert local.shape == (16, 2)
    assert np.argmax(local[:, 0]) == 7 and local[7, 0] > 0
    assert np.argmin(local[:, 1]) == 7 and local[7, 1] < 0
    idx, val = exp.get_top_influence(Xq, np.array([100.0, 0.0]), k=2)
    assert idx[0, 0] == 7 and val[0, 0] == local[7, 0]
    idx, _ = exp.get_top_influence(Xq, np.array([100.0, 0.0]), k=1, kind="harmful")
    assert idx[1, 0] == 7


# ------------------------------------------------ contract and errors
def test_clone_and_pickle():
    model, Xtr, ytr, w, Xte, yte = _case("lightgbm", "binary", n=20, n_test=3)
    for exp in (LOO(n_jobs=1), SubSample(n_models=4, random_state=1, n_jobs=1),
                DShap(max_permutations=2, window=2, random_state=1, n_jobs=1)):
        c = clone(exp)
        assert c.get_params() == exp.get_params() and not hasattr(c, "n_train_")
        exp.fit(model, Xtr, ytr, sample_weight=w)
        before = exp.get_local_influence(Xte, yte)
        back = pickle.loads(pickle.dumps(exp))
        np.testing.assert_array_equal(back.get_local_influence(Xte, yte), before)


def test_refit_that_does_not_reproduce_the_model_warns():
    model, Xtr, ytr, _, _, _ = _case("forest", "regression", weights=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LOO(n_jobs=1).fit(model, Xtr, ytr)  # seeded: no warning
    unseeded = _forest("regression", random_state=None).fit(Xtr, ytr)
    with pytest.warns(UserWarning, match="random_state"):
        exp = LOO(n_jobs=1).fit(unseeded, Xtr, ytr)
    assert exp.refit_max_difference_ > 1e-3


def test_progress_bar(capsys):
    model, Xtr, ytr, _, Xte, yte = _case("lightgbm", "regression", n=12, n_test=2,
                                         weights=False)
    LOO(n_jobs=1, verbose=True).fit(model, Xtr, ytr).get_local_influence(Xte, yte)
    assert "LOO refits" in capsys.readouterr().err


@pytest.mark.parametrize("est", [
    SubSample(n_models=0), SubSample(n_models=2.5), SubSample(subsample=1.0),
    SubSample(subsample=0.0), SubSample(subsample="0.7"), SubSample(subsample=0.01),
    SubSample(random_state=-1), SubSample(random_state="seed"),
    DShap(max_permutations=0), DShap(tol=-0.1), DShap(window=0), DShap(truncation_tol=-1),
    DShap(tol=np.nan), LOO(fit_params=[("a", 1)]), LOO(fit_params={"sample_weight": 1}),
    LOO(verbose="yes"), LOO(n_jobs=0)])
def test_bad_parameters_raise(est):
    model, Xtr, ytr, _, _, _ = _case("lightgbm", "regression", n=12, n_test=2, weights=False)
    with pytest.raises(DataValidationError):
        est.fit(model, Xtr, ytr)


def test_bad_inputs_raise():
    model, Xtr, ytr, _, Xte, yte = _case("lightgbm", "multiclass", n=20, n_test=2,
                                         weights=False)
    with pytest.raises(NotFittedError):
        LOO().get_local_influence(Xte, yte)
    exp = LOO(n_jobs=1).fit(model, Xtr, ytr)
    with pytest.raises(DataValidationError, match="features"):
        exp.get_local_influence(Xte[:, :3], yte)
    with pytest.raises(DataValidationError, match="never saw"):
        exp.get_local_influence(Xte, np.array([0, 7]))
    with pytest.raises(UnsupportedModelError, match="Booster"):
        LOO().fit(model.booster_, Xtr, ytr)
    lonely = ytr.copy()
    lonely[lonely == 2] = 1
    lonely[4] = 2  # class 2 has a single row: leaving it out loses the class
    with pytest.raises(DataValidationError, match="fewer than two"):
        LOO(n_jobs=1).fit(clone(model).fit(Xtr, lonely), Xtr, lonely)
