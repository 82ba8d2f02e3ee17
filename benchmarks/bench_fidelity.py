"""What the fit-time data check costs: BoostIn fit with and without it.

Binary LightGBM, 100 trees x 31 leaves, 50k training rows (the setting of
bench_boostin.py). Both fits run in the same process after a warm-up,
alternating, best of ``--repeat``; the ratio is the goal (issue 10: the check
may add at most 25% to BoostIn's fit). Fit includes parsing and verifying the
model against the library, which both variants do.

Usage: python benchmarks/bench_fidelity.py [--n 50000] [--repeat 5]
"""
import argparse
import time

from bench_boostin import _data, _model, _warm_up


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from treeinf import BoostIn
    _warm_up()
    Xtr, ytr, _, _ = _data(args.n, 10)
    model = _model(Xtr, ytr)
    times = {True: [], False: []}
    for _ in range(args.repeat):
        for check in (False, True):
            t0 = time.perf_counter()
            BoostIn().fit(model, Xtr, ytr, check_data=check)
            times[check].append(time.perf_counter() - t0)
    off, on = min(times[False]), min(times[True])
    print(f"BoostIn fit, LightGBM 100 trees x 31 leaves, n_train={args.n}, best of "
          f"{args.repeat}")
    print(f"  check_data=False  {off:.3f} s")
    print(f"  check_data=True   {on:.3f} s")
    print(f"  ratio             {on / off:.3f}  (goal <= 1.25)")


if __name__ == "__main__":
    main()
