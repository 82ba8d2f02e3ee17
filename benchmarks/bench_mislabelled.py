"""Which ranking finds flipped labels? Precision at k on real data.

Flips 5% of the training labels of a binary benchmark data set (adult,
bank_marketing by default), trains the benchmark's LightGBM model on the
noisy labels and ranks the training rows by how suspicious each detector
finds them. Precision at k (k = number of flipped rows) is the share of the
k most suspicious rows whose label was flipped.

Detectors:

* ``loss``: the row's training loss under the noisy model (treeinf.Loss);
* ``boostin_self`` / ``leafinfsp_self``: self-influence;
* ``boostin_global``: minus the global influence on a clean validation split
  (a row that helps the validation loss is not suspicious);
* ``boostin_relabel``: how much relabelling the row (to the other class)
  would lower the loss of the clean validation split, from BoostIn's
  label-edit influence;
* ``oof_loss``: the loss of the noisy label under out-of-fold probabilities
  (5-fold cross-fitting of the same model);
* ``cleanlab``: ``cleanlab.filter.find_label_issues`` on the same
  out-of-fold probabilities, ranked by self-confidence (optional: skipped
  when cleanlab is not installed);
* ``oof_relabel``: the rank average of ``oof_loss`` and
  ``boostin_relabel`` (an out-of-fold signal and an influence signal that
  make different mistakes);
* ``random``: the floor.

Usage::

    python benchmarks/bench_mislabelled.py [--datasets adult,bank_marketing]
        [--noise 0.05] [--seeds 0,1,2] [--val-share 0.1]
"""
import argparse
import os
import time

import numpy as np
from scipy.stats import rankdata
from sklearn.model_selection import StratifiedKFold, train_test_split

import treeinf
from treeinf.datasets import load

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("TREEINF_DATA_DIR", os.path.join(HERE, "..", "..", "shared", "datasets"))
#: BENCHMARK.md's tuned LightGBM settings (n_estimators, num_leaves)
LGB = {"adult": (100, 31), "bank_marketing": (50, 31), "compas": (50, 15),
       "credit_card": (50, 15), "htru2": (100, 15), "spambase": (200, 31)}


def make_model(name):
    import lightgbm as lgb
    n_est, leaves = LGB.get(name, (100, 31))
    return lgb.LGBMClassifier(n_estimators=n_est, num_leaves=leaves, random_state=1,
                              verbose=-1, n_jobs=2)


def oof_proba(name, X, y, seed):
    from sklearn.base import clone
    proba = np.empty(len(y))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y):
        proba[te] = clone(make_model(name)).fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
    return proba


def precision_at_k(score, flipped):
    k = int(flipped.sum())
    top = np.argsort(-score, kind="stable")[:k]
    return float(flipped[top].mean())


def relabel_gain(est, X_val, y_val, y_train, chunk=500):
    """Decrease of the summed validation loss if each training row's label
    were flipped (positive = flipping helps = suspicious)."""
    total = np.zeros(len(y_train))
    for s in range(0, len(y_val), chunk):
        Xv, yv = X_val[s:s + chunk], y_val[s:s + chunk]
        for target in (0, 1):
            # positive = relabelling to `target` increases the validation loss
            edit = est.get_label_edit_influence(Xv, yv, np.full(len(yv), target))
            rows = y_train != target
            total[rows] -= edit[rows].sum(axis=1)
    return total


def run(name, noise, seed, val_share):
    d = load(name, data_dir=DATA)
    X, y = np.asarray(d.X_train, dtype=np.float64), np.asarray(d.y_train).astype(np.int64)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=val_share, stratify=y,
                                                random_state=seed)
    rng = np.random.default_rng(seed)
    flip = rng.choice(len(y_tr), size=int(round(noise * len(y_tr))), replace=False)
    y_noisy = y_tr.copy()
    y_noisy[flip] = 1 - y_noisy[flip]
    flipped = np.zeros(len(y_tr), dtype=bool)
    flipped[flip] = True

    model = make_model(name).fit(X_tr, y_noisy)
    scores, times = {}, {}

    def timed(key, fn):
        t0 = time.perf_counter()
        scores[key] = fn()
        times[key] = time.perf_counter() - t0

    timed("loss", lambda: treeinf.Loss().fit(model, X_tr, y_noisy).get_self_influence())
    boostin = treeinf.BoostIn().fit(model, X_tr, y_noisy)
    timed("boostin_self", boostin.get_self_influence)
    timed("boostin_global", lambda: -boostin.get_global_influence(X_val, y_val))
    timed("boostin_relabel", lambda: relabel_gain(boostin, X_val, y_val, y_noisy))
    if len(y_tr) <= 40_000:
        timed("leafinfsp_self", lambda: treeinf.LeafInfluence(update_set=0).fit(
            model, X_tr, y_noisy).get_self_influence())
    t0 = time.perf_counter()
    p = oof_proba(name, X_tr, y_noisy, seed)
    t_oof = time.perf_counter() - t0
    p_label = np.where(y_noisy == 1, p, 1 - p)
    scores["oof_loss"] = -np.log(np.clip(p_label, 1e-15, 1))
    times["oof_loss"] = t_oof
    try:
        from cleanlab.filter import find_label_issues
        t0 = time.perf_counter()
        order = find_label_issues(y_noisy, np.column_stack([1 - p, p]),
                                  return_indices_ranked_by="self_confidence")
        score = np.zeros(len(y_tr))
        score[order] = np.arange(len(order), 0, -1) + len(y_tr)  # flagged first, ranked
        rest = np.setdiff1d(np.arange(len(y_tr)), order)
        score[rest] = scores["oof_loss"][rest] / (1 + scores["oof_loss"][rest].max())
        scores["cleanlab"] = score
        times["cleanlab"] = t_oof + time.perf_counter() - t0
    except ImportError:
        pass
    scores["oof_relabel"] = rankdata(scores["oof_loss"]) + rankdata(scores["boostin_relabel"])
    times["oof_relabel"] = t_oof + times["boostin_relabel"]
    # leave-one-out loss to first order: the training loss plus the loss the
    # row's own presence saved it (its self-influence), no retraining
    scores["loo_loss_boostin"] = scores["loss"] + scores["boostin_self"]
    times["loo_loss_boostin"] = times["loss"] + times["boostin_self"]
    if "leafinfsp_self" in scores:
        scores["loo_loss_leafinf"] = scores["loss"] + scores["leafinfsp_self"]
        times["loo_loss_leafinf"] = times["loss"] + times["leafinfsp_self"]
    scores["loss_global"] = rankdata(scores["loss"]) + rankdata(scores["boostin_global"])
    times["loss_global"] = times["loss"] + times["boostin_global"]
    scores["random"] = rng.random(len(y_tr))
    return {k: precision_at_k(v, flipped) for k, v in scores.items()}, times, len(y_tr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="adult,bank_marketing")
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--val-share", type=float, default=0.1)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.datasets.split(","):
        res = []
        for seed in seeds:
            prec, times, n = run(name, args.noise, seed, args.val_share)
            res.append((prec, times))
        keys = list(res[0][0])
        print(f"\n{name}: n_train={n}, {args.noise:.0%} flipped, {len(seeds)} seeds; "
              f"precision at k (k = flipped rows), mean ± sd; seconds")
        print(f"{'detector':18} {'precision@k':>16} {'time s':>8}")
        for k in sorted(keys, key=lambda k: -np.mean([r[0][k] for r in res])):
            v = np.array([r[0][k] for r in res])
            t = np.mean([r[1].get(k, 0.0) for r in res])
            print(f"{k:18} {v.mean():8.3f} ± {v.std():.3f} {t:8.1f}")


if __name__ == "__main__":
    main()
