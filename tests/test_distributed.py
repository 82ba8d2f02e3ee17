"""DaskBoostIn on a 2-worker LocalCluster equals the in-memory BoostIn.

The reference is :class:`treeinf.BoostIn` fitted in memory on the
concatenated partitions (itself tested against the plain-numpy reference in
``test_boostin.py``); the only difference allowed is the order in which the
per-leaf sums are added (~1e-16 relative).
"""
import concurrent.futures
import os
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from conftest import make_data
from models import make_model, trained
from treeinf import BoostIn
from treeinf.exceptions import (DataValidationError, NotFittedError, PersistenceError,
                                TrainingDataMismatchError, UnsupportedModelError)

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

from treeinf.distributed import DaskBoostIn, merge_top  # noqa: E402

#: generous: the machine may be shared and loaded
TIMEOUT = 300
RTOL = 1e-12


def _threadsafe_numba():
    """Whether numba kernels may run in two threads of one process at once
    (the 'workqueue' layer aborts on concurrent launches)."""
    import numba
    BoostIn()  # noqa: B018 - the layer is chosen at the first parallel launch
    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:   # no parallel kernel has run yet in this process
        return False


@pytest.fixture(scope="module")
def client():
    """2 workers x 1 thread; in-process workers (fast to start, no recompiling
    of the kernels) when numba's threading layer is thread-safe."""
    BoostIn().fit(*trained("lightgbm", "binary", n=60, n_test=5)[:3])  # load the kernels
    processes = not _threadsafe_numba()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                  dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster, timeout=TIMEOUT) as c:
        yield c


def _close(a, b, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-300)
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


def _same_top(got, ref, rtol=RTOL):
    """Equal values; equal rows except where two values tie within rtol."""
    (gi, gv), (ri, rv) = got, ref
    _close(gv, rv, rtol)
    scale = np.abs(rv).max()
    for e in range(ri.shape[0]):
        diff = gi[e] != ri[e]
        if diff.any():  # only possible between (numerically) tied values
            for j in np.flatnonzero(diff):
                assert np.sum(np.abs(rv[e] - rv[e, j]) <= rtol * scale) > 1, (e, j)


def _check_all(dist, ref, Xte, yte, k=7):
    _close(dist.get_local_influence(Xte, yte), ref.get_local_influence(Xte, yte))
    for kind in ("helpful", "harmful"):
        _same_top(dist.get_top_influence(Xte, yte, k=k, kind=kind),
                  ref.get_top_influence(Xte, yte, k=k, kind=kind))
    _close(dist.get_global_influence(Xte, yte), ref.get_global_influence(Xte, yte))
    _close(dist.get_self_influence(), ref.get_self_influence())


@pytest.mark.parametrize("family,task", [("lightgbm", "binary"), ("xgboost", "binary"),
                                         ("lightgbm", "regression"),
                                         ("xgboost", "multiclass")])
def test_dask_arrays_equal_in_memory(client, family, task):
    model, Xtr, ytr, w, Xte, yte = trained(family, task, n=250, weights=True)
    ref = BoostIn().fit(model, Xtr, ytr, sample_weight=w)
    # uneven row chunks (the last partition is small), features chunked too
    Xd = da.from_array(Xtr, chunks=(70, 3))
    yd = da.from_array(ytr, chunks=70)
    wd = da.from_array(w, chunks=100)          # other chunks: aligned to X's rows
    dist = DaskBoostIn(n_jobs=1).fit(model, Xd, yd, sample_weight=wd, client=client)
    assert dist.partition_sizes_.tolist() == [70, 70, 70, 40]
    assert dist.n_train_ == len(ytr)
    assert dist.fidelity_["passed"] and dist.fidelity_["checked"]
    assert dist.fidelity_["max_error"] == pytest.approx(ref.fidelity_["max_error"],
                                                        rel=1e-6, abs=1e-12)
    _check_all(dist, ref, Xte, yte)
    target = np.full(len(yte), ytr[0])
    _close(dist.get_label_edit_influence(Xte, yte, target),
           ref.get_label_edit_influence(Xte, yte, target))


def test_dask_dataframe_with_nan_and_categories(client):
    X, y = make_data("binary", n=330, n_num=4, n_cat=2, nan_frac=0.1, seed=3)
    Xtr, ytr, Xte, yte = X.iloc[:280], y[:280], X.iloc[280:], y[280:]
    model = make_model("lightgbm", "binary").fit(Xtr, ytr)
    ref = BoostIn().fit(model, Xtr, ytr)
    frame = Xtr.assign(label=ytr)
    ddf = dd.from_pandas(frame, npartitions=3)
    dist = DaskBoostIn(n_jobs=1).fit(model, ddf.drop(columns="label"), ddf["label"],
                                     client=client)
    assert dist.partition_sizes_.sum() == 280 and len(dist.shards_) == 3
    _check_all(dist, ref, Xte, yte)
    assert list(dist.feature_names_in_) == list(X.columns)


def test_in_memory_labels_float32_and_dask_results(client):
    model, Xtr, ytr, _, Xte, yte = trained("lightgbm", "regression", n=200)
    ref = BoostIn(dtype="float32").fit(model, Xtr, ytr)
    dist = DaskBoostIn(dtype="float32", n_jobs=1).fit(
        model, da.from_array(Xtr, chunks=(64, -1)), ytr, client=client)  # y in memory
    # float32 terms: top-k, global and self influence stay exact
    for kind in ("helpful", "harmful"):
        _same_top(dist.get_top_influence(Xte, yte, k=5, kind=kind),
                  ref.get_top_influence(Xte, yte, k=5, kind=kind))
    _close(dist.get_global_influence(Xte, yte), ref.get_global_influence(Xte, yte))
    lazy = dist.get_local_influence(Xte, yte, as_dask=True)
    assert isinstance(lazy, da.Array) and lazy.shape == (200, len(yte))
    assert lazy.chunks[0] == tuple(dist.partition_sizes_)
    _close(lazy.compute(), ref.get_local_influence(Xte, yte), rtol=1e-6)
    glob = dist.get_global_influence(Xte, yte, as_dask=True)
    _close(glob.compute(), ref.get_global_influence(Xte, yte))
    _close(dist.get_self_influence(as_dask=True).compute(), ref.get_self_influence())


def test_xgboost_dask_model(client):
    xgb_dask = pytest.importorskip("xgboost.dask")
    X, y = make_data("binary", n=300, n_num=5, seed=4)
    X = X.to_numpy()
    Xtr, ytr, Xte, yte = X[:260], y[:260], X[260:], y[260:]
    Xd = da.from_array(Xtr, chunks=(130, -1))
    yd = da.from_array(ytr, chunks=130)
    try:
        model = xgb_dask.DaskXGBClassifier(n_estimators=8, max_depth=3, learning_rate=0.3,
                                           reg_lambda=2.0, n_jobs=1)
        model.client = client
        model.fit(Xd, yd)
    except Exception as exc:  # noqa: BLE001 - XGBoost's collective set-up, not treeinf
        pytest.skip(f"xgboost.dask could not train on this LocalCluster: {exc}")
    ref = BoostIn().fit(model.get_booster(), Xtr, ytr)
    dist = DaskBoostIn(n_jobs=1).fit(model, Xd, yd, client=client)
    assert dist.ensemble_.reg_lambda == 2.0
    _check_all(dist, ref, Xte, yte)


def test_data_check_runs_on_the_reduced_sums(client):
    model, Xtr, ytr, _, _, _ = trained("lightgbm", "binary", n=200)
    Xd = da.from_array(Xtr, chunks=(50, -1))
    with pytest.raises(TrainingDataMismatchError, match="leaf"):
        DaskBoostIn(n_jobs=1).fit(model, Xd, 1 - ytr, client=client)
    # a partition-wise shuffle of the rows is not the training data either
    perm = np.concatenate([np.random.default_rng(0).permutation(50) + s
                           for s in range(0, 200, 50)])
    with pytest.raises(TrainingDataMismatchError):
        DaskBoostIn(n_jobs=1).fit(model, da.from_array(Xtr[perm], chunks=(50, -1)), ytr,
                                  client=client)
    unchecked = DaskBoostIn(n_jobs=1).fit(model, Xd, 1 - ytr, client=client,
                                          check_data=False)
    assert unchecked.fidelity_["checked"] is False


def test_merge_top_tie_rule():
    idx = np.array([[5, 1, 9, 3]])
    val = np.array([[2.0, 2.0, 1.0, 2.0]])
    i, v = merge_top(idx, val, 3, largest=True)
    assert i.tolist() == [[1, 3, 5]] and v.tolist() == [[2.0, 2.0, 2.0]]
    i, v = merge_top(idx, val, 2, largest=False)
    assert i.tolist() == [[9, 1]]


def test_import_treeinf_does_not_import_dask():
    import subprocess
    import sys
    code = ("import sys, treeinf; assert 'distributed' not in sys.modules "
            "and 'dask' not in sys.modules; print(treeinf.DaskBoostIn.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "DaskBoostIn"


def test_errors(client):
    model, Xtr, ytr, _, Xte, yte = trained("lightgbm", "binary", n=120)
    Xd = da.from_array(Xtr, chunks=(40, -1))
    with pytest.raises(NotFittedError):
        DaskBoostIn().get_top_influence(Xte, yte)
    with pytest.raises(DataValidationError, match="partition"):
        DaskBoostIn(n_jobs=1).fit(model, Xd, dd.from_pandas(pd.Series(ytr), npartitions=2),
                                  client=client)
    with pytest.raises(DataValidationError, match="rows"):
        DaskBoostIn(n_jobs=1).fit(model, Xd, ytr[:-1], client=client)
    with pytest.raises(DataValidationError, match="Dask collection"):
        DaskBoostIn(n_jobs=1).fit(model, Xtr, ytr, client=client)
    with pytest.raises(DataValidationError, match="retries"):
        DaskBoostIn(retries=-1).fit(model, Xd, ytr, client=client)
    forest = make_model("sklearn_rf", "binary").fit(np.nan_to_num(Xtr), ytr)
    with pytest.raises(UnsupportedModelError, match="boosting"):
        DaskBoostIn().fit(forest, da.from_array(np.nan_to_num(Xtr), chunks=(40, -1)), ytr,
                          client=client)
    dist = DaskBoostIn(n_jobs=1).fit(model, Xd, ytr, client=client)
    with pytest.raises(DataValidationError, match="features"):
        dist.get_top_influence(Xte[:, :3], yte)
    with pytest.raises(DataValidationError, match="k="):
        dist.get_top_influence(Xte, yte, k=121)
    with pytest.raises(PersistenceError, match="futures"):
        pickle.dumps(dist)
    pickle.loads(pickle.dumps(DaskBoostIn(variant="paper")))   # unfitted: a plain estimator
    assert clone(DaskBoostIn(variant="paper", retries=0)).get_params()["retries"] == 0
    Xtr_copy = Xtr.copy()
    DaskBoostIn(n_jobs=1).fit(model, Xd, ytr, client=client).get_local_influence(Xte, yte)
    np.testing.assert_array_equal(Xtr, Xtr_copy)


# ------------------------------------------------------------------------
# worker processes: a lightgbm.dask model, and a worker that dies mid-query

@pytest.fixture(scope="module")
def process_client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster, timeout=TIMEOUT) as c:
        yield c


def _run(fn, *args, **kw):
    """fn(*args) in a thread, failing the test instead of hanging."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kw).result(timeout=TIMEOUT)


def test_lightgbm_dask_model(process_client):
    lgb = pytest.importorskip("lightgbm")
    X, y = make_data("regression", n=360, n_num=5, seed=2)
    X = X.to_numpy()
    Xtr, ytr, Xte, yte = X[:300], y[:300], X[300:], y[300:]
    Xd = da.from_array(Xtr, chunks=(150, -1))
    yd = da.from_array(ytr, chunks=150)
    try:
        model = _run(lambda: lgb.DaskLGBMRegressor(
            n_estimators=8, num_leaves=7, min_child_samples=5, verbose=-1,
            client=process_client).fit(Xd, yd))
    except Exception as exc:  # noqa: BLE001 - LightGBM's socket set-up, not treeinf
        pytest.skip(f"lightgbm.dask could not train on this LocalCluster: {exc}")
    ref = BoostIn().fit(model.to_local(), Xtr, ytr)
    dist = _run(DaskBoostIn(n_jobs=1).fit, model, Xd, yd, client=process_client)
    _check_all(dist, ref, Xte, yte)


def test_a_worker_killed_mid_query(process_client, tmp_path):
    model, Xtr, ytr, _, Xte, yte = trained("xgboost", "binary", n=240)
    ref = BoostIn().fit(model, Xtr, ytr)
    dist = _run(DaskBoostIn(n_jobs=1).fit, model, da.from_array(Xtr, chunks=(60, -1)),
                da.from_array(ytr, chunks=60), client=process_client)

    # a worker process dies as soon as a top-k task starts on it: the task
    # is rescheduled and the shards it held are recomputed from the graph
    marker = str(tmp_path / "killed")

    class KillOnce(distributed.WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and "treeinf-top" in str(key) \
                    and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)

    pids = set(_run(process_client.run, os.getpid).values())
    process_client.register_plugin(KillOnce(), name="kill-once")
    try:
        got = _run(dist.get_top_influence, Xte, yte, k=6)
    finally:
        process_client.unregister_worker_plugin("kill-once")
    assert os.path.exists(marker)
    assert pids - set(_run(process_client.run, os.getpid).values())  # one was replaced
    _same_top(got, ref.get_top_influence(Xte, yte, k=6))
    _close(_run(dist.get_local_influence, Xte, yte), ref.get_local_influence(Xte, yte))
