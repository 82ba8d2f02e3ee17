"""LeafInfluence against CatBoost's C++ get_object_importance.

CatBoost binary models (100 trees, depth 5, Newton, one leaf iteration,
Plain boosting, no bootstrap), n_train in {1k, 5k, 20k}, 100 test rows.
treeinf LeafInfluence with update_set 0, 2 and -1 against CatBoost's
SinglePoint, TopKLeaves:top=2 and AllPoints, same run, same thread count,
best of 3 runs each, the two alternating so both see the same machine load;
treeinf's time includes fit (parse, verification, statistics). Prints times,
the ratio (treeinf / CatBoost, goal <= 1.0) and the Spearman agreement per
test row. Then times LeafInfluence on LightGBM and XGBoost models of the
same size. The load average is printed before and after: on a machine that
other processes keep busy, the times (and ratios) mean little.

Usage: python benchmarks/bench_leafinfluence.py [--sizes 1000 5000 20000] [--threads 2]
"""
import argparse
import os
import time

import numpy as np
from scipy.stats import spearmanr


def _data(n_train, n_test, seed=0):
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=n_train + n_test, n_features=20, n_informative=10,
                               random_state=seed)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _catboost(X, y, threads):
    import catboost as cb
    return cb.CatBoostClassifier(iterations=100, depth=5, learning_rate=0.1,
                                 leaf_estimation_method="Newton", leaf_estimation_iterations=1,
                                 boosting_type="Plain", bootstrap_type="No", random_seed=1,
                                 thread_count=threads, verbose=False,
                                 allow_writing_files=False).fit(X, y)


REPEATS = 3


def _timed(f, repeats=None):
    """Result of f and its best wall time over ``repeats`` runs."""
    best = np.inf
    for _ in range(repeats or REPEATS):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return out, best


def _alternating(f, g, repeats=None):
    """(f's result, f's best time, g's result, g's best time), the runs of f
    and g alternating."""
    best_f = best_g = np.inf
    for _ in range(repeats or REPEATS):
        out_f, t = _timed(f, 1)
        best_f = min(best_f, t)
        out_g, t = _timed(g, 1)
        best_g = min(best_g, t)
    return out_f, best_f, out_g, best_g


def _ours_runner(model, Xtr, ytr, Xte, yte, update_set, threads):
    from treeinf import LeafInfluence

    def run():
        exp = LeafInfluence(update_set=update_set, n_jobs=threads).fit(model, Xtr, ytr)
        return exp.get_local_influence(Xte, yte)
    return run


def _ours(model, Xtr, ytr, Xte, yte, update_set, threads):
    return _timed(_ours_runner(model, Xtr, ytr, Xte, yte, update_set, threads))


def _load():
    return "load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _warm_up(threads):
    Xtr, ytr, Xte, yte = _data(300, 5, seed=1)
    m = _catboost(Xtr, ytr, threads)
    for u in (0, 2, -1):
        _ours(m, Xtr, ytr, Xte, yte, u, threads)


def main():
    import catboost as cb
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    global REPEATS
    REPEATS = args.repeats
    _warm_up(args.threads)
    print(_load())
    print(f"LeafInfluence vs CatBoost get_object_importance: binary, 100 trees, depth 5, "
          f"{args.test} test rows, {args.threads} threads")
    print(f"{'n_train':>8} {'update':>18} {'treeinf s':>10} {'catboost s':>11} {'ratio':>7} "
          f"{'min rho':>8} {'mean rho':>9}")
    methods = [(0, "SinglePoint"), (2, "TopKLeaves:top=2"), (-1, "AllPoints")]
    for n in args.sizes:
        Xtr, ytr, Xte, yte = _data(n, args.test)
        model = _catboost(Xtr, ytr, args.threads)
        for update_set, name in methods:
            ours, t_ours, (idx, scores), t_cb = _alternating(
                _ours_runner(model, Xtr, ytr, Xte, yte, update_set, args.threads),
                lambda: model.get_object_importance(
                    cb.Pool(Xte, yte), cb.Pool(Xtr, ytr), top_size=-1, type="PerObject",
                    update_method=name, importance_values_sign="All",
                    thread_count=args.threads))
            rho = []
            for e in range(len(yte)):
                ref = np.zeros(n)
                ref[np.asarray(idx[e])] = scores[e]
                rho.append(spearmanr(ours[:, e], -ref)[0])
            print(f"{n:>8} {name:>18} {t_ours:>10.3f} {t_cb:>11.3f} {t_ours / t_cb:>7.3f} "
                  f"{np.min(rho):>8.4f} {np.mean(rho):>9.4f}", flush=True)
    print("\nLeafInfluence (fit + local, seconds) on other libraries, same data sizes")
    import lightgbm as lgb
    import xgboost as xgb
    print(f"{'n_train':>8} {'model':>9} {'update 0':>9} {'update 2':>9} {'update -1':>10}")
    for n in args.sizes:
        Xtr, ytr, Xte, yte = _data(n, args.test)
        models = {
            "lightgbm": lgb.LGBMClassifier(n_estimators=100, num_leaves=32, max_depth=5,
                                           min_child_weight=1e-12, n_jobs=args.threads,
                                           verbose=-1, random_state=1).fit(Xtr, ytr),
            "xgboost": xgb.XGBClassifier(n_estimators=100, max_depth=5, min_child_weight=0,
                                         n_jobs=args.threads, random_state=1).fit(Xtr, ytr),
        }
        for name, m in models.items():
            atol = 1e-4 if name == "xgboost" else 1e-5
            times = []
            for u in (0, 2, -1):
                from treeinf import LeafInfluence
                _, t = _timed(lambda: LeafInfluence(update_set=u, atol=atol, n_jobs=args.threads)
                              .fit(m, Xtr, ytr).get_local_influence(Xte, yte))
                times.append(t)
            print(f"{n:>8} {name:>9} {times[0]:>9.3f} {times[1]:>9.3f} {times[2]:>10.3f}",
                  flush=True)
    print(_load())


if __name__ == "__main__":
    main()
