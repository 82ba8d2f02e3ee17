"""treeinf.plot: what is drawn equals the numbers it was given.

Every chart is read back from the Axes (bar patches, tick labels, line data,
error-bar segments) and compared with an independent computation: the dense
influence matrix for the influence bars, the hand-made tables for the
benchmark plots. The PNGs written are checked to be real PNG files.
"""
import importlib
import os
import subprocess
import sys

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402

import treeinf  # noqa: E402
import treeinf.plot as tiplot  # noqa: E402
from models import trained  # noqa: E402
from treeinf.exceptions import (DataValidationError, InfluenceNotDefinedError,  # noqa: E402
                                NotFittedError, TreeInfError)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    # not a blank canvas: something was drawn
    assert np.unique(img.reshape(-1, img.shape[2]), axis=0).shape[0] > 2


def bars(ax):
    """(widths, tick labels) of a horizontal bar chart, top to bottom."""
    patches = [p for p in ax.patches]
    centers = np.array([p.get_y() + p.get_height() / 2 for p in patches])
    order = np.argsort(centers, kind="stable")
    if not ax.yaxis_inverted():  # otherwise the largest y is on top
        order = order[::-1]
    widths = np.array([patches[i].get_width() for i in order])
    ticks = ax.get_yticks()
    tick_labels = [t.get_text() for t in ax.get_yticklabels()]
    tick_order = np.argsort(ticks) if ax.yaxis_inverted() else np.argsort(ticks)[::-1]
    labels = [tick_labels[i] for i in tick_order]
    colors = [patches[i].get_facecolor() for i in order]
    return widths, labels, colors


def expected_top(column, k):
    """Most helpful (positive, descending) then most harmful (negative, ending with
    the most negative) training rows of one dense influence column."""
    order_h = np.argsort(-column, kind="stable")[:k]
    order_l = np.argsort(column, kind="stable")[:k]
    helpful = [i for i in order_h if column[i] > 0]
    harmful = [i for i in order_l if column[i] < 0][::-1]
    return np.array(helpful + harmful, dtype=np.int64)


@pytest.fixture(scope="module")
def fitted():
    model, Xtr, ytr, _, Xte, yte = trained("lightgbm", "binary", n=120, n_test=20,
                                           nan_frac=0.0, n_estimators=10)
    explainer = treeinf.BoostIn().fit(model, Xtr, ytr)
    return explainer, Xtr, ytr, Xte, yte


# ------------------------------------------------------------ influence bars
@pytest.mark.parametrize("row", [0, 7])
def test_influence_bars_png_matches_dense_influence(fitted, tmp_path, row):
    explainer, Xtr, ytr, Xte, yte = fitted
    k = 5
    column = explainer.get_local_influence(Xte, yte)[:, row]
    want = expected_top(column, k)
    assert len(want) >= 6  # the chart has both kinds of bars
    X_before, y_before = Xte.copy(), yte.copy()

    ax = tiplot.influence_bars(explainer, Xte, yte, row=row, k=k)
    widths, labels, colors = bars(ax)
    assert labels == [str(i) for i in want]
    np.testing.assert_allclose(widths, column[want], rtol=1e-12, atol=0)
    assert np.all(np.diff(widths) <= 0)  # most helpful on top, most harmful at the bottom
    for w, c in zip(widths, colors):
        assert c == to_rgba(tiplot.HELPFUL_COLOR if w > 0 else tiplot.HARMFUL_COLOR)
    assert "positive = helpful" in ax.get_title()
    np.testing.assert_array_equal(Xte, X_before)
    np.testing.assert_array_equal(yte, y_before)

    out = tiplot.save(ax, tmp_path / "bars.png")
    assert out == tmp_path / "bars.png"
    check_png(out)
    assert not plt.fignum_exists(ax.figure.number)  # save closes the figure


def test_influence_bars_equals_top_influence_api(fitted):
    explainer, Xtr, ytr, Xte, yte = fitted
    k = 4
    hi, hv = explainer.get_top_influence(Xte[3:4], yte[3:4], k=k, kind="helpful")
    li, lv = explainer.get_top_influence(Xte[3:4], yte[3:4], k=k, kind="harmful")
    keep_h, keep_l = hv[0] > 0, lv[0] < 0
    want_idx = np.concatenate([hi[0][keep_h], li[0][keep_l][::-1]])
    want_val = np.concatenate([hv[0][keep_h], lv[0][keep_l][::-1]])
    ax = tiplot.influence_bars(explainer, Xte, yte, row=3, k=k)
    widths, labels, _ = bars(ax)
    assert labels == [str(i) for i in want_idx]
    np.testing.assert_array_equal(widths, want_val)


def test_influence_bars_labels_and_feature_values(fitted, tmp_path):
    explainer, Xtr, ytr, Xte, yte = fitted
    n = len(ytr)
    # a Series with a shuffled index: names are taken by position, not by index label
    names = pd.Series([f"row-{i}" for i in range(n)], index=np.arange(n)[::-1])
    frame = pd.DataFrame({"a": np.arange(n) * 1.5, "b": [f"s{i}" for i in range(n)]})
    Xdf = pd.DataFrame(Xte, columns=[f"f{j}" for j in range(Xte.shape[1])])
    frame_before = frame.copy()
    ax = tiplot.influence_bars(explainer, Xdf, pd.Series(yte), row=2, k=3, labels=names,
                               feature_values=frame)
    column = explainer.get_local_influence(Xte, yte)[:, 2]
    want = expected_top(column, 3)
    _, labels, _ = bars(ax)
    assert labels == [f"row-{i}  (a={i * 1.5:.4g}, b=s{i})" for i in want]
    pd.testing.assert_frame_equal(frame, frame_before)
    check_png(tiplot.save(ax, tmp_path / "named.png"))


def test_bars_from_top_draws_given_order_on_given_axes(tmp_path):
    fig, ax = plt.subplots()
    idx = np.array([4, 0, 9])
    vals = np.array([-0.5, 2.0, 0.0])
    out = tiplot.bars_from_top(idx, vals, labels=np.array(list("abcdefghij")),
                               feature_values=np.arange(10.0), ax=ax, title="t")
    assert out is ax
    widths, labels, colors = bars(ax)
    np.testing.assert_array_equal(widths, vals)
    assert labels == ["e  (4)", "a  (0)", "j  (9)"]
    assert colors == [to_rgba(tiplot.HARMFUL_COLOR), to_rgba(tiplot.HELPFUL_COLOR),
                      to_rgba("#999999")]
    assert ax.get_title() == "t"
    check_png(tiplot.save(fig, tmp_path / "low.png"))


def test_bars_from_top_empty():
    ax = tiplot.bars_from_top(np.array([], dtype=np.int64), np.array([]))
    assert len(ax.patches) == 0
    assert any("no training row" in t.get_text() for t in ax.texts)


@pytest.mark.parametrize("kw, match", [
    (dict(row=20), r"row=20 is out of range: X has 20 rows"),
    (dict(row=-1), r"out of range"),
    (dict(row=1.0), r"row must be an integer"),
    (dict(k=0), r"k must be a positive integer"),
    (dict(labels=["a", "b"]), r"labels has 2 rows but the explainer was fitted on 120"),
    (dict(feature_values=np.zeros((3, 2))), r"feature_values has 3 rows"),
    (dict(ax="axes"), r"ax must be a matplotlib Axes"),
])
def test_influence_bars_bad_input(fitted, kw, match):
    explainer, Xtr, ytr, Xte, yte = fitted
    with pytest.raises(DataValidationError, match=match):
        tiplot.influence_bars(explainer, Xte, yte, **kw)


def test_influence_bars_bad_data_and_explainers(fitted):
    explainer, Xtr, ytr, Xte, yte = fitted
    with pytest.raises(DataValidationError, match=r"y has 19 entries but X has 20 rows"):
        tiplot.influence_bars(explainer, Xte, yte[:-1])
    with pytest.raises(DataValidationError, match=r"X must be 2-D"):
        tiplot.influence_bars(explainer, Xte[0], yte)
    with pytest.raises(DataValidationError, match=r"fitted treeinf estimator"):
        tiplot.influence_bars(object(), Xte, yte)
    with pytest.raises(NotFittedError):
        tiplot.influence_bars(treeinf.BoostIn(), Xte, yte)
    loss = treeinf.Loss().fit(*trained("lightgbm", "binary", n=60, n_test=0)[0:3])
    with pytest.raises(InfluenceNotDefinedError):
        tiplot.influence_bars(loss, Xte, yte)


@pytest.mark.parametrize("args, match", [
    (([1, 2], [0.5]), r"1-D of the same length"),
    (([[1, 2]], [[0.5, 0.1]]), r"1-D of the same length"),
    (([1.0, 2.0], [0.5, 0.1]), r"non-negative integer training row ids"),
    (([1, -2], [0.5, 0.1]), r"minimum -2"),
    (([1, 2], [0.5, np.nan]), r"entry 1 is nan"),
    (([1, 2], ["x", "y"]), r"must be numeric"),
])
def test_bars_from_top_bad_input(args, match):
    with pytest.raises(DataValidationError, match=match):
        tiplot.bars_from_top(*args)


def test_bars_from_top_short_labels():
    with pytest.raises(DataValidationError, match=r"labels has 3 entries but training row 5"):
        tiplot.bars_from_top([5, 1], [1.0, -1.0], labels=["a", "b", "c"])
    with pytest.raises(DataValidationError, match=r"feature_values has 2 rows"):
        tiplot.bars_from_top([5, 1], [1.0, -1.0], feature_values=pd.DataFrame({"a": [1, 2]}))


# -------------------------------------------------------------- loss curves
FRACTIONS = [0.0, 0.1, 0.5, 1.0]


def make_curves():
    rng = np.random.default_rng(3)
    rows = []
    for measure in ["remove", "noise"]:
        for dataset in ["adult", "bank"]:
            for model in ["lgb", "xgb", "cb"]:
                for method in ["BoostIn", "TREX", "Random"]:
                    for metric in ["loss", "acc"]:
                        # fractions listed out of order: the lines must sort them
                        for fraction in FRACTIONS[::-1]:
                            rows.append((measure, dataset, model, method, fraction, metric,
                                         float(rng.normal())))
    return pd.DataFrame(rows, columns=list(tiplot.CURVE_COLUMNS))


def expected_line(curves, dataset, measure, metric, model, method):
    sel = curves[(curves.dataset == dataset) & (curves.measure == measure)
                 & (curves.metric == metric) & (curves.model == model)
                 & (curves.method == method)].sort_values("fraction")
    return sel.fraction.to_numpy(), sel.value.to_numpy()


def test_loss_curves_one_model(tmp_path):
    curves = make_curves()
    before = curves.copy()
    ax = tiplot.loss_curves(curves, "bank", "noise", "loss", model="xgb")
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["BoostIn", "TREX", "Random"]
    for ln in lines:
        x, y = expected_line(curves, "bank", "noise", "loss", "xgb", ln.get_label())
        np.testing.assert_array_equal(ln.get_xdata(), x)
        np.testing.assert_array_equal(ln.get_ydata(), y)
        assert ln.get_marker() not in (None, "None", "")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["BoostIn", "TREX", "Random"]
    assert ax.get_ylabel() == "loss"
    assert len({ln.get_color() for ln in lines}) == 3
    pd.testing.assert_frame_equal(curves, before)
    check_png(tiplot.save(ax, tmp_path / "curves.png"))


def test_loss_curves_one_subplot_per_model(tmp_path):
    curves = make_curves()
    fig = tiplot.loss_curves(curves, "adult", "remove", "acc")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert [a.get_title() for a in fig.axes] == ["lgb", "xgb", "cb"]
    for a in fig.axes:
        for ln in a.get_lines():
            x, y = expected_line(curves, "adult", "remove", "acc", a.get_title(),
                                 ln.get_label())
            np.testing.assert_array_equal(ln.get_xdata(), x)
            np.testing.assert_array_equal(ln.get_ydata(), y)
        assert len(a.get_lines()) == 3
    # a method keeps its colour across subplots
    colors = [{ln.get_label(): ln.get_color() for ln in a.get_lines()} for a in fig.axes]
    assert colors[0] == colors[1] == colors[2]
    check_png(tiplot.save(fig, tmp_path / "models.png"))


def test_loss_curves_given_axes_and_single_model_table():
    curves = make_curves()
    one = curves[curves.model == "cb"]
    fig, ax = plt.subplots()
    assert tiplot.loss_curves(one, "adult", "remove", "loss", ax=ax) is ax
    assert len(ax.get_lines()) == 3


@pytest.mark.parametrize("kw, match", [
    (dict(dataset="nope"), r"no rows with dataset='nope'.*\['adult', 'bank'\]"),
    (dict(measure="fix"), r"no rows with measure='fix'.*\['noise', 'remove'\]"),
    (dict(metric="auc"), r"no rows with metric='auc'.*\['acc', 'loss'\]"),
    (dict(model="rf"), r"no rows with model='rf'.*\['cb', 'lgb', 'xgb'\]"),
])
def test_loss_curves_unknown_selection(kw, match):
    args = dict(dataset="adult", measure="remove", metric="loss", **{})
    args.update(kw)
    with pytest.raises(DataValidationError, match=match):
        tiplot.loss_curves(make_curves(), **args)


def test_loss_curves_bad_tables():
    curves = make_curves()
    with pytest.raises(DataValidationError, match=r"missing the columns \['fraction'\]"):
        tiplot.loss_curves(curves.drop(columns="fraction"), "adult", "remove", "loss")
    with pytest.raises(DataValidationError, match=r"must be a pandas DataFrame"):
        tiplot.loss_curves(curves.to_numpy(), "adult", "remove", "loss")
    doubled = pd.concat([curves, curves.iloc[:1]])
    with pytest.raises(DataValidationError, match=r"several rows for"):
        tiplot.loss_curves(doubled, curves.dataset.iloc[0], curves.measure.iloc[0],
                           curves.metric.iloc[0], model=curves.model.iloc[0])
    bad = curves.copy()
    bad["value"] = bad["value"].astype(object)
    bad.loc[0, "value"] = "x"
    with pytest.raises(DataValidationError, match=r"'value' of curves must be numeric"):
        tiplot.loss_curves(bad, "adult", "remove", "loss", model="lgb")
    bad = curves.copy()
    bad.loc[0, "value"] = np.inf
    with pytest.raises(DataValidationError, match=r"must be finite"):
        tiplot.loss_curves(bad, "adult", "remove", "loss", model="lgb")
    fig, ax = plt.subplots()
    with pytest.raises(DataValidationError, match=r"hold 3 models"):
        tiplot.loss_curves(curves, "adult", "remove", "loss", ax=ax)


# ---------------------------------------------------------------- rank bars
def make_ranks():
    return pd.DataFrame({
        "measure": ["remove"] * 4 + ["remove"] * 2 + ["noise"] * 2,
        "pool": ["all"] * 4 + ["li"] * 2 + ["all"] * 2,
        "method": ["TREX", "BoostIn", "Target", "LeafInfluence", "BoostIn", "LOO",
                   "BoostIn", "TREX"],
        "mean_rank": [2.5, 1.25, 3.75, 2.0, 1.5, 1.5, 1.0, 2.0],
        "ci95": [0.3, 0.2, np.nan, 0.5, 0.1, 0.4, 0.0, 0.0],
        "n_datasets": [22, 22, 22, 22, 8, 8, 22, 22],
    })


def error_segments(ax):
    (bar,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    err = bar.errorbar
    segs = err.lines[2][0].get_segments()
    return np.array([[s[0][0], s[1][0]] for s in segs])


def test_rank_bars(tmp_path):
    ranks = make_ranks()
    before = ranks.copy()
    ax = tiplot.rank_bars(ranks, "remove", pool="all")
    widths, labels, _ = bars(ax)
    assert labels == ["BoostIn", "LeafInfluence", "TREX", "Target"]
    np.testing.assert_array_equal(widths, [1.25, 2.0, 2.5, 3.75])
    # error bars in drawing order (top to bottom): mean_rank -/+ ci95 (NaN -> none)
    np.testing.assert_allclose(error_segments(ax),
                               [[1.05, 1.45], [1.5, 2.5], [2.2, 2.8], [3.75, 3.75]])
    assert "22 data sets" in ax.get_title()
    pd.testing.assert_frame_equal(ranks, before)
    check_png(tiplot.save(ax, tmp_path / "ranks.png"))


def test_rank_bars_single_pool_ties_and_given_axes():
    fig, ax = plt.subplots()
    ranks = make_ranks()
    li = ranks[ranks.pool == "li"]
    assert tiplot.rank_bars(li, "remove", ax=ax) is ax  # one pool: pool may be omitted
    widths, labels, _ = bars(ax)
    assert labels == ["BoostIn", "LOO"]  # tie keeps the table order
    np.testing.assert_array_equal(widths, [1.5, 1.5])
    mixed = ranks[ranks.measure == "remove"].assign(pool="all",
                                                    method=list("abcdef"),
                                                    n_datasets=[22, 22, 22, 22, 8, 8])
    ax = tiplot.rank_bars(mixed, "remove")
    assert bars(ax)[1][0] == "b (n=22)"


def test_rank_bars_bad_input():
    ranks = make_ranks()
    with pytest.raises(DataValidationError, match=r"several pools|2 pools \['all', 'li'\]"):
        tiplot.rank_bars(ranks, "remove")
    with pytest.raises(DataValidationError, match=r"no rows with measure='edit'.*\['noise', 'remove'\]"):
        tiplot.rank_bars(ranks, "edit")
    with pytest.raises(DataValidationError, match=r"no rows with pool='x'.*\['all', 'li'\]"):
        tiplot.rank_bars(ranks, "remove", pool="x")
    with pytest.raises(DataValidationError, match=r"missing the columns \['ci95', 'n_datasets'\]"):
        tiplot.rank_bars(ranks.drop(columns=["ci95", "n_datasets"]), "remove", pool="all")
    with pytest.raises(DataValidationError, match=r"several rows for \{'method': 'BoostIn'\}"):
        tiplot.rank_bars(pd.concat([ranks, ranks.iloc[[1]]]), "remove", pool="all")
    neg = ranks.assign(ci95=-ranks.ci95)
    with pytest.raises(DataValidationError, match=r"'ci95' of ranks must be non-negative"):
        tiplot.rank_bars(neg, "remove", pool="all")


def test_rank_bars_draw_the_clipped_interval_ends():
    ranks = make_ranks()[lambda t: t.pool == "li"].assign(
        ci_low=[1.0, 1.0], ci_high=[3.2, 2.0], ci95=[9.5, 0.4])
    ax = tiplot.rank_bars(ranks, "remove")
    # error bars from ci_low to ci_high, not mean -/+ the unclipped ci95
    np.testing.assert_allclose(error_segments(ax), [[1.0, 3.2], [1.0, 2.0]])
    assert "clipped" in ax.get_xlabel()
    bad = ranks.assign(ci_low=[1.6, 1.0])
    with pytest.raises(DataValidationError, match=r"must contain mean_rank"):
        tiplot.rank_bars(bad, "remove")


# ------------------------------------------------------------- method colours
def test_every_benchmark_method_has_its_own_fixed_style():
    from treeinf.eval import METHODS
    styles = [tiplot.method_style(m) for m in METHODS]
    assert len({c for c, _ in styles}) == len(METHODS)       # distinct colours
    assert tiplot.method_style("BoostIn") == tiplot.method_style("boostin")
    assert tiplot.method_style("LeafInfluence") == tiplot.METHOD_STYLES["leafinfluence"]
    assert tiplot.method_style("boostin-paper") == tiplot.method_style("boostin_paper")
    # an unknown name gets the same style every time (a stable hash, not the order
    # in which a figure meets it)
    assert tiplot.method_style("my method") == tiplot.method_style("my method")
    code = "import treeinf.plot as p; print(p.method_style('my method'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.strip()
    assert out == str(tiplot.method_style("my method"))


def test_a_method_has_one_colour_in_every_figure():
    curves = make_curves()
    # two curve figures with different method sets (and in a different order),
    # a multi-model figure and a rank chart: BoostIn and TREX keep their colours
    a = tiplot.loss_curves(curves, "bank", "noise", "loss", model="xgb")
    sub = curves[curves.method != "BoostIn"].iloc[::-1]
    b = tiplot.loss_curves(sub, "adult", "remove", "acc", model="lgb")
    fig = tiplot.loss_curves(curves, "adult", "remove", "loss")
    seen = {}
    for ax in [a, b, *fig.axes]:
        for ln in ax.get_lines():
            seen.setdefault(ln.get_label(), set()).add(to_rgba(ln.get_color()))
    assert all(len(c) == 1 for c in seen.values()) and len(seen) == 3
    ranks = tiplot.rank_bars(make_ranks(), "remove", pool="all")
    _, labels, colors = bars(ranks)
    for label, color in zip(labels, colors):
        expected = to_rgba(tiplot.method_style(label)[0])
        assert color == expected
        if label in seen:
            assert seen[label] == {expected}
    assert len(set(colors)) == len(colors)


# --------------------------------------------------------------------- save
def test_save_errors_and_formats(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    with pytest.raises(DataValidationError, match=r"format 'xyz' is not one matplotlib writes"):
        tiplot.save(ax, tmp_path / "a.xyz")
    with pytest.raises(DataValidationError, match=r"dpi must be a positive number"):
        tiplot.save(ax, tmp_path / "a.png", dpi=0)
    with pytest.raises(DataValidationError, match=r"needs a matplotlib Figure or Axes"):
        tiplot.save("figure", tmp_path / "a.png")
    check_png(tiplot.save(ax, tmp_path / "noext", dpi=80))
    assert tiplot.save(fig, tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    # a Figure made without pyplot is written too
    other = matplotlib.figure.Figure()
    other.add_subplot().bar([0, 1], [1, 2])
    check_png(tiplot.save(other, tmp_path / "b.png"))


# ------------------------------------------------------------ optional extra
def test_errors_are_treeinf_errors():
    with pytest.raises(TreeInfError):
        tiplot.rank_bars(make_ranks(), "nope")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "treeinf.plot")
    with pytest.raises(ImportError, match=r'pip install "treeinf\[plot\]"'):
        importlib.import_module("treeinf.plot")


def test_import_treeinf_does_not_import_matplotlib():
    code = ("import sys, treeinf; "
            "assert 'matplotlib' not in sys.modules, 'treeinf imported matplotlib'; "
            "import treeinf.plot; assert 'matplotlib' in sys.modules; "
            "assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
