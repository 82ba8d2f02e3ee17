"""The benchmark's measures: one function per unit of work.

Every unit is described by a plain, JSON-serialisable configuration dict
(see :func:`treeinf.eval.plan`) and computed by :func:`run_unit`, which
returns a JSON-serialisable result. A unit depends on nothing but its
configuration and the data files, so any process on any machine computes the
same result; that is what makes the result store resumable and the joblib
and Dask runs interchangeable.

Protocols follow BENCHMARK.md:

* test rows: ``numpy.random.default_rng(1).permutation(n_test)``, so a prefix
  of the draw is a valid smaller run;
* retraining: a fresh clone of the model (same hyperparameters, same seed)
  fit on the edited training set, single-threaded;
* per-row loss: ½(y − ŷ)² for regression, −log p(true class) with p clipped to
  [1e−5, 1 − 1e−5] for classification.
"""
import time
from collections import OrderedDict

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from ..exceptions import (DataValidationError, InfluenceNotDefinedError,
                          LeafValueMismatchError, UnsupportedModelError)
from ._settings import capabilities, make_method, make_model

#: Measures computed per test row, and per set of test rows.
ROW_MEASURES = ("removal", "targeted_edit")
SET_MEASURES = ("removal_set", "noise", "fix_mislabelled")
MEASURES = ROW_MEASURES + SET_MEASURES
EXTRA_MEASURES = ("runtime", "agreement")

#: Percent of the training rows edited at each step.
FRACTIONS = {
    "removal": (0.0, 0.1, 0.5, 1.0, 1.5, 2.0),
    "targeted_edit": tuple(round(0.2 * i, 1) for i in range(11)),
    "removal_set": tuple(float(f) for f in range(0, 55, 5)),
    "noise": tuple(float(f) for f in range(0, 55, 5)),
    "fix_mislabelled": tuple(float(f) for f in range(0, 35, 5)),
}
#: Numbers of rows removed by single-row removal besides the fractions: the
#: one-row checkpoint, on every data set (0.1% is one row only when
#: 500 <= n < 1500).
ROW_COUNTS = {"removal": (1,)}
#: The fractions whose ranks are averaged (BENCHMARK.md, Aggregation). The
#: fix-mislabelled ranking by self-influence is reported as the measure
#: ``fix_mislabelled_self``; the one-row checkpoint of single-row removal as
#: ``removal_one`` (None: its one fraction, 100 / n_train %, is ranked).
CHECKPOINTS = {
    "removal": (0.1, 0.5, 1.0, 1.5, 2.0),
    "removal_one": None,
    "targeted_edit": tuple(round(0.2 * i, 1) for i in range(1, 11)),
    "removal_set": (5.0, 10.0, 15.0, 20.0, 25.0),
    "noise": (5.0, 10.0, 15.0, 20.0, 25.0),
    "fix_mislabelled": (5.0, 10.0, 15.0, 20.0, 25.0, 30.0),
    "fix_mislabelled_self": (5.0, 10.0, 15.0, 20.0, 25.0, 30.0),
}
#: The metric each measure ranks methods by; higher is better for all of them.
PRIMARY_METRIC = {"removal": "loss", "removal_one": "loss", "targeted_edit": "loss",
                  "removal_set": "loss", "noise": "loss", "fix_mislabelled": "frac_found",
                  "fix_mislabelled_self": "frac_found"}

CLIP = 1e-5
SEED = 1
NOISE_FRACTION = 0.4
VALIDATION_FRACTION = 0.1


# ------------------------------------------------------------ protocol pieces
def test_row_order(n_test):
    """The benchmark's draw of test rows: a permutation of ``range(n_test)``.

    The first ``n`` entries are the ``n`` test rows of a run of size ``n``.
    """
    return np.random.default_rng(SEED).permutation(n_test)


def n_edited(fraction, n_train):
    """Number of training rows edited at ``fraction`` percent."""
    return int(round(fraction / 100.0 * n_train))


def validation_split(y_test, task):
    """Split test-row indices 10% validation / 90% test (stratified, seed 1).

    Returns
    -------
    val_idx, test_idx : ndarray of int64, sorted
    """
    idx = np.arange(len(y_test))
    strat = y_test if task != "regression" else None
    val, test = train_test_split(idx, train_size=VALIDATION_FRACTION,
                                 random_state=SEED, stratify=strat)
    return np.sort(val).astype(np.int64), np.sort(test).astype(np.int64)


def corrupted_labels(y, task, n_classes, rng):
    """A corrupted label for every row (applied to whichever rows are chosen).

    binary: the other class; multiclass: a uniformly random different class;
    regression: uniform in [min y, max y].
    """
    y = np.asarray(y)
    if task == "binary":
        return 1 - y
    if task == "multiclass":
        shift = rng.integers(1, n_classes, size=len(y))
        return (y.astype(np.int64) + shift) % n_classes
    return rng.uniform(float(np.min(y)), float(np.max(y)), size=len(y))


def noisy_rows(n_train, fraction=NOISE_FRACTION, replace=False, seed=SEED):
    """Rows whose labels the fix-mislabelled measure corrupts.

    Sampled without replacement (exactly ``round(fraction * n_train)`` unique
    rows). ``replace=True`` reproduces the published code, which sampled with
    replacement, so fewer rows (~33% at 40%) end up noisy.

    Returns
    -------
    ndarray of int64, sorted and unique
    """
    rng = np.random.default_rng(seed)
    size = int(round(fraction * n_train))
    return np.unique(rng.choice(n_train, size=size, replace=replace)).astype(np.int64)


def edit_target(task, y_true, proba_or_pred, y_train_median=None):
    """Target label y* of the targeted-edit measure for one test row."""
    if task == "binary":
        return int(1 - int(y_true))
    if task == "multiclass":
        return int(np.argsort(-np.asarray(proba_or_pred), kind="stable")[1])
    m = float(y_train_median)
    return 0.5 * m if float(proba_or_pred) > m else 1.5 * m


def row_losses(task, y, out):
    """Per-row test loss: ½(y−ŷ)², or −log p(true class) clipped."""
    y = np.asarray(y)
    if task == "regression":
        return 0.5 * (y - out) ** 2
    p = np.clip(out[np.arange(len(y)), y.astype(np.int64)], CLIP, 1 - CLIP)
    return -np.log(p)


def set_metrics(task, y, out):
    """Test-split metrics: loss (log loss or MSE), accuracy and AUC."""
    if task == "regression":
        return {"loss": float(np.mean((y - out) ** 2))}
    from sklearn.metrics import roc_auc_score
    metrics = {"loss": float(np.mean(row_losses(task, y, out))),
               "acc": float(np.mean(np.argmax(out, axis=1) == y))}
    try:
        if task == "binary":
            metrics["auc"] = float(roc_auc_score(y, out[:, 1]))
        else:
            p = out / out.sum(axis=1, keepdims=True)
            metrics["auc"] = float(roc_auc_score(y, p, multi_class="ovr",
                                                 labels=np.arange(out.shape[1])))
    except ValueError:
        metrics["auc"] = None
    return metrics


def ranking(values, largest=True):
    """Row indices by value, largest (or smallest) first; ties by lower index."""
    key = -values if largest else values
    return np.argsort(key, kind="stable")


# ------------------------------------------------------------ worker context
class _Context:
    """A data set, its model and the fitted explainers, cached per process."""

    def __init__(self, dataset, model, data_dir):
        from .. import datasets
        self.data = datasets.load(dataset, data_dir=data_dir)
        d = self.data
        self.task = d.task
        self.n_classes = 0 if d.task == "regression" else len(d.classes)
        self.X, self.y = d.X_train, d.y_train
        self.Xt, self.yt = d.X_test, d.y_test
        if self.task != "regression":
            self.y = self.y.astype(np.int64)
            self.yt = self.yt.astype(np.int64)
        self.library = model
        self.template = make_model(model, dataset, d.task)
        self.model = fit_model(self.template, self.X, self.y)
        self.explainers = OrderedDict()
        self.noisy = None

    def noisy_setup(self, replace):
        """Labels with 40% noise and the model trained on them (cached)."""
        if self.noisy is None or self.noisy[0] != replace:
            rows = noisy_rows(len(self.y), replace=replace)
            rng = np.random.default_rng(SEED)
            bad = corrupted_labels(self.y, self.task, self.n_classes, rng)
            y_noisy = self.y.copy()
            y_noisy[rows] = bad[rows]
            self.noisy = (replace, rows, y_noisy, fit_model(self.template, self.X, y_noisy))
        return self.noisy[1:]

    def explainer(self, method, noisy=False, replace=False):
        key = (method, noisy, replace)
        if key not in self.explainers:
            if noisy:
                _, y, model = self.noisy_setup(replace)
            else:
                y, model = self.y, self.model
            start = time.perf_counter()
            exp = make_method(method, n_jobs=1, library=self.library).fit(model, self.X, y)
            self.explainers[key] = (exp, time.perf_counter() - start)
            while len(self.explainers) > 3:
                self.explainers.popitem(last=False)
        return self.explainers[key]

    def predict(self, model, X):
        if self.task == "regression":
            return np.asarray(model.predict(X), dtype=np.float64).ravel()
        return np.asarray(model.predict_proba(X), dtype=np.float64)

    def lacks_class(self, y):
        return self.task != "regression" and len(np.unique(y)) < self.n_classes


_CONTEXTS = OrderedDict()


def _context(dataset, model, data_dir):
    key = (dataset, model, data_dir)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = _Context(dataset, model, data_dir)
        while len(_CONTEXTS) > 2:
            _CONTEXTS.popitem(last=False)
    return _CONTEXTS[key]


def fit_model(template, X, y):
    """Fit a fresh clone of ``template`` single-threaded."""
    from threadpoolctl import threadpool_limits
    model = clone(template)
    with threadpool_limits(1):
        model.fit(X, y)
    return model


# ------------------------------------------------------------------ measures
def _removal(ctx, cfg):
    """Records per fraction, and per row count of ``cfg['counts']`` (the
    one-row checkpoint); a retraining shared by a fraction and a count (the
    same number of rows removed) is done once."""
    j = cfg["test_index"]
    exp, _ = ctx.explainer(cfg["method"])
    inf = exp.get_local_influence(ctx.Xt[j:j + 1], ctx.yt[j:j + 1])[:, 0]
    order = ranking(inf)
    n = len(ctx.y)
    done = {}

    def removed(k):
        if k not in done:
            keep = np.ones(n, dtype=bool)
            keep[order[:k]] = False
            if ctx.lacks_class(ctx.y[keep]):
                done[k] = None
            else:
                model = ctx.model if k == 0 else fit_model(ctx.template, ctx.X[keep],
                                                           ctx.y[keep])
                out = ctx.predict(model, ctx.Xt[j:j + 1])
                done[k] = float(row_losses(ctx.task, ctx.yt[j:j + 1], out)[0])
        return {"n_edited": k, "loss": done[k], "skipped": done[k] is None}

    records = [{"fraction": f, **removed(n_edited(f, n))} for f in cfg["fractions"]]
    one_row = [{"fraction": 100.0 * k / n, **removed(int(k))}
               for k in cfg.get("counts", ()) if 0 < k <= n]
    return {"records": records, "one_row": one_row}


def _targeted_edit(ctx, cfg):
    j = cfg["test_index"]
    xq, yq = ctx.Xt[j:j + 1], ctx.yt[j:j + 1]
    base = ctx.predict(ctx.model, xq)
    target = edit_target(ctx.task, yq[0], base[0], np.median(ctx.y))
    exp, _ = ctx.explainer(cfg["method"])
    if "edit" in capabilities(cfg["method"]):
        inf = exp.get_label_edit_influence(xq, yq, np.asarray([target]))[:, 0]
    else:
        inf = exp.get_local_influence(xq, yq)[:, 0]
    order = ranking(inf)
    base_label = None if ctx.task == "regression" else int(np.argmax(base[0]))
    records = []
    for f in cfg["fractions"]:
        k = n_edited(f, len(ctx.y))
        y_edit = ctx.y.copy()
        y_edit[order[:k]] = target
        if ctx.lacks_class(y_edit):
            records.append({"fraction": f, "n_edited": k, "loss": None, "flipped": None,
                            "skipped": True})
            continue
        model = ctx.model if k == 0 else fit_model(ctx.template, ctx.X, y_edit)
        out = ctx.predict(model, xq)
        rec = {"fraction": f, "n_edited": k, "skipped": False,
               "loss": float(row_losses(ctx.task, yq, out)[0])}
        rec["flipped"] = (None if base_label is None
                          else bool(int(np.argmax(out[0])) != base_label))
        records.append(rec)
    return {"target": target, "records": records}


def _set_edit(ctx, cfg, corrupt):
    val, test = validation_split(ctx.yt, ctx.task)
    exp, _ = ctx.explainer(cfg["method"])
    order = ranking(exp.get_global_influence(ctx.Xt[val], ctx.yt[val]))
    bad = None
    if corrupt:
        bad = corrupted_labels(ctx.y, ctx.task, ctx.n_classes, np.random.default_rng(SEED))
    records = []
    for f in cfg["fractions"]:
        k = n_edited(f, len(ctx.y))
        top = order[:k]
        if corrupt:
            X, y = ctx.X, ctx.y.copy()
            y[top] = bad[top]
        else:
            keep = np.ones(len(ctx.y), dtype=bool)
            keep[top] = False
            X, y = ctx.X[keep], ctx.y[keep]
        if ctx.lacks_class(y):
            records.append({"fraction": f, "n_edited": k, "skipped": True})
            continue
        model = ctx.model if k == 0 else fit_model(ctx.template, X, y)
        rec = {"fraction": f, "n_edited": k, "skipped": False}
        rec.update(set_metrics(ctx.task, ctx.yt[test], ctx.predict(model, ctx.Xt[test])))
        records.append(rec)
    return records


def _fix_mislabelled(ctx, cfg):
    replace = bool(cfg.get("noise_with_replacement", False))
    rows, y_noisy, noisy_model = ctx.noisy_setup(replace)
    val, test = validation_split(ctx.yt, ctx.task)
    method = cfg["method"]
    caps = capabilities(method)
    exp, _ = ctx.explainer(method, noisy=True, replace=replace)
    orders = {}
    if "global" in caps:   # most harmful on the validation rows first
        orders["global"] = ranking(exp.get_global_influence(ctx.Xt[val], ctx.yt[val]),
                                   largest=False)
    if "self" in caps:     # largest self-influence first
        orders["self"] = ranking(exp.get_self_influence())
    is_noisy = np.zeros(len(ctx.y), dtype=bool)
    is_noisy[rows] = True
    out = {"n_noisy": int(len(rows)), "rankings": {}}
    for name, order in orders.items():
        records = []
        for f in cfg["fractions"]:
            k = n_edited(f, len(ctx.y))
            top = order[:k]
            y = y_noisy.copy()
            y[top] = ctx.y[top]
            model = noisy_model if k == 0 else fit_model(ctx.template, ctx.X, y)
            rec = {"fraction": f, "n_edited": k, "skipped": False,
                   "frac_found": float(is_noisy[top].sum() / max(len(rows), 1))}
            rec.update(set_metrics(ctx.task, ctx.yt[test], ctx.predict(model, ctx.Xt[test])))
            records.append(rec)
        out["rankings"][name] = records
    return out


def _runtime(ctx, cfg):
    """Fit time and one-row influence time, measured separately (BENCHMARK.md).

    Everything single-threaded (the estimator's ``n_jobs=1`` for numba, one
    BLAS/OpenMP thread through threadpoolctl). ``warmup`` rounds (default 1:
    JIT compilation, caches) run first and are recorded apart; ``repeats``
    timed rounds follow, each a fresh estimator fitted and asked for the
    influence of the same test row (the first of the benchmark's draw).
    Methods without per-row influence time their self-influence instead.
    """
    from threadpoolctl import threadpool_limits
    j = int(test_row_order(len(ctx.yt))[0])
    local = "local" in capabilities(cfg["method"])
    warmup = int(cfg.get("warmup", 1))
    repeats = int(cfg.get("repeats", 5))
    times = []
    with threadpool_limits(1):
        for _ in range(warmup + repeats):
            start = time.perf_counter()
            exp = make_method(cfg["method"], n_jobs=1, library=ctx.library).fit(
                ctx.model, ctx.X, ctx.y)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            if local:
                exp.get_local_influence(ctx.Xt[j:j + 1], ctx.yt[j:j + 1])
            else:
                exp.get_self_influence()
            times.append((fit_s, time.perf_counter() - start))
    return {"fit_s": [t[0] for t in times[warmup:]],
            "influence_s": [t[1] for t in times[warmup:]],
            "warmup_fit_s": [t[0] for t in times[:warmup]],
            "warmup_influence_s": [t[1] for t in times[:warmup]],
            "influence": "one test row" if local else "self-influence", "n_jobs": 1}


def _agreement(ctx, cfg):
    from scipy.stats import pearsonr, spearmanr
    j = cfg["test_index"]
    vectors = {}
    for m in cfg["methods"]:
        exp, _ = ctx.explainer(m)
        vectors[m] = exp.get_local_influence(ctx.Xt[j:j + 1], ctx.yt[j:j + 1])[:, 0]
    top = max(1, int(round(0.1 * len(ctx.y))))
    tops = {m: set(ranking(v)[:top].tolist()) for m, v in vectors.items()}
    pairs = []
    names = list(vectors)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            u, v = vectors[names[a]], vectors[names[b]]
            const = np.ptp(u) == 0 or np.ptp(v) == 0
            pairs.append({
                "a": names[a], "b": names[b],
                "pearson": None if const else float(pearsonr(u, v)[0]),
                "spearman": None if const else float(spearmanr(u, v)[0]),
                "jaccard": len(tops[names[a]] & tops[names[b]])
                / len(tops[names[a]] | tops[names[b]])})
    return pairs


_MEASURE_FUNCS = {"removal": _removal, "targeted_edit": _targeted_edit,
                  "removal_set": lambda c, cfg: _set_edit(c, cfg, corrupt=False),
                  "noise": lambda c, cfg: _set_edit(c, cfg, corrupt=True),
                  "fix_mislabelled": _fix_mislabelled, "runtime": _runtime,
                  "agreement": _agreement}

#: Errors that mean "this method does not apply to this model", recorded as
#: an unsupported unit rather than a failure.
_NOT_APPLICABLE = (UnsupportedModelError, LeafValueMismatchError, InfluenceNotDefinedError)


def run_unit(cfg, data_dir=None):
    """Compute one unit of work.

    Parameters
    ----------
    cfg : dict
        A unit configuration from :func:`treeinf.eval.plan`.
    data_dir : str or None
        Where the data set files are (see :func:`treeinf.datasets.load`).

    Returns
    -------
    dict
        ``{'status': 'ok', 'result': ..., 'seconds': float}``, or
        ``{'status': 'unsupported', 'message': str}`` when the method does not
        apply to the model (e.g. LeafInfluence on a CatBoost model trained
        with bootstrapping).
    """
    measure = cfg["measure"]
    if measure not in _MEASURE_FUNCS:
        raise DataValidationError(f"unknown measure {measure!r}; known: "
                                  f"{', '.join(_MEASURE_FUNCS)}.")
    start = time.perf_counter()
    ctx = _context(cfg["dataset"], cfg["model"], data_dir)
    try:
        result = _MEASURE_FUNCS[measure](ctx, cfg)
    except _NOT_APPLICABLE as exc:
        return {"status": "unsupported", "message": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "result": result, "seconds": time.perf_counter() - start}
