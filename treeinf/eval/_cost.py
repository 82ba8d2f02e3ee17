"""What a benchmark plan costs, before anything runs (``treeinf bench plan``).

:func:`estimate` counts, per measure, the units of work and the model
retrainings a plan asks for, and turns them into CPU-hours with simple cost
models. The counts are exact; the hours are rough (a factor of about 2 to 3
either way) and meant to tell a laptop run from a cluster run.

Assumptions
-----------
* **Retraining** one model costs ``T·K·(a + b·n·d)`` seconds: ``T`` boosting
  rounds (the paper's tuned ``n_estimators`` / ``max_iter``), ``K`` output
  columns (classes for multiclass, else 1), ``n`` training rows, ``d``
  features; ``a`` (per tree) and ``b`` (per row, feature and tree) per
  library in :data:`RETRAIN_COST`, fitted to single-threaded fits of the
  paper's settings on concrete, compas, htru2, bean and adult on the shared
  2-core development machine (under load, so on the pessimistic side); the
  fit reproduces those 20 timings within a factor of 0.3 to 1.4. A
  retraining on a reduced training set is costed at the full ``n`` (an upper
  bound: the largest fraction removes 50%).
* **Influence** of a method costs ``c · n^p · T·K`` seconds per operation
  (fit the explainer, one test row's local influence, one global influence,
  self-influence); ``(c, p)`` per method and operation in
  :data:`METHOD_COST`, from ``docs/performance.md`` (binary LightGBM, 100
  trees) and the measured self-influence of LeafInfluence (O(n²·T)).
  Methods that retrain (LOO: ``n`` refits; SubSample: 100 refits; DShap: up
  to 200 permutations × ``n`` refits per query, an upper bound that its
  truncation usually cuts by a large factor) count those refits as
  retrainings.
* The explainer of a (data set, model, method) is fitted once per measure
  (units of one data set, model and method run next to each other and
  share a worker's cache; with many workers some fits are repeated).
* Each unit builds its (data set, model) context once: one fit of the
  model, and for fix-mislabelled one more on the noisy labels.
* Runtime units run ``warmup + repeats`` fits and one-row influences.
"""
import numpy as np
import pandas as pd

from ._protocol import ROW_MEASURES, n_edited
from ._settings import PAPER_SETTINGS, capabilities

#: Seconds per retraining: (a per tree, b per training row × feature × tree),
#: single-threaded, per library.
RETRAIN_COST = {"lgb": (7.5e-3, 2.0e-8), "xgb": (9.5e-3, 2.0e-8), "cb": (1.1e-2, 1.9e-8),
                "sgb": (1.9e-2, 1.2e-7)}

#: Per method and operation, (c, p): c · n^p · T · K seconds (see the module
#: notes). Operations: 'fit', 'local' (one test row), 'global', 'self'.
_LINEAR = {"fit": (2e-7, 1), "local": (1.5e-10, 1), "global": (2e-7, 1), "self": (2e-7, 1)}
METHOD_COST = {
    "boostin": _LINEAR,
    "leafinfsp": {"fit": (1.5e-7, 1), "local": (1.5e-10, 1), "global": (2e-7, 1),
                  "self": (2e-7, 1)},
    "leafinfluence": {"fit": (1.5e-7, 1), "local": (1.5e-9, 1), "global": (1.5e-9, 1),
                      "self": (2.2e-8, 2)},
    "leafrefit": {"fit": (1.5e-7, 1), "local": (1.7e-9, 2), "global": (1.7e-9, 2),
                  "self": (1.7e-9, 2)},
    "trex": {"fit": (1e-7, 1), "local": (6e-10, 1), "global": (6e-10, 1), "self": (6e-10, 1)},
    "treesim": {"fit": (6e-8, 1), "local": (1e-10, 1), "global": (1e-10, 1),
                "self": (1e-10, 1)},
    "inputsim": {"fit": (3e-8, 1), "local": (1e-10, 1), "global": (1e-10, 1),
                 "self": (1e-10, 1)},
    "target": {"fit": (2e-8, 1), "local": (1e-11, 1), "global": (1e-11, 1),
               "self": (1e-11, 1)},
    "random": {"fit": (2e-8, 1), "local": (1e-10, 1), "global": (1e-10, 1),
               "self": (1e-10, 1)},
    "loss": {"fit": (4e-8, 1), "self": (4e-8, 1)},
    "loo": {"fit": (2e-7, 1), "local": (1e-10, 1), "global": (1e-10, 1), "self": (1e-10, 1)},
    "subsample": {"fit": (2e-7, 1), "local": (1e-10, 1), "global": (1e-10, 1),
                  "self": (1e-10, 1)},
    "dshap": {"fit": (2e-7, 1), "local": (1e-10, 1), "global": (1e-10, 1),
              "self": (1e-10, 1)},
}
#: Refits a retraining-based method does: at fit time, and per query.
_METHOD_REFITS = {"loo": ("fit", lambda n: n), "subsample": ("fit", lambda n: 100),
                  "dshap": ("query", lambda n: 200 * n)}
_DEFAULT_COST = _LINEAR


def _shape(info, model):
    """(n, d, T, K) of a data set and model."""
    lgb, sgb, cb, xgb = PAPER_SETTINGS[info["name"]]
    T = {"lgb": lgb[0], "sgb": sgb[0], "cb": cb[0], "xgb": xgb[0]}[model]
    K = info.get("n_classes") or 1
    K = K if K > 2 else 1
    return info["n_train"], info["n_features"], T, K


def _retrain_s(model, n, d, T, K):
    a, b = RETRAIN_COST[model]
    return T * K * (a + b * n * d)


def _op_s(method, op, n, T, K):
    c, p = METHOD_COST.get(method, _DEFAULT_COST).get(op, _DEFAULT_COST[op])
    return c * float(n) ** p * T * K


def _distinct_k(fractions, n, counts=()):
    ks = {n_edited(f, n) for f in fractions} | {int(c) for c in counts}
    return len({k for k in ks if k > 0})


def unit_cost(cfg, info):
    """(retrains, retrain seconds, influence seconds) of one unit.

    The explainer's fit is not included (see :func:`estimate`).
    """
    measure, method, model = cfg["measure"], cfg.get("method"), cfg["model"]
    n, d, T, K = _shape(info, model)
    per_retrain = _retrain_s(model, n, d, T, K)
    retrains, infl = 0, 0.0
    if measure == "runtime":
        reps = int(cfg.get("repeats", 5)) + int(cfg.get("warmup", 1))
        op = "local" if "local" in capabilities(method) else "self"
        return 0, 0.0, reps * (_op_s(method, "fit", n, T, K) + _op_s(method, op, n, T, K))
    if measure == "agreement":
        return 0, 0.0, sum(_op_s(m, "local", n, T, K) for m in cfg["methods"])
    if measure in ROW_MEASURES:
        retrains = _distinct_k(cfg["fractions"], n, cfg.get("counts", ()))
        infl = _op_s(method, "local", n, T, K)
        queries = 1
    elif measure == "fix_mislabelled":
        caps = capabilities(method)
        rankings = [op for op in ("global", "self") if op in caps]
        retrains = 1 + len(rankings) * _distinct_k(cfg["fractions"], n)
        infl = sum(_op_s(method, op, n, T, K) for op in rankings)
        queries = len(rankings)
    else:
        retrains = _distinct_k(cfg["fractions"], n)
        infl = _op_s(method, "global", n, T, K)
        queries = 1
    if method in _METHOD_REFITS and _METHOD_REFITS[method][0] == "query":
        retrains += queries * _METHOD_REFITS[method][1](n)
    return retrains, retrains * per_retrain, infl


def estimate(units, by="measure"):
    """Units, retrainings and estimated CPU-hours of a plan.

    Parameters
    ----------
    units : list of dict
        From :func:`treeinf.eval.plan`.
    by : {'measure', 'method'}
        Group the counts per measure or per method (agreement units, which
        compare several methods, are grouped as method ``'(agreement)'``).

    Returns
    -------
    DataFrame with one row per group and a final ``total`` row, columns
    ``by``, units, retrains, retrain_cpu_h, influence_cpu_h, cpu_h. The
    counts are exact; the hours follow the cost models of this module's
    notes (rough: a factor of 2 to 3 either way; DShap's refits are an upper
    bound).

    Examples
    --------
    >>> from treeinf import eval as tev
    >>> units = tev.plan(["concrete"], ["lgb"], ["boostin"], ["removal"], n_test_rows=10)
    >>> t = tev.estimate(units)
    >>> t.measure.tolist(), int(t.units.iloc[0])
    (['removal', 'total'], 10)
    >>> int(t.retrains.iloc[0])     # 1 model + 10 rows x 5 distinct row counts
    51
    """
    from ..exceptions import DataValidationError
    if by not in ("measure", "method"):
        raise DataValidationError(f"by must be 'measure' or 'method', got {by!r}.")
    from .. import datasets as ds
    from ._run import _sort_key
    infos = {}
    rows = {}
    fitted = set()
    contexts = set()
    for cfg in sorted(units, key=_sort_key):
        name, model, measure = cfg["dataset"], cfg["model"], cfg["measure"]
        if name not in infos:
            infos[name] = _describe(ds, name)
        info = infos[name]
        n, d, T, K = _shape(info, model)
        r, rs, inf = unit_cost(cfg, info)
        per_retrain = _retrain_s(model, n, d, T, K)
        if (name, model) not in contexts:   # the context's model, once
            contexts.add((name, model))
            r, rs = r + 1, rs + per_retrain
        methods = cfg["methods"] if measure == "agreement" else [cfg.get("method")]
        for m in methods:
            key = (name, model, m, measure)
            if m is None or key in fitted or measure == "runtime":
                continue
            fitted.add(key)
            inf += _op_s(m, "fit", n, T, K)
            if m in _METHOD_REFITS and _METHOD_REFITS[m][0] == "fit":
                extra = _METHOD_REFITS[m][1](n) * (2 if measure == "fix_mislabelled" else 1)
                r, rs = r + extra, rs + extra * per_retrain
        group = measure if by == "measure" else (cfg.get("method") or "(agreement)")
        acc = rows.setdefault(group, [0, 0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += r
        acc[2] += rs
        acc[3] += inf
    out = [(m, u, r, rs / 3600, inf / 3600, (rs + inf) / 3600)
           for m, (u, r, rs, inf) in rows.items()]
    t = pd.DataFrame(out, columns=[by, "units", "retrains", "retrain_cpu_h",
                                   "influence_cpu_h", "cpu_h"]).sort_values(by)
    total = pd.DataFrame([("total", t.units.sum(), t.retrains.sum(), t.retrain_cpu_h.sum(),
                           t.influence_cpu_h.sum(), t.cpu_h.sum())], columns=t.columns)
    return pd.concat([t, total], ignore_index=True)


def _describe(ds, name):
    """Sizes of a data set from the manifest, without reading its file."""
    info = dict(ds.describe(name))
    if name == "twitter":
        from ..datasets import TWITTER_RECIPE
        info["n_features"] = TWITTER_RECIPE["n_features"]
        info["n_classes"] = 2
        return info
    entry = ds._entry(name)
    info["n_features"] = int(entry["n_features"])
    info["n_classes"] = len(entry.get("classes") or []) or None
    return info
