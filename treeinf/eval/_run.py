"""Planning units of work and running them with joblib or on a Dask cluster."""
import time
import traceback

from .. import __version__
from ..exceptions import DataValidationError, TreeInfError
from ._protocol import (EXTRA_MEASURES, FRACTIONS, MEASURES, ROW_COUNTS, ROW_MEASURES,
                        run_unit, test_row_order)
from ._settings import (FAST_METHODS, METHODS, MODELS, SLOW_METHODS, capabilities,
                        method_params, model_params)
from ._store import ResultStore, unit_key

_NEEDS = {"removal": "local", "targeted_edit": "local", "removal_set": "global",
          "noise": "global", "agreement": "local"}


def _check_list(kind, values, known):
    values = list(values)
    unknown = [v for v in values if v not in known]
    if unknown:
        raise DataValidationError(
            f"unknown {kind} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}.")
    if not values:
        raise DataValidationError(f"no {kind} selected; choose from {', '.join(known)}.")
    return values


def plan(datasets, models=MODELS, methods=FAST_METHODS, measures=MEASURES,
         n_test_rows=100, fractions=None, noise_with_replacement=False,
         slow_on_all=False):
    """The units of work of a benchmark run.

    Parameters
    ----------
    datasets : list of str
        Data set names (see :func:`treeinf.datasets.list_datasets`).
    models : list of {'lgb', 'xgb', 'cb', 'sgb'}
    methods : list of str
        Keys of :data:`treeinf.eval.METHODS`. Units a method cannot do are
        left out (e.g. ``loss`` has only self-influence, so it is used only by
        fix-mislabelled). The slow methods (LeafInfluence, LeafRefit) run only
        on the LI data sets unless ``slow_on_all``.
    measures : list of str
        Any of :data:`treeinf.eval.MEASURES` plus ``'runtime'`` and
        ``'agreement'``.
    n_test_rows : int
        Test rows of the single-row measures: the first ``n_test_rows`` of
        the benchmark's fixed draw.
    fractions : dict or None
        Measure -> percentages, overriding :data:`treeinf.eval.FRACTIONS`.
    noise_with_replacement : bool
        Reproduce the published code's sampling of noisy rows.

    Returns
    -------
    list of dict
        JSON-serialisable unit configurations.
    """
    from .. import datasets as ds
    datasets = _check_list("data sets", datasets, ds.list_datasets())
    models = _check_list("models", models, MODELS)
    methods = _check_list("methods", methods, list(METHODS))
    measures = _check_list("measures", measures, list(MEASURES + EXTRA_MEASURES))
    if not isinstance(n_test_rows, int) or n_test_rows < 1:
        raise DataValidationError(f"n_test_rows must be a positive integer, got {n_test_rows!r}.")
    fractions = {**FRACTIONS, **(fractions or {})}
    li = set(ds.list_datasets(li_only=True))
    units = []
    for dataset in datasets:
        info = ds.describe(dataset)
        rows = None
        for model in models:
            base = {"dataset": dataset, "model": model, "version": __version__,
                    "data": info["sha256"], "model_params": model_params(model, dataset)}
            usable = [m for m in methods
                      if m not in SLOW_METHODS or slow_on_all or dataset in li]
            for measure in measures:
                if measure in ROW_MEASURES or measure == "agreement":
                    if rows is None:
                        n_test = info["n_test"]
                        rows = test_row_order(n_test)[:min(n_test_rows, n_test)].tolist()
                if measure == "agreement":
                    ms = [m for m in usable if "local" in capabilities(m)]
                    if len(ms) < 2:
                        continue
                    for r, j in enumerate(rows):
                        units.append({**base, "measure": measure, "method": None,
                                      "methods": ms, "row": r, "test_index": j})
                    continue
                for method in usable:
                    caps = capabilities(method)
                    need = _NEEDS.get(measure)
                    if need and need not in caps:
                        continue
                    if measure == "fix_mislabelled" and not caps & {"global", "self"}:
                        continue
                    unit = {**base, "measure": measure, "method": method,
                            "method_params": method_params(method, model)}
                    if measure == "runtime":
                        units.append({**unit, "repeats": 5, "warmup": 1})
                        continue
                    unit["fractions"] = list(fractions[measure])
                    if measure in ROW_COUNTS:
                        unit["counts"] = list(ROW_COUNTS[measure])
                    if measure == "fix_mislabelled":
                        unit["noise_with_replacement"] = bool(noise_with_replacement)
                    if measure in ROW_MEASURES:
                        for r, j in enumerate(rows):
                            units.append({**unit, "row": r, "test_index": j})
                    else:
                        units.append(unit)
    return units


def _work(cfg, data_dir, own_env_fallback=False):
    """Run one unit in a worker; never raises (errors are returned).

    ``data_dir`` comes with the unit from the submitting process. When it was
    resolved there (not given by the user) and this worker does not see it,
    the worker's own ``TREEINF_DATA_DIR`` / cache directory is tried next.
    """
    from ..exceptions import DatasetNotFoundError
    try:
        try:
            return cfg, run_unit(cfg, data_dir)
        except DatasetNotFoundError:
            if not own_env_fallback or data_dir is None:
                raise
            return cfg, run_unit(cfg, None)
    except Exception as exc:   # reported by the parent, not stored
        return cfg, {"status": "error", "message": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()}


def resolve_data_dirs(names, data_dir=None):
    """Where this process finds each data set's file.

    Parameters
    ----------
    names : iterable of str
        Data set names.
    data_dir : str, Path or None
        As in :func:`treeinf.datasets.load`. When None the directories of
        ``TREEINF_DATA_DIR`` (or the cache directory) of *this* process are
        searched, so a worker elsewhere need not have the variable set.

    Returns
    -------
    dict
        Name -> absolute directory (str) holding ``<name>.npz``; None for a
        data set generated in memory (``twitter``) or not found here.
    """
    from .. import datasets as ds
    dirs = ds.data_dirs(data_dir)
    out = {}
    for name in set(names):
        out[name] = None
        for d in dirs:
            if (d / f"{name}.npz").is_file():
                out[name] = str(d.resolve())
                break
    return out


def _sort_key(cfg):
    # units sharing a data set, model and method run next to each other so a
    # worker's cached model and explainer are reused
    return (cfg["dataset"], cfg["model"], cfg.get("method") or "", cfg["measure"],
            cfg.get("row") or 0)


def execute(units, store, n_jobs=1, scheduler=None, data_dir=None, progress=True,
            retries=3):
    """Run every unfinished unit and store its result.

    Parameters
    ----------
    units : list of dict
        From :func:`plan`.
    store : ResultStore or str
        Finished units are skipped; each new result is written atomically as
        soon as it arrives, so an interrupted run resumes where it stopped.
    n_jobs : int
        Local worker processes (joblib). Each model fit inside a worker is
        single-threaded.
    scheduler : str or None
        Address of a Dask distributed scheduler (``tcp://host:8786``). The
        workers need treeinf installed and read the data files from the
        directory sent with each unit; results come back to this process,
        which writes the store. A unit whose worker dies is rerun elsewhere.
    data_dir : str, Path or None
        Data set directory. When None, the directory where *this* process
        finds each data set (``TREEINF_DATA_DIR``, then the cache directory;
        see :func:`resolve_data_dirs`) is sent with each unit, so workers
        that do not share this process's environment still find the files
        (at the same path, e.g. on a shared file system); a worker that does
        not see that path falls back to its own ``TREEINF_DATA_DIR``.
    progress : bool
        Show a progress bar with an ETA.
    retries : int
        Dask retries of a unit that raised (a dead worker is always retried).

    Returns
    -------
    dict
        Counts: ``{'total', 'skipped', 'done', 'unsupported', 'errors'}`` and
        ``'error_messages'``.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise DataValidationError(
            f"n_jobs must be a non-zero integer (worker processes; -1 = one per core), "
            f"got {n_jobs!r}.")
    if not isinstance(store, ResultStore):
        store = ResultStore(store)
    pending = sorted((u for u in units if not store.has(u)), key=_sort_key)
    summary = {"total": len(units), "skipped": len(units) - len(pending), "done": 0,
               "unsupported": 0, "errors": 0, "error_messages": []}
    if not pending:
        return summary
    from tqdm.auto import tqdm
    bar = tqdm(total=len(pending), disable=not progress, unit="unit",
               desc="treeinf bench", smoothing=0.05)
    if data_dir is None:
        where = resolve_data_dirs(u["dataset"] for u in pending)
        jobs = [(u, where[u["dataset"]], True) for u in pending]
    else:
        jobs = [(u, str(data_dir), False) for u in pending]
    try:
        for cfg, outcome in _results(jobs, n_jobs, scheduler, retries):
            if outcome["status"] == "error":
                summary["errors"] += 1
                summary["error_messages"].append(
                    f"{cfg['measure']}/{cfg['dataset']}/{cfg['model']}/"
                    f"{cfg.get('method')}: {outcome['message']}")
            else:
                store.put(cfg, outcome)
                summary["done"] += 1
                summary["unsupported"] += outcome["status"] == "unsupported"
            bar.update(1)
    finally:
        bar.close()
    return summary


def _results(jobs, n_jobs, scheduler, retries):
    """Outcomes of ``jobs`` = [(unit, data directory, fallback flag), ...]."""
    if scheduler is None:
        if n_jobs == 1:
            for job in jobs:
                yield _work(*job)
            return
        from joblib import Parallel, delayed
        yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered",
                            batch_size=1)(delayed(_work)(*job) for job in jobs)
        return
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise TreeInfError('the Dask scheduler needs dask.distributed: '
                           'pip install "treeinf[dask]"') from exc
    if isinstance(scheduler, Client):
        client = scheduler
    else:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError, ValueError) as exc:
            raise TreeInfError(
                f"could not connect to the Dask scheduler at {scheduler!r} ({exc}); "
                "check the address (e.g. tcp://host:8786) and that `dask scheduler` "
                "runs there, or leave out --scheduler to run locally.") from None
    try:
        futures = [client.submit(_work, *job, key=f"treeinf-unit-{unit_key(job[0])}",
                                 retries=retries, pure=False) for job in jobs]
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()
    finally:
        if client is not scheduler:
            client.close()


def run(datasets, store, models=MODELS, methods=FAST_METHODS, measures=MEASURES,
        n_test_rows=100, fractions=None, noise_with_replacement=False, n_jobs=1,
        scheduler=None, data_dir=None, progress=True):
    """Plan and execute a benchmark run (see :func:`plan` and :func:`execute`)."""
    units = plan(datasets, models, methods, measures, n_test_rows, fractions,
                 noise_with_replacement)
    start = time.perf_counter()
    summary = execute(units, store, n_jobs=n_jobs, scheduler=scheduler,
                      data_dir=data_dir, progress=progress)
    summary["seconds"] = time.perf_counter() - start
    return summary
