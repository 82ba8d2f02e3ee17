"""How DaskBoostIn's query time grows with the number of training partitions.

Binary LightGBM, 100 trees x 31 leaves (the setting of bench_boostin.py),
``--n`` training rows cut into 1, 2, 4, ... partitions on a LocalCluster of
``--workers`` worker processes with one thread each (numba kernels run with
one thread per task). For every partition count: the fit time, then the
median over ``--repeat`` runs (after one warm-up query) of

* top-10 for 1 query row (``get_top_influence``),
* top-10 for 100 query rows,
* the dense local influence of 100 rows, gathered to the client,
* global influence over 100 rows, gathered.

The first line is the in-memory ``BoostIn(n_jobs=1)`` in the client process,
measured in the same run, as the baseline. Timings include Dask's per-task
overhead (scheduling, sending the query, gathering the results), which is
what grows with the number of partitions.

Usage: python benchmarks/bench_dask.py [--n 50000] [--partitions 1,2,4,8,16,32]
       [--workers 2] [--repeat 5] [--threads]   (--threads: in-process workers)
"""
import argparse
import os
import statistics
import time

import numpy as np

from bench_boostin import _data, _model, _warm_up


def _median_ms(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _queries(exp, Xte, yte, repeat):
    return [_median_ms(lambda: exp.get_top_influence(Xte[:1], yte[:1], k=10), repeat),
            _median_ms(lambda: exp.get_top_influence(Xte, yte, k=10), repeat),
            _median_ms(lambda: exp.get_local_influence(Xte, yte), repeat),
            _median_ms(lambda: exp.get_global_influence(Xte, yte), repeat)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--partitions", default="1,2,4,8,16,32")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", action="store_true",
                    help="in-process workers (threads) instead of worker processes")
    args = ap.parse_args()

    import dask.array as da
    import distributed
    from treeinf import BoostIn, DaskBoostIn

    _warm_up()
    Xtr, ytr, Xte, yte = _data(args.n, 100)
    model = _model(Xtr, ytr)
    head = (f"{'partitions':>10} | {'fit s':>6} | {'top-10 1 row ms':>15} | "
            f"{'top-10 100 rows ms':>18} | {'local 100 rows ms':>17} | "
            f"{'global 100 rows ms':>18}")
    print(f"DaskBoostIn, LightGBM 100 trees x 31 leaves, n_train={args.n}, "
          f"{args.workers} {'threads' if args.threads else 'worker processes'} x 1 "
          f"thread, median of {args.repeat}; load average {os.getloadavg()[0]:.1f}")
    print(head)
    print("-" * len(head))
    t0 = time.perf_counter()
    ref = BoostIn(n_jobs=1).fit(model, Xtr, ytr)
    fit_s = time.perf_counter() - t0
    row = _queries(ref, Xte, yte, args.repeat)
    print(f"{'in memory':>10} | {fit_s:6.2f} | {row[0]:15.1f} | {row[1]:18.1f} | "
          f"{row[2]:17.1f} | {row[3]:18.1f}")
    expected = ref.get_top_influence(Xte, yte, k=10)
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=not args.threads, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(_warm_up)   # load the compiled kernels on every worker
        for p in (int(v) for v in args.partitions.split(",")):
            Xd = da.from_array(Xtr, chunks=(-(-args.n // p), -1))
            yd = da.from_array(ytr, chunks=-(-args.n // p))
            t0 = time.perf_counter()
            exp = DaskBoostIn(n_jobs=1).fit(model, Xd, yd, client=client)
            fit_s = time.perf_counter() - t0
            row = _queries(exp, Xte, yte, args.repeat)
            got = exp.get_top_influence(Xte, yte, k=10)
            assert np.allclose(got[1], expected[1], rtol=1e-12, atol=0), "results differ"
            print(f"{p:>10} | {fit_s:6.2f} | {row[0]:15.1f} | {row[1]:18.1f} | "
                  f"{row[2]:17.1f} | {row[3]:18.1f}")
            del exp


if __name__ == "__main__":
    main()
