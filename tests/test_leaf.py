"""LeafInfluence, LeafRefit and label-edit influence against brute force,
finite differences and CatBoost's own get_object_importance."""
import pickle

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone

import naive
from models import TASKS, make_model, trained
from treeinf import BoostIn, LeafInfluence, LeafRefit
from treeinf._validation import encode_target
from treeinf.exceptions import DataValidationError, LeafValueMismatchError

# settings under which each library's leaves are plain Newton steps
EXACT = {
    "lightgbm": dict(min_child_weight=1e-12, reg_lambda=0.5),
    "xgboost": dict(min_child_weight=0.0, reg_lambda=0.5, max_delta_step=0),
    "catboost": dict(leaf_estimation_method="Newton", leaf_estimation_iterations=1,
                     boosting_type="Plain", bootstrap_type="No", l2_leaf_reg=0.5),
    "sklearn_gb": {},
    "sklearn_hgb": dict(l2_regularization=0.5),
}
# XGBoost and HistGradientBoosting compute gradients in float32
ATOL = {"xgboost": 1e-4, "sklearn_hgb": 1e-4}
CASES = [(f, t) for f in EXACT for t in TASKS if not (f == "catboost" and t == "multiclass")]


def exact_model(family, task, n=70, n_test=12, n_estimators=5, seed=0, weights=True):
    _, Xtr, ytr, w, Xte, yte = trained(family, task, n=n, n_test=n_test, weights=weights,
                                      seed=seed)
    model = make_model(family, task, n_estimators=n_estimators, seed=seed, **EXACT[family])
    model.fit(Xtr, ytr, sample_weight=w)
    if w is None:
        w = np.ones(len(ytr))
    return model, Xtr, ytr, w, Xte, yte


def _setup(estimator, family, task, **kw):
    model, Xtr, ytr, w, Xte, yte = exact_model(family, task, **kw)
    exp = estimator.set_params(atol=ATOL.get(family, 1e-5)).fit(model, Xtr, ytr, sample_weight=w)
    ens = exp.ensemble_
    enc = lambda v: encode_target(ens, v, len(v))  # noqa: E731
    cw = ens.class_weight
    w_eff = w if cw is None or task == "regression" else w * np.asarray(cw)[enc(ytr).astype(int)]
    leaves = exp._leaves_T.T.astype(np.int64)
    Lte = ens.apply(Xte).reshape(len(yte), -1)
    F_te = ens.predict_raw(Xte)
    return exp, ens, Xtr, enc(ytr), w_eff, Xte, enc(yte), leaves, Lte, F_te


def _refit_loss(exp, ens, y0, w0, leaves, Lte, F_te, yte, y=None, w=None, update=None,
                extra=None):
    """Test loss change of the brute-force refit on data (y, w) vs (y0, w0)."""
    change = naive.refit(ens, leaves, y0 if y is None else y, w0 if w is None else w,
                         exp._lam, update=update, extra={"base": (y0, w0), **(extra or {})})
    return naive.loss_change(ens, change, Lte, F_te, yte)


def _topk_update(leaves, ens, i, k):
    def update(j, delta_c, change):
        n_l = ens.n_leaves[j]
        score = np.bincount(leaves[:, j], weights=np.abs(delta_c), minlength=n_l)
        # documented tie rule: sums that are rounding noise count as 0, and
        # ties go to the lower leaf index
        score[score <= 1e-10 * max(score.max(), 1e-300)] = 0.0
        chosen = np.argsort(-score, kind="stable")[:k]
        follow = np.isin(leaves[:, j], chosen)
        follow[i] = True
        return follow
    return update


def _single_update(i):
    def update(j, delta_c, change):
        follow = np.zeros(len(delta_c), bool)
        follow[i] = True
        return follow
    return update


@pytest.mark.parametrize("family,task", CASES)
def test_leafrefit_equals_bruteforce(family, task):
    exp, ens, Xtr, y, w, Xte, yte, leaves, Lte, F_te = _setup(LeafRefit(), family, task)
    got = exp.get_local_influence(Xte, ens.classes[yte.astype(int)] if ens.classes is not None else yte)
    for i in range(0, len(y), 7):
        w_i = w.copy()
        w_i[i] = 0.0
        ref = _refit_loss(exp, ens, y, w, leaves, Lte, F_te, yte, w=w_i)
        np.testing.assert_allclose(got[i], ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("family,task,update_set",
                         [(f, t, 0) for f, t in CASES if t != "multiclass"]
                         + [(f, "regression", 2) for f, t in CASES if t == "regression"])
def test_leafrefit_update_sets_equal_bruteforce(family, task, update_set):
    """LeafRefit with SinglePoint / TopKLeaves update sets = the fixed-structure
    refit in which only those rows' margins follow the leaf changes."""
    exp, ens, Xtr, y, w, Xte, yte, leaves, Lte, F_te = _setup(
        LeafRefit(update_set=update_set), family, task)
    labels = ens.classes[yte.astype(int)] if ens.classes is not None else yte
    got = exp.get_local_influence(Xte, labels)
    for i in range(0, len(y), 7):
        w_i = w.copy()
        w_i[i] = 0.0
        update = _single_update(i) if update_set == 0 else _topk_update(leaves, ens, i,
                                                                          update_set)
        ref = _refit_loss(exp, ens, y, w, leaves, Lte, F_te, yte, w=w_i, update=update)
        np.testing.assert_allclose(got[i], ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("update_set", [0])
@pytest.mark.parametrize("family,task", [c for c in CASES if c[1] == "regression"])
def test_leafinfluence_label_edit_update_sets(family, task, update_set):
    """LeafInfluence label-edit with SinglePoint / TopKLeaves: the derivative of
    the refit (with the same update set) as the row's weight moves to the
    new label."""
    exp, ens, Xtr, y, w, Xte, yte, leaves, Lte, F_te = _setup(
        LeafInfluence(update_set=update_set), family, task)
    target = 1.5 * yte
    got = exp.get_label_edit_influence(Xte, yte, target)
    eps = 1e-6
    scale = max(np.abs(got).max(), 1e-12)
    for e in range(0, len(yte), 5):
        for i in range(0, len(y), 11):
            update = (_single_update(i) if update_set == 0
                      else _topk_update(leaves, ens, i, update_set))
            w_i = w.copy()
            w_i[i] *= 1 - eps
            fd = _refit_loss(exp, ens, y, w, leaves, Lte[e:e + 1], F_te[e:e + 1],
                             yte[e:e + 1], w=w_i, update=update,
                             extra={"row": (i, target[e], w[i] * eps)})[0] / eps
            if update_set == 0:
                np.testing.assert_allclose(got[i, e], fd, rtol=1e-4, atol=1e-4 * scale)
            else:  # TopKLeaves is not a refit derivative (see above): same sign, size
                assert abs(got[i, e] - fd) <= 0.5 * abs(fd) + 1e-3 * scale


@pytest.mark.parametrize("update_set", [-1, 0, 2])
@pytest.mark.parametrize("family,task", CASES)
def test_leafinfluence_matches_spec_recursion(family, task, update_set):
    """LeafInfluence equals SPEC's forward recursion for every update set."""
    exp, ens, Xtr, y, w, Xte, yte, leaves, Lte, F_te = _setup(
        LeafInfluence(update_set=update_set), family, task)
    labels = ens.classes[yte.astype(int)] if ens.classes is not None else yte
    got = exp.get_local_influence(Xte, labels)
    for i in range(0, len(y), 6):
        ref = naive.leaf_influence(ens, leaves, y, w, exp._lam, i, update_set, F_te, Lte, yte)
        np.testing.assert_allclose(got[i], ref, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(got).max()))


SINGLE_OUTPUT = [(f, t) for f, t in CASES if t != "multiclass"]


@pytest.mark.parametrize("update_set", [-1, 0])
@pytest.mark.parametrize("family,task", SINGLE_OUTPUT)
def test_leafinfluence_is_refit_derivative(family, task, update_set):
    """LeafInfluence = d(test loss)/d(weight) of the refit, w -> w(1 - eps).

    For TopKLeaves SPEC's recursion sums only the update set inside a leaf,
    and for multiclass it keeps the diagonal of the softmax hessian; neither
    is the derivative of a refit, so both are checked against the recursion
    above instead."""
    exp, ens, Xtr, y, w, Xte, yte, leaves, Lte, F_te = _setup(
        LeafInfluence(update_set=update_set), family, task)
    labels = ens.classes[yte.astype(int)] if ens.classes is not None else yte
    got = exp.get_local_influence(Xte, labels)
    eps = 1e-6
    for i in range(0, len(y), 9):
        if update_set == -1:
            update = None
        elif update_set == 0:
            update = _single_update(i)
        else:
            update = _topk_update(leaves, ens, i, update_set)
        w_i = w.copy()
        w_i[i] *= 1 - eps
        fd = _refit_loss(exp, ens, y, w, leaves, Lte, F_te, yte, w=w_i, update=update) / eps
        scale = max(np.abs(got).max(), 1e-12)
        np.testing.assert_allclose(got[i], fd, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("family,task", CASES)
def test_label_edit(family, task):
    """LeafRefit LE = relabel-and-refit; LeafInfluence LE = its derivative as
    the row's weight moves to the new label; BoostIn LE = SPEC's D_LE."""
    kw = dict(atol=ATOL.get(family, 1e-5))
    exp, ens, Xtr, y, w, Xte, yte, leaves, Lte, F_te = _setup(LeafRefit(), family, task)
    K = 2 if task == "binary" else ens.n_outputs
    target = (yte + 1) % K if task != "regression" else 1.5 * yte
    to_label = (lambda v: ens.classes[v.astype(int)]) if ens.classes is not None else (lambda v: v)
    labels, t_labels = to_label(yte), to_label(target)
    model = exact_model(family, task)[0]
    refit_le = exp.get_label_edit_influence(Xte, labels, t_labels)
    li_le = LeafInfluence(**kw).fit(model, Xtr, to_label(y), sample_weight=w if
                                     ens.class_weight is None else None
                                     ).get_label_edit_influence(Xte, labels, t_labels) \
        if ens.class_weight is None else None
    eps = 1e-6
    for e in range(0, len(yte), 5):
        for i in range(0, len(y), 11):
            y_i = y.copy()
            y_i[i] = target[e]
            ref = _refit_loss(exp, ens, y, w, leaves, Lte[e:e + 1], F_te[e:e + 1],
                              yte[e:e + 1], y=y_i)
            np.testing.assert_allclose(refit_le[i, e], ref[0], rtol=1e-8, atol=1e-10)
            if li_le is None or task == "multiclass":  # diagonal hessian: see above
                continue
            # first order: weight eps moves from the old label to the new one
            w_i = w.copy()
            w_i[i] *= 1 - eps
            fd = _refit_loss(exp, ens, y, w, leaves, Lte[e:e + 1], F_te[e:e + 1],
                             yte[e:e + 1], w=w_i,
                             extra={"row": (i, target[e], w[i] * eps)})[0] / eps
            np.testing.assert_allclose(li_le[i, e], fd, rtol=1e-4,
                                       atol=1e-4 * max(np.abs(li_le).max(), 1e-12))
    # BoostIn: D_LE = eta w (g+vh)/(H+lam) - eta w (g*+vh*)/(H-h+h*+lam) with h* = h
    b = BoostIn().fit(model, Xtr, to_label(y), sample_weight=w if
                      ens.class_weight is None else None)
    got = b.get_label_edit_influence(Xte, labels, t_labels)
    w_b = b._w
    g, h = naive.tree_derivatives(ens, leaves, y)
    G_te, _ = naive.tree_derivatives(ens, Lte, yte)
    for e in range(0, len(yte), 4):
        g_new, _ = naive.tree_derivatives(ens, leaves, np.full(len(y), target[e]))
        ref = np.zeros(len(y))
        for j in range(ens.n_trees):
            rows = leaves[:, j] == Lte[e, j]
            H = np.sum(w_b[rows] * h[rows, j])
            lam = ens.reg_lambda * (np.mean(w_b) if ens.l2_weight_scaling == "mean_weight" else 1.0)
            v = ens.leaf_value[ens.leaf_offset[j] + Lte[e, j]] / ens.learning_rate
            first = ens.learning_rate * w_b[rows] * (g[rows, j] + v * h[rows, j]) / (H + lam)
            second = ens.learning_rate * w_b[rows] * (g_new[rows, j] + v * h[rows, j]) / (
                H - w_b[rows] * h[rows, j] + w_b[rows] * h[rows, j] + lam)
            ref[rows] += G_te[e, j] * (first - second)
        np.testing.assert_allclose(got[:, e], ref, rtol=1e-9, atol=1e-12 * max(1, np.abs(ref).max()))
        same = y == target[e]
        assert np.all(got[same, e] == 0.0)


@pytest.mark.parametrize("task", ["regression", "binary"])
@pytest.mark.parametrize("method,update_set", [("SinglePoint", 0), ("TopKLeaves:top=2", 2),
                                                ("AllPoints", -1)])
def test_matches_catboost_object_importance(task, method, update_set):
    import catboost as cb
    _, Xtr, ytr, _, Xte, yte = trained("catboost", task, n=300, n_test=6)
    # CatBoost's get_object_importance starts every margin at 0 and ignores the
    # model's bias, so compare on a model without boost_from_average (treeinf
    # uses the model's real margins; on RMSE's default the two differ)
    model = make_model("catboost", task, n_estimators=30, depth=5, boost_from_average=False,
                       **EXACT["catboost"]).fit(Xtr, ytr)
    ours = LeafInfluence(update_set=update_set).fit(model, Xtr, ytr).get_local_influence(Xte, yte)
    idx, scores = model.get_object_importance(
        cb.Pool(Xte, yte), cb.Pool(Xtr, ytr), top_size=-1, type="PerObject",
        update_method=method, importance_values_sign="All", thread_count=1)
    for e in range(len(yte)):
        ref = np.zeros(len(ytr))
        ref[np.asarray(idx[e])] = scores[e]
        # CatBoost's sign is opposite (it reports the derivative, not the removal)
        np.testing.assert_allclose(ours[:, e], -ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
        assert spearmanr(ours[:, e], -ref)[0] >= 0.999


@pytest.mark.parametrize("cls", [LeafInfluence, LeafRefit])
@pytest.mark.parametrize("family", list(EXACT))
def test_invariants(cls, family):
    task = "multiclass" if family in ("lightgbm", "xgboost") else "binary"
    model, Xtr, ytr, w, Xte, yte = exact_model(family, task)
    atol = ATOL.get(family, 1e-5)
    exp = cls(atol=atol, n_jobs=2).fit(model, Xtr, ytr, sample_weight=w)
    local = exp.get_local_influence(Xte, yte)
    assert local.shape == (len(ytr), len(yte)) and local.dtype == np.float64
    perm = np.random.default_rng(1).permutation(len(ytr))
    permuted = cls(atol=atol).fit(model, Xtr[perm], ytr[perm], sample_weight=w[perm])
    np.testing.assert_allclose(permuted.get_local_influence(Xte, yte), local[perm],
                               rtol=1e-8, atol=1e-12 * np.abs(local).max())
    c = clone(exp)
    assert c.get_params() == exp.get_params() and not hasattr(c, "ensemble_")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(exp)).get_local_influence(Xte, yte), local)
    one = cls(atol=atol, n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    np.testing.assert_array_equal(one.get_local_influence(Xte, yte), local)
    scale = np.abs(local).max()
    np.testing.assert_allclose(exp.get_self_influence(), np.diag(exp.get_local_influence(Xtr, ytr)),
                               rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(exp.get_global_influence(Xte, yte), local.sum(axis=1),
                               rtol=1e-9, atol=1e-11 * scale)
    idx, val = exp.get_top_influence(Xte, yte, k=5)
    np.testing.assert_array_equal(idx, np.argsort(-local, axis=0, kind="stable")[:5].T)


@pytest.mark.parametrize("update_set", [0, 3])
def test_sparse_update_sets_self_and_global(update_set):
    model, Xtr, ytr, w, Xte, yte = exact_model("lightgbm", "multiclass")
    exp = LeafInfluence(update_set=update_set).fit(model, Xtr, ytr, sample_weight=w)
    local = exp.get_local_influence(Xte, yte)
    scale = np.abs(local).max()
    np.testing.assert_allclose(exp.get_self_influence(), np.diag(exp.get_local_influence(Xtr, ytr)),
                               rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(exp.get_global_influence(Xte, yte), local.sum(axis=1),
                               rtol=1e-9, atol=1e-11 * scale)


def test_leaf_value_check_raises():
    import lightgbm as lgb
    _, Xtr, ytr, w, _, _ = trained("lightgbm", "binary", n=200)
    bagged = lgb.LGBMClassifier(n_estimators=5, subsample=0.5, subsample_freq=1,
                                min_child_samples=5, verbose=-1, random_state=0).fit(Xtr, ytr)
    with pytest.raises(LeafValueMismatchError, match="tree .* bagging"):
        LeafInfluence().fit(bagged, Xtr, ytr)
    import catboost as cb
    multi = make_model("catboost", "multiclass", **EXACT["catboost"])
    _, Xm, ym, _, _, _ = trained("catboost", "multiclass")
    multi.fit(Xm, ym)
    with pytest.raises(LeafValueMismatchError, match="MultiClass"):
        LeafRefit().fit(multi, Xm, ym)
    with pytest.raises(DataValidationError, match="update_set"):
        LeafInfluence(update_set=-2).fit(bagged, Xtr, ytr)


def test_leaf_with_zero_gradient_sum_still_moves():
    """A leaf whose gradients sum to exactly 0 (balanced labels at p = 0.5) has
    value 0 but a non-zero derivative; only L1's dead zone freezes a leaf."""
    import catboost as cb
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(20, 2)), 2, axis=0)
    y = np.tile([0, 1], 20)  # every leaf of the first tree holds both labels equally
    X[:, 1] += np.tile([0.0, 1e-3], 20)
    model = cb.CatBoostClassifier(iterations=3, depth=2, learning_rate=0.3, random_seed=0,
                                  verbose=False, allow_writing_files=False, thread_count=1,
                                  **EXACT["catboost"]).fit(X, y)
    exp = LeafInfluence(update_set=0).fit(model, X, y)
    first = exp.ensemble_.leaf_offset[0], exp.ensemble_.leaf_offset[1]
    assert np.all(exp._b[first[0]:first[1]] < 0)
    ours = exp.get_local_influence(X[:4], y[:4])
    idx, scores = model.get_object_importance(cb.Pool(X[:4], y[:4]), cb.Pool(X, y), top_size=-1,
                                              type="PerObject", update_method="SinglePoint",
                                              importance_values_sign="All", thread_count=1)
    for e in range(4):
        ref = np.zeros(len(y))
        ref[np.asarray(idx[e])] = scores[e]
        np.testing.assert_allclose(ours[:, e], -ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_parallel_trees_in_a_round(task):
    """XGBoost num_parallel_tree=2: several trees of one output share a round
    (and so the margins before it); all three update sets follow SPEC's
    recursion, which sums every tree of the round before Delta moves."""
    _, Xtr, ytr, w, Xte, yte = trained("xgboost", task, n=70, n_test=8, weights=True, seed=2)
    model = make_model("xgboost", task, n_estimators=4, num_parallel_tree=2,
                       colsample_bynode=0.6, **EXACT["xgboost"]).fit(Xtr, ytr, sample_weight=w)
    for update_set in (-1, 0, 2):
        exp = LeafInfluence(update_set=update_set, atol=1e-4).fit(model, Xtr, ytr, sample_weight=w)
        ens = exp.ensemble_
        assert np.any(np.diff(ens.tree_round) == 0) and ens.n_trees == 8 * ens.n_outputs
        y, yt = encode_target(ens, ytr, len(ytr)), encode_target(ens, yte, len(yte))
        got = exp.get_local_influence(Xte, yte)
        leaves = exp._leaves_T.T.astype(np.int64)
        Lte, F_te = ens.apply(Xte).reshape(len(yte), -1), ens.predict_raw(Xte)
        for i in range(0, len(y), 5):
            ref = naive.leaf_influence(ens, leaves, y, exp._w, exp._lam, i, update_set, F_te,
                                       Lte, yt)
            np.testing.assert_allclose(got[i], ref, rtol=1e-9,
                                       atol=1e-12 * max(1.0, np.abs(got).max()))


def test_top_k_kernel_rows_are_independent_of_batches():
    """Removed rows are carried in batches; any split of the rows into kernel
    calls (which changes the batches) gives bit-identical derivatives."""
    from treeinf._kernels.fixed import top_k_leaves_kernel
    from treeinf.explainers.leaf import TOP_K_BATCH, score_floor, top_k_batch
    model, Xtr, ytr, w, _, _ = exact_model("lightgbm", "multiclass", n=2 * TOP_K_BATCH + 7)
    exp = LeafInfluence(update_set=2).fit(model, Xtr, ytr, sample_weight=w)
    ens, n, k = exp.ensemble_, exp.n_train_, 2
    assert top_k_batch(n, ens.n_outputs) == TOP_K_BATCH
    assert top_k_batch(10**6, 3) == 1 and top_k_batch(30000, 3) == 11

    def run(bounds, batch=TOP_K_BATCH):
        sel_leaf = np.full((n, ens.n_trees, k + 1), -7, dtype=np.int64)
        sel_val = np.full((n, ens.n_trees, k + 1), np.nan)
        for start, stop in zip(bounds[:-1], bounds[1:]):
            top_k_leaves_kernel(k, exp._leaves_T, ens.tree_round, ens.tree_output,
                                ens.leaf_offset, exp._b, exp._cmul_T, exp._src_T,
                                ens.n_outputs, score_floor(exp._src_T), batch, start, stop,
                                sel_leaf, sel_val)
        return sel_leaf, sel_val

    whole = run([0, n])
    assert np.all(whole[0] >= -1) and not np.any(np.isnan(whole[1]))
    for bounds, batch in [([0, 1, n], TOP_K_BATCH), ([0, 5, TOP_K_BATCH + 9, n - 1, n], 32),
                          (list(range(n + 1)), TOP_K_BATCH), ([0, n], 1), ([0, n], 5)]:
        split = run(bounds, batch)
        np.testing.assert_array_equal(split[0], whole[0])
        np.testing.assert_array_equal(split[1], whole[1])


def test_verbose_progress_bars(capsys):
    """verbose=True shows a tqdm bar over the long loop of each query and
    changes nothing else; verbose=False prints nothing."""
    model, Xtr, ytr, w, Xte, yte = exact_model("catboost", "binary", n=90)
    n, m = len(ytr), len(yte)
    target = 1 - yte
    cases = [  # estimator parameters, call, bar description and total
        (LeafInfluence, dict(update_set=2), "fit", "LeafInfluence removed rows", n),
        (LeafInfluence, dict(update_set=2), "edit", "LeafInfluence removed rows", n),
        (LeafInfluence, dict(update_set=-1), "local", "LeafInfluence test rows", m),
        (LeafInfluence, dict(update_set=-1), "self", "LeafInfluence training rows", n),
        (LeafRefit, dict(update_set=-1), "local", "LeafRefit refits", n),
        (LeafRefit, dict(update_set=2), "self", "LeafRefit refits", n),
        (LeafRefit, dict(update_set=0), "edit", "LeafRefit refits", n),
    ]
    calls = {
        "fit": lambda e: e.get_local_influence(Xte, yte),
        "local": lambda e: e.get_local_influence(Xte, yte),
        "self": lambda e: e.get_self_influence(),
        "edit": lambda e: e.get_label_edit_influence(Xte, yte, target),
    }
    for cls, params, call, desc, total in cases:
        quiet = cls(**params).fit(model, Xtr, ytr, sample_weight=w)
        expected = calls[call](quiet)
        assert capsys.readouterr().err == ""
        loud = cls(verbose=True, n_jobs=2, **params).fit(model, Xtr, ytr, sample_weight=w)
        fit_err = capsys.readouterr().err
        got = calls[call](loud)
        err = fit_err if call == "fit" else capsys.readouterr().err
        assert f"{desc}: 100%" in err and f"{total}/{total}" in err, err
        # fit shows a bar only for TopKLeaves' forward passes
        top_k = cls is LeafInfluence and params["update_set"] > 0
        assert ("LeafInfluence removed rows: 100%" in fit_err) == top_k
        assert (fit_err == "") == (not top_k)
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(DataValidationError, match="verbose must be True or False"):
        LeafRefit(verbose="yes").fit(model, Xtr, ytr)


def test_progress_chunks_cover_the_rows():
    from treeinf.explainers.leaf import _row_chunks
    assert list(_row_chunks(10, False, "x")) == [(0, 10)]
    assert list(_row_chunks(0, True, "x")) == []
    for total, step in [(1000, 32), (7, 32), (250, 1), (3, 1)]:
        chunks = list(_row_chunks(total, True, "x", step))
        bounds = [0] + [z for _, z in chunks]
        assert [a for a, _ in chunks] == bounds[:-1] and bounds[-1] == total
        assert all(z > a and (z - a) % step == 0 for a, z in chunks[:-1])
        assert len(chunks) <= 100
