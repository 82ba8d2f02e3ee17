"""scikit-learn's estimator conventions, checked on every treeinf estimator.

``sklearn.utils.estimator_checks.check_estimator`` assumes ``fit(X, y)``;
explainers are fitted with ``fit(model, X, y)``. So this file runs the
checks of scikit-learn that do not fit (constructor, get/set_params, clone,
repr, tags) as they are, and hand-written equivalents of the ones that fit:
no mutation of the inputs or of the parameters, fit idempotence, refitting,
pickling, the unfitted error, ``n_features_in_``; plus the way parameters
are validated (numpy integers accepted like Python ones, floats refused for
integer parameters, a ``RandomState`` wherever there is a ``random_state``).
Models are tiny (30 rows, 3 trees) so the whole file stays fast.
"""
import copy
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn.exceptions
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.utils import estimator_checks as ec
from sklearn.utils._param_validation import InvalidParameterError as SklearnParamError
from sklearn.utils.validation import check_is_fitted

import treeinf
from models import make_model
from conftest import make_data
from treeinf.exceptions import DataValidationError, InvalidParameterError, NotFittedError

#: every public estimator, small enough to fit in well under a second
ESTIMATORS = {
    "BoostIn": lambda: treeinf.BoostIn(),
    "LeafInfluence": lambda: treeinf.LeafInfluence(),
    "LeafRefit": lambda: treeinf.LeafRefit(),
    "TREX": lambda: treeinf.TREX(),
    "TreeSim": lambda: treeinf.TreeSim(),
    "InputSim": lambda: treeinf.InputSim(),
    "Target": lambda: treeinf.Target(random_state=0),
    "Random": lambda: treeinf.Random(random_state=0),
    "Loss": lambda: treeinf.Loss(),
    "LOO": lambda: treeinf.LOO(n_jobs=1),
    "SubSample": lambda: treeinf.SubSample(n_models=3, random_state=0, n_jobs=1),
    "DShap": lambda: treeinf.DShap(max_permutations=2, truncation_tol=0.5, random_state=0,
                                   n_jobs=1),
}
NAMES = list(ESTIMATORS)
RANDOM = {"Target", "Random", "SubSample", "DShap"}

#: scikit-learn's own checks that do not call fit
SKLEARN_CHECKS = [ec.check_parameters_default_constructible, ec.check_no_attributes_set_in_init,
                  ec.check_get_params_invariance, ec.check_set_params,
                  ec.check_estimator_repr, ec.check_estimator_cloneable,
                  ec.check_do_not_raise_errors_in_init_or_set_params,
                  ec.check_valid_tag_types, ec.check_estimator_tags_renamed,
                  ec.check_mixin_order]


def test_every_public_estimator_is_checked():
    assert sorted(NAMES) == sorted(treeinf.explainers.__all__)


@pytest.fixture(scope="module")
def data():
    """A tiny LightGBM classifier (Newton leaves, so every method applies)."""
    X, y = make_data("binary", n=40, n_num=4, nan_frac=0.1, seed=3)
    X = X.to_numpy()
    Xtr, ytr, Xte, yte = X[:30], y[:30], X[30:], y[30:]
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=30)
    model = make_model("lightgbm", "binary", n_estimators=3,
                       min_child_weight=1e-12).fit(Xtr, ytr, sample_weight=w)
    return model, Xtr, ytr, w, Xte, yte


def _query(est, Xte, yte):
    if isinstance(est, treeinf.Loss):
        return est.get_self_influence()
    return est.get_local_influence(Xte, yte)


@pytest.mark.parametrize("check", SKLEARN_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", NAMES)
def test_sklearn_check(name, check):
    check(name, ESTIMATORS[name]())


@pytest.mark.parametrize("name", NAMES)
def test_tags(name):
    est = ESTIMATORS[name]()
    tags = est.__sklearn_tags__()
    assert not is_classifier(est) and not is_regressor(est)
    assert tags.estimator_type is None and tags.requires_fit
    assert tags.target_tags.required             # fit(model, X, y) needs y
    assert tags.input_tags.allow_nan and tags.input_tags.categorical
    assert tags.non_deterministic is False       # seeded where there is a seed
    if name in RANDOM:
        assert est.set_params(random_state=None).__sklearn_tags__().non_deterministic


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_error_is_sklearns(name):
    est = ESTIMATORS[name]()
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(est)
    with pytest.raises(sklearn.exceptions.NotFittedError, match="not fitted yet"):
        est.get_self_influence()
    assert issubclass(NotFittedError, sklearn.exceptions.NotFittedError)
    assert issubclass(NotFittedError, (AttributeError)) and issubclass(NotFittedError, ValueError)


@pytest.mark.parametrize("name", NAMES)
def test_fit_conventions(name, data):
    """Inputs and parameters untouched, fit returns self, refits reproduce."""
    model, Xtr, ytr, w, Xte, yte = data
    inputs = (Xtr, ytr, w, Xte, yte)
    before = [a.copy() for a in inputs]
    model_hash = joblib.hash(model)
    est = ESTIMATORS[name]()
    params = copy.deepcopy(est.get_params())
    params_hash = joblib.hash(est.get_params())
    assert est.fit(model, Xtr, ytr, sample_weight=w) is est
    check_is_fitted(est)
    assert est.n_features_in_ == Xtr.shape[1]
    # fit sets no public attribute but fitted ones (trailing underscore)
    public = [k for k in vars(est) if not k.startswith("_")]
    assert all(k in params or k.endswith("_") for k in public), public
    assert joblib.hash(est.get_params()) == params_hash
    first = _query(est, Xte, yte)
    for a, b in zip(inputs, before):
        np.testing.assert_array_equal(a, b)
    assert joblib.hash(model) == model_hash
    # idempotent: refitting the same instance gives the same influences
    again = _query(est.fit(model, Xtr, ytr, sample_weight=w), Xte, yte)
    np.testing.assert_array_equal(again, first)
    # a clone of a fitted estimator is unfitted, with equal parameters
    c = clone(est)
    assert joblib.hash(c.get_params()) == params_hash
    with pytest.raises(NotFittedError):
        c.get_self_influence()
    # pickling keeps the fitted state
    np.testing.assert_array_equal(_query(pickle.loads(pickle.dumps(est)), Xte, yte), first)
    assert est.get_params().keys() == params.keys()


def test_dataframe_inputs_are_not_modified(data):
    model, Xtr, ytr, w, Xte, yte = data
    X, y = make_data("binary", n=40, n_num=3, n_cat=1, seed=5)
    X_keep, y_keep = X.copy(), y.copy()
    m = make_model("lightgbm", "binary", n_estimators=3).fit(X, y)
    est = treeinf.BoostIn().fit(m, X, y)
    est.get_local_influence(X, y)
    pd.testing.assert_frame_equal(X, X_keep)
    np.testing.assert_array_equal(y, y_keep)


@pytest.mark.parametrize("name", NAMES)
def test_verbose(name, data, capsys):
    """Every estimator takes verbose; it changes what is printed, not the result."""
    model, Xtr, ytr, w, Xte, yte = data
    est = ESTIMATORS[name]()
    assert est.get_params()["verbose"] is False
    quiet = _query(est.fit(model, Xtr, ytr, sample_weight=w), Xte, yte)
    capsys.readouterr()
    loud = _query(est.set_params(verbose=True).fit(model, Xtr, ytr, sample_weight=w),
                  Xte, yte)
    np.testing.assert_array_equal(loud, quiet)
    err = capsys.readouterr().err
    if name in ("BoostIn", "TREX", "TreeSim", "InputSim", "Target", "Random"):
        assert "test rows: 100%" in err and f"{len(yte)}/{len(yte)}" in err, err
    if name == "TREX":
        assert "TREX surrogate" in err
    with pytest.raises(InvalidParameterError, match="verbose must be True or False"):
        est.set_params(verbose="yes").fit(model, Xtr, ytr)


@pytest.mark.parametrize("name", NAMES)
def test_integer_parameters_like_sklearn(name, data):
    """numpy integers are integers (n_jobs, k); floats are refused for both."""
    model, Xtr, ytr, w, Xte, yte = data
    est = ESTIMATORS[name]().set_params(n_jobs=np.int64(1))
    est.fit(model, Xtr, ytr, sample_weight=w)
    with pytest.raises(DataValidationError, match="n_jobs"):
        ESTIMATORS[name]().set_params(n_jobs=1.0).fit(model, Xtr, ytr)
    if name == "Loss":
        return
    a = est.get_top_influence(Xte, yte, k=3)
    b = est.get_top_influence(Xte, yte, k=np.int64(3))
    np.testing.assert_array_equal(a[0], b[0])
    for bad in (2.0, np.float64(3.0), True, 0):
        with pytest.raises(InvalidParameterError, match="k must be a positive integer"):
            est.get_top_influence(Xte, yte, k=bad)


def test_float_for_an_integer_parameter_says_how_to_fix(data):
    model, Xtr, ytr, *_ = data
    with pytest.raises(InvalidParameterError, match=r"got 3\.0 \(a float\); pass the "
                                                    r"integer 3"):
        treeinf.TREX(max_iter=3.0).fit(model, Xtr, ytr)
    # catchable as scikit-learn's error and as treeinf's
    with pytest.raises(SklearnParamError):
        treeinf.SubSample(n_models=0).fit(model, Xtr, ytr)
    with pytest.raises(DataValidationError, match="update_set.*-1 \\(all rows\\)"):
        treeinf.LeafInfluence(update_set=-2).fit(model, Xtr, ytr)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_state_accepts_a_randomstate(name, data):
    model, Xtr, ytr, w, Xte, yte = data
    ref = _query(ESTIMATORS[name]().set_params(random_state=7).fit(model, Xtr, ytr, sample_weight=w), Xte, yte)
    a = _query(ESTIMATORS[name]().set_params(random_state=np.random.RandomState(7))
               .fit(model, Xtr, ytr, sample_weight=w), Xte, yte)
    b = _query(ESTIMATORS[name]().set_params(random_state=np.random.RandomState(7))
               .fit(model, Xtr, ytr, sample_weight=w), Xte, yte)
    np.testing.assert_array_equal(a, b)          # same state, same influences
    assert a.shape == ref.shape
    for bad in (-1, 2 ** 32, 1.5, "0", np.random.default_rng(0)):
        with pytest.raises(InvalidParameterError, match="random_state"):
            ESTIMATORS[name]().set_params(random_state=bad).fit(model, Xtr, ytr)


def test_sample_weight_validation(data):
    model, Xtr, ytr, w, *_ = data
    est = treeinf.BoostIn()
    for bad, what in ((np.full(30, -1.0), "non-negative"), (np.zeros(30), "not all zero"),
                      (np.where(np.arange(30) == 3, np.nan, 1.0), "finite"),
                      (np.array(["a"] * 30), "numeric")):
        with pytest.raises(DataValidationError, match=what):
            est.fit(model, Xtr, ytr, sample_weight=bad)
    # integer weights and lists are fine and give the float result
    ints = np.ones(30, dtype=np.int64)
    np.testing.assert_array_equal(
        est.fit(model, Xtr, ytr, sample_weight=list(ints), check_data=False).get_self_influence(),
        est.fit(model, Xtr, ytr, sample_weight=ints.astype(float),
                check_data=False).get_self_influence())


def test_compile_notice_only_at_a_verbose_first_fit(monkeypatch, capsys, data):
    from treeinf.explainers import _progress
    model, Xtr, ytr, w, Xte, yte = data
    treeinf.BoostIn().fit(model, Xtr, ytr, sample_weight=w).get_local_influence(Xte, yte)
    scan = _progress._uncached_kernels
    monkeypatch.setattr(_progress, "_uncached_kernels", lambda: ["k1", "k2"])
    monkeypatch.setattr(_progress, "_first_fit_done", False)
    _progress.compile_notice(True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compiling 2 numba kernels" in err
    _progress.compile_notice(True)                 # once per process
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress, "_first_fit_done", False)
    _progress.compile_notice(False)                # a quiet first fit: never
    _progress.compile_notice(True)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress, "_first_fit_done", False)
    monkeypatch.setattr(_progress, "_uncached_kernels", lambda: [])
    _progress.compile_notice(True)                 # everything cached: nothing to say
    assert capsys.readouterr().err == ""
    # the real scan does not list kernels this process has used (BoostIn's)
    assert "coleaf_tiled_kernel" not in scan()
