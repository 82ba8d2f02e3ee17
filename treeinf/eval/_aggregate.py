"""From stored unit results to the paper's tables.

Three tidy tables, all pandas DataFrames:

* :func:`row_table` — one row per (measure, data set, model, method, test row
  or set, fraction, metric);
* :func:`curves` — the same averaged over test rows (what the loss-vs-fraction
  plots draw), columns ``measure, dataset, model, method, fraction, metric,
  value, n``;
* :func:`rank_table` — per measure and pool, the methods' mean rank with a
  95% interval over data sets and their relative magnitude, columns
  ``measure, pool, method, mean_rank, ci_low, ci_high, ci95, clipped,
  n_datasets, n_methods, rel_magnitude``;
* :func:`missing_cells` — the (data set, model, method) cells of a ranking
  where a method has no value while others do.

The fix-mislabelled measure has two rankings; the self-influence one is
reported as the measure ``fix_mislabelled_self``. The single-row removal
measure's one-row checkpoint (the single top-ranked row removed, on every
data set) is reported as the measure ``removal_one``.

Intervals are Student-t intervals over data sets (see :func:`rank_interval`):
with the 2 to 13 data sets of a typical run, 1.96 standard errors is too
narrow (with 2 data sets the right factor is 12.7, not 1.96).
"""
import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import rankdata

from ..exceptions import DataValidationError
from ._protocol import CHECKPOINTS, PRIMARY_METRIC
from ._settings import SLOW_METHODS

RANK_TABLE_COLUMNS = ["measure", "pool", "method", "mean_rank", "ci_low", "ci_high", "ci95",
                      "clipped", "n_datasets", "n_methods", "rel_magnitude"]
_ROW_COLUMNS = ["measure", "dataset", "model", "method", "row", "fraction", "metric", "value"]
BASELINE = "random"
#: Confidence level of the rank intervals.
LEVEL = 0.95
#: How the rank intervals are computed, as stated in every report.
INTERVAL_NOTE = ("95% interval: Student t with n − 1 degrees of freedom over the n data "
                 "sets (mean ± t(0.975, n − 1) × standard error), clipped to "
                 "[1, number of ranked methods], the range a mean rank can take; "
                 "a clipped end is marked †. No interval with a single data set.")


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
        elif cfg["measure"] == "removal" and isinstance(res, dict):
            parts = [("removal", res["records"]), ("removal_one", res.get("one_row", []))]
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


def _checkpoint_values(rows, measure, methods=None, datasets=None):
    """The measure's primary metric per (data set, model, checkpoint, method)."""
    c = curves(rows)
    c = c[(c.measure == measure) & (c.metric == PRIMARY_METRIC[measure])
          & (c.method != BASELINE)]
    if CHECKPOINTS.get(measure) is not None:
        c = c[c.fraction.isin(CHECKPOINTS[measure])]
    if methods is not None:
        c = c[c.method.isin(methods)]
    if datasets is not None:
        c = c[c.dataset.isin(datasets)]
    return c


def cell_ranks(rows, measure, methods=None, datasets=None):
    """Rank of each method in every (data set, model, checkpoint) cell.

    Methods are ranked only against the methods that have a value in that
    cell (1 = best = highest metric averaged over test rows; ties share the
    average rank). Random is never ranked.

    Returns
    -------
    DataFrame with columns dataset, model, fraction, method, value, rank,
    n_ranked (the number of methods ranked in the cell).
    """
    c = _checkpoint_values(rows, measure, methods, datasets)
    cols = ["dataset", "model", "fraction", "method", "value", "rank", "n_ranked"]
    if c.empty:
        return pd.DataFrame(columns=cols)
    c = c.copy()
    cell = c.groupby(["dataset", "model", "fraction"])["value"]
    c["rank"] = cell.transform(lambda v: rankdata(-v.to_numpy(), method="average"))
    c["n_ranked"] = cell.transform("size").astype(int)
    return c[cols].reset_index(drop=True)


def dataset_ranks(rows, measure, methods=None, datasets=None):
    """Mean rank of each method per data set for one measure.

    For every (data set, model, checkpoint) the methods other than Random are
    ranked on the measure's metric averaged over test rows (1 = best =
    highest; ties share the average rank), each cell over the methods present
    in it (:func:`cell_ranks`; :func:`missing_cells` lists the absent ones);
    the ranks are then averaged over checkpoints and models.

    Returns
    -------
    DataFrame indexed by data set, one column per method.
    """
    c = cell_ranks(rows, measure, methods, datasets)
    if c.empty:
        return pd.DataFrame()
    return c.groupby(["dataset", "method"])["rank"].mean().unstack("method")


def missing_cells(rows, measure, methods=None, datasets=None):
    """Where a method has no value in a ranking while other methods do.

    The methods expected are those with a value for the measure anywhere in
    the selection (``methods`` and ``datasets``); a (data set, model,
    checkpoint) cell misses a method when it ranks other methods but not
    that one (not run, refused as unsupported, or that fraction skipped for
    every test row).

    Returns
    -------
    DataFrame with columns dataset, model, method, n_missing (checkpoints
    without a value), n_checkpoints (checkpoints ranked there).
    """
    c = _checkpoint_values(rows, measure, methods, datasets)
    cols = ["dataset", "model", "method", "n_missing", "n_checkpoints"]
    out = []
    expected = sorted(set(c.method))
    for dataset, d in c.groupby("dataset", sort=True):
        for model, dm in d.groupby("model", sort=True):
            cells = dm.groupby("fraction")["method"].agg(set)
            for method in expected:
                n_miss = int(sum(method not in present for present in cells))
                if n_miss:
                    out.append((dataset, model, method, n_miss, len(cells)))
    return pd.DataFrame(out, columns=cols)


def rank_interval(values, n_methods, level=LEVEL):
    """Mean of per-data-set ranks with a Student-t interval, clipped.

    Parameters
    ----------
    values : array-like of shape (n,)
        One mean rank per data set.
    n_methods : int
        The number of ranked methods: no mean rank can exceed it.
    level : float, default=0.95

    Returns
    -------
    mean : float
    low, high : float
        ``mean ∓ t(1 − (1 − level)/2, n − 1) × s / sqrt(n)``, clipped to
        ``[1, n_methods]``; NaN when n < 2.
    half : float
        The unclipped half-width (NaN when n < 2).
    clipped : bool
        Whether either end was clipped.
    """
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean()) if len(v) else np.nan
    if len(v) < 2:
        return mean, np.nan, np.nan, np.nan, False
    se = float(v.std(ddof=1)) / np.sqrt(len(v))
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1)) * se
    lo, hi = mean - half, mean + half
    low, high = max(lo, 1.0), min(hi, float(n_methods))
    return mean, low, high, half, bool(low != lo or high != hi)


def relative_magnitude(rows, measure, methods=None, datasets=None):
    """Metric ÷ Random's metric, averaged per data set, geometric mean over them.

    The ratio is taken per test row (single-row measures) or per set, model
    and checkpoint; ratios with a zero or missing Random value are left out.

    Returns
    -------
    Series indexed by method (Random excluded).
    """
    r = rows[(rows.measure == measure) & (rows.metric == PRIMARY_METRIC[measure])]
    if CHECKPOINTS.get(measure) is not None:
        r = r[r.fraction.isin(CHECKPOINTS[measure])]
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
    DataFrame with columns measure, pool, method, mean_rank (over data sets
    of the per-data-set mean rank), ci_low and ci_high (the 95% Student-t
    interval over data sets, clipped to [1, n_methods]; see
    :func:`rank_interval`), ci95 (its unclipped half-width), clipped (bool),
    n_datasets, n_methods (methods ranked in the pool) and rel_magnitude.
    Pool 'all': every data set, without the slow methods; pool 'li': the LI
    data sets, with them. A pool is left out when it has no data set with
    two or more ranked methods.
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
            n_methods = ranks.shape[1]
            for method in ranks.columns:
                v = ranks[method].dropna().to_numpy()
                mean, low, high, half, clipped = rank_interval(v, n_methods)
                out.append((measure, pool, method, mean, low, high, half, clipped, len(v),
                            n_methods, float(rel.get(method, np.nan))))
    table = pd.DataFrame(out, columns=RANK_TABLE_COLUMNS)
    return table.sort_values(["measure", "pool", "mean_rank", "method"],
                             ignore_index=True)


def missing_table(rows, li_datasets=None, records=None):
    """:func:`missing_cells` of every measure and pool of :func:`rank_table`.

    Parameters
    ----------
    rows : DataFrame
        From :func:`row_table`.
    li_datasets : list of str or None
        As in :func:`rank_table`.
    records : list of dict or None
        The store's records; when given, a missing cell whose unit was
        recorded as unsupported carries that message as its reason.

    Returns
    -------
    DataFrame with columns measure, pool, dataset, model, method, n_missing,
    n_checkpoints, reason.
    """
    cols = ["measure", "pool", "dataset", "model", "method", "n_missing",
            "n_checkpoints", "reason"]
    _check_columns(rows, _ROW_COLUMNS, "row table")
    if li_datasets is None:
        from .. import datasets as ds
        li_datasets = ds.list_datasets(li_only=True)
    reasons = {}
    for rec in records or []:
        cfg = rec["config"]
        if rec.get("status") == "unsupported" and cfg.get("method"):
            base = "fix_mislabelled" if cfg["measure"] == "fix_mislabelled" else None
            names = ([cfg["measure"]] if base is None
                     else ["fix_mislabelled", "fix_mislabelled_self"])
            if cfg["measure"] == "removal":
                names.append("removal_one")
            for name in names:
                reasons[(name, cfg["dataset"], cfg["model"], cfg["method"])] = \
                    rec.get("message", "unsupported")
    all_methods = sorted(set(rows.method))
    pools = {"all": (None, [m for m in all_methods if m not in SLOW_METHODS]),
             "li": (list(li_datasets), all_methods)}
    out = []
    for measure in sorted(set(rows.measure)):
        for pool, (dsets, methods) in pools.items():
            if pool == "li" and not any(m in SLOW_METHODS for m in all_methods):
                continue
            miss = missing_cells(rows, measure, methods, dsets)
            for r in miss.itertuples(index=False):
                reason = reasons.get((measure, r.dataset, r.model, r.method))
                if reason is None:
                    reason = ("not run" if r.n_missing == r.n_checkpoints
                              else "fractions skipped or not run")
                out.append((measure, pool, r.dataset, r.model, r.method, r.n_missing,
                            r.n_checkpoints, reason))
    return pd.DataFrame(out, columns=cols)


def _check_columns(frame, columns, what):
    missing = [c for c in columns if c not in getattr(frame, "columns", [])]
    if missing:
        raise DataValidationError(f"the {what} lacks columns {missing}; expected {columns}.")


def runtime_table(records):
    """Fit and one-row influence seconds per (data set, model, method).

    Returns
    -------
    DataFrame with columns dataset, model, method, fit_s, influence_s
    (means over the timed repeats; the warm-up round is not included),
    total_s = fit_s + influence_s, repeats, and, per (data set, model), the
    ratios to BoostIn's times: ``influence_vs_boostin`` and
    ``total_vs_boostin`` (NaN without a BoostIn unit).
    """
    out = []
    for rec in records:
        cfg = rec["config"]
        if cfg["measure"] != "runtime" or rec.get("status") != "ok":
            continue
        res = rec["result"]
        out.append((cfg["dataset"], cfg["model"], cfg["method"],
                    float(np.mean(res["fit_s"])), float(np.mean(res["influence_s"])),
                    len(res["fit_s"])))
    t = pd.DataFrame(out, columns=["dataset", "model", "method", "fit_s", "influence_s",
                                   "repeats"])
    if t.empty:
        return t
    t["total_s"] = t.fit_s + t.influence_s
    base = t[t.method == "boostin"].set_index(["dataset", "model"])[
        ["influence_s", "total_s"]].add_prefix("boostin_")
    t = t.join(base, on=["dataset", "model"])
    t["influence_vs_boostin"] = t.influence_s / t.boostin_influence_s
    t["total_vs_boostin"] = t.total_s / t.boostin_total_s
    cols = ["dataset", "model", "method", "fit_s", "influence_s", "total_s", "repeats",
            "influence_vs_boostin", "total_vs_boostin"]
    return t[cols].sort_values(["dataset", "model", "method"], ignore_index=True)


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
