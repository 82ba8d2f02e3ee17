"""One contract for every estimator in treeinf x every model family it supports.

Each estimator is registered once in ESTIMATORS with what it supports; the
tests below check the shared API on all of them: shapes and dtypes,
permutation equivariance, clone, pickle, determinism, n_jobs invariance,
self/global/top-k consistent with local, bad-input errors, and a clear error
for model kinds the method does not support.
"""
import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest
from sklearn.base import clone

import treeinf
from models import make_model, trained
from treeinf.exceptions import (DataValidationError, InfluenceNotDefinedError,
                                NotFittedError, TreeInfError, UnsupportedModelError)


@dataclass
class Spec:
    name: str
    make: object                    # () -> unfitted estimator
    forests: bool = True            # supports random forests
    exact_leaves: bool = False      # needs Newton-step leaves (train accordingly)
    permutation: bool = True        # permuting training rows permutes influence rows
    self_influence: bool = True
    local: bool = True
    n: int = 80                     # training rows in the test models
    # permuted rows change the order of the solver's sums: TREX's surrogate is
    # solved to tol=1e-8 relative, so its influences agree to about that
    perm_rtol: float = 1e-8
    families: list = field(default_factory=lambda: ["lightgbm", "xgboost", "catboost",
                                                    "sklearn_gb", "sklearn_hgb"])


EXACT = {
    "lightgbm": dict(min_child_weight=1e-12),
    "xgboost": dict(min_child_weight=0.0, max_delta_step=0),
    "catboost": dict(leaf_estimation_method="Newton", leaf_estimation_iterations=1,
                     boosting_type="Plain", bootstrap_type="No"),
    "sklearn_gb": {}, "sklearn_hgb": {},
}
ATOL = {"xgboost": 1e-4, "sklearn_hgb": 1e-4}

ESTIMATORS = [
    Spec("BoostIn", lambda: treeinf.BoostIn(), forests=False),
    Spec("LeafInfluence", lambda: treeinf.LeafInfluence(), forests=False, exact_leaves=True),
    Spec("LeafInfluence-top2", lambda: treeinf.LeafInfluence(update_set=2), forests=False,
         exact_leaves=True),
    Spec("LeafRefit", lambda: treeinf.LeafRefit(), forests=False, exact_leaves=True),
]


RETRAIN_FAMILIES = ["lightgbm", "sklearn_gb"]  # retraining is slow: two families here
ESTIMATORS += [
    Spec("TREX", lambda: treeinf.TREX(), perm_rtol=1e-6),
    Spec("TREX-fp_", lambda: treeinf.TREX(kernel="fp_"), perm_rtol=1e-6),
    Spec("TreeSim", lambda: treeinf.TreeSim()),
    Spec("InputSim", lambda: treeinf.InputSim()),
    Spec("Target", lambda: treeinf.Target(random_state=0)),
    Spec("Random", lambda: treeinf.Random(random_state=0)),
    Spec("Loss", lambda: treeinf.Loss(), local=False),
    # retrained clones see the rows in another order, so no permutation check
    Spec("LOO", lambda: treeinf.LOO(), permutation=False, families=RETRAIN_FAMILIES, n=30),
    Spec("SubSample", lambda: treeinf.SubSample(n_models=8, random_state=0),
         permutation=False, families=RETRAIN_FAMILIES, n=30),
    Spec("DShap", lambda: treeinf.DShap(max_permutations=3, random_state=0),
         permutation=False, families=RETRAIN_FAMILIES, n=30),
]

IDS = [s.name for s in ESTIMATORS]


def _model(spec, family, task, n_test=10):
    _, Xtr, ytr, w, Xte, yte = trained(family, task, n=spec.n, n_test=n_test, weights=True)
    kw = EXACT[family] if spec.exact_leaves else {}
    model = make_model(family, task, n_estimators=4, **kw).fit(Xtr, ytr, sample_weight=w)
    return model, Xtr, ytr, w, Xte, yte


def _fit(spec, family, model, Xtr, ytr, w, **params):
    est = spec.make()
    if spec.exact_leaves:
        est.set_params(atol=ATOL.get(family, 1e-5))
    est.set_params(**params)
    return est.fit(model, Xtr, ytr, sample_weight=w)


CASES = [(s, f) for s in ESTIMATORS for f in s.families]


@pytest.mark.parametrize("spec,family", CASES, ids=[f"{s.name}-{f}" for s, f in CASES])
def test_contract(spec, family):
    task = "binary" if family != "lightgbm" else "multiclass"
    model, Xtr, ytr, w, Xte, yte = _model(spec, family, task)
    est = _fit(spec, family, model, Xtr, ytr, w, n_jobs=2)
    n, m = len(ytr), len(yte)
    if not spec.local:  # a self-influence-only method says so for the rest
        for call in (lambda: est.get_local_influence(Xte, yte),
                     lambda: est.get_global_influence(Xte, yte),
                     lambda: est.get_top_influence(Xte, yte, k=2)):
            with pytest.raises(InfluenceNotDefinedError, match="self"):
                call()
        self_inf = est.get_self_influence()
        assert self_inf.shape == (n,) and np.all(np.isfinite(self_inf))
        np.testing.assert_array_equal(
            _fit(spec, family, model, Xtr, ytr, w, n_jobs=1).get_self_influence(), self_inf)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).get_self_influence(),
                                      self_inf)
        return
    local = est.get_local_influence(Xte, yte)
    assert local.shape == (n, m) and local.dtype == np.float64
    assert np.all(np.isfinite(local))
    # determinism and n_jobs invariance
    again = _fit(spec, family, model, Xtr, ytr, w, n_jobs=1)
    np.testing.assert_array_equal(again.get_local_influence(Xte, yte), local)
    # clone and pickle
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, "ensemble_")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).get_local_influence(Xte, yte),
                                  local)
    scale = max(np.abs(local).max(), 1e-300)
    if spec.permutation:
        perm = np.random.default_rng(0).permutation(n)
        p = _fit(spec, family, model, Xtr[perm], ytr[perm], w[perm])
        np.testing.assert_allclose(p.get_local_influence(Xte, yte), local[perm],
                                   rtol=spec.perm_rtol, atol=1e-11 * scale)
    # global = row sums, top-k = sorted columns, self = diagonal
    np.testing.assert_allclose(est.get_global_influence(Xte, yte), local.sum(axis=1),
                               rtol=1e-9, atol=1e-11 * scale)
    idx, val = est.get_top_influence(Xte, yte, k=3, kind="harmful")
    np.testing.assert_array_equal(idx, np.argsort(local, axis=0, kind="stable")[:3].T)
    np.testing.assert_array_equal(val, np.take_along_axis(local.T, idx, axis=1))
    if spec.self_influence:
        self_inf = est.get_self_influence()
        assert self_inf.shape == (n,) and self_inf.dtype == np.float64
        np.testing.assert_allclose(self_inf, np.diag(est.get_local_influence(Xtr, ytr)),
                                   rtol=1e-9, atol=1e-11 * scale)


@pytest.mark.parametrize("spec", ESTIMATORS, ids=IDS)
def test_bad_input(spec):
    model, Xtr, ytr, w, Xte, yte = _model(spec, "lightgbm", "binary")
    est = spec.make()
    with pytest.raises(NotFittedError, match="not fitted"):
        est.get_self_influence()
    est = _fit(spec, "lightgbm", model, Xtr, ytr, w)
    if not spec.local:
        est = treeinf.BoostIn().fit(model, Xtr, ytr, sample_weight=w)  # input checks are shared
    with pytest.raises(DataValidationError, match="features"):
        est.get_local_influence(Xte[:, :3], yte)
    with pytest.raises(DataValidationError, match="2-D"):
        est.get_local_influence(Xte[0], yte[:1])
    with pytest.raises(DataValidationError, match="entries but X has"):
        est.get_local_influence(Xte, yte[:2])
    with pytest.raises(DataValidationError, match="never saw"):
        est.get_local_influence(Xte, np.full(len(yte), 5))
    with pytest.raises(DataValidationError, match="entries but X has"):
        spec.make().fit(model, Xtr, ytr[:-1])
    with pytest.raises(TreeInfError):
        spec.make().fit(object(), Xtr, ytr)


FOREST_SPECS = [s for s in ESTIMATORS]


@pytest.mark.parametrize("spec", FOREST_SPECS, ids=[s.name for s in FOREST_SPECS])
def test_forests(spec):
    from sklearn.ensemble import RandomForestClassifier
    _, Xtr, ytr, w, Xte, yte = trained("sklearn_gb", "binary", n=80, n_test=10)
    forest = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(Xtr, ytr)
    if not spec.forests:
        with pytest.raises(UnsupportedModelError, match="forest"):
            spec.make().fit(forest, Xtr, ytr)
        return
    est = spec.make().fit(forest, Xtr, ytr)
    if not spec.local:
        assert np.all(np.isfinite(est.get_self_influence()))
        return
    local = est.get_local_influence(Xte, yte)
    assert local.shape == (len(ytr), len(yte)) and np.all(np.isfinite(local))


def test_version_and_packaging_files(capsys):
    """`treeinf --version`, and the files a wheel ships besides the code."""
    import tomllib
    from pathlib import Path
    from treeinf.cli import main
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"treeinf {treeinf.__version__}"
    root = Path(__file__).resolve().parents[1]
    build = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]
    assert build["build-backend"] == "setuptools.build_meta"
    assert "MIT License" in (root / "LICENSE").read_text()
    assert (root / "treeinf" / "py.typed").is_file()
    setup = (root / "setup.py").read_text()
    assert '"py.typed"' in setup and 'license="MIT"' in setup
