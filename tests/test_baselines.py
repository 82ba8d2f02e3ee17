"""TreeSim, InputSim, Target, Random and Loss (SPEC §5): references and invariants."""
import pickle

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone

import naive
from models import FOREST_FAMILIES, GBDT_FAMILIES, TASKS, trained
from treeinf import InputSim, Loss, Random, Target, TreeSim
from treeinf.exceptions import DataValidationError, InfluenceNotDefinedError, TreeInfError
from treeinf._validation import encode_target

_CACHE = {}


def _model(family, task, **kw):
    """trained(...) once per module (models are not modified by explainers)."""
    key = (family, task, tuple(sorted(kw.items())))
    if key not in _CACHE:
        _CACHE[key] = trained(family, task, **kw)
    return _CACHE[key]


def _enc(ens, y):
    return encode_target(ens, y, len(y))


def _close(got, ref, rtol=1e-10):
    scale = max(np.abs(ref).max(), 1e-300)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


# ------------------------------------------------------------------ TreeSim
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", GBDT_FAMILIES + FOREST_FAMILIES)
def test_treesim_lpw_equals_naive_sum(family, task):
    """Acceptance: TreeSim (lpw, dot) = sum 1[same leaf] count^-2 s(i, e)."""
    model, Xtr, ytr, w, Xte, yte = _model(family, task)
    exp = TreeSim().fit(model, Xtr, ytr)
    ens = exp.ensemble_
    got = exp.get_local_influence(Xte, yte)
    assert got.shape == (len(ytr), len(yte)) and got.dtype == np.float64
    ref = naive.treesim_lpw(ens, Xtr, _enc(ens, ytr), Xte, _enc(ens, yte))
    assert (ref > 0).any() and (ref < 0).any()
    _close(got, ref)
    _close(exp.get_global_influence(Xte, yte), ref.sum(axis=1), rtol=1e-9)
    # self: the similarity of a row with itself, s = +1
    _close(exp.get_self_influence(),
           np.diag(naive.treesim_lpw(ens, Xtr, _enc(ens, ytr), Xtr, _enc(ens, ytr))))


@pytest.mark.parametrize("similarity", ["dot", "cosine", "euclidean"])
@pytest.mark.parametrize("kernel", ["lpw", "lp_", "lo_", "low"])
@pytest.mark.parametrize("family,task", [("lightgbm", "multiclass"),
                                         ("xgboost", "regression"),
                                         ("sklearn_rf", "binary")])
def test_treesim_kernels_match_dense_features(family, task, kernel, similarity):
    model, Xtr, ytr, w, Xte, yte = _model(family, task)
    exp = TreeSim(kernel=kernel, similarity=similarity, eps=1e-6).fit(model, Xtr, ytr)
    ens = exp.ensemble_
    ref = naive.treesim(ens, Xtr, _enc(ens, ytr), Xte, _enc(ens, yte), kernel, similarity,
                        1e-6)
    got = exp.get_local_influence(Xte, yte)
    _close(got, ref)
    _close(exp.get_global_influence(Xte, yte), ref.sum(axis=1), rtol=1e-9)
    # training rows against themselves: identical leaf vectors give exactly 1/eps
    train = exp.get_local_influence(Xtr, ytr)
    _close(exp.get_self_influence(), np.diag(train))
    if similarity == "euclidean":
        assert np.all(np.diag(train) == 1e6)
    assert np.all(np.isfinite(train))


def test_treesim_empty_leaves():
    """Explainer fitted on part of the model's training rows: test rows can land
    in leaves without training rows (1/count taken as 0), and nothing is inf."""
    model, Xtr, ytr, w, Xte, yte = _model("lightgbm", "binary")
    for kernel in ("lpw", "low"):
        for similarity in ("dot", "cosine", "euclidean"):
            exp = TreeSim(kernel=kernel, similarity=similarity).fit(model, Xtr[:25], ytr[:25],
                                                                    check_data=False)
            ens = exp.ensemble_
            got = exp.get_local_influence(Xte, yte)
            assert np.all(np.isfinite(got))
            ref = naive.treesim(ens, Xtr[:25], _enc(ens, ytr[:25]), Xte, _enc(ens, yte),
                                kernel, similarity, 1e-8)
            _close(got, ref)
    Ltr = ens.apply(Xtr[:25]).reshape(25, -1)
    Lte = ens.apply(Xte).reshape(len(yte), -1)
    assert any(not np.isin(Lte[:, j], Ltr[:, j]).all() for j in range(ens.n_trees))


def test_sign_convention_classification():
    """Same label: positive (helpful), other label: negative, magnitude = similarity."""
    model, Xtr, ytr, w, Xte, yte = _model("lightgbm", "multiclass")
    exp = TreeSim(kernel="lp_").fit(model, Xtr, ytr)
    got = exp.get_local_influence(Xte, yte)
    shared = TreeSim(kernel="lp_").fit(model, Xtr, np.zeros_like(ytr),
                                      check_data=False).get_local_influence(
        Xte, np.zeros_like(yte))  # one label everywhere: s = +1, the plain count
    assert np.all(shared >= 0) and shared.max() > 0
    same = ytr[:, None] == yte[None, :]
    np.testing.assert_array_equal(got, np.where(same, shared, -shared))


def test_sign_convention_regression_with_ties():
    """s = +1 iff (y_i >= p_e) == (y_e >= p_e); a target equal to p counts as above."""
    model, Xtr, ytr, w, Xte, yte = _model("lightgbm", "regression")
    base = TreeSim(kernel="lp_").fit(model, Xtr, ytr)
    p = base.ensemble_.predict_raw(Xte[:1])[:, 0]
    rows = np.flatnonzero(np.abs(base.get_local_influence(Xte[:1], yte[:1])[:, 0]) > 0)[:3]
    ytr2 = ytr.astype(float).copy()
    ytr2[rows] = [p[0], np.nextafter(p[0], -np.inf), np.nextafter(p[0], np.inf)]
    exp = TreeSim(kernel="lp_").fit(model, Xtr, ytr2, check_data=False)
    below = np.nextafter(p, -np.inf)
    # y_e == p_e (above): rows with y_i >= p are +, the row just below is -
    np.testing.assert_array_equal(
        np.sign(exp.get_local_influence(Xte[:1], p)[rows, 0]), [1, -1, 1])
    # y_e just below p_e: only the row just below agrees
    np.testing.assert_array_equal(
        np.sign(exp.get_local_influence(Xte[:1], below)[rows, 0]), [-1, 1, -1])
    # the reference sign function agrees
    ref = naive.similarity_sign("regression", ytr2[rows], np.r_[p, below], np.r_[p, p])
    np.testing.assert_array_equal(ref.T, [[1, -1, 1], [-1, 1, -1]])


@pytest.mark.parametrize("family", ["lightgbm", "sklearn_rf"])
def test_treesim_regression_global_with_ties(family):
    """The sorted-prefix global path agrees with the dense sum when training
    targets equal test predictions exactly and predictions repeat."""
    model, Xtr, ytr, w, Xte, yte = _model(family, "regression")
    ens = TreeSim().fit(model, Xtr, ytr).ensemble_
    p = ens.predict_raw(Xtr)[:, 0]
    y2 = ytr.astype(float).copy()
    y2[::2] = p[::2]  # half the targets equal some test row's prediction
    Xq = np.vstack([Xtr, Xtr[:10]])  # repeated test rows: repeated predictions
    yq = np.r_[y2, p[:10]]
    for similarity in ("dot", "cosine"):
        exp = TreeSim(similarity=similarity).fit(model, Xtr, y2, check_data=False)
        local = exp.get_local_influence(Xq, yq)
        _close(exp.get_global_influence(Xq, yq), local.sum(axis=1), rtol=1e-9)
        ref = naive.treesim(ens, Xtr, y2, Xq, yq, "lpw", similarity, 1e-8)
        _close(local, ref)


# ----------------------------------------------------------------- InputSim
@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("similarity", ["euclidean", "dot", "cosine"])
@pytest.mark.parametrize("family,task", [("lightgbm", "binary"), ("sklearn_rf", "regression"),
                                         ("xgboost", "multiclass")])
def test_inputsim_matches_naive(family, task, similarity, standardize):
    model, Xtr, ytr, w, Xte, yte = _model(family, task)
    assert np.isnan(Xtr).any() and np.isnan(Xte).any()
    exp = InputSim(similarity=similarity, standardize=standardize).fit(model, Xtr, ytr)
    ens = exp.ensemble_
    ref = naive.inputsim(ens, ens.encode(Xtr), _enc(ens, ytr), ens.encode(Xte), _enc(ens, yte),
                         similarity, 1e-8, standardize)
    got = exp.get_local_influence(Xte, yte)
    assert np.all(np.isfinite(got))
    _close(got, ref)
    train = exp.get_local_influence(Xtr, ytr)
    _close(exp.get_self_influence(), np.diag(train))
    _close(exp.get_global_influence(Xte, yte), ref.sum(axis=1), rtol=1e-9)


def test_inputsim_identical_rows_nan_inf_never_inf():
    import lightgbm as lgb
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 4))
    X[:, 3] = np.nan  # a column without any value
    X[rng.random(120) < 0.2, 0] = np.nan
    X[10] = X[11]  # duplicate training rows
    y = (X[:, 1] > 0).astype(int)
    model = lgb.LGBMClassifier(n_estimators=4, num_leaves=5, min_child_samples=5,
                               verbose=-1, n_jobs=1).fit(X, y)
    Xq = np.vstack([X[:5], np.full((1, 4), np.nan), X[:1]])
    Xq[-1, 1] = np.inf
    Xq[-2, 2] = -np.inf
    yq = np.r_[y[:5], 1, y[0]]
    for similarity in ("euclidean", "dot", "cosine"):
        for standardize in (False, True):
            exp = InputSim(similarity=similarity, standardize=standardize).fit(model, X, y)
            got = exp.get_local_influence(Xq, yq)
            assert np.all(np.isfinite(got)), (similarity, standardize)
            assert np.all(np.isfinite(exp.get_self_influence()))
            assert np.all(np.isfinite(exp.get_global_influence(Xq, yq)))
            ens = exp.ensemble_
            ref = naive.inputsim(ens, ens.encode(X), y.astype(float), ens.encode(Xq),
                                 yq.astype(float), similarity, 1e-8, standardize)
            _close(got, ref)
    exp = InputSim().fit(model, X, y)
    got = exp.get_local_influence(Xq, yq)
    # identical rows (also with NaN in the same place): exactly 1/eps, same label
    assert got[0, 0] == 1e8 and got[10, 0] < 1e8
    np.testing.assert_array_equal(exp.get_local_influence(X[10:12], y[10:12])[10:12], 1e8)
    np.testing.assert_array_equal(exp.fill_values_[3], 0.0)
    np.testing.assert_allclose(exp.fill_values_[0], np.nanmedian(X[:, 0]))


# --------------------------------------------------------- Target and Random
@pytest.mark.parametrize("family,task", [("lightgbm", "binary"), ("sklearn_rf", "multiclass")])
def test_target_classification(family, task):
    model, Xtr, ytr, w, Xte, yte = _model(family, task)
    got = Target(random_state=3).fit(model, Xtr, ytr).get_local_influence(Xte, yte)
    same = ytr[:, None] == yte[None, :]
    assert np.all(got[same] > 0) and np.all(got[same] < 1)
    assert np.all(got[~same] < 0) and np.all(got[~same] > -1)
    # |value| ~ U(0, 1) (fixed seed: a deterministic check of the generator)
    assert stats.kstest(np.abs(got).ravel(), "uniform").pvalue > 1e-3
    assert stats.kstest(got[same], "uniform").pvalue > 1e-3
    assert stats.kstest(got[~same], "uniform", args=(-1, 1)).pvalue > 1e-3
    other = Target(random_state=4).fit(model, Xtr, ytr).get_local_influence(Xte, yte)
    assert abs(np.corrcoef(got[same], other[same])[0, 1]) < 0.1


@pytest.mark.parametrize("family", ["xgboost", "lightgbm_rf"])
def test_target_regression(family):
    model, Xtr, ytr, w, Xte, yte = _model(family, "regression")
    exp = Target(eps=1e-6).fit(model, Xtr, ytr)
    got = exp.get_local_influence(Xte, yte)
    ref = 1.0 / (np.abs(ytr[:, None] - yte[None, :]) + 1e-6)
    np.testing.assert_allclose(got, ref, rtol=1e-15)
    # equal targets: 1/eps, not inf
    train = exp.get_local_influence(Xtr, ytr)
    assert np.all(np.diag(train) == 1e6) and np.all(np.isfinite(train))
    np.testing.assert_array_equal(exp.get_self_influence(), np.diag(train))


def test_random_distribution_and_seed():
    model, Xtr, ytr, w, Xte, yte = _model("lightgbm", "multiclass")
    a = Random(random_state=0).fit(model, Xtr, ytr).get_local_influence(Xte, yte)
    assert stats.kstest(a.ravel(), "norm").pvalue > 1e-3
    assert abs(a.mean()) < 5 / np.sqrt(a.size) and abs(a.std() - 1) < 0.05
    # neighbouring pairs are not correlated
    assert abs(np.corrcoef(a[:-1].ravel(), a[1:].ravel())[0, 1]) < 0.05
    assert abs(np.corrcoef(a[:, :-1].ravel(), a[:, 1:].ravel())[0, 1]) < 0.05
    again = Random(random_state=0).fit(model, Xtr, ytr).get_local_influence(Xte, yte)
    np.testing.assert_array_equal(a, again)
    b = Random(random_state=1).fit(model, Xtr, ytr).get_local_influence(Xte, yte)
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05
    # None: a seed is drawn at fit and kept (pickle), a new fit draws another
    r = Random().fit(model, Xtr, ytr)
    assert isinstance(r.seed_, int)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(r)).get_local_influence(Xte, yte),
                                  r.get_local_influence(Xte, yte))
    assert clone(r).fit(model, Xtr, ytr).seed_ != r.seed_
    # a RandomState is accepted and gives a reproducible seed
    s1 = Random(random_state=np.random.RandomState(7)).fit(model, Xtr, ytr).seed_
    s2 = Random(random_state=np.random.RandomState(7)).fit(model, Xtr, ytr).seed_
    assert s1 == s2


@pytest.mark.parametrize("cls", [Random, Target])
def test_random_batching_order_and_duplicates(cls):
    """Values depend on (seed, training row, test row), not on batching, the
    order of test rows or the order of training rows."""
    model, Xtr, ytr, w, Xte, yte = _model("lightgbm", "binary")
    exp = cls(random_state=11).fit(model, Xtr, ytr)
    full = exp.get_local_influence(Xte, yte)
    parts = np.hstack([exp.get_local_influence(Xte[:7], yte[:7]),
                       exp.get_local_influence(Xte[7:], yte[7:])])
    np.testing.assert_array_equal(full, parts)
    rev = exp.get_local_influence(Xte[::-1], yte[::-1])
    np.testing.assert_array_equal(rev, full[:, ::-1])
    # the same test row twice: the same column
    twice = exp.get_local_influence(Xte[[3, 3]], yte[[3, 3]])
    np.testing.assert_array_equal(twice[:, 0], twice[:, 1])
    # duplicated training rows get different values; copies keep their order
    Xd = np.vstack([Xtr, Xtr[:2]])
    yd = np.r_[ytr, ytr[:2]]
    d = cls(random_state=11).fit(model, Xd, yd, check_data=False).get_local_influence(Xte, yte)
    np.testing.assert_array_equal(d[:len(ytr)], full)
    assert not np.array_equal(d[len(ytr):], full[:2])
    # permuted so that the second copies come first: they now are the first
    # occurrences and take the first copies' values (copies are interchangeable)
    n = len(ytr)
    perm = np.r_[n, n + 1, np.arange(n)]
    dp = cls(random_state=11).fit(model, Xd[perm], yd[perm],
                                check_data=False).get_local_influence(Xte, yte)
    expected = d[perm].copy()
    expected[[0, 1, 2, 3]] = d[[0, 1, n, n + 1]]
    np.testing.assert_array_equal(dp, expected)


# --------------------------------------------------------------------- Loss
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", GBDT_FAMILIES + FOREST_FAMILIES)
def test_loss_matches_library_predictions(family, task):
    model, Xtr, ytr, w, Xte, yte = _model(family, task)
    got = Loss().fit(model, Xtr, ytr).get_self_influence()
    assert got.shape == (len(ytr),) and got.dtype == np.float64
    if task == "regression":
        ref = 0.5 * (ytr - model.predict(Xtr)) ** 2
    else:
        proba = model.predict_proba(Xtr)
        idx = np.searchsorted(model.classes_, ytr)
        ref = -np.log(np.clip(proba[np.arange(len(ytr)), idx], 1e-5, 1 - 1e-5))
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6 * max(1.0, np.abs(ref).max()))


def test_loss_defines_only_self_influence():
    model, Xtr, ytr, w, Xte, yte = _model("lightgbm", "binary")
    exp = Loss().fit(model, Xtr, ytr)
    for call in (lambda: exp.get_local_influence(Xte, yte),
                 lambda: exp.get_global_influence(Xte, yte),
                 lambda: exp.get_top_influence(Xte, yte, k=3)):
        with pytest.raises(InfluenceNotDefinedError, match="only self-influence"):
            call()
    assert issubclass(InfluenceNotDefinedError, (TreeInfError))
    assert issubclass(InfluenceNotDefinedError, NotImplementedError)
    # weights do not enter: the row's own (unweighted) loss
    model_w, Xw, yw, ww, _, _ = _model("lightgbm", "binary", weights=True)
    a = Loss().fit(model_w, Xw, yw, sample_weight=ww).get_self_influence()
    np.testing.assert_array_equal(a, Loss().fit(model_w, Xw, yw,
                                                 check_data=False).get_self_influence())


# --------------------------------------------------------------- invariants
METHODS = {
    "treesim": lambda: TreeSim(),
    "treesim_low_cosine": lambda: TreeSim(kernel="low", similarity="cosine"),
    "treesim_lp_euclidean": lambda: TreeSim(kernel="lp_", similarity="euclidean"),
    "inputsim": lambda: InputSim(),
    "inputsim_dot_std": lambda: InputSim(similarity="dot", standardize=True),
    "target": lambda: Target(random_state=5),
    "random": lambda: Random(random_state=5),
}


@pytest.mark.parametrize("family,task", [("lightgbm", "multiclass"), ("catboost", "regression"),
                                         ("sklearn_rf", "binary"), ("lightgbm_rf", "regression")])
@pytest.mark.parametrize("method", list(METHODS))
def test_invariants(method, family, task, monkeypatch):
    import treeinf.explainers.baselines as mod
    model, Xtr, ytr, w, Xte, yte = _model(family, task, weights=True)
    exp = METHODS[method]().set_params(n_jobs=2).fit(model, Xtr, ytr, sample_weight=w)
    local = exp.get_local_influence(Xte, yte)
    assert local.shape == (len(ytr), len(yte)) and local.dtype == np.float64
    assert np.all(np.isfinite(local))

    # permuting the training rows permutes the influence rows (Random and
    # Target too: their values follow the row, not its position)
    perm = np.random.default_rng(3).permutation(len(ytr))
    exp_p = METHODS[method]().fit(model, Xtr[perm], ytr[perm], sample_weight=w[perm])
    _close(exp_p.get_local_influence(Xte, yte), local[perm], rtol=1e-12)
    _close(exp_p.get_self_influence(), exp.get_self_influence()[perm], rtol=1e-12)

    # clone: unfitted, same parameters; pickle round-trip
    c = clone(exp)
    assert c.get_params() == exp.get_params() and not hasattr(c, "ensemble_")
    restored = pickle.loads(pickle.dumps(exp))
    np.testing.assert_array_equal(restored.get_local_influence(Xte, yte), local)

    # thread count and repetition do not change anything
    one = METHODS[method]().set_params(n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    np.testing.assert_array_equal(one.get_local_influence(Xte, yte), local)
    np.testing.assert_array_equal(one.get_self_influence(), exp.get_self_influence())
    np.testing.assert_array_equal(one.get_global_influence(Xte, yte),
                                  exp.get_global_influence(Xte, yte))
    np.testing.assert_array_equal(exp.get_local_influence(Xte, yte), local)

    # self = diagonal on the training data, global = row sums
    train_local = exp.get_local_influence(Xtr, ytr)
    _close(exp.get_self_influence(), np.diag(train_local))
    glob = exp.get_global_influence(Xte, yte)
    _close(glob, local.sum(axis=1), rtol=1e-9)

    # top-k equals sorting each dense column (ties: lower index first)
    k = 7
    tops = {}
    for kind, key in (("helpful", -local), ("harmful", local)):
        idx, val = exp.get_top_influence(Xte, yte, k=k, kind=kind)
        assert idx.shape == (len(yte), k) and idx.dtype == np.int64
        order = np.argsort(key, axis=0, kind="stable")[:k].T
        np.testing.assert_array_equal(idx, order)
        np.testing.assert_array_equal(val, np.take_along_axis(local.T, order, axis=1))
        tops[kind] = (idx, val)

    # blocks of one test row in the generic paths give the same results
    monkeypatch.setattr(mod, "BLOCK_ELEMENTS", 1)
    _close(exp.get_global_influence(Xte, yte), glob, rtol=1e-12)
    for kind in tops:
        idx, val = exp.get_top_influence(Xte, yte, k=k, kind=kind)
        np.testing.assert_array_equal(idx, tops[kind][0])
        np.testing.assert_array_equal(val, tops[kind][1])


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize("est", [
    TreeSim(kernel="fp_"), TreeSim(kernel=None), TreeSim(similarity="manhattan"),
    TreeSim(eps=0.0), TreeSim(eps=-1.0), TreeSim(eps=np.nan), TreeSim(eps="small"),
    TreeSim(n_jobs=0), InputSim(similarity="lpw"), InputSim(eps=np.inf),
    InputSim(standardize="yes"), Target(random_state=-1), Target(random_state=1.5),
    Target(random_state="seed"), Target(eps=0), Random(random_state=2 ** 40),
    Random(random_state=True), Loss(n_jobs="all")])
def test_bad_parameters(est):
    model, Xtr, ytr, w, Xte, yte = _model("lightgbm", "binary")
    with pytest.raises(DataValidationError):
        est.fit(model, Xtr, ytr)


def test_not_fitted():
    from treeinf.exceptions import NotFittedError
    model, Xtr, ytr, w, Xte, yte = _model("lightgbm", "binary")
    for est in (TreeSim(), InputSim(), Target(), Random()):
        with pytest.raises(NotFittedError):
            est.get_local_influence(Xte, yte)
    with pytest.raises(NotFittedError):
        Loss().get_self_influence()


def test_dataframe_with_categories():
    """Categorical columns enter InputSim as the model's category codes; all
    methods accept frames and record the feature names."""
    import lightgbm as lgb
    from conftest import make_data
    X, y = make_data("regression", n=150, n_num=3, n_cat=2, nan_frac=0.1, seed=4)
    model = lgb.LGBMRegressor(n_estimators=5, num_leaves=5, min_child_samples=5,
                              verbose=-1, n_jobs=1).fit(X, y)
    Xq, yq = X.iloc[:6], y[:6]
    for est in (TreeSim(), InputSim(), Target(random_state=0), Random(random_state=0)):
        exp = est.fit(model, X, y)
        assert list(exp.feature_names_in_) == list(X.columns)
        got = exp.get_local_influence(Xq, yq)
        assert got.shape == (150, 6) and np.all(np.isfinite(got))
    exp = InputSim(similarity="dot").fit(model, X, y)
    ens = exp.ensemble_
    ref = naive.inputsim(ens, ens.encode(X), y, ens.encode(Xq), yq, "dot", 1e-8, False)
    _close(exp.get_local_influence(Xq, yq), ref)
    # the same rows as a frame or re-encoded give the same Random values
    r = Random(random_state=2).fit(model, X, y)
    np.testing.assert_array_equal(r.get_local_influence(Xq, yq),
                                  r.get_local_influence(X.iloc[:6].copy(), list(yq)))
