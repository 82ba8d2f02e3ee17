"""BoostIn speed and memory against a dense-mask numpy baseline.

Binary LightGBM, 100 trees x 31 leaves, n_train in {10k, 50k, 200k}, 100 test
rows. The baseline follows the published approach: for each test row, build
the (n_train, n_trees) same-leaf mask, multiply by the training and test
terms, sum. Both use the same fitted training term, are timed in the same run
after a JIT warm-up, each measurement in its own process so peak memory is
its own. Goals (2 cores): <= 1 ms per test row at 50k, >= 50x the baseline,
fit <= 0.25 s at 50k (issue 12). The CPU time of fit (both threads summed)
is printed too: on a shared machine it is steadier than wall time.

Usage: python benchmarks/bench_boostin.py [--sizes 10000 50000 200000] [--test 100]
"""
import argparse
import multiprocessing as mp
import os
import resource
import time

import numpy as np


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(n_train, n_test, seed=0):
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=n_train + n_test, n_features=20, n_informative=10,
                               random_state=seed)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _model(X, y):
    import lightgbm as lgb
    return lgb.LGBMClassifier(n_estimators=100, num_leaves=31, learning_rate=0.1,
                              verbose=-1, random_state=0).fit(X, y)


def _warm_up():
    from treeinf import BoostIn
    Xtr, ytr, Xte, yte = _data(500, 10, seed=1)
    exp = BoostIn().fit(_model(Xtr, ytr), Xtr, ytr)
    exp.get_local_influence(Xte, yte)
    exp.get_top_influence(Xte, yte, k=5)


def _baseline_local(D, train_leaves, test_leaves, G):
    """Published approach: a dense same-leaf mask per test row."""
    out = np.empty((D.shape[0], test_leaves.shape[0]))
    for e in range(test_leaves.shape[0]):
        mask = train_leaves == test_leaves[e][None, :]
        out[:, e] = np.sum(mask * D * G[e][None, :], axis=1)
    return out


def _job(kind, n_train, n_test, n_base, queue):
    from treeinf import BoostIn
    _warm_up()
    Xtr, ytr, Xte, yte = _data(n_train, n_test)
    model = _model(Xtr, ytr)
    rss0 = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    exp = BoostIn().fit(model, Xtr, ytr)
    fit_s = time.perf_counter() - t0
    res = {"fit_s": fit_s, "fit_cpu": time.process_time() - c0}
    if kind == "treeinf":
        t0 = time.perf_counter()
        local = exp.get_local_influence(Xte, yte)
        res["local_ms_per_row"] = (time.perf_counter() - t0) / n_test * 1e3
        t0 = time.perf_counter()
        exp.get_top_influence(Xte, yte, k=10)
        res["topk_ms_per_row"] = (time.perf_counter() - t0) / n_test * 1e3
        res["check"] = local[:, :n_base]
    else:
        Xq, yq = Xte[:n_base], yte[:n_base]
        leaves, G = exp._test_terms(exp.ensemble_.encode(Xq), yq.astype(float))
        t0 = time.perf_counter()
        local = _baseline_local(exp._train_T.T, exp._leaves_T.T.astype(np.int32), leaves, G)
        res["local_ms_per_row"] = (time.perf_counter() - t0) / n_base * 1e3
        res["check"] = local
    res["peak_mb"] = _peak_mb() - rss0
    queue.put(res)


def run(kind, n_train, n_test, n_base):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_job, args=(kind, n_train, n_test, n_base, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--test", type=int, default=100, help="test rows (treeinf)")
    ap.add_argument("--baseline-rows", type=int, default=10,
                    help="test rows timed for the (slow) baseline")
    args = ap.parse_args()
    print(f"BoostIn, binary LightGBM 100 trees x 31 leaves, {args.test} test rows "
          f"({args.baseline_rows} for the baseline), {os.cpu_count()} cores")
    header = (f"{'n_train':>8} {'fit s':>7} {'fit cpu':>7} {'local ms/row':>13} {'top10 ms/row':>13} "
              f"{'base ms/row':>12} {'speed-up':>9} {'peak MB':>8} {'base MB':>8} {'max|diff|':>10}")
    print(header)
    for n in args.sizes:
        ours = run("treeinf", n, args.test, args.baseline_rows)
        base = run("baseline", n, args.test, args.baseline_rows)
        diff = np.max(np.abs(ours["check"] - base["check"]))
        print(f"{n:>8} {ours['fit_s']:>7.2f} {ours['fit_cpu']:>7.2f} "
              f"{ours['local_ms_per_row']:>13.3f} "
              f"{ours['topk_ms_per_row']:>13.3f} {base['local_ms_per_row']:>12.2f} "
              f"{base['local_ms_per_row'] / ours['local_ms_per_row']:>8.0f}x "
              f"{ours['peak_mb']:>8.0f} {base['peak_mb']:>8.0f} {diff:>10.2e}", flush=True)


if __name__ == "__main__":
    main()
