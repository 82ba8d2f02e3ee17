"""The benchmark's run path: result store, resume after SIGKILL, Dask, CLI."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed
import pytest

from treeinf import eval as tev
from treeinf.eval import ResultStore

DATA_DIR = str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets")


def _units(**kw):
    args = dict(datasets=["concrete"], models=["lgb"], methods=["boostin", "random"],
                measures=["removal", "removal_set"], n_test_rows=2,
                fractions={"removal": [0, 1], "removal_set": [0, 10]})
    args.update(kw)
    return tev.plan(args.pop("datasets"), **args)


def _results(store):
    """{unit key: result} without timings."""
    return {r["key"]: (r["status"], r.get("result")) for r in ResultStore(store).records()}


def _n_finished(root):
    """Finished result files under ``root`` (temporary ones do not match)."""
    return sum(1 for p in Path(root).rglob("*.json") if not p.name.startswith(".partial-"))


def test_store_is_atomic_and_skips_finished_units(tmp_path):
    store = ResultStore(tmp_path)
    units = _units()
    summary = tev.execute(units, store, data_dir=DATA_DIR, progress=False)
    assert summary["done"] == len(units) == 2 * 2 + 2 and summary["errors"] == 0
    files = sorted(tmp_path.rglob("*.json"))
    assert len(files) == len(units)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".partial-")]
    again = tev.execute(units, store, data_dir=DATA_DIR, progress=False)
    assert again["skipped"] == len(units) and again["done"] == 0
    # a damaged file is never read as a result: the unit is computed again
    files[0].write_text(files[0].read_text()[:40])
    with pytest.warns(UserWarning, match="unreadable result file"):
        third = tev.execute(units, store, data_dir=DATA_DIR, progress=False)
    assert third["done"] == 1
    # leftover temporary files (this version's, and an older version's
    # .partial-*.json) are ignored by readers and by a count of *.json files
    (files[0].parent / ".partial-junk.tmp").write_text("{")
    (files[0].parent / ".partial-old.json").write_text("{")
    assert len(store.records()) == len(units)
    assert _n_finished(tmp_path) == len(units)


def test_a_killed_writer_leaves_no_file_that_looks_finished(tmp_path, monkeypatch):
    """The temporary file of a write in progress never matches *.json."""
    store = ResultStore(tmp_path)
    cfg = _units()[0]
    seen = []
    real_replace = os.replace

    def spy(src, dst):                     # the moment before the rename
        seen.extend(p.name for p in tmp_path.rglob("*") if p.is_file())
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    store.put(cfg, {"status": "ok", "result": {}})
    assert len(seen) == 1 and seen[0].startswith(".partial-") and seen[0].endswith(".tmp")
    assert not seen[0].endswith(".json")
    assert [p.name for p in tmp_path.rglob("*.json")] == [store.path(cfg).name]


def test_config_change_means_a_new_unit(tmp_path):
    a = _units()[0]
    b = dict(a, fractions=[0, 2])
    assert tev.unit_key(a) != tev.unit_key(b)
    assert ResultStore(tmp_path).path(a) != ResultStore(tmp_path).path(b)
    assert a["version"] and a["data"] and a["model_params"]["random_state"] == 1


def _cli_args(*args, out):
    return ["bench", "run", "--datasets", "concrete",
            "--models", "lgb", "--methods", "boostin,random,target",
            "--measures", "removal,noise", "--n-test-rows", "3",
            "--fractions", "removal=0,0.5,1", "--fractions", "noise=0,5,10",
            "--data-dir", DATA_DIR, "--out", str(out), "--quiet", *args]


def _cli(*args, out, **kw):
    cmd = [sys.executable, "-m", "treeinf", *_cli_args(*args, out=out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, **kw)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted `treeinf bench run`, shared by the tests below.

    Run in this process through the command line's own ``main`` (the code
    ``python -m treeinf`` runs), which spares a second start-up of Python,
    numba and LightGBM; the killed and resumed runs are real processes.
    """
    from treeinf.cli import main
    out = tmp_path_factory.mktemp("reference")
    assert main(_cli_args("--n-jobs", "2", out=out)) == 0
    return out


def test_sigkill_midway_then_resume_equals_uninterrupted(tmp_path, reference_run):
    killed = tmp_path / "killed"
    expected = _results(reference_run)
    assert len(expected) == 3 * 3 + 3

    p = _cli("--n-jobs", "2", out=killed)
    # kill once two units are finished: finished means a complete result file,
    # not a temporary file that a worker is still writing (those never match
    # *.json). The poll is cheap, so a loaded machine only delays the kill.
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None and _n_finished(killed) < 2:
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed midway"
    os.killpg(p.pid, signal.SIGKILL)       # the run and its worker processes
    p.wait()
    partial = _results(killed)
    assert 2 <= len(partial) < len(expected)
    for key, value in partial.items():     # what survived is complete and right
        assert expected[key] == value
    p = _cli("--n-jobs", "2", out=killed)
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()
    assert f"already finished {len(partial)}" in p.stderr.read().decode()
    assert _results(killed) == expected


def test_dask_cluster_with_a_killed_worker_matches_joblib(tmp_path):
    units = _units(methods=["boostin", "target"], n_test_rows=3)
    tev.execute(units, tmp_path / "local", n_jobs=2, data_dir=DATA_DIR, progress=False)
    expected = _results(tmp_path / "local")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        store = ResultStore(tmp_path / "dask")
        summary = {}
        runner = threading.Thread(target=lambda: summary.update(tev.execute(
            units, store, scheduler=client, data_dir=DATA_DIR, progress=False)))
        runner.start()
        deadline = time.time() + 300
        while time.time() < deadline and not store.records():
            time.sleep(0.05)
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)    # a worker dies mid-run
        runner.join(timeout=600)
        assert not runner.is_alive()
    assert summary["errors"] == 0 and summary["done"] == len(units)
    assert _results(tmp_path / "dask") == expected


def test_dask_workers_find_the_data_through_the_directory_sent_with_each_unit(
        tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(Path(DATA_DIR) / "concrete.npz", data)
    # the worker starts with an environment in which the data cannot be found ...
    monkeypatch.setenv("TREEINF_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    units = _units(methods=["boostin"], measures=["removal"], n_test_rows=1)

    def load_on_worker():
        from treeinf import datasets
        try:
            datasets.load("concrete")
            return "found"
        except Exception as exc:   # noqa: BLE001 - reported to the test
            return type(exc).__name__

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert list(client.run(load_on_worker).values()) == ["DatasetNotFoundError"]
        # ... and only the client's environment says where the data is
        monkeypatch.setenv("TREEINF_DATA_DIR", str(data))
        summary = tev.execute(units, tmp_path / "res", scheduler=client, progress=False)
        assert list(client.run(load_on_worker).values()) == ["DatasetNotFoundError"]
    assert summary["errors"] == 0, summary["error_messages"]
    assert summary["done"] == len(units) == 1
    assert tev.resolve_data_dirs(["concrete", "twitter"]) == {
        "concrete": str(data.resolve()), "twitter": None}


def test_cli_run_and_report_write_tables_and_plots(tmp_path, reference_run):
    rep = subprocess.run([sys.executable, "-m", "treeinf", "bench", "report", "--results",
                          str(reference_run), "--out", str(tmp_path / "rep")],
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    md = (tmp_path / "rep" / "ranks.md").read_text()
    assert "mean rank" in md and "boostin" in md and "target" in md
    ranks = (tmp_path / "rep" / "ranks.csv").read_text().splitlines()
    assert ranks[0] == ("measure,pool,method,mean_rank,ci_low,ci_high,ci95,clipped,"
                        "n_datasets,n_methods,rel_magnitude")
    assert "Student t" in md and "## Missing cells" in md
    assert (tmp_path / "rep" / "missing.csv").is_file()
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert "curves_removal_concrete.png" in pngs and "ranks_noise_all.png" in pngs
    for name in pngs:
        assert (tmp_path / "rep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    from treeinf.cli import main
    # through main, in this process: an exception main does not turn into a
    # message would fail the test here just as a traceback would
    for argv, message in (
            (["bench", "run", "--datasets", "nope", "--out", str(tmp_path)],
             "unknown data set"),
            (["bench", "report", "--results", str(tmp_path / "empty"), "--out",
              str(tmp_path / "rep")], "no finished results"),
            (["bench", "run", "--datasets", "concrete", "--n-jobs", "0", "--out",
              str(tmp_path)], "n_jobs must be a non-zero integer")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"treeinf bench: error: {message}" in err and "Traceback" not in err, err
    # and once through the real entry point, in a process of its own
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="1s")
    r = subprocess.run([sys.executable, "-m", "treeinf", "bench", "run", "--datasets",
                        "concrete", "--models", "lgb", "--methods", "boostin", "--measures",
                        "removal", "--n-test-rows", "1", "--data-dir", DATA_DIR,
                        "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path),
                        "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "could not connect to the Dask scheduler" in r.stderr
    assert "Traceback" not in r.stderr


def test_plan_estimate_counts_units_and_retrains_exactly():
    units = tev.plan(["concrete", "adult"], ["lgb"], ["boostin"],
                     ["removal", "removal_set", "fix_mislabelled"], n_test_rows=3)
    t = tev.estimate(units).set_index("measure")
    assert t.loc["total", "units"] == len(units) == 3 + 3 + 1 + 1 + 1 + 1
    # removal: rows 1 (the one-row checkpoint), 0.1%, 0.5%, 1%, 1.5%, 2% of 824
    # are 1, 1, 4, 8, 12, 16 -> 5 distinct retrainings; of 32,561: 1, 33, 163,
    # 326, 488, 651 -> 6; set measures 10 fractions; fix-mislabelled 1 noisy
    # model + 6 fractions x 2 rankings; plus each (data set, model)'s own model
    assert t.loc["removal", "retrains"] == 3 * 5 + 3 * 6
    assert t.loc["removal_set", "retrains"] == 2 * 10
    assert t.loc["fix_mislabelled", "retrains"] == 2 * 13 + 2   # + the 2 contexts
    assert t.loc["total", "retrains"] == 33 + 20 + 28
    assert (t.cpu_h > 0).all()
    assert t.loc["total", "cpu_h"] == pytest.approx(t.cpu_h.drop("total").sum())
    by_method = tev.estimate(units, by="method").set_index("method")
    assert by_method.loc["boostin", "retrains"] == 81
    # an O(n^2) method costs more per unit on larger data
    slow = tev.estimate(tev.plan(["concrete", "htru2"], ["lgb"], ["leafinfluence"],
                                 ["fix_mislabelled"], slow_on_all=True), by="method")
    assert slow.cpu_h.iloc[0] > 0.05          # htru2 self-influence: minutes


def test_cli_plan_prints_the_estimate_and_runs_nothing(tmp_path):
    r = subprocess.run([sys.executable, "-m", "treeinf", "bench", "plan", "--datasets",
                        "concrete", "--models", "lgb", "--methods", "boostin", "--measures",
                        "removal", "--n-test-rows", "10"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "10 units on 1 data sets x 1 models" in r.stdout
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("removal")][0]
    assert line.split()[1:3] == ["10", "51"]
    assert "CPU-h" in r.stdout and not list(tmp_path.iterdir())
    r = subprocess.run([sys.executable, "-m", "treeinf", "bench", "plan", "--methods",
                        "nope"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "unknown methods 'nope'" in r.stderr
