"""Fit and per-test-row influence time of every method, as one table.

Binary LightGBM, 100 trees x 31 leaves, n_train in {1k, 10k, 50k}, 20 test
rows. The retraining methods (LOO, SubSample, DShap) and the O(n^2 T)
fixed-structure variants (LeafRefit, LeafInfluence TopKLeaves) run only at
1k; cells not run print '-'. Then LOO retrains per second with n_jobs=2
against n_jobs=1 (same run), and the TREX fit time at the largest size
(goal: under 10 s at 50k).

Usage: python benchmarks/bench_methods.py [--sizes 1000 10000 50000] [--test 20]
"""
import argparse
import time

import numpy as np


def _data(n_train, n_test, seed=0):
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=n_train + n_test, n_features=20, n_informative=10,
                               random_state=seed)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _model(X, y, n_estimators=100, n_jobs=-1):
    import lightgbm as lgb
    return lgb.LGBMClassifier(n_estimators=n_estimators, num_leaves=31, learning_rate=0.1,
                              min_child_weight=1e-12, verbose=-1, random_state=1,
                              n_jobs=n_jobs).fit(X, y)


def methods():
    import treeinf as ti
    small = 1000
    return [  # (label, factory, largest n_train to run at, has local influence)
        ("BoostIn", lambda: ti.BoostIn(), None, True),
        ("LeafInfluence(-1)", lambda: ti.LeafInfluence(update_set=-1), None, True),
        ("LeafInfluence(0)", lambda: ti.LeafInfluence(update_set=0), None, True),
        ("LeafInfluence(2)", lambda: ti.LeafInfluence(update_set=2), small, True),
        ("LeafRefit(-1)", lambda: ti.LeafRefit(), small, True),
        ("TREX", lambda: ti.TREX(), None, True),
        ("TreeSim", lambda: ti.TreeSim(), None, True),
        ("InputSim", lambda: ti.InputSim(), None, True),
        ("Target", lambda: ti.Target(random_state=1), None, True),
        ("Random", lambda: ti.Random(random_state=1), None, True),
        ("Loss (self)", lambda: ti.Loss(), None, False),
        ("LOO", lambda: ti.LOO(), small, True),
        ("SubSample", lambda: ti.SubSample(n_models=50, random_state=1), small, True),
        ("DShap", lambda: ti.DShap(max_permutations=2, random_state=1), small, True),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    ap.add_argument("--test", type=int, default=20)
    args = ap.parse_args()
    # JIT warm-up on tiny data
    Xtr, ytr, Xte, yte = _data(300, 5, seed=1)
    m = _model(Xtr, ytr, n_estimators=5)
    for _, make, cap, local in methods():
        if cap is None:
            e = make().fit(m, Xtr, ytr)
            e.get_local_influence(Xte, yte) if local else e.get_self_influence()

    rows = {}
    for n in args.sizes:
        Xtr, ytr, Xte, yte = _data(n, args.test)
        model = _model(Xtr, ytr)
        for label, make, cap, local in methods():
            if cap is not None and n > cap:
                continue
            t0 = time.perf_counter()
            e = make().fit(model, Xtr, ytr)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            if local:
                e.get_local_influence(Xte, yte)
                per_row = (time.perf_counter() - t0) / args.test * 1e3
            else:
                e.get_self_influence()
                per_row = (time.perf_counter() - t0) / n * 1e3
            rows.setdefault(label, {})[n] = (fit_s, per_row)
            print(f"  done {label} at {n}", flush=True)

    print(f"\nbinary LightGBM 100 trees x 31 leaves, {args.test} test rows; "
          "fit seconds / ms per test row (Loss: ms per training row, self-influence)")
    head = f"{'method':>18}" + "".join(f" {f'n={n}':>22}" for n in args.sizes)
    print(head)
    for label, _, _, _ in methods():
        cells = []
        for n in args.sizes:
            if n in rows.get(label, {}):
                f, p = rows[label][n]
                cells.append(f"{f:9.3f} s {p:8.3f} ms")
            else:
                cells.append(f"{'-':>20}")
        print(f"{label:>18}" + "".join(f" {c:>22}" for c in cells))

    # LOO retrains per second: n_jobs=2 vs n_jobs=1 in the same run
    import treeinf as ti
    Xtr, ytr, Xte, yte = _data(1000, 5)
    model = _model(Xtr, ytr)
    rates = {}
    for n_jobs in (1, 2):
        sub = np.arange(100)  # 100 retrains: LOO on the first 100 rows' subset model
        small = _model(Xtr[sub], ytr[sub], n_jobs=1)
        t0 = time.perf_counter()
        ti.LOO(n_jobs=n_jobs).fit(small, Xtr[sub], ytr[sub]).get_local_influence(Xte, yte)
        rates[n_jobs] = len(sub) / (time.perf_counter() - t0)
    print(f"\nLOO retrains/s (100 rows, 100 trees): n_jobs=1 {rates[1]:.1f}, "
          f"n_jobs=2 {rates[2]:.1f}, ratio {rates[2] / rates[1]:.2f}")
    n = max(args.sizes)
    if "TREX" in rows and n in rows["TREX"]:
        print(f"TREX fit at n_train={n}: {rows['TREX'][n][0]:.2f} s (goal < 10 s)")


if __name__ == "__main__":
    main()
