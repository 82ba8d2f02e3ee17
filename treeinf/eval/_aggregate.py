"""From stored unit results to the paper's tables.

Three tidy tables, all pandas DataFrames:

* :func:`row_table` — one row per (measure, data set, model, method, test row
  or set, fraction, metric);
* :func:`curves` — the same averaged over test rows (what the loss-vs-fraction
  plots draw), columns ``measure, dataset, model, method, fraction, metric,
  value, n``;
* :func:`rank_table` — per measure and pool, the methods' mean rank with a
  95% interval over data sets and their relative magnitude, columns
  ``measure, pool, method, mean_rank, ci95, n_datasets, rel_magnitude``.

The fix-mislabelled measure has two rankings; the self-influence one is
reported as the measure ``fix_mislabelled_self``.
"""
import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..exceptions import DataValidationError
from ._protocol import CHECKPOINTS, PRIMARY_METRIC
from ._settings import SLOW_METHODS

_ROW_COLUMNS = ["measure", "dataset", "model", "method", "row", "fraction", "metric", "value"]
BASELINE = "random"


def row_table(records):
    """Flatten stored records of the five measures into one long table.

    Parameters
    ----------
    records : list of dict
        ``ResultStore(...).records()``.

    Returns
    -------
    DataFrame with columns measure, dataset, model, method, row, fraction,
    metric, value (row = -1 for set measures; skipped fractions are left out).
    """
    out = []
    for rec in records:
        cfg = rec["config"]
        if rec.get("status") != "ok" or cfg["measure"] not in PRIMARY_METRIC:
            continue
        res = rec["result"]
        head = (cfg["dataset"], cfg["model"], cfg["method"],
                cfg.get("row", -1) if cfg.get("row") is not None else -1)
        if cfg["measure"] == "fix_mislabelled":
            parts = [("fix_mislabelled" if name == "global" else "fix_mislabelled_self", r)
                     for name, r in res["rankings"].items()]
        elif cfg["measure"] == "targeted_edit":
            parts = [("targeted_edit", res["records"])]
        else:
            parts = [(cfg["measure"], res)]
        for measure, recs in parts:
            for r in recs:
                if r.get("skipped"):
                    continue
                for metric, value in r.items():
                    if metric in ("fraction", "n_edited", "skipped") or value is None:
                        continue
                    out.append((measure, *head[:3], head[3], float(r["fraction"]),
                                metric, float(value)))
    return pd.DataFrame(out, columns=_ROW_COLUMNS)


def curves(rows):
    """Average the row table over test rows.

    Returns
    -------
    DataFrame with columns measure, dataset, model, method, fraction, metric,
    value, n (number of test rows averaged).
    """
    _check_columns(rows, _ROW_COLUMNS, "row table")
    keys = ["measure", "dataset", "model", "method", "fraction", "metric"]
    g = rows.groupby(keys, sort=True)["value"]
    return g.agg(value="mean", n="size").reset_index()


def dataset_ranks(rows, measure, methods=None, datasets=None):
    """Mean rank of each method per data set for one measure.

    For every (data set, model, checkpoint) the methods other than Random are
    ranked on the measure's metric averaged over test rows (1 = best =
    highest; ties share the average rank; a method without a value there is
    left out); the ranks are then averaged over checkpoints and models.

    Returns
    -------
    DataFrame indexed by data set, one column per method.
    """
    c = curves(rows)
    c = c[(c.measure == measure) & (c.metric == PRIMARY_METRIC[measure])
          & c.fraction.isin(CHECKPOINTS[measure]) & (c.method != BASELINE)]
    if methods is not None:
        c = c[c.method.isin(methods)]
    if datasets is not None:
        c = c[c.dataset.isin(datasets)]
    if c.empty:
        return pd.DataFrame()
    c = c.copy()
    c["rank"] = c.groupby(["dataset", "model", "fraction"])["value"].transform(
        lambda v: rankdata(-v.to_numpy(), method="average"))
    return c.groupby(["dataset", "method"])["rank"].mean().unstack("method")


def relative_magnitude(rows, measure, methods=None, datasets=None):
    """Metric ÷ Random's metric, averaged per data set, geometric mean over them.

    The ratio is taken per test row (single-row measures) or per set, model
    and checkpoint; ratios with a zero or missing Random value are left out.

    Returns
    -------
    Series indexed by method (Random excluded).
    """
    r = rows[(rows.measure == measure) & (rows.metric == PRIMARY_METRIC[measure])
             & rows.fraction.isin(CHECKPOINTS[measure])]
    if datasets is not None:
        r = r[r.dataset.isin(datasets)]
    keys = ["dataset", "model", "row", "fraction"]
    base = r[r.method == BASELINE].set_index(keys)["value"]
    r = r[r.method != BASELINE]
    if methods is not None:
        r = r[r.method.isin(methods)]
    if r.empty or base.empty:
        return pd.Series(dtype=float)
    r = r.join(base.rename("base"), on=keys)
    r = r[np.isfinite(r.base) & (r.base > 0)]
    r = r.assign(ratio=r.value / r.base)
    per_ds = r.groupby(["method", "dataset"])["ratio"].mean()
    per_ds = per_ds[per_ds > 0]
    return np.exp(np.log(per_ds).groupby("method").mean())


def rank_table(rows, li_datasets=None):
    """The paper's summary: mean rank ± 95% interval per measure and pool.

    Parameters
    ----------
    rows : DataFrame
        From :func:`row_table`.
    li_datasets : list of str or None
        The "LI data sets" (default: :func:`treeinf.datasets.list_datasets`
        with ``li_only=True``).

    Returns
    -------
    DataFrame with columns measure, pool, method, mean_rank, ci95,
    n_datasets, rel_magnitude. Pool 'all': every data set, without the slow
    methods; pool 'li': the LI data sets, with them. A pool is left out when
    it has no data set with two or more ranked methods.
    """
    _check_columns(rows, _ROW_COLUMNS, "row table")
    if li_datasets is None:
        from .. import datasets as ds
        li_datasets = ds.list_datasets(li_only=True)
    all_methods = sorted(set(rows.method))
    pools = {"all": (None, [m for m in all_methods if m not in SLOW_METHODS]),
             "li": (list(li_datasets), all_methods)}
    out = []
    for measure in sorted(set(rows.measure)):
        for pool, (dsets, methods) in pools.items():
            if pool == "li" and not any(m in SLOW_METHODS for m in all_methods):
                continue
            ranks = dataset_ranks(rows, measure, methods, dsets)
            if ranks.empty or ranks.shape[1] < 2:
                continue
            rel = relative_magnitude(rows, measure, methods, dsets)
            for method in ranks.columns:
                v = ranks[method].dropna().to_numpy()
                ci = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
                out.append((measure, pool, method, float(v.mean()), float(ci), len(v),
                            float(rel.get(method, np.nan))))
    table = pd.DataFrame(out, columns=["measure", "pool", "method", "mean_rank", "ci95",
                                       "n_datasets", "rel_magnitude"])
    return table.sort_values(["measure", "pool", "mean_rank", "method"],
                             ignore_index=True)


def _check_columns(frame, columns, what):
    missing = [c for c in columns if c not in getattr(frame, "columns", [])]
    if missing:
        raise DataValidationError(f"the {what} lacks columns {missing}; expected {columns}.")


def runtime_table(records):
    """Fit and one-row influence seconds per (data set, model, method).

    Returns
    -------
    DataFrame with columns dataset, model, method, fit_s, influence_s (the
    mean over repeats) and, per (data set, model), ``vs_boostin`` = the
    method's influence time ÷ BoostIn's.
    """
    out = []
    for rec in records:
        cfg = rec["config"]
        if cfg["measure"] != "runtime" or rec.get("status") != "ok":
            continue
        res = rec["result"]
        out.append((cfg["dataset"], cfg["model"], cfg["method"],
                    float(np.mean(res["fit_s"])), float(np.mean(res["influence_s"]))))
    t = pd.DataFrame(out, columns=["dataset", "model", "method", "fit_s", "influence_s"])
    if t.empty:
        return t
    base = t[t.method == "boostin"].set_index(["dataset", "model"])["influence_s"]
    t = t.join(base.rename("boostin_s"), on=["dataset", "model"])
    t["vs_boostin"] = t.influence_s / t.boostin_s
    return t.drop(columns="boostin_s").sort_values(["dataset", "model", "method"],
                                                   ignore_index=True)


def agreement_table(records):
    """Mean Pearson, Spearman and top-10% Jaccard per method pair.

    Returns
    -------
    DataFrame with columns a, b, pearson, spearman, jaccard, n (test rows ×
    models × data sets averaged).
    """
    out = []
    for rec in records:
        cfg = rec["config"]
        if cfg["measure"] != "agreement" or rec.get("status") != "ok":
            continue
        for p in rec["result"]:
            out.append((p["a"], p["b"], p["pearson"], p["spearman"], p["jaccard"]))
    t = pd.DataFrame(out, columns=["a", "b", "pearson", "spearman", "jaccard"])
    if t.empty:
        return t
    t = t.astype({"pearson": float, "spearman": float, "jaccard": float})
    g = t.groupby(["a", "b"])
    return g.mean().join(g.size().rename("n")).reset_index()
