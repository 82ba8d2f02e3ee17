"""TREX against plain-numpy references, brute-force solvers and invariants."""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import naive
from models import trained
from treeinf import TREX
from treeinf._validation import encode_target
from treeinf.exceptions import DataValidationError

KERNELS = ["to_", "lp_", "lpw", "lo_", "low", "fp_", "fpw", "fo_", "fow"]
# a boosted model and a forest for every objective
MODELS = [("lightgbm", "regression"), ("lightgbm", "binary"), ("lightgbm", "multiclass"),
          ("sklearn_rf", "regression"), ("sklearn_rf", "binary"), ("sklearn_rf", "multiclass")]


def _setup(family, task, weights=True, **kw):
    model, Xtr, ytr, w, Xte, yte = trained(family, task, weights=weights, **kw)
    if w is None:
        w = np.ones(len(ytr))
    return model, Xtr, ytr, w, Xte, yte


def _enc(exp, y):
    return encode_target(exp.ensemble_, y, len(y))


def _effective_weights(exp, ytr, w):
    cw = exp.ensemble_.params.get("class_weight")
    if cw is None or exp.ensemble_.objective == "regression":
        return w
    return w * np.asarray(cw)[_enc(exp, ytr).astype(int)]


@pytest.mark.parametrize("family,task", MODELS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_matches_naive_and_representer_identity(kernel, family, task):
    model, Xtr, ytr, w, Xte, yte = _setup(family, task)
    exp = TREX(kernel=kernel).fit(model, Xtr, ytr, sample_weight=w)
    ens = exp.ensemble_
    obj = ens.objective
    n, K = len(ytr), ens.n_outputs

    # kernel features: sparse CSR equal to the dense reference
    Ptr = naive.trex_features(ens, Xtr, Xtr, kernel)
    Pte = naive.trex_features(ens, Xtr, Xte, kernel)
    for X, P in ((Xtr, Ptr), (Xte, Pte)):
        got = exp.transform(X)
        assert sp.isspmatrix_csr(got) and got.dtype == np.float64
        assert got.shape == (len(X), exp.n_features_kernel_) == P.shape
        np.testing.assert_allclose(got.toarray(), P, rtol=1e-12, atol=0)
    if kernel[0] != "f":  # one entry per tree
        assert exp.transform(Xte).nnz == len(yte) * ens.n_trees

    # the solver reached a stationary point of the weighted objective
    W = exp.coef_.reshape(-1, K)
    y_enc = _enc(exp, ytr)
    w_eff = _effective_weights(exp, ytr, w)
    grad = naive.trex_gradient(obj, Ptr, W, y_enc, w_eff, exp.lmbd)
    bound = 2 * exp.lmbd * exp.tol * max(1.0, np.abs(W).max())
    assert np.abs(grad).max() <= bound * (1 + 1e-6)

    # alpha = (act(Phi W*) - y~) w / (-2 lmbd N)
    Y = y_enc[:, None] if obj != "multiclass" else np.eye(K)[y_enc.astype(int)]
    alpha_ref = w_eff[:, None] * (naive.trex_activation(obj, Ptr @ W) - Y) / (-2 * exp.lmbd * n)
    assert exp.alpha_.shape == ((n,) if K == 1 else (n, K))
    np.testing.assert_allclose(exp.alpha_.reshape(n, K), alpha_ref, rtol=1e-9,
                               atol=1e-12 * np.abs(alpha_ref).max())

    # representer decomposition: sum_j alpha_j <Phi_j, Phi(x)> = Phi(x) W*
    alpha = exp.alpha_.reshape(n, K)
    for P in (Ptr, Pte):
        np.testing.assert_allclose((P @ Ptr.T) @ alpha, P @ W, rtol=0, atol=1e-6)

    # local, self and global influence against the dense formula
    local = exp.get_local_influence(Xte, yte)
    assert local.shape == (n, len(yte)) and local.dtype == np.float64
    ref = naive.trex_local(obj, Ptr, alpha, Pte, _enc(exp, yte))
    scale = np.abs(ref).max()
    assert scale > 0
    np.testing.assert_allclose(local, ref, rtol=1e-8, atol=1e-10 * scale)
    self_ref = np.diag(naive.trex_local(obj, Ptr, alpha, Ptr, y_enc))
    np.testing.assert_allclose(exp.get_self_influence(), self_ref, rtol=1e-8,
                               atol=1e-10 * np.abs(self_ref).max())
    np.testing.assert_allclose(exp.get_global_influence(Xte, yte), ref.sum(axis=1),
                               rtol=1e-8, atol=1e-10 * scale)


@pytest.mark.parametrize("family,task", [("xgboost", "binary"), ("catboost", "multiclass"),
                                         ("sklearn_gb", "regression"),
                                         ("sklearn_hgb", "binary"), ("lightgbm_rf", "binary")])
def test_features_other_libraries(family, task):
    model, Xtr, ytr, w, Xte, yte = _setup(family, task, weights=False)
    for kernel in KERNELS:
        exp = TREX(kernel=kernel, tol=1e-4).fit(model, Xtr, ytr)
        np.testing.assert_allclose(exp.transform(Xte).toarray(),
                                   naive.trex_features(exp.ensemble_, Xtr, Xte, kernel),
                                   rtol=1e-12, atol=0)


@pytest.mark.parametrize("kernel", ["lpw", "fo_", "to_"])
def test_cosine_similarity(kernel):
    model, Xtr, ytr, w, Xte, yte = _setup("lightgbm", "binary")
    exp = TREX(kernel=kernel, similarity="cosine").fit(model, Xtr, ytr, sample_weight=w)
    Ptr = naive.trex_features(exp.ensemble_, Xtr, Xtr, kernel, "cosine")
    Pte = naive.trex_features(exp.ensemble_, Xtr, Xte, kernel, "cosine")
    np.testing.assert_allclose(exp.transform(Xte).toarray(), Pte, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(Pte, axis=1), 1.0)
    ref = naive.trex_local("binary", Ptr, exp.alpha_, Pte, yte.astype(float))
    np.testing.assert_allclose(exp.get_local_influence(Xte, yte), ref, rtol=1e-8,
                               atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("target", ["actual", "predicted"])
@pytest.mark.parametrize("family,task", [("lightgbm", "regression"), ("lightgbm", "binary"),
                                         ("lightgbm", "multiclass"), ("sklearn_rf", "binary"),
                                         ("sklearn_rf", "regression")])
def test_solver_matches_sklearn(family, task, target):
    """W* equals sklearn's Ridge / LogisticRegression on the dense features:
    (1/N) sum w l + lmbd ||W||^2 is Ridge(alpha=2 N lmbd) with l = (y-z)^2/2
    and LogisticRegression(C=1/(2 N lmbd)), both without intercept. Targets
    for 'predicted' come from the library's own predict()."""
    from sklearn.linear_model import LogisticRegression, Ridge
    model, Xtr, ytr, w, Xte, yte = _setup(family, task)
    lmbd = 0.01
    exp = TREX(kernel="lp_", lmbd=lmbd, target=target).fit(model, Xtr, ytr, sample_weight=w)
    Phi = exp.transform(Xtr).toarray()
    n = len(ytr)
    y_fit = ytr if target == "actual" else model.predict(Xtr)
    if task == "regression":
        ref = Ridge(alpha=2 * n * lmbd, fit_intercept=False, solver="cholesky")
        ref.fit(Phi, y_fit, sample_weight=w)
        np.testing.assert_allclose(exp.coef_, ref.coef_, rtol=1e-6,
                                   atol=1e-8 * np.abs(ref.coef_).max())
        return
    ref = LogisticRegression(C=1.0 / (2 * n * lmbd), fit_intercept=False, tol=1e-12,
                             max_iter=100_000)
    ref.fit(Phi, y_fit, sample_weight=w)
    expected = ref.coef_[0] if task == "binary" else ref.coef_.T
    np.testing.assert_allclose(exp.coef_, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("family,task", [("lightgbm", "regression"), ("lightgbm", "binary"),
                                         ("lightgbm", "multiclass"), ("sklearn_rf", "binary"),
                                         ("sklearn_rf", "multiclass")])
def test_fidelity_is_correlation_with_library_output(family, task):
    model, Xtr, ytr, w, Xte, yte = _setup(family, task)
    exp = TREX(kernel="lo_").fit(model, Xtr, ytr, sample_weight=w)
    Phi = exp.transform(Xtr).toarray()
    surrogate = naive.trex_activation(exp.ensemble_.objective,
                                      Phi @ exp.coef_.reshape(Phi.shape[1], -1))
    if task == "regression":
        out = model.predict(Xtr)
    elif task == "binary":
        out = model.predict_proba(Xtr)[:, 1]
    else:
        out = model.predict_proba(Xtr)
    expected = np.corrcoef(surrogate.ravel(), out.ravel())[0, 1]
    assert np.isclose(exp.surrogate_fidelity_, expected, rtol=1e-6)
    assert exp.surrogate_fidelity_ > 0.5


@pytest.mark.parametrize("family,task", MODELS)
def test_sign_convention(family, task):
    """Removing a row's own representer term moves its output away from its
    label: with a convex loss l(s + d) - l(s) >= <grad, d> = c ||act(s) -
    y||^2 >= 0, so self-influence is non-negative and positive for rows that
    are not fitted exactly (= helpful)."""
    model, Xtr, ytr, w, Xte, yte = _setup(family, task)
    exp = TREX(kernel="lp_").fit(model, Xtr, ytr, sample_weight=w)
    s = exp.get_self_influence()
    assert s.shape == (len(ytr),) and s.dtype == np.float64
    assert np.all(s >= 0) and np.mean(s > 0) > 0.9
    # a training row's label flipped on a test copy of it: its own term now
    # pulls the output the wrong way, so it is harmful to that copy
    if task == "binary":
        flipped = exp.get_local_influence(Xtr[:40], 1 - ytr[:40])
        own = flipped[np.arange(40), np.arange(40)]
        assert np.all(own <= 0) and np.mean(own < 0) > 0.9


def test_invariants():
    model, Xtr, ytr, w, Xte, yte = _setup("lightgbm", "multiclass")
    exp = TREX(kernel="lpw", n_jobs=2).fit(model, Xtr, ytr, sample_weight=w)
    local = exp.get_local_influence(Xte, yte)
    assert exp.coef_.shape == (exp.n_features_kernel_, 3) and exp.alpha_.shape == (len(ytr), 3)
    assert isinstance(exp.n_iter_, int) and exp.n_iter_ >= 1

    # thread count does not change anything
    one = TREX(kernel="lpw", n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    np.testing.assert_array_equal(one.coef_, exp.coef_)
    np.testing.assert_array_equal(one.get_local_influence(Xte, yte), local)
    np.testing.assert_array_equal(one.get_self_influence(), exp.get_self_influence())
    np.testing.assert_array_equal(one.get_global_influence(Xte, yte),
                                  exp.get_global_influence(Xte, yte))

    # clone gives an unfitted copy with the same parameters; pickle round-trip
    c = clone(exp)
    assert c.get_params() == exp.get_params() and not hasattr(c, "coef_")
    restored = pickle.loads(pickle.dumps(exp))
    np.testing.assert_array_equal(restored.get_local_influence(Xte, yte), local)
    # changing parameters after fit changes nothing until the next fit
    restored.set_params(kernel="fp_", similarity="cosine", lmbd=1.0)
    np.testing.assert_array_equal(restored.get_local_influence(Xte, yte), local)
    np.testing.assert_array_equal(restored.get_self_influence(), exp.get_self_influence())

    # permuting the training rows permutes alpha and the influence rows
    perm = np.random.default_rng(3).permutation(len(ytr))
    exp_p = TREX(kernel="lpw").fit(model, Xtr[perm], ytr[perm], sample_weight=w[perm])
    scale = np.abs(local).max()
    np.testing.assert_allclose(exp_p.get_local_influence(Xte, yte), local[perm],
                               rtol=1e-6, atol=1e-8 * scale)

    # self = diagonal on the training data, global = row sums, top-k = sorting
    train_local = exp.get_local_influence(Xtr, ytr)
    np.testing.assert_allclose(exp.get_self_influence(), np.diag(train_local),
                               rtol=1e-10, atol=1e-14)
    idx, val = exp.get_top_influence(Xte, yte, k=5)
    order = np.argsort(-local, axis=0, kind="stable")[:5].T
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(val, np.take_along_axis(local.T, order, axis=1))


def test_global_in_blocks(monkeypatch):
    import treeinf.explainers.trex as mod
    model, Xtr, ytr, w, Xte, yte = _setup("lightgbm", "binary")
    exp = TREX(kernel="fpw").fit(model, Xtr, ytr, sample_weight=w)
    whole = exp.get_global_influence(Xte, yte)
    monkeypatch.setattr(mod, "_GLOBAL_BLOCK_BYTES", 8 * len(ytr) * 3)  # 3 rows a block
    blocked = exp.get_global_influence(Xte, yte)
    np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(blocked, exp.get_local_influence(Xte, yte).sum(axis=1),
                               rtol=1e-12, atol=1e-15)


def test_predicted_target_uses_model_predictions():
    """target='predicted' equals target='actual' fitted to model.predict(X)."""
    for family in ("lightgbm", "sklearn_rf"):
        model, Xtr, ytr, w, Xte, yte = _setup(family, "multiclass")
        pred = TREX(target="predicted").fit(model, Xtr, ytr, sample_weight=w)
        act = TREX().fit(model, Xtr, model.predict(Xtr), sample_weight=w, check_data=False)
        np.testing.assert_allclose(pred.coef_, act.coef_, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("params", [dict(kernel="lpx"), dict(kernel=None), dict(target="true"),
                                    dict(similarity="euclidean"), dict(lmbd=0.0),
                                    dict(lmbd=-1.0), dict(lmbd=np.nan), dict(lmbd="0.1"),
                                    dict(tol=0.0), dict(max_iter=0), dict(max_iter=2.5),
                                    dict(n_jobs=0)])
def test_bad_parameters(params):
    model, Xtr, ytr, w, Xte, yte = _setup("lightgbm", "binary")
    with pytest.raises(DataValidationError):
        TREX(**params).fit(model, Xtr, ytr)


def test_not_converged_warns():
    model, Xtr, ytr, w, Xte, yte = _setup("lightgbm", "binary")
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        TREX(kernel="lp_", tol=1e-30, max_iter=3).fit(model, Xtr, ytr, sample_weight=w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TREX(kernel="lp_").fit(model, Xtr, ytr, sample_weight=w)
