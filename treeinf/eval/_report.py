"""Write the benchmark report: Markdown and CSV tables, PNG plots."""
from pathlib import Path

import numpy as np

from ..exceptions import DataValidationError
from ._aggregate import (INTERVAL_NOTE, agreement_table, curves, missing_table,
                         rank_table, row_table, runtime_table)
from ._protocol import PRIMARY_METRIC
from ._store import ResultStore

_TITLES = {
    "removal": "Removal (single test row): test loss after removing the most helpful rows",
    "removal_one": "Removal of the single most helpful row (one-row checkpoint, every "
                   "data set): test-row loss",
    "targeted_edit": "Targeted edit (single test row): test loss after relabelling",
    "removal_set": "Removal (set): test loss after removing the most helpful rows",
    "noise": "Adding noise (set): test loss after corrupting the most helpful rows",
    "fix_mislabelled": "Fix mislabelled, ranked by global influence: fraction of noisy rows found",
    "fix_mislabelled_self": "Fix mislabelled, ranked by self-influence: fraction of noisy rows found",
}


def _markdown(frame, floatfmt="{:.3f}"):
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                cells.append("–" if np.isnan(v) else floatfmt.format(v))
            else:
                cells.append(str(v).replace("|", "/").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _interval_text(mean, low, high, half):
    if not np.isfinite(half):
        return "–"
    lo = f"{low:.2f}" + ("†" if mean - half < low else "")
    hi = f"{high:.2f}" + ("†" if mean + half > high else "")
    return f"[{lo}, {hi}]"


def rank_markdown(ranks):
    """The rank tables as Markdown, one section per measure and pool.

    Each table gives a method's mean rank and its 95% Student-t interval over
    data sets, clipped to [1, number of ranked methods] (a clipped end is
    marked †; see :data:`treeinf.eval.INTERVAL_NOTE`).
    """
    parts = []
    for (measure, pool), t in ranks.groupby(["measure", "pool"], sort=True):
        t = t.sort_values(["mean_rank", "method"])
        show = t.assign(
            rank=[f"{m:.2f}" for m in t.mean_rank],
            interval=[_interval_text(*v) for v in zip(t.mean_rank, t.ci_low, t.ci_high,
                                                       t.ci95)])
        show = show[["method", "rank", "interval", "rel_magnitude", "n_datasets"]]
        show.columns = ["method", "mean rank", "95% interval", "rel. magnitude (÷ Random)",
                        "data sets"]
        title = _TITLES.get(measure, measure)
        pool_txt = ("all data sets, without the slow methods" if pool == "all"
                    else "LI data sets, with the slow methods")
        n_methods = int(t.n_methods.max())
        parts.append(f"### {title}\nPool: {pool_txt}. Rank 1 is best, "
                     f"{n_methods} is worst.\n\n" + _markdown(show, "{:.3f}"))
    return "\n\n".join(parts)


def write_report(results, out, plots=True):
    """Summarise a result store into ``out``.

    Writes ``ranks.md`` and ``ranks.csv`` (mean rank, 95% Student-t
    interval over data sets and relative magnitude per measure, pool and
    method), ``missing.csv`` (the cells where a ranked method has no value,
    with the reason when the store records one), ``curves.csv`` (metric
    vs fraction averaged over test rows), ``runtime.csv`` and
    ``agreement.csv`` when those measures were run, and with ``plots`` a PNG
    of the loss-vs-fraction curves per measure and data set and a rank bar
    chart per measure and pool.

    Parameters
    ----------
    results : str, Path or ResultStore
    out : str or Path

    Returns
    -------
    dict
        Name -> path of everything written.
    """
    store = results if isinstance(results, ResultStore) else ResultStore(results)
    records = store.records()
    if not records:
        raise DataValidationError(
            f"no finished results in {store.root}; run `treeinf bench run --out "
            f"{store.root}` first.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    rows = row_table(records)
    sections = ["# treeinf benchmark report", "",
                f"{len(records)} finished units from `{store.root}`."]
    if not rows.empty:
        cur = curves(rows)
        cur.to_csv(out / "curves.csv", index=False)
        written["curves.csv"] = out / "curves.csv"
        ranks = rank_table(rows)
        ranks.to_csv(out / "ranks.csv", index=False)
        written["ranks.csv"] = out / "ranks.csv"
        sections += ["", "## Ranks", "",
                     "In every (data set, model, checkpoint) the methods are ranked "
                     "against the methods present there; Random is not ranked. "
                     + INTERVAL_NOTE, "",
                     rank_markdown(ranks) if not ranks.empty else "Too few methods to rank."]
        missing = missing_table(rows, records=records)
        missing.to_csv(out / "missing.csv", index=False)
        written["missing.csv"] = out / "missing.csv"
        sections += ["", "## Missing cells", ""]
        if missing.empty:
            sections.append("None: every ranked method has a value in every cell.")
        else:
            sections += ["A method missing from a (data set, model) is ranked there against "
                         "fewer competitors. n_missing of n_checkpoints checkpoints lack "
                         "its value:", "", _markdown(missing)]
        if plots:
            written.update(_plots(cur, ranks, out))
    rt = runtime_table(records)
    if not rt.empty:
        rt.to_csv(out / "runtime.csv", index=False)
        written["runtime.csv"] = out / "runtime.csv"
        sections += ["", "## Runtime (seconds, n_jobs=1)", "",
                     "Fit = the estimator's fit on the trained model; influence = one "
                     "test row (self-influence for methods without per-row influence). "
                     "Means over the timed repeats, after one discarded warm-up round "
                     "(JIT compilation); single-threaded.", "", _markdown(rt, "{:.4g}")]
    ag = agreement_table(records)
    if not ag.empty:
        ag.to_csv(out / "agreement.csv", index=False)
        written["agreement.csv"] = out / "agreement.csv"
        sections += ["", "## Agreement between methods", "", _markdown(ag)]
    from .. import datasets
    substitutes = sorted(name for name in {r["config"]["dataset"] for r in records}
                         if datasets.describe(name)["substitute"])
    if substitutes:
        sections += ["", "Substitute data sets in these results: "
                     + ", ".join(substitutes) + " (see datasets/README.md)."]
    (out / "ranks.md").write_text("\n".join(sections) + "\n", encoding="utf-8")
    written["ranks.md"] = out / "ranks.md"
    return written


def _plots(cur, ranks, out):
    from .. import plot
    written = {}
    for (measure, dataset), _ in cur.groupby(["measure", "dataset"], sort=True):
        if measure == "removal_one":   # one point per model: shown in the rank plot
            continue
        name = f"curves_{measure}_{dataset}.png"
        fig = plot.loss_curves(cur, dataset=dataset, measure=measure,
                               metric=PRIMARY_METRIC[measure])
        plot.save(fig, out / name)
        written[name] = out / name
    for (measure, pool), _ in ranks.groupby(["measure", "pool"], sort=True):
        name = f"ranks_{measure}_{pool}.png"
        ax = plot.rank_bars(ranks, measure=measure, pool=pool)
        plot.save(ax, out / name)
        written[name] = out / name
    return written
