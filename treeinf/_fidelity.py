"""Does the data passed to ``fit`` belong to the model? The leaf-fidelity check.

Parsing proves that treeinf walks the trees as the library does. It does not
prove that ``(X, y, sample_weight)`` are the rows the model was trained on, nor
that the training parameters (learning rate, L2) are the ones it used. Both
are checked here at once, by recomputing every leaf value from the data with
the model's own training rule and comparing it with the model's leaves:

* Boosting models whose leaves are plain Newton steps on the training rows
  (``FlatEnsemble.exact_leaves``): every leaf must agree to within the
  rounding a float32 library makes. The error of leaf l is measured relative
  to ``scale_l = eta (S_l + |v_l| H_l) / (H_l + lambda_l) + |phi_l| +
  |phi_model_l|``, with ``S_l = sum w (|g| + h (1 + |z|))``: the size of
  what a library computing g and the margins z in float32 can get wrong.
  The largest relative error must be at most ``EXACT_TOLERANCE``.
* Models whose leaves are not exactly reproducible (row subsampling, GOSS,
  CatBoost bootstrap or Ordered boosting, several leaf-estimation steps,
  forests): the Pearson correlation between recomputed and stored leaf
  values over all leaves must be at least ``MIN_CORRELATION``.

``check_fidelity`` returns a report (stored by every explainer as
``fidelity_``) or raises :class:`~treeinf.exceptions.TrainingDataMismatchError`
naming the first disagreeing leaf and the likely causes.

When the model file does not store its learning rate and L2 (XGBoost JSON/UBJ
files: a loaded Booster reports XGBoost's defaults), the leaves give them:
each leaf satisfies ``phi (H + lambda) = -eta G``, a linear system in
(eta, lambda) solved by least squares over all leaves
(:func:`estimate_training_params`); the estimate is used only if it then
reproduces every leaf.
"""
import numpy as np

from ._kernels.stats import (N_NEWTON_SUMS, NS_COUNT, NS_G, NS_H, NS_SCALE, NS_WEIGHT,
                             NS_Y, newton_sums_kernel)
from ._losses import OBJECTIVE_CODES
from ._stats import effective_l2
from .exceptions import TrainingDataMismatchError

#: largest relative leaf error accepted for exactly reproducible models. Seen
#: on the training data: below 1e-6 for every library in the test suite
#: (float32 gradients and margins); a single training row missing from a
#: leaf of 1,000 rows gives ~1e-3.
EXACT_TOLERANCE = 1e-4
#: smallest correlation accepted for models whose leaves are not exactly
#: reproducible. Calibrated on 400-row, 20-round test models (LightGBM bagging
#: 0.7 and GOSS, XGBoost and GradientBoosting subsample 0.7, CatBoost with its
#: default bootstrap and leaf iterations, random forests, LightGBM rf), three
#: objectives each: the training data gave 0.79 to 1.00; permuted rows,
#: permuted labels, a shifted column or a random matrix gave -0.62 to 0.41.
#: A subset of the training rows is caught by the recorded leaf statistics
#: instead (see ``_stat_agreement``).
MIN_CORRELATION = 0.6
#: row chunks of the sums kernel (fixed: results do not depend on threads)
N_CHUNKS = 16

_CAUSES = (
    "X is not the data the model was trained on, or lacks some of its rows",
    "the rows of X are in another order than y / sample_weight",
    "y or sample_weight differ from the training ones (labels, weights, class weights)",
    "the model was trained with an init_score / base_margin, which it does not store",
    "the training data used a missing-value sentinel (e.g. xgboost.DMatrix(missing=0)); "
    "pass fit(..., missing=value)",
    "training parameters that the model file does not store (learning rate, L2); "
    "pass fit(..., learning_rate=..., reg_lambda=...)",
)


def training_rows(ens, y, n):
    """Indices of the rows the model trained on, or None for all of them.

    scikit-learn's early stopping (``HistGradientBoosting*`` with a
    validation split, ``GradientBoosting*`` with ``n_iter_no_change`` and an
    integer ``random_state``) trains on a ``train_test_split`` of the rows
    passed to ``fit``; the split is reproduced from the model's seed.

    Parameters
    ----------
    ens : FlatEnsemble
    y : ndarray of shape (n,)
        Encoded targets (class indices for classification).
    n : int

    Returns
    -------
    ndarray of int64 (sorted) or None
    """
    split = ens.train_split
    if not split:
        return None
    from sklearn.model_selection import train_test_split
    stratify = y if split.get("stratify") else None
    try:
        train, _ = train_test_split(np.arange(n), test_size=split["validation_fraction"],
                                    stratify=stratify, random_state=split["random_state"],
                                    shuffle=split.get("shuffle", True))
    except ValueError as exc:  # e.g. a class too small to stratify: not this data
        raise TrainingDataMismatchError(
            f"The rows passed to fit cannot be the training data of {ens.model_name}: "
            f"its early-stopping split of them fails ({exc}).") from exc
    return np.sort(train).astype(np.int64)


def newton_sums(ens, leaves, y, w):
    """Per-leaf sums for recomputing leaves: dict of (n_leaves_total,) arrays.

    Keys 'G', 'H' (weighted gradient and hessian sums), 'S' (error scale),
    'W' (weight), 'Y' (weighted target of the tree's output) and 'C' (rows).
    """
    out = np.empty((N_CHUNKS, int(ens.leaf_offset[-1]), N_NEWTON_SUMS))
    newton_sums_kernel(leaves, ens.tree_round, ens.tree_output, ens.leaf_offset,
                       ens.leaf_value, ens.base_margin, np.ascontiguousarray(y, np.float64),
                       np.ascontiguousarray(w, np.float64), OBJECTIVE_CODES[ens.objective],
                       float(ens.hessian_factor), ens.kind == "boosting", out)
    tot = out.sum(axis=0)
    return {"G": tot[:, NS_G], "H": tot[:, NS_H], "S": tot[:, NS_SCALE],
            "W": tot[:, NS_WEIGHT], "Y": tot[:, NS_Y], "C": tot[:, NS_COUNT]}


def fused_newton_sums(ens, Xe, y, w):
    """Leaf ids (n_trees, n) and the per-leaf sums of :func:`newton_sums` in
    one pass over the rows (BoostIn's traversal kernel, which the check and
    BoostIn's fit share). Boosting models only.

    Returns ``(leaves_T, sums)``.
    """
    from ._kernels.boostin import chunk_rows, fit_leaves_kernel
    from ._stats import leaf_id_dtype
    n = Xe.shape[0]
    L = int(ens.leaf_offset[-1])
    leaves_T = np.empty((ens.n_trees, n), dtype=leaf_id_dtype(ens))
    chunk = chunk_rows(n)
    n_chunks = max(1, -(-n // chunk))
    H_part = np.empty((n_chunks, L))
    S_part = np.empty((n_chunks, L, N_NEWTON_SUMS))
    fit_leaves_kernel(Xe, ens.tree_root, ens.node_left, ens.node_right, ens.node_feature,
                      ens.node_threshold, ens.node_kind, ens.node_missing,
                      ens.node_default_left, ens.node_cat_start, ens.node_cat_len,
                      ens.cat_bits, ens.node_leaf, ens.tree_round, ens.tree_output,
                      ens.leaf_offset, ens.leaf_value, ens.base_margin,
                      np.ascontiguousarray(y, np.float64), np.ascontiguousarray(w, np.float64),
                      OBJECTIVE_CODES[ens.objective], float(ens.hessian_factor), chunk,
                      leaves_T, H_part, S_part)
    tot = S_part.sum(axis=0)
    return leaves_T, {"G": tot[:, NS_G], "H": tot[:, NS_H], "S": tot[:, NS_SCALE],
                      "W": tot[:, NS_WEIGHT], "Y": tot[:, NS_Y], "C": tot[:, NS_COUNT]}


def class_sampling_weights(ens, y, w):
    """Row weights times the sampling fraction of the row's class, or None.

    For models whose row sampling depends on the class
    (``leaf_train_class_fraction``): the per-leaf statistic the model
    recorded is then expected to equal the data's under these weights.
    """
    frac = ens.leaf_train_class_fraction
    if frac is None or ens.leaf_train_stat_exact:
        return None
    return w * frac[np.asarray(y, dtype=np.int64)]


def newton_leaves(G, H, lam, alpha, eta):
    """``-eta * soft_threshold(G, alpha) / (H + lambda)``, 0 where undefined."""
    Gs = np.sign(G) * np.maximum(np.abs(G) - alpha, 0.0)
    d = H + lam
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, -eta * Gs / np.where(d > 0, d, 1.0), 0.0)


def _exact_errors(ens, sums, lam, eta, alpha):
    """(recomputed leaves, relative error per leaf)."""
    phi = newton_leaves(sums["G"], sums["H"], lam, alpha, eta)
    model = ens.leaf_value
    d = sums["H"] + lam
    v = model / eta if eta > 0 else model
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(d > 0, eta * (sums["S"] + np.abs(v) * sums["H"])
                          / np.where(d > 0, d, 1.0), 0.0)
    scale = spread + np.abs(phi) + np.abs(model)
    err = np.abs(phi - model)
    rel = np.where(scale > 0, err / np.where(scale > 0, scale, 1.0), 0.0)
    return phi, rel


def _forest_targets(ens, sums):
    """What a forest's leaves hold, recomputed: weighted mean target per leaf."""
    W = sums["W"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(W > 0, sums["Y"] / np.where(W > 0, W, 1.0), 0.0)


def _corr(a, b):
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _per_round(ens, how):
    rounds = np.unique(ens.tree_round)
    tree_of_leaf = np.repeat(np.arange(ens.n_trees), np.diff(ens.leaf_offset))
    round_of_leaf = ens.tree_round[tree_of_leaf]
    return np.array([how(round_of_leaf == r) for r in rounds])


def _agreement(ens, sums, lam):
    """Correlation-based agreement for leaves that are not exactly reproducible."""
    if ens.kind == "forest" and ens.link == "identity":
        rec = _forest_targets(ens, sums)   # scikit-learn forests: mean target
    else:
        rec = newton_leaves(sums["G"], sums["H"], lam, ens.reg_alpha, 1.0)
    used = sums["W"] > 0
    model = ens.leaf_value
    corr = _corr(rec[used], model[used])
    per_round = _per_round(ens, lambda m: _corr(rec[m & used], model[m & used]))
    return rec, corr, per_round


def check_fidelity(ens, leaves, y, w, *, raise_error=True, eta=None, lam=None):
    """Recompute every leaf from the data and compare with the model's.

    Parameters
    ----------
    ens : FlatEnsemble
    leaves : ndarray of shape (n, n_trees)
        Compact leaf indices of the training rows.
    y, w : ndarray of shape (n,)
        Encoded targets and training weights (0 for rows the model did not
        train on).
    raise_error : bool, default=True
        Raise :class:`TrainingDataMismatchError` on disagreement; otherwise
        only report it.
    eta, lam : float / ndarray, optional
        Learning rate and per-leaf L2 to check (default: the ensemble's).

    Returns
    -------
    dict
        ``exact`` (bool: leaves are expected to be reproduced exactly),
        ``passed`` (bool), ``max_error`` (largest relative leaf error, exact
        models), ``tolerance``, ``correlation`` (recomputed vs stored leaves),
        ``median_relative_error``, ``round_agreement`` (ndarray of shape
        (n_rounds,): largest relative error per round for exact models,
        correlation per round otherwise), ``n_leaves`` (leaves with training
        rows), ``params_source``.
    """
    sums = newton_sums(ens, leaves, y, w)
    wcls = class_sampling_weights(ens, y, w)
    stat_sums = None if wcls is None else newton_sums(ens, leaves, y, wcls)
    return _judge(ens, sums, w, raise_error=raise_error, eta=eta, lam=lam,
                  stat_sums=stat_sums)


def _judge(ens, sums, w, *, raise_error=True, eta=None, lam=None, stat_sums=None):
    eta = ens.learning_rate if eta is None else eta
    lam = effective_l2(ens, w) if lam is None else lam
    used = sums["W"] > 0
    model = ens.leaf_value
    report = {"exact": bool(ens.exact_leaves and ens.kind == "boosting"),
              "n_leaves": int(used.sum()), "params_source": dict(ens.params_source)}
    if report["exact"]:
        phi, rel = _exact_errors(ens, sums, lam, eta, ens.reg_alpha)
        report["max_error"] = float(rel.max()) if rel.size else 0.0
        report["tolerance"] = EXACT_TOLERANCE
        report["correlation"] = _corr(phi[used], model[used])
        report["round_agreement"] = _per_round(
            ens, lambda m: float(rel[m].max()) if m.any() else 0.0)
        passed = report["max_error"] <= EXACT_TOLERANCE
    else:
        phi, corr, per_round = _agreement(ens, sums, lam)
        report["max_error"] = float("nan")
        report["tolerance"] = MIN_CORRELATION
        report["correlation"] = corr
        report["round_agreement"] = per_round
        passed = not (corr < MIN_CORRELATION)  # nan (constant leaves) passes
        stat = _stat_agreement(ens, sums if stat_sums is None else stat_sums,
                               class_weighted=stat_sums is not None)
        if stat is not None:
            report.update(stat)
            passed = passed and stat["stat_passed"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = np.abs(phi - model) / np.maximum(np.abs(model), 1e-300)
    report["median_relative_error"] = float(np.median(rel_err[used])) if used.any() else 0.0
    report["passed"] = bool(passed)
    if not passed and raise_error:
        raise TrainingDataMismatchError(_message(ens, report, phi, rel if report["exact"]
                                                 else None))
    return report


#: largest relative difference of an exactly recorded leaf statistic
STAT_TOLERANCE = 1e-4
#: smallest relative deviation of the sampled-statistic ratio that is flagged
MIN_RATIO_DEVIATION = 0.05


def _stat_agreement(ens, sums, class_weighted=False):
    """Compare what the model recorded about its leaves' rows with the data.

    Exact statistics (no row sampling: CatBoost's leaf weights, trees without
    bootstrap) must agree leaf by leaf. Sampled ones (bagging, subsample,
    bootstrap) must agree in total, per round, with the sampling fraction:
    their mean ratio may deviate from it by at most
    ``max(MIN_RATIO_DEVIATION, 5 standard errors)``. A training set with a
    fifth of its rows missing deviates by 25%.
    """
    stored = ens.leaf_train_stat
    kind = ens.leaf_train_stat_kind
    if stored is None or kind not in ("count", "weight", "hessian"):
        return None
    rec = {"count": sums["C"], "weight": sums["W"], "hessian": sums["H"]}[kind]
    known = np.isfinite(stored)
    if not known.any():
        return None
    if ens.leaf_train_stat_exact:
        diff = np.abs(stored - rec) / (np.abs(stored) + np.abs(rec) + 1e-300)
        diff = np.where(known, diff, 0.0)
        worst = float(diff.max())
        return {"stat_kind": kind, "stat_error": worst, "stat_passed": worst <= STAT_TOLERANCE}
    # with class-dependent sampling the sums already weight each row by its
    # class's fraction (see class_sampling_weights)
    f = 1.0 if class_weighted else ens.leaf_train_fraction
    if f is None or not f > 0:
        return None
    tree_of_leaf = np.repeat(np.arange(ens.n_trees), np.diff(ens.leaf_offset))
    num = np.bincount(tree_of_leaf, weights=np.where(known, stored, 0.0), minlength=ens.n_trees)
    den = np.bincount(tree_of_leaf, weights=np.where(known, rec, 0.0), minlength=ens.n_trees)
    ok = den > 0
    if ok.sum() < 1:
        return None
    ratio = num[ok] / den[ok] / f
    mean = float(np.mean(ratio))
    se = float(np.std(ratio) / np.sqrt(ratio.size)) if ratio.size > 1 else 0.0
    dev = abs(mean - 1.0)
    tol = max(MIN_RATIO_DEVIATION, 5.0 * se)
    return {"stat_kind": kind, "stat_ratio": mean, "stat_tolerance": tol,
            "stat_passed": dev <= tol}


def _fraction_text(ens):
    frac = ens.leaf_train_class_fraction
    if frac is not None:
        return "fraction " + " / ".join(f"{f:g}" for f in frac) + " by class"
    return f"fraction {ens.leaf_train_fraction:g}"


def _message(ens, report, phi, rel):
    causes = "; ".join(f"({i + 1}) {c}" for i, c in enumerate(_CAUSES))
    if rel is not None:
        L = int(np.argmax(rel))
        tree = int(np.searchsorted(ens.leaf_offset, L, side="right") - 1)
        first = int(np.flatnonzero(report["round_agreement"] > report["tolerance"])[0])
        head = (f"The data passed to fit does not reproduce {ens.library} "
                f"{ens.model_name}'s leaves: leaf {L - int(ens.leaf_offset[tree])} of tree "
                f"{tree} (round {int(ens.tree_round[tree])}, output "
                f"{int(ens.tree_output[tree])}) is {ens.leaf_value[L]:.6g} in the model and "
                f"{phi[L]:.6g} recomputed from (X, y, sample_weight) with the model's "
                f"training rule (learning rate {ens.learning_rate:g}, L2 "
                f"{ens.reg_lambda:g}); relative error {rel[L]:.3g}, tolerance "
                f"{report['tolerance']:g}; {int(np.sum(rel > report['tolerance']))} of "
                f"{rel.size} leaves differ, the first in round {first}.")
    elif not report.get("stat_passed", True):
        kind = report["stat_kind"]
        if "stat_ratio" in report:
            what = (f"the {kind} it recorded per leaf is {report['stat_ratio']:.3f} times "
                    f"what the data gives after allowing for its row sampling "
                    f"({_fraction_text(ens)}); tolerance "
                    f"{report['stat_tolerance']:.3f} around 1")
        else:
            what = (f"the {kind} of the training rows it recorded per leaf differs from "
                    f"the data's by up to {report['stat_error']:.3g} (relative; "
                    f"tolerance {STAT_TOLERANCE:g})")
        head = (f"The data passed to fit does not match {ens.library} {ens.model_name}: "
                f"{what}.")
    else:
        head = (f"The data passed to fit does not match {ens.library} {ens.model_name}: "
                f"its leaves are not exactly reproducible "
                f"({'; '.join(ens.exact_leaves_reasons) or 'sampling'}), but leaves "
                f"recomputed from (X, y, sample_weight) correlate with the model's only "
                f"{report['correlation']:.3f} (a model on its own training data gives at "
                f"least {report['tolerance']:g}).")
    return (f"{head} Likely causes, most likely first: {causes}. If you are certain the "
            "data is right, fit(..., check_data=False) skips this check (unsafe: "
            "influence may then be silently wrong).")


def estimate_training_params(ens, sums, max_rounds=None):
    """Learning rate and L2 from the leaves: least squares on phi (H + lambda) = -eta G.

    Returns ``(eta, lambda)`` or None when the leaves do not determine them
    (fewer than two informative leaves). ``eta`` is the per-tree rate
    (``FlatEnsemble.learning_rate``). The raw estimates are snapped to the
    shortest decimal that reproduces the leaves equally well (users write
    0.1, not 0.1000000017).
    """
    used = (sums["W"] > 0) & (sums["H"] > 0)
    if max_rounds is not None:
        tree_of_leaf = np.repeat(np.arange(ens.n_trees), np.diff(ens.leaf_offset))
        used &= ens.tree_round[tree_of_leaf] < max_rounds
    phi, G, H, S = (ens.leaf_value[used], sums["G"][used], sums["H"][used],
                    sums["S"][used])
    if phi.size < 2:
        return None
    # phi * H = -eta * G - lambda * phi; each leaf's equation divided by S,
    # the size of its rounding noise (both eta*G and phi*(H + lambda) are
    # at most eta*S), so leaves whose gradients cancel do not dominate
    s = S + 1e-300
    A = np.column_stack([-G / s, -phi / s])
    b = phi * H / s
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    eta, lam = float(sol[0]), float(sol[1])
    if not (np.isfinite(eta) and np.isfinite(lam)) or eta <= 0:
        return None
    return eta, max(lam, 0.0)


def snap(value, rel=1e-5):
    """The shortest decimal within ``rel`` of value (value itself if none)."""
    if value == 0.0:
        return 0.0
    for digits in range(1, 9):
        r = float(f"{value:.{digits}g}")
        if abs(r - value) <= rel * abs(value):
            return r
    return value
