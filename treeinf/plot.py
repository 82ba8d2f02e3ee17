"""Plots of influence and of benchmark results (needs matplotlib).

Install the extra with ``pip install "treeinf[plot]"``. ``import treeinf``
never imports matplotlib; import this module explicitly::

    import treeinf.plot as tiplot

    ax = tiplot.influence_bars(explainer, X_test, y_test, row=0, k=10)
    tiplot.save(ax, "row0.png")

Every drawing function takes ``ax=None`` and returns the Axes it drew on (or,
for :func:`loss_curves` with several models, the Figure). When ``ax`` is None
a new figure is made with :func:`matplotlib.pyplot.subplots`, so it shows in
notebooks and with ``plt.show()``; nothing here calls ``plt.show`` or changes
the backend. :func:`save` writes the figure and closes it.

Sign convention: positive influence = helpful (removing the training row would
increase the query row's loss), negative = harmful.
"""
import numbers
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import DataValidationError

_INSTALL_HINT = 'pip install "treeinf[plot]"'
_MIN_MPL = (3, 5)

try:
    import matplotlib
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
except ImportError as err:
    raise ImportError(
        f"treeinf.plot needs matplotlib >= {_MIN_MPL[0]}.{_MIN_MPL[1]}, which could not be "
        f"imported ({err}). Install it with: {_INSTALL_HINT}") from err

_mpl_version = tuple(int(p) for p in re.findall(r"\d+", matplotlib.__version__)[:2])
if _mpl_version < _MIN_MPL:
    raise ImportError(
        f"treeinf.plot needs matplotlib >= {_MIN_MPL[0]}.{_MIN_MPL[1]}, found "
        f"{matplotlib.__version__}. Upgrade it with: {_INSTALL_HINT}")

__all__ = ["influence_bars", "bars_from_top", "loss_curves", "rank_bars", "save",
           "method_style", "METHOD_STYLES", "HELPFUL_COLOR", "HARMFUL_COLOR",
           "CURVE_COLUMNS", "RANK_COLUMNS"]

#: bar colour of helpful (positive) training rows
HELPFUL_COLOR = "#2166ac"
#: bar colour of harmful (negative) training rows
HARMFUL_COLOR = "#b2182b"
_ZERO_COLOR = "#999999"

#: columns :func:`loss_curves` reads (the evaluation module's curve table)
CURVE_COLUMNS = ("measure", "dataset", "model", "method", "fraction", "metric", "value")
#: columns :func:`rank_bars` reads (the evaluation module's rank table)
RANK_COLUMNS = ("measure", "pool", "method", "mean_rank", "ci95", "n_datasets")

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")

#: One (colour, marker) per benchmark method, used by every figure, so a
#: method looks the same in every curve and rank plot. Keys are the
#: lower-cased method names (the keys of ``treeinf.eval.METHODS`` and the
#: estimator class names); related methods share a hue.
METHOD_STYLES = {
    "boostin": ("#1f77b4", "o"),          # blue
    "boostin_paper": ("#6baed6", "o"),    # light blue: the published variant
    "boostinlca": ("#17becf", "o"),       # cyan
    "leafinfluence": ("#d62728", "s"),    # red
    "leafinfsp": ("#ff9896", "s"),        # light red: SinglePoint
    "leafrefit": ("#8c564b", "D"),        # brown
    "trex": ("#2ca02c", "^"),             # green
    "treesim": ("#98df8a", "v"),          # light green
    "inputsim": ("#bcbd22", "v"),         # olive
    "target": ("#9467bd", "P"),           # purple
    "random": ("#7f7f7f", "X"),           # grey
    "loss": ("#ff7f0e", "*"),             # orange
    "loo": ("#e377c2", "h"),              # pink
    "subsample": ("#c5b0d5", "h"),        # light purple
    "dshap": ("#c49c94", "p"),            # light brown
    "influentialset": ("#393b79", "<"),   # dark blue: adaptive set selection
}
#: Colours of method names not in METHOD_STYLES, picked by a stable hash of
#: the name (so the same in every figure and every run).
_FALLBACK_COLORS = ("#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3", "#b5cf6b",
                    "#e7ba52", "#ad494a", "#a55194", "#9c9ede", "#cedb9c", "#e7969c")



def _squash(name):
    return "".join(ch for ch in str(name).lower() if ch not in "-_ ")


_STYLE_KEYS = {_squash(k): v for k, v in METHOD_STYLES.items()}


def method_style(method):
    """The (colour, marker) a method is drawn with in every figure.

    Parameters
    ----------
    method : str
        A method name, e.g. ``'boostin'`` or ``'BoostIn'`` (case, ``-``,
        ``_`` and spaces are ignored).

    Returns
    -------
    (str, str)
        A hex colour and a matplotlib marker. Known methods
        (:data:`METHOD_STYLES`) have fixed styles; another name gets one
        chosen by a stable hash of the name, the same in every figure.
    """
    import zlib
    key = _squash(method)
    if key in _STYLE_KEYS:
        return _STYLE_KEYS[key]
    h = zlib.crc32(key.encode("utf-8"))
    return _FALLBACK_COLORS[h % len(_FALLBACK_COLORS)], _MARKERS[h % len(_MARKERS)]
_SIGN_NOTE = "positive = helpful: removing the row would increase this row's loss"


# ----------------------------------------------------------------- helpers
def _new_axes(figsize):
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _check_ax(ax):
    if ax is not None and not isinstance(ax, Axes):
        raise DataValidationError(
            f"ax must be a matplotlib Axes or None, got {type(ax).__name__}; pass e.g. "
            "the second value of plt.subplots(), or leave ax=None for a new figure.")
    return ax


def _root_figure(obj):
    if isinstance(obj, Axes):
        obj = obj.figure
    if not isinstance(obj, Figure) and hasattr(obj, "figure"):  # a SubFigure
        obj = obj.figure
    if not isinstance(obj, Figure):
        raise DataValidationError(
            f"save() needs a matplotlib Figure or Axes, got {type(obj).__name__}; pass "
            "what a treeinf.plot function returned.")
    return obj


def _n_rows(X, name="X"):
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            shape = np.shape(X)
        except ValueError:  # ragged nested lists
            shape = (len(X),)
    if len(shape) != 2:
        raise DataValidationError(
            f"{name} must be 2-D of shape (n_rows, n_features), got shape {tuple(shape)}; "
            "for a single row use X[i:i+1] or X.iloc[[i]].")
    return int(shape[0])


def _take_rows(obj, rows):
    """Rows ``rows`` of an array, list, Series or DataFrame, by position."""
    if hasattr(obj, "iloc"):
        return obj.iloc[rows]
    if isinstance(obj, (list, tuple)):  # keep mixed-type rows as they are
        return [obj[r] for r in rows]
    return np.asarray(obj)[rows]


def _check_row(row, n_rows):
    if not isinstance(row, numbers.Integral) or isinstance(row, bool):
        raise DataValidationError(f"row must be an integer row position, got {row!r}.")
    if not 0 <= row < n_rows:
        raise DataValidationError(
            f"row={row} is out of range: X has {n_rows} rows, so row must be in "
            f"[0, {n_rows - 1}].")
    return int(row)


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def _as_table(values, name):
    """``values`` (Series, DataFrame, 1-D or 2-D array) as (columns, 2-D object array)."""
    if isinstance(values, pd.DataFrame):
        return [str(c) for c in values.columns], values.to_numpy(dtype=object)
    if isinstance(values, pd.Series):
        col = None if values.name is None else str(values.name)
        return [col], values.to_numpy(dtype=object)[:, None]
    arr = np.asarray(values, dtype=object)
    if arr.ndim == 1:
        return [None], arr[:, None]
    if arr.ndim == 2:
        return [f"x{j}" for j in range(arr.shape[1])], arr
    raise DataValidationError(
        f"{name} must be 1-D or 2-D (one entry per training row), got shape {arr.shape}.")


def _row_names(indices, labels, feature_values):
    """Tick label of each training row: its id (or label), then its values."""
    if labels is None:
        names = [str(int(i)) for i in indices]
    else:
        arr = labels.to_numpy(dtype=object) if hasattr(labels, "to_numpy") \
            else np.asarray(labels, dtype=object)
        if arr.ndim != 1:
            raise DataValidationError(
                f"labels must be 1-D with one name per training row, got shape {arr.shape}.")
        if indices.size and indices.max() >= arr.shape[0]:
            raise DataValidationError(
                f"labels has {arr.shape[0]} entries but training row {int(indices.max())} "
                "is shown; pass one name per training row, in training order.")
        names = [str(arr[i]) for i in indices]
    if feature_values is None:
        return names
    cols, table = _as_table(feature_values, "feature_values")
    if indices.size and indices.max() >= table.shape[0]:
        raise DataValidationError(
            f"feature_values has {table.shape[0]} rows but training row "
            f"{int(indices.max())} is shown; pass the training data (one row per "
            "training row, in training order).")
    out = []
    for name, i in zip(names, indices):
        parts = [_fmt(v) if c is None else f"{c}={_fmt(v)}" for c, v in zip(cols, table[i])]
        out.append(f"{name}  ({', '.join(parts)})")
    return out


# ---------------------------------------------------------- influence bars
def bars_from_top(indices, values, labels=None, feature_values=None, ax=None, title=None):
    """Horizontal bar chart of given training rows and their influence.

    The low-level half of :func:`influence_bars`: it draws what it is given,
    one bar per entry, the first entry on top.

    Parameters
    ----------
    indices : array-like of int, shape (k,)
        Training row ids (positions in the training data), e.g. one row of the
        indices returned by ``explainer.get_top_influence``.
    values : array-like of float, shape (k,)
        Their influence, finite. Positive bars are drawn in
        :data:`HELPFUL_COLOR`, negative in :data:`HARMFUL_COLOR`, zero in grey.
    labels : array-like of shape (n_train,), optional
        A name per training row (array, list or Series, taken by position);
        row ``i`` is labelled ``labels[i]`` instead of its id.
    feature_values : DataFrame, Series or array-like of shape (n_train,) or (n_train, m), optional
        Values of each training row appended to its label, e.g.
        ``X_train[["age", "income"]]`` gives ``"17  (age=34, income=5200)"``.
        Taken by position; columns of a 2-D array are named ``x0, x1, ...``.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure when None.
    title : str, optional
        Axes title; a title stating the sign convention when None.

    Returns
    -------
    matplotlib Axes
        One bar patch per entry in ``ax.patches`` (width = influence), tick
        labels in the same order.

    Raises
    ------
    DataValidationError
        If indices and values are not 1-D of equal length, indices are not
        non-negative integers, values are not finite, or labels /
        feature_values have too few rows.
    """
    _check_ax(ax)
    idx = np.asarray(indices)
    vals = np.asarray(values)
    if idx.ndim != 1 or vals.ndim != 1 or idx.shape != vals.shape:
        raise DataValidationError(
            f"indices and values must be 1-D of the same length (k,), got shapes "
            f"{idx.shape} and {vals.shape}; pass one row of get_top_influence's output, "
            "e.g. indices[0], values[0].")
    if idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0):
        raise DataValidationError(
            f"indices must be non-negative integer training row ids, got dtype {idx.dtype}"
            + (f" with minimum {idx.min()}" if idx.dtype.kind in "iu" else "") + ".")
    try:
        vals = vals.astype(np.float64)
    except (TypeError, ValueError):
        raise DataValidationError(
            f"values must be numeric influence values, got dtype {vals.dtype}.") from None
    if not np.all(np.isfinite(vals)):
        bad = int(np.flatnonzero(~np.isfinite(vals))[0])
        raise DataValidationError(
            f"values must be finite; entry {bad} is {vals[bad]}.")
    idx = idx.astype(np.int64)
    names = _row_names(idx, labels, feature_values)
    n = idx.size
    if ax is None:
        ax = _new_axes((7.0, max(2.6, 0.32 * n + 1.4)))
    pos = np.arange(n)
    colors = [HELPFUL_COLOR if v > 0 else HARMFUL_COLOR if v < 0 else _ZERO_COLOR for v in vals]
    bars = ax.barh(pos, vals, height=0.7, color=colors)
    ax.set_yticks(pos)
    ax.set_yticklabels(names)
    if not ax.yaxis_inverted():
        ax.invert_yaxis()  # first entry on top
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    if n:
        ax.bar_label(bars, fmt="%.3g", padding=2, fontsize="small")
        ax.margins(x=0.18)
    else:
        ax.text(0.5, 0.5, "no training row with non-zero influence", ha="center",
                va="center", transform=ax.transAxes)
    ax.set_xlabel("influence (positive = helpful, negative = harmful)")
    ax.set_ylabel("training row")
    ax.legend(handles=[Patch(color=HELPFUL_COLOR, label="helpful"),
                       Patch(color=HARMFUL_COLOR, label="harmful")],
              loc="best", fontsize="small")
    ax.set_title(title if title is not None else f"Influence of training rows\n({_SIGN_NOTE})")
    return ax


def influence_bars(explainer, X, y, row=0, k=10, labels=None, ax=None, feature_values=None):
    """The k most helpful and k most harmful training rows for one row, as bars.

    Calls ``explainer.get_top_influence`` twice (kind 'helpful' and
    'harmful') on the single row ``X[row]``: no dense influence matrix is
    built. Bars run from the most helpful (top) to the most harmful (bottom);
    rows with influence exactly 0 are left out, so fewer than ``2 k`` bars
    are drawn when fewer rows influence the prediction.

    Parameters
    ----------
    explainer : fitted treeinf estimator
        Any estimator with ``get_top_influence`` (BoostIn, TREX, LOO, ...).
    X : array-like or DataFrame of shape (n_rows, n_features)
        Query rows, as passed to the model; only row ``row`` is explained.
    y : array-like of shape (n_rows,)
        Labels (targets) the loss is measured against, usually the true ones.
    row : int, default=0
        Position of the query row in ``X``.
    k : int, default=10
        How many helpful and how many harmful rows to show (at most n_train).
    labels : array-like of shape (n_train,), optional
        A name per training row (by position) shown instead of its id.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure when None.
    feature_values : DataFrame, Series or array-like of shape (n_train,) or (n_train, m), optional
        Training-row values appended to each bar's label; see
        :func:`bars_from_top`.

    Returns
    -------
    matplotlib Axes
        ``ax.patches`` holds one bar per shown training row (width =
        influence on row ``row``); the y tick labels name the rows.

    Raises
    ------
    DataValidationError
        If ``row`` is out of range, ``X`` and ``y`` disagree in length, or
        ``labels`` / ``feature_values`` do not have one entry per training row.
    NotFittedError, InfluenceNotDefinedError
        From the explainer (not fitted; method without local influence).

    Notes
    -----
    Positive influence = helpful: removing the training row would increase
    the loss of the query row. Negative = harmful.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import BoostIn
    >>> import treeinf.plot as tiplot
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X[:400], y[:400])
    >>> explainer = BoostIn().fit(model, X[:400], y[:400])
    >>> ax = tiplot.influence_bars(explainer, X[400:], y[400:], row=3, k=5)
    >>> len(ax.patches) <= 10           # at most 5 helpful and 5 harmful bars
    True
    >>> tiplot.save(ax, "row3.png").name
    'row3.png'
    """
    _check_ax(ax)
    if not callable(getattr(explainer, "get_top_influence", None)):
        raise DataValidationError(
            f"explainer must be a fitted treeinf estimator (with get_top_influence), got "
            f"{type(explainer).__name__}; e.g. treeinf.BoostIn().fit(model, X_train, y_train).")
    n_rows = _n_rows(X)
    row = _check_row(row, n_rows)
    y_shape = np.shape(y)
    if len(y_shape) != 1:
        raise DataValidationError(
            f"y must be 1-D of shape (n_rows,), one label per row of X, got shape {y_shape}.")
    if y_shape[0] != n_rows:
        raise DataValidationError(
            f"y has {y_shape[0]} entries but X has {n_rows} rows; they must match.")
    n_train = getattr(explainer, "n_train_", None)
    if n_train is not None:
        for name, obj in (("labels", labels), ("feature_values", feature_values)):
            if obj is not None and len(obj) != n_train:
                raise DataValidationError(
                    f"{name} has {len(obj)} rows but the explainer was fitted on "
                    f"{n_train} training rows; pass one entry per training row, in "
                    "training order.")
    Xq = _take_rows(X, [row])
    yq = _take_rows(y, [row])
    hi, hv = explainer.get_top_influence(Xq, yq, k=k, kind="helpful")
    li, lv = explainer.get_top_influence(Xq, yq, k=k, kind="harmful")
    hi, hv, li, lv = hi[0], hv[0], li[0], lv[0]
    pos, neg = hv > 0, lv < 0
    indices = np.concatenate([hi[pos], li[neg][::-1]])
    values = np.concatenate([hv[pos], lv[neg][::-1]])
    title = (f"{type(explainer).__name__}: the {k} most helpful and harmful training rows "
             f"for row {row}\n({_SIGN_NOTE})")
    return bars_from_top(indices, values, labels=labels, feature_values=feature_values,
                         ax=ax, title=title)


# -------------------------------------------------------- benchmark tables
def _check_frame(frame, columns, name):
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(
            f"{name} must be a pandas DataFrame with columns {list(columns)}, got "
            f"{type(frame).__name__}.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{name} is missing the columns {missing}; expected {list(columns)} (the "
            f"evaluation module's {name} table), got {[str(c) for c in frame.columns]}.")
    return frame


def _select(frame, column, value, where):
    sub = frame[frame[column] == value]
    if sub.empty:
        have = sorted({str(v) for v in frame[column].dropna().unique()})
        raise DataValidationError(
            f"no rows with {column}={value!r} in {where}; the {column} values there "
            f"are {have}.")
    return sub


def _numeric(frame, column, name, allow_nan=False):
    try:
        out = pd.to_numeric(frame[column], errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise DataValidationError(
            f"column {column!r} of {name} must be numeric, got dtype "
            f"{frame[column].dtype}.") from None
    bad = ~np.isfinite(out) & ~(allow_nan & np.isnan(out))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f"column {column!r} of {name} must be finite; row {frame.index[i]!r} holds "
            f"{out[i]}.")
    return out


def _check_unique(frame, keys, name):
    dup = frame.duplicated(list(keys), keep=False)
    if dup.any():
        first = frame.loc[dup, list(keys)].iloc[0].to_dict()
        raise DataValidationError(
            f"{name} has several rows for {first}; expected one value per "
            f"{', '.join(keys)} (aggregate them first).")


def _draw_curves(ax, sub, methods, styles, metric):
    fraction = _numeric(sub, "fraction", "curves")
    value = _numeric(sub, "value", "curves")
    method_col = sub["method"].to_numpy(dtype=object)
    handles = []
    for method in methods:
        mask = method_col == method
        if not mask.any():
            continue
        order = np.argsort(fraction[mask], kind="stable")
        color, marker = styles[method]
        (line,) = ax.plot(fraction[mask][order], value[mask][order], color=color,
                          marker=marker, markersize=4, linewidth=1.4, label=str(method))
        handles.append(line)
    ax.set_xlabel("training rows affected (%)")
    ax.set_ylabel(str(metric))
    ax.grid(True, alpha=0.3)
    return handles


def loss_curves(curves, dataset, measure, metric, model=None, ax=None):
    """Metric against the fraction of training rows edited, one line per method.

    Parameters
    ----------
    curves : DataFrame
        The evaluation module's curve table with columns :data:`CURVE_COLUMNS`
        ``measure, dataset, model, method, fraction, metric, value``:
        ``value`` is the metric averaged over test rows at ``fraction``
        percent of the training rows removed / edited / checked. One row per
        (measure, dataset, model, method, fraction, metric). Not modified.
    dataset : str
        Data set to plot.
    measure : str
        Measure (evaluation protocol) to plot.
    metric : str
        Metric to plot (the y axis), e.g. the test loss.
    model : str, optional
        Model to plot. When None and the selection holds several models,
        one subplot per model is drawn in a new figure.
    ax : matplotlib Axes, optional
        Axes to draw on (one model only); a new figure when None.

    Returns
    -------
    matplotlib Axes, or matplotlib Figure
        The Axes when one model is drawn; the Figure (one Axes per model, in
        order of appearance in ``curves``) when ``model`` is None and several
        models are present. Each Axes holds one line per method (x =
        fraction in %, y = value, sorted by fraction); the legend is outside
        the plot on the right.

    Raises
    ------
    DataValidationError
        If columns are missing, measure / dataset / metric / model has no
        rows (the message lists those available), fraction or value is not
        numeric and finite, a (model, method, fraction) appears twice, or an
        ``ax`` is given for several models.
    """
    _check_ax(ax)
    df = _check_frame(curves, CURVE_COLUMNS, "curves")
    sub = _select(df, "measure", measure, "curves")
    sub = _select(sub, "dataset", dataset, f"curves of measure {measure!r}")
    sub = _select(sub, "metric", metric, f"curves of measure {measure!r} on {dataset!r}")
    if model is not None:
        sub = _select(sub, "model", model,
                      f"curves of measure {measure!r}, metric {metric!r} on {dataset!r}")
    _check_unique(sub, ("model", "method", "fraction"), "curves")
    _numeric(sub, "fraction", "curves")
    _numeric(sub, "value", "curves")
    models = list(pd.unique(sub["model"].to_numpy(dtype=object)))
    methods = list(pd.unique(sub["method"].to_numpy(dtype=object)))
    styles = {m: method_style(m) for m in methods}
    legend_kw = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     title="method", fontsize="small")
    if len(models) == 1:
        if ax is None:
            ax = _new_axes((7.2, 4.2))
        handles = _draw_curves(ax, sub, methods, styles, metric)
        ax.legend(handles=handles, **legend_kw)
        ax.set_title(f"{dataset} - {measure} - {models[0]}")
        return ax
    if ax is not None:
        raise DataValidationError(
            f"the curves of {dataset!r} / {measure!r} / {metric!r} hold {len(models)} models "
            f"({[str(m) for m in models]}); one Axes shows one model: pass model=... or "
            "ax=None for a figure with one subplot per model.")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models) + 1.8, 3.8),
                             layout="constrained", squeeze=False)
    model_col = sub["model"].to_numpy(dtype=object)
    for a, m in zip(axes[0], models):
        _draw_curves(a, sub[model_col == m], methods, styles, metric)
        a.set_title(str(m))
    proxies = [Line2D([], [], color=styles[m][0], marker=styles[m][1], markersize=4,
                      label=str(m)) for m in methods]
    axes[0][-1].legend(handles=proxies, **legend_kw)
    fig.suptitle(f"{dataset} - {measure}")
    return fig


def rank_bars(ranks, measure, pool=None, ax=None):
    """Mean rank of each method as horizontal bars, best (lowest) on top.

    Parameters
    ----------
    ranks : DataFrame
        The evaluation module's rank table with columns :data:`RANK_COLUMNS`
        ``measure, pool, method, mean_rank, ci95, n_datasets``: the mean rank
        over data sets (1 = best) and the half-width of its 95% interval.
        When the table also has ``ci_low`` and ``ci_high`` (the interval's
        ends, which :func:`treeinf.eval.rank_table` clips to the range of
        ranks) the error bars run between them instead. One row per
        (measure, pool, method). Not modified.
    measure : str
        Measure to plot.
    pool : str, optional
        Data-set pool to plot; may be None when the measure has one pool.
    ax : matplotlib Axes, optional
        Axes to draw on; a new figure when None.

    Returns
    -------
    matplotlib Axes
        ``ax.patches`` holds one bar per method sorted by ``mean_rank``
        ascending (ties keep the table's order), the first on top, in the
        method's colour (:func:`method_style`); bar width = mean rank, error
        bar = ``ci_low`` to ``ci_high`` when given, else ± ``ci95`` (NaN,
        e.g. from a single data set, is drawn as no error bar).

    Raises
    ------
    DataValidationError
        If columns are missing, the measure or pool has no rows (the message
        lists those available), ``pool`` is None but the measure has several
        pools, a method appears twice, or mean_rank / ci95 are not finite
        non-negative numbers.
    """
    _check_ax(ax)
    df = _check_frame(ranks, RANK_COLUMNS, "ranks")
    sub = _select(df, "measure", measure, "ranks")
    if pool is None:
        pools = list(pd.unique(sub["pool"].to_numpy(dtype=object)))
        if len(pools) > 1:
            raise DataValidationError(
                f"measure {measure!r} has ranks for {len(pools)} pools "
                f"{[str(p) for p in pools]}; pass pool=... to choose one.")
        pool = pools[0]
    else:
        sub = _select(sub, "pool", pool, f"ranks of measure {measure!r}")
    _check_unique(sub, ("method",), "ranks")
    mean_rank = _numeric(sub, "mean_rank", "ranks")
    ci = _numeric(sub, "ci95", "ranks", allow_nan=True)
    for column, arr in (("mean_rank", mean_rank), ("ci95", ci)):
        if (arr < 0).any():
            i = int(np.flatnonzero(arr < 0)[0])
            raise DataValidationError(
                f"column {column!r} of ranks must be non-negative; the row of method "
                f"{sub['method'].iloc[i]!r} holds {arr[i]}.")
    order = np.argsort(mean_rank, kind="stable")
    methods = sub["method"].to_numpy(dtype=object)[order]
    n_sets = sub["n_datasets"].to_numpy(dtype=object)[order]
    n = len(order)
    if {"ci_low", "ci_high"} <= set(sub.columns):
        low = _numeric(sub, "ci_low", "ranks", allow_nan=True)[order]
        high = _numeric(sub, "ci_high", "ranks", allow_nan=True)[order]
        m = mean_rank[order]
        if np.any(low > m + 1e-12) or np.any(high < m - 1e-12):
            raise DataValidationError(
                "ranks: every interval [ci_low, ci_high] must contain mean_rank.")
        xerr = np.vstack([np.nan_to_num(m - low, nan=0.0),
                          np.nan_to_num(high - m, nan=0.0)])
        note = "error bar: 95% interval over data sets (clipped to the rank range)"
    else:
        xerr = np.nan_to_num(ci[order], nan=0.0)
        note = "error bar: 95% interval over data sets"
    if ax is None:
        ax = _new_axes((6.4, max(2.4, 0.38 * n + 1.3)))
    pos = np.arange(n)
    ax.barh(pos, mean_rank[order], height=0.6,
            color=[method_style(m)[0] for m in methods], xerr=xerr,
            error_kw=dict(ecolor="0.2", capsize=3, linewidth=1.0))
    ax.set_yticks(pos)
    one_n = len(set(map(str, n_sets))) == 1
    ax.set_yticklabels([str(m) if one_n else f"{m} (n={s})" for m, s in zip(methods, n_sets)])
    if not ax.yaxis_inverted():
        ax.invert_yaxis()  # best on top
    ax.set_xlim(left=0.0)
    ax.set_xlabel(f"mean rank (1 = best); {note}")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(f"{measure} - {pool}" + (f" ({n_sets[0]} data sets)" if one_n and n else ""))
    return ax


# --------------------------------------------------------------------- save
def save(fig_or_ax, path, dpi=150):
    """Write a figure to a file (PNG by default) and close it.

    Parameters
    ----------
    fig_or_ax : matplotlib Figure or Axes
        What a treeinf.plot function returned; the whole figure is written.
    path : str or path-like
        Output file. The format follows the suffix (``.png``, ``.pdf``,
        ``.svg`` ... anything the figure's canvas supports); PNG when there
        is no suffix. The directory must exist.
    dpi : positive number, default=150
        Resolution of raster formats.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    DataValidationError
        If ``fig_or_ax`` is not a Figure or Axes, the suffix names a format
        matplotlib cannot write, or ``dpi`` is not a positive number.
    """
    fig = _root_figure(fig_or_ax)
    path = Path(os.fspath(path))
    fmt = path.suffix[1:].lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise DataValidationError(
            f"cannot write {path.name!r}: format {fmt!r} is not one matplotlib writes; use "
            f"one of {sorted(supported)} (e.g. a .png file).")
    if not isinstance(dpi, numbers.Real) or isinstance(dpi, bool) or not dpi > 0:
        raise DataValidationError(f"dpi must be a positive number, got {dpi!r}.")
    fig.savefig(path, dpi=dpi, format=fmt, bbox_inches="tight")
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)
    return path
