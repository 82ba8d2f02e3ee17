"""Loading a saved BoostIn: this checkout against a baseline checkout.

Binary LightGBM, 100 trees x 31 leaves, 50k training rows (issue #11's
acceptance size). For each treeinf checkout (this one, and the baseline given
with ``--baseline``, e.g. the commit before validated loading) a fresh
process fits the same model and BoostIn, saves it, loads it once to warm the
JIT, then times ``treeinf.load`` ``--repeat`` times (the median is
reported) and checks that the loaded explainer's influences equal the saved
one's. Both checkouts are measured in the same run, alternating, so the
ratio compares like with like on a busy machine. Goal: at most 2x the
baseline's load time.

Usage::

    git archive <base commit> treeinf | tar -x -C /tmp/treeinf-base
    python benchmarks/bench_persist.py --baseline /tmp/treeinf-base [--n 50000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WORKER = r"""
import json, os, statistics, sys, tempfile, time
import numpy as np
import treeinf
from sklearn.datasets import make_classification
import lightgbm as lgb
n, repeat = int(sys.argv[1]), int(sys.argv[2])
X, y = make_classification(n_samples=n + 100, n_features=20, n_informative=10, random_state=0)
model = lgb.LGBMClassifier(n_estimators=100, num_leaves=31, verbose=-1,
                           random_state=0).fit(X[:n], y[:n])
exp = treeinf.BoostIn().fit(model, X[:n], y[:n])
path = os.path.join(tempfile.mkdtemp(), "boostin.treeinf")
t = time.perf_counter(); exp.save(path); save_s = time.perf_counter() - t
ref = exp.get_local_influence(X[n:], y[n:])
again = treeinf.load(path)  # warm-up: JIT and file cache
assert np.array_equal(again.get_local_influence(X[n:], y[n:]), ref)
times = []
for _ in range(repeat):
    t = time.perf_counter(); treeinf.load(path); times.append(time.perf_counter() - t)
print(json.dumps({"treeinf": os.path.dirname(treeinf.__file__), "save_s": save_s,
                  "load_s": statistics.median(times), "load_all_s": times,
                  "file_mb": os.path.getsize(path) / 2**20}))
"""


def measure(root, n, repeat):
    """Run the worker with ``root`` first on sys.path; its JSON result."""
    env = dict(os.environ, PYTHONPATH=root)
    with tempfile.TemporaryDirectory() as cwd:  # not this directory: '' leads sys.path
        proc = subprocess.run([sys.executable, "-c", _WORKER, str(n), str(repeat)],
                              env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True,
                        help="directory holding the baseline treeinf package")
    parser.add_argument("--n", type=int, default=50_000, help="training rows")
    parser.add_argument("--repeat", type=int, default=7, help="timed loads per run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternating runs per checkout (best median is kept)")
    args = parser.parse_args(argv)
    best = {}
    for _ in range(args.rounds):
        for label, root in (("baseline", args.baseline), ("this", HERE)):
            res = measure(root, args.n, args.repeat)
            if label not in best or res["load_s"] < best[label]["load_s"]:
                best[label] = res
    for label, res in best.items():
        print(f"{label:9s} {res['treeinf']}: load {res['load_s'] * 1e3:8.1f} ms  "
              f"save {res['save_s'] * 1e3:8.1f} ms  file {res['file_mb']:6.1f} MiB")
    ratio = best["this"]["load_s"] / best["baseline"]["load_s"]
    print(f"load time ratio this/baseline: {ratio:.2f} (goal <= 2.00)")
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
