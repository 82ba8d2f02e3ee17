"""BoostIn at scale: fit time, fit peak memory, held memory and one-row top-10.

Binary LightGBM, 500 trees x 63 leaves (learning rate 0.1), trained once per
size on ``make_classification`` data (20 features). ``--train-rows N`` trains
the model on N rows only (the largest sizes then reuse the N-row model, fitted
by BoostIn on n rows of the same distribution): training a million-row model
takes too long on a busy 2-core machine, and BoostIn's cost depends on the
rows it indexes, the trees and the leaves, not on how the trees were grown. For each size and each
``dtype`` a fresh process loads the data and the model, warms the JIT up on a
tiny model, then fits BoostIn and answers one-row ``get_top_influence(k=10)``
queries:

* fit s: wall time of ``BoostIn(dtype=...).fit`` (parse, verify, index);
* peak MB: peak RSS of the process during fit minus its RSS just before fit
  (the input data, model and JIT are already loaded), i.e. what fit needs
  above the input;
* held MB: total ``nbytes`` of the explainer's arrays after fit;
* top-10 ms/row: median wall time of ``--queries`` one-row queries (each a
  different test row), after one untimed query.

Goals (issue 12, 2 cores): at 1,000,000 rows peak <= 4096 MB, held <= 3072
MB, fit <= 20 s, top-10 <= 50 ms. The machine may be shared: the process's
CPU time of fit is printed too, and timings are noisy.

Measured 2026-12-03 on the shared 2-core machine under load average ~13
(wall times 3-6x the CPU times; model trained on 200k rows, --train-rows
200000, --dtypes float32, --queries 20):

        n |   dtype |  fit s | fit cpu s |  peak MB |  held MB | top-10 ms/row (min)
   200000 | float32 |   44.6 |      10.1 |      746 |      684 |         452.0 (229.5)
   500000 | float32 |  111.2 |      22.8 |     1823 |     1710 |         845.4 (765.9)
  1000000 | float32 |  172.7 |      49.1 |     3604 |     3420 |        1196.0 (882.5)

Usage: python benchmarks/bench_scale.py [--sizes 200000 500000 1000000]
       [--dtypes float32 float64] [--queries 30] [--cache-dir DIR]
"""
import argparse
import multiprocessing as mp
import os
import resource
import tempfile
import time

import numpy as np

N_TREES, N_LEAVES, N_TEST = 500, 63, 200


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(n, seed=0):
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=n + N_TEST, n_features=20, n_informative=10,
                               random_state=seed)
    return X, y


def _prepare(n, directory, train_rows=None):
    """Data files for size n and the model file (trained on min(n, train_rows)
    rows once, reused when present)."""
    xf, yf = os.path.join(directory, f"X_{n}.npy"), os.path.join(directory, f"y_{n}.npy")
    if train_rows is not None and train_rows < n:
        if not (os.path.exists(xf) and os.path.exists(yf)):
            X, y = _data(n)
            np.save(xf, X)
            np.save(yf, y)
        return xf, yf, _prepare(train_rows, directory)[2]
    mf = os.path.join(directory, f"lgb_{n}_{N_TREES}x{N_LEAVES}.txt")
    if not (os.path.exists(xf) and os.path.exists(yf) and os.path.exists(mf)):
        import lightgbm as lgb
        X, y = _data(n)
        t0 = time.perf_counter()
        model = lgb.LGBMClassifier(n_estimators=N_TREES, num_leaves=N_LEAVES,
                                   learning_rate=0.1, verbose=-1, random_state=0)
        model.fit(X[:n], y[:n])
        print(f"  (trained LightGBM on {n} rows in {time.perf_counter() - t0:.0f} s)",
              flush=True)
        model.booster_.save_model(mf)
        np.save(xf, X)
        np.save(yf, y)
    return xf, yf, mf


def _warm_up(dtype):
    import lightgbm as lgb
    from treeinf import BoostIn
    X, y = _data(600, seed=1)
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=7, verbose=-1).fit(X[:500], y[:500])
    exp = BoostIn(dtype=dtype).fit(model, X[:500], y[:500])
    exp.get_top_influence(X[500:501], y[500:501], k=10)
    exp.get_top_influence(X[500:503], y[500:503], k=10)


def _job(n, dtype, files, n_queries, queue):
    import lightgbm as lgb
    from treeinf import BoostIn
    _warm_up(dtype)
    xf, yf, mf = files
    X, y = np.load(xf), np.load(yf)
    Xtr, ytr, Xte, yte = X[:n], y[:n], X[n:], y[n:]
    model = lgb.Booster(model_file=mf)
    rss0 = _rss_mb()
    peak0 = _peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    exp = BoostIn(dtype=dtype).fit(model, Xtr, ytr)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = max(_peak_mb(), peak0) - rss0
    held = sum(v.nbytes for v in vars(exp).values() if isinstance(v, np.ndarray)) / 2**20
    exp.get_top_influence(Xte[:1], yte[:1], k=10)
    times = []
    for e in range(1, 1 + n_queries):
        t0 = time.perf_counter()
        exp.get_top_influence(Xte[e:e + 1], yte[e:e + 1], k=10)
        times.append(time.perf_counter() - t0)
    queue.put(dict(fit_s=fit_s, fit_cpu=fit_cpu, peak_mb=peak, held_mb=held,
                   top_ms=1e3 * float(np.median(times)), top_min_ms=1e3 * min(times)))


def run(n, dtype, files, n_queries):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_job, args=(n, dtype, files, n_queries, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 500_000, 1_000_000])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--queries", type=int, default=30, help="one-row top-10 queries timed")
    ap.add_argument("--cache-dir", default=None,
                    help="keep data and trained models here (reused by later runs)")
    ap.add_argument("--train-rows", type=int, default=None,
                    help="train the model on at most this many rows (default: n)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="only train and cache the models (needs --cache-dir)")
    args = ap.parse_args()
    if args.prepare_only:
        for n in args.sizes:
            _prepare(n, args.cache_dir, args.train_rows)
        return
    trained_on = "n" if args.train_rows is None else f"min(n, {args.train_rows})"
    print(f"BoostIn, binary LightGBM {N_TREES} trees x {N_LEAVES} leaves trained on "
          f"{trained_on} rows, 20 features, {os.cpu_count()} cores; peak = fit's peak RSS "
          "above the loaded input")
    print(f"{'n':>9} | {'dtype':>7} | {'fit s':>6} | {'fit cpu s':>9} | {'peak MB':>8} | "
          f"{'held MB':>8} | {'top-10 ms/row':>13} (min)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.cache_dir or tmp
        os.makedirs(directory, exist_ok=True)
        for n in args.sizes:
            files = _prepare(n, directory, args.train_rows)
            for dtype in args.dtypes:
                r = run(n, dtype, files, args.queries)
                print(f"{n:>9} | {dtype:>7} | {r['fit_s']:>6.1f} | {r['fit_cpu']:>9.1f} | "
                      f"{r['peak_mb']:>8.0f} | {r['held_mb']:>8.0f} | {r['top_ms']:>13.1f} "
                      f"({r['top_min_ms']:.1f})", flush=True)


if __name__ == "__main__":
    main()
