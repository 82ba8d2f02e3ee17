"""The benchmark protocols, pinned on tiny synthetic data (BENCHMARK.md)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.base import clone

import treeinf.datasets as tds
from treeinf import BoostIn, eval as tev
from treeinf.eval import _protocol
from treeinf.exceptions import DataValidationError


def _tiny(task, n=400, n_test=60, seed=0, n_classes=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n + n_test, 4)).astype(np.float32)
    z = X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=n + n_test)
    if task == "regression":
        y, classes = 10 + 3 * z, None
    elif task == "binary":
        y, classes = (z > 0).astype(np.int32), ("no", "yes")
    else:
        y = np.digitize(z, np.quantile(z, np.linspace(0, 1, n_classes + 1)[1:-1]))
        y, classes = y.astype(np.int32), tuple(f"c{k}" for k in range(n_classes))
    return tds.Dataset(name="tiny", task=task, X_train=X[:n], y_train=y[:n],
                       X_test=X[n:], y_test=y[n:], feature_names=tuple("abcd"),
                       classes=classes, substitute=False, status="found",
                       n_classes=None if classes is None else len(classes))


def _small_model(library, dataset, task):
    import lightgbm as lgb
    cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    return cls(n_estimators=10, num_leaves=7, min_child_samples=3, n_jobs=1,
               verbose=-1, random_state=1)


@pytest.fixture
def tiny(monkeypatch):
    """Make run_unit see a tiny data set and a small LightGBM model."""
    store = {}

    def load(name, data_dir=None, verify=True):
        return store["data"]

    monkeypatch.setattr(tds, "load", load)
    monkeypatch.setattr(_protocol, "make_model", _small_model)
    _protocol._CONTEXTS.clear()

    def use(task, **kw):
        store["data"] = _tiny(task, **kw)
        _protocol._CONTEXTS.clear()
        return store["data"]

    yield use
    _protocol._CONTEXTS.clear()


def _cfg(measure, method="boostin", fractions=None, **kw):
    cfg = {"measure": measure, "dataset": "tiny", "model": "lgb", "method": method,
           "fractions": list(fractions if fractions is not None else tev.FRACTIONS[measure])}
    cfg.update(kw)
    return cfg


def _fit(d, X, y):
    return clone(_small_model("lgb", "tiny", d.task)).fit(X, y)


def _predict(d, model, X):
    if d.task == "regression":
        return model.predict(X)
    return model.predict_proba(X)


# -------------------------------------------------------- protocol pieces
def test_fractions_and_checkpoints_are_the_papers():
    assert tev.FRACTIONS["removal"] == (0.0, 0.1, 0.5, 1.0, 1.5, 2.0)
    assert tev.FRACTIONS["targeted_edit"] == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4,
                                              1.6, 1.8, 2.0)
    assert tev.FRACTIONS["removal_set"] == tuple(float(f) for f in range(0, 51, 5))
    assert tev.FRACTIONS["noise"] == tev.FRACTIONS["removal_set"]
    assert tev.FRACTIONS["fix_mislabelled"] == (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
    assert tev.CHECKPOINTS["removal"] == tev.FRACTIONS["removal"][1:]
    assert tev.CHECKPOINTS["targeted_edit"] == tev.FRACTIONS["targeted_edit"][1:]
    assert tev.CHECKPOINTS["removal_set"] == (5.0, 10.0, 15.0, 20.0, 25.0)
    assert tev.CHECKPOINTS["fix_mislabelled"] == (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
    assert tev.n_edited(0.5, 400) == 2 and tev.n_edited(2, 400) == 8
    assert tev.n_edited(0, 400) == 0 and tev.n_edited(50, 401) == 200


def test_test_rows_are_a_prefix_stable_draw():
    order = tev.test_row_order(500)
    np.testing.assert_array_equal(order, np.random.default_rng(1).permutation(500))
    assert sorted(order) == list(range(500))
    units = tev.plan(["concrete"], ["lgb"], ["boostin"], ["removal"], n_test_rows=7)
    units3 = tev.plan(["concrete"], ["lgb"], ["boostin"], ["removal"], n_test_rows=3)
    n_test = 206
    assert [u["test_index"] for u in units] == tev.test_row_order(n_test)[:7].tolist()
    assert units3 == units[:3]


@pytest.mark.parametrize("n", [10, 401, 1000])
def test_noise_rows_exactly_40_percent_unique(n):
    rows = tev.noisy_rows(n)
    assert len(rows) == round(0.4 * n) == len(np.unique(rows))
    assert rows.min() >= 0 and rows.max() < n
    np.testing.assert_array_equal(rows, tev.noisy_rows(n))   # deterministic
    if n == 1000:   # the published code's sampling leaves about a third noisy
        assert 300 < len(tev.noisy_rows(n, replace=True)) < 360


def test_corrupted_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    np.testing.assert_array_equal(tev.corrupted_labels(y, "binary", 2, rng), 1 - y)
    y = rng.integers(0, 4, 4000)
    c = tev.corrupted_labels(y, "multiclass", 4, np.random.default_rng(1))
    assert np.all(c != y) and set(c) == {0, 1, 2, 3}
    for k in range(4):   # the new class is uniform over the three others
        counts = np.bincount(c[y == k], minlength=4)
        assert counts[k] == 0 and counts.max() / counts[counts > 0].min() < 1.3
    y = rng.normal(size=500)
    c = tev.corrupted_labels(y, "regression", 0, np.random.default_rng(1))
    assert c.min() >= y.min() and c.max() <= y.max() and np.ptp(c) > 0.8 * np.ptp(y)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_validation_split(task):
    y = _tiny(task, n_test=300).y_test
    val, test = tev.validation_split(y, task)
    assert len(val) == 30 and len(test) == 270
    assert not set(val) & set(test) and sorted([*val, *test]) == list(range(300))
    if task != "regression":   # stratified
        for k in np.unique(y):
            assert abs(np.mean(y[val] == k) - np.mean(y == k)) <= 1 / 30 + 1e-12
    v2, t2 = tev.validation_split(y, task)
    np.testing.assert_array_equal(val, v2)


def test_edit_targets():
    assert tev.edit_target("binary", 1, None) == 0
    assert tev.edit_target("binary", 0, None) == 1
    assert tev.edit_target("multiclass", 2, np.array([0.1, 0.3, 0.6])) == 1
    assert tev.edit_target("regression", 5.0, 12.0, 10.0) == 5.0
    assert tev.edit_target("regression", 5.0, 8.0, 10.0) == 15.0


def test_losses_and_metrics():
    out = np.array([[0.9, 0.1], [1.0, 0.0]])
    np.testing.assert_allclose(tev.row_losses("binary", np.array([0, 1]), out),
                               [-np.log(0.9), -np.log(1e-5)])
    np.testing.assert_allclose(tev.row_losses("regression", np.array([1.0]), np.array([3.0])),
                               [2.0])
    m = tev.set_metrics("binary", np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]]))
    assert m["acc"] == 1.0 and m["auc"] == 1.0


# ------------------------------------------------- measures on tiny data
def test_removal_removes_the_most_helpful_rows(tiny):
    d = tiny("binary")
    cfg = _cfg("removal", fractions=[0, 0.5, 2, 5], test_index=7, row=0, counts=[1])
    out = tev.run_unit(cfg)
    assert out["status"] == "ok"
    model = _fit(d, d.X_train, d.y_train)
    inf = BoostIn(n_jobs=1).fit(model, d.X_train, d.y_train).get_local_influence(
        d.X_test[7:8], d.y_test[7:8])[:, 0]
    order = np.argsort(-inf, kind="stable")

    def loss_without(k):
        keep = np.setdiff1d(np.arange(400), order[:k])
        p = _predict(d, _fit(d, d.X_train[keep], d.y_train[keep]), d.X_test[7:8])
        return -np.log(np.clip(p[0, d.y_test[7]], 1e-5, 1 - 1e-5))

    for rec, f in zip(out["result"]["records"], [0, 0.5, 2, 5]):
        k = int(round(f / 100 * 400))
        assert rec["n_edited"] == k and rec["fraction"] == f
        assert rec["loss"] == pytest.approx(loss_without(k), rel=1e-12)
    # the one-row checkpoint: with 400 rows 0.1% removes nothing, this removes one
    (one,) = out["result"]["one_row"]
    assert one["n_edited"] == 1 and one["fraction"] == pytest.approx(100 / 400)
    assert one["loss"] == pytest.approx(loss_without(1), rel=1e-12)


def test_one_row_checkpoint_is_planned_and_ranked_on_every_data_set():
    for name in ("concrete", "adult"):   # 824 and 32,561 training rows
        (unit,) = tev.plan([name], ["lgb"], ["boostin"], ["removal"], n_test_rows=1)
        assert unit["counts"] == [1]
    assert tev.n_edited(0.1, 32561) == 33   # why the fractions alone are not enough
    rec = {"status": "ok", "config": {"measure": "removal", "dataset": "d", "model": "lgb",
                                      "method": "boostin", "row": 0},
           "result": {"records": [{"fraction": 0.1, "n_edited": 33, "loss": 2.0,
                                   "skipped": False}],
                      "one_row": [{"fraction": 100 / 32561, "n_edited": 1, "loss": 1.5,
                                   "skipped": False}]}}
    rows = tev.row_table([rec])
    assert set(rows.measure) == {"removal", "removal_one"}
    one = rows[rows.measure == "removal_one"].iloc[0]
    assert one.value == 1.5 and one.fraction == pytest.approx(100 / 32561)
    other = dict(rec, config=dict(rec["config"], method="trex"),
                 result={"records": [], "one_row": [{"fraction": 100 / 32561,
                                                     "n_edited": 1, "loss": 1.7,
                                                     "skipped": False}]})
    ranks = tev.dataset_ranks(tev.row_table([rec, other]), "removal_one")
    assert ranks.loc["d"].to_dict() == {"boostin": 2.0, "trex": 1.0}


def test_removal_skips_a_fraction_that_removes_a_class(tiny):
    tiny("binary")
    out = tev.run_unit(_cfg("removal", fractions=[0, 100], test_index=0, row=0))
    recs = out["result"]["records"]
    assert recs[0]["skipped"] is False
    assert recs[1]["skipped"] is True and recs[1]["loss"] is None


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_targeted_edit_relabels_to_the_target(tiny, task):
    d = tiny(task)
    j = 3
    out = tev.run_unit(_cfg("targeted_edit", fractions=[0, 1, 2], test_index=j, row=0))
    res = out["result"]
    model = _fit(d, d.X_train, d.y_train)
    base = _predict(d, model, d.X_test[j:j + 1])[0]
    target = tev.edit_target(task, d.y_test[j], base, np.median(d.y_train))
    assert res["target"] == target
    exp = BoostIn(n_jobs=1).fit(model, d.X_train, d.y_train)
    inf = exp.get_label_edit_influence(d.X_test[j:j + 1], d.y_test[j:j + 1],
                                       np.array([target]))[:, 0]
    order = np.argsort(-inf, kind="stable")
    for rec, f in zip(res["records"], [0, 1, 2]):
        k = int(round(f / 100 * 400))
        y = d.y_train.copy()
        y[order[:k]] = target
        p = _predict(d, _fit(d, d.X_train, y), d.X_test[j:j + 1])
        loss = tev.row_losses(task, d.y_test[j:j + 1], np.atleast_1d(p) if task ==
                              "regression" else p)[0]
        assert rec["loss"] == pytest.approx(loss, rel=1e-12)
        if task != "regression":
            assert rec["flipped"] == bool(np.argmax(p[0]) != np.argmax(base))


@pytest.mark.parametrize("measure", ["removal_set", "noise"])
def test_set_measures_edit_the_top_global_rows(tiny, measure):
    d = tiny("multiclass", n_test=100)
    out = tev.run_unit(_cfg(measure, fractions=[0, 10, 20]))
    model = _fit(d, d.X_train, d.y_train)
    val, test = tev.validation_split(d.y_test, "multiclass")
    g = BoostIn(n_jobs=1).fit(model, d.X_train, d.y_train).get_global_influence(
        d.X_test[val], d.y_test[val])
    order = np.argsort(-g, kind="stable")
    bad = tev.corrupted_labels(d.y_train, "multiclass", 3, np.random.default_rng(1))
    for rec, f in zip(out["result"], [0, 10, 20]):
        top = order[:int(round(f / 100 * 400))]
        if measure == "removal_set":
            keep = np.setdiff1d(np.arange(400), top)
            X, y = d.X_train[keep], d.y_train[keep]
        else:
            X, y = d.X_train, d.y_train.copy()
            y[top] = bad[top]
            assert np.all(y[top] != d.y_train[top])
        m = tev.set_metrics("multiclass", d.y_test[test],
                            _predict(d, _fit(d, X, y), d.X_test[test]))
        for key in ("loss", "acc", "auc"):
            assert rec[key] == pytest.approx(m[key], rel=1e-12)


def test_fix_mislabelled_restores_the_top_rows(tiny):
    d = tiny("binary")
    out = tev.run_unit(_cfg("fix_mislabelled", fractions=[0, 10, 30]))["result"]
    noisy = tev.noisy_rows(400)
    assert out["n_noisy"] == 160 == len(noisy)
    y_noisy = d.y_train.copy()
    y_noisy[noisy] = 1 - y_noisy[noisy]
    model = _fit(d, d.X_train, y_noisy)
    exp = BoostIn(n_jobs=1).fit(model, d.X_train, y_noisy)
    val, test = tev.validation_split(d.y_test, "binary")
    orders = {"global": np.argsort(exp.get_global_influence(d.X_test[val], d.y_test[val]),
                                   kind="stable"),
              "self": np.argsort(-exp.get_self_influence(), kind="stable")}
    assert set(out["rankings"]) == {"global", "self"}
    for name, order in orders.items():
        for rec, f in zip(out["rankings"][name], [0, 10, 30]):
            top = order[:int(round(f / 100 * 400))]
            assert rec["frac_found"] == pytest.approx(np.isin(top, noisy).sum() / 160)
            y = y_noisy.copy()
            y[top] = d.y_train[top]
            m = tev.set_metrics("binary", d.y_test[test],
                                _predict(d, _fit(d, d.X_train, y), d.X_test[test]))
            assert rec["loss"] == pytest.approx(m["loss"], rel=1e-12)
    # the self-influence ranking of a good method finds noise faster than chance
    assert out["rankings"]["self"][2]["frac_found"] > 0.3 * 1.2


def test_method_without_local_influence_is_planned_only_where_it_applies():
    units = tev.plan(["concrete"], ["lgb"], ["loss", "boostin"], list(tev.MEASURES),
                     n_test_rows=2)
    loss_measures = {u["measure"] for u in units if u["method"] == "loss"}
    assert loss_measures == {"fix_mislabelled"}
    slow = tev.plan(["adult", "concrete"], ["lgb"], ["leafinfluence"], ["removal_set"])
    assert [u["dataset"] for u in slow] == ["concrete"]   # adult is not an LI data set


def test_plan_rejects_unknown_names():
    with pytest.raises(DataValidationError, match="unknown methods 'boostinn'"):
        tev.plan(["concrete"], ["lgb"], ["boostinn"], ["removal"])
    with pytest.raises(DataValidationError, match="unknown models"):
        tev.plan(["concrete"], ["lightgbm"], ["boostin"], ["removal"])
    with pytest.raises(DataValidationError, match="unknown measures"):
        tev.plan(["concrete"], ["lgb"], ["boostin"], ["removals"])


# ------------------------------------------------------------ aggregation
def _hand_table():
    rows = []
    values = {  # dataset -> method -> metric at every checkpoint
        "d1": {"a": 3.0, "b": 2.0, "c": 1.0, "random": 1.5},
        "d2": {"a": 1.0, "b": 4.0, "c": 1.0, "random": 0.5},
    }
    for ds, per in values.items():
        for m, v in per.items():
            for f in (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0):
                # fractions 0 and 30 are not checkpoints: wild values there
                # must not change anything
                val = v if 5 <= f <= 25 else (100.0 if m == "c" else -100.0)
                rows.append(("removal_set", ds, "lgb", m, -1, f, "loss", val))
    return pd.DataFrame(rows, columns=["measure", "dataset", "model", "method", "row",
                                       "fraction", "metric", "value"])


def test_rank_aggregation_on_a_hand_made_table():
    rows = _hand_table()
    per_ds = tev.dataset_ranks(rows, "removal_set")
    assert per_ds.loc["d1"].to_dict() == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert per_ds.loc["d2"].to_dict() == {"a": 2.5, "b": 1.0, "c": 2.5}
    table = tev.rank_table(rows, li_datasets=[]).set_index("method")
    assert list(table.index) == ["b", "a", "c"]            # best first
    assert table.loc["a", "mean_rank"] == pytest.approx(1.75)
    assert table.loc["b", "mean_rank"] == pytest.approx(1.5)
    assert table.loc["c", "mean_rank"] == pytest.approx(2.75)
    # two data sets: the interval is Student t with 1 degree of freedom
    # (12.7 standard errors), from scipy, clipped to the ranks' range [1, 3]
    lo, hi = stats.t.interval(0.95, df=1, loc=1.75, scale=stats.sem([1.0, 2.5]))
    assert table.loc["a", "ci95"] == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert (hi - lo) / 2 > 9.5     # 1.96 standard errors would be 1.47
    assert table.loc["a", ["ci_low", "ci_high"]].tolist() == [1.0, 3.0]
    assert table.loc["a", "clipped"] and (table.n_methods == 3).all()
    assert (table.n_datasets == 2).all() and "random" not in table.index
    # a: 3/1.5 = 2 on d1, 1/0.5 = 2 on d2 -> 2; b: 4/3 and 8 -> sqrt(32/3)
    assert table.loc["a", "rel_magnitude"] == pytest.approx(2.0)
    assert table.loc["b", "rel_magnitude"] == pytest.approx(np.sqrt(4 / 3 * 8))


@pytest.mark.parametrize("values, n_methods", [
    ([1.0, 2.5], 3), ([2.0, 2.5, 3.0], 6), ([1.2, 1.4, 1.1, 1.9, 1.3], 8),
    (list(np.linspace(2, 5, 13)), 9)])
def test_rank_interval_is_scipys_t_interval_clipped(values, n_methods):
    mean, low, high, half, clipped = tev.rank_interval(values, n_methods)
    n = len(values)
    lo, hi = stats.t.interval(0.95, df=n - 1, loc=np.mean(values),
                              scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert half == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert low == pytest.approx(max(lo, 1.0)) and high == pytest.approx(min(hi, n_methods))
    assert clipped == (lo < 1.0 or hi > n_methods)
    assert 1.0 <= low <= mean <= high <= n_methods


def test_rank_interval_edge_cases():
    mean, low, high, half, clipped = tev.rank_interval([2.0], 4)
    assert mean == 2.0 and np.isnan(low) and np.isnan(high) and np.isnan(half)
    assert not clipped
    assert tev.rank_interval([2.0, 2.0, 2.0], 4)[1:4] == (2.0, 2.0, 0.0)
    # a clipped row of the table never extends below rank 1
    # (values [1, 1, 1.5]: mean 1.17, unclipped low end below 1)
    assert tev.rank_interval([1.0, 1.0, 1.5], 5)[1] == 1.0


def test_ranks_with_a_missing_method_are_over_the_methods_present():
    rows = _hand_table()
    # method c has no value on d2 (e.g. refused there): d2 ranks a and b only
    rows = rows[~((rows.method == "c") & (rows.dataset == "d2"))]
    cells = tev.cell_ranks(rows, "removal_set")
    d2 = cells[cells.dataset == "d2"]
    assert set(d2.method) == {"a", "b"} and (d2.n_ranked == 2).all()
    assert (cells[cells.dataset == "d1"].n_ranked == 3).all()
    per_ds = tev.dataset_ranks(rows, "removal_set")
    assert per_ds.loc["d2"].to_dict() == {"a": 2.0, "b": 1.0, "c": pytest.approx(np.nan,
                                                                                   nan_ok=True)}
    table = tev.rank_table(rows, li_datasets=[]).set_index("method")
    assert table.loc["c", "n_datasets"] == 1 and np.isnan(table.loc["c", "ci95"])
    assert table.loc["a", "mean_rank"] == pytest.approx(1.5)
    # the missing cell is listed, per checkpoint count
    miss = tev.missing_cells(rows, "removal_set")
    assert miss.to_dict("records") == [{"dataset": "d2", "model": "lgb", "method": "c",
                                        "n_missing": 5, "n_checkpoints": 5}]
    # one checkpoint missing (a skipped fraction) is listed as 1 of 5
    part = _hand_table()
    part = part[~((part.method == "b") & (part.dataset == "d1") & (part.fraction == 10.0))]
    miss = tev.missing_cells(part, "removal_set")
    assert miss[["dataset", "method", "n_missing"]].values.tolist() == [["d1", "b", 1]]


def test_missing_table_gives_the_recorded_reason():
    rows = _hand_table().replace({"method": {"c": "leafinfluence"}})
    rows = rows[~((rows.method == "leafinfluence") & (rows.dataset == "d2"))]
    records = [{"status": "unsupported", "message": "LeafValueMismatchError: tree 3",
                "config": {"measure": "removal_set", "dataset": "d2", "model": "lgb",
                           "method": "leafinfluence"}}]
    t = tev.missing_table(rows, li_datasets=["d1", "d2"], records=records)
    assert t[["measure", "pool", "dataset", "method", "reason"]].values.tolist() == [
        ["removal_set", "li", "d2", "leafinfluence", "LeafValueMismatchError: tree 3"]]
    assert tev.missing_table(rows, li_datasets=["d1", "d2"]).reason.tolist() == ["not run"]


def test_ranks_average_over_models_and_pools():
    rows = _hand_table()
    other = rows.assign(model="xgb")
    other.loc[(other.dataset == "d1") & (other.method == "a"), "value"] = 0.0
    both = pd.concat([rows, other, rows.assign(method=rows.method.replace(
        {"c": "leafinfluence"}))], ignore_index=True)
    both = both[~((both.method == "leafinfluence") & (both.dataset == "d2"))]
    table = tev.rank_table(both, li_datasets=["d1"])
    allp = table[table.pool == "all"].set_index("method")
    # d1: lgb a=1, xgb a=3 -> 2.0; d2: 2.5 -> mean 2.25
    assert allp.loc["a", "mean_rank"] == pytest.approx(2.25)
    assert "leafinfluence" not in allp.index
    li = table[table.pool == "li"].set_index("method")
    assert set(li.index) == {"a", "b", "c", "leafinfluence"} and (li.n_datasets == 1).all()


def test_agreement_and_runtime_units(tiny):
    from scipy.stats import pearsonr, spearmanr
    d = tiny("regression")
    cfg = {"measure": "agreement", "dataset": "tiny", "model": "lgb", "method": None,
           "methods": ["boostin", "trex"], "row": 0, "test_index": 5}
    (pair,) = tev.run_unit(cfg)["result"]
    model = _fit(d, d.X_train, d.y_train)
    u = BoostIn(n_jobs=1).fit(model, d.X_train, d.y_train).get_local_influence(
        d.X_test[5:6], d.y_test[5:6])[:, 0]
    from treeinf import TREX
    v = TREX(n_jobs=1).fit(model, d.X_train, d.y_train).get_local_influence(
        d.X_test[5:6], d.y_test[5:6])[:, 0]
    assert pair["pearson"] == pytest.approx(pearsonr(u, v)[0])
    assert pair["spearman"] == pytest.approx(spearmanr(u, v)[0])
    top_u = set(np.argsort(-u, kind="stable")[:40])
    top_v = set(np.argsort(-v, kind="stable")[:40])
    assert pair["jaccard"] == pytest.approx(len(top_u & top_v) / len(top_u | top_v))
    rt = tev.run_unit({"measure": "runtime", "dataset": "tiny", "model": "lgb",
                       "method": "boostin", "repeats": 2, "warmup": 1})["result"]
    assert len(rt["fit_s"]) == len(rt["influence_s"]) == 2 and min(rt["fit_s"]) > 0
    assert len(rt["warmup_fit_s"]) == len(rt["warmup_influence_s"]) == 1
    assert rt["n_jobs"] == 1 and rt["influence"] == "one test row"
    rt = tev.run_unit({"measure": "runtime", "dataset": "tiny", "model": "lgb",
                       "method": "loss", "repeats": 1, "warmup": 1})["result"]
    assert rt["influence"] == "self-influence" and len(rt["fit_s"]) == 1


def test_runtime_table_separates_fit_and_influence_and_drops_the_warmup():
    def rec(method, fit, inf):
        return {"status": "ok", "config": {"measure": "runtime", "dataset": "d",
                                           "model": "lgb", "method": method},
                "result": {"fit_s": fit, "influence_s": inf, "warmup_fit_s": [100.0],
                           "warmup_influence_s": [100.0]}}
    t = tev.runtime_table([rec("boostin", [1.0, 3.0], [0.5, 0.5]),
                           rec("leafinfluence", [2.0, 2.0], [4.0, 6.0])]).set_index("method")
    assert t.loc["boostin", ["fit_s", "influence_s", "total_s"]].tolist() == [2.0, 0.5, 2.5]
    assert t.loc["leafinfluence", "influence_vs_boostin"] == pytest.approx(10.0)
    assert t.loc["leafinfluence", "total_vs_boostin"] == pytest.approx(7.0 / 2.5)
    assert (t.repeats == 2).all()


def test_runtime_units_have_a_warmup():
    (unit,) = tev.plan(["concrete"], ["lgb"], ["boostin"], ["runtime"])
    assert unit["repeats"] == 5 and unit["warmup"] == 1


@pytest.mark.parametrize("library, atol", [("xgb", 1e-4), ("sgb", 1e-4), ("lgb", 1e-4),
                                           ("cb", 1e-5)])
def test_leaf_methods_get_the_librarys_tolerance(library, atol):
    for method in ("leafinfluence", "leafrefit", "leafinfsp"):
        assert tev.method_params(method, library)["atol"] == atol
        assert tev.make_method(method, library=library).atol == atol
        (unit,) = tev.plan(["concrete"], [library], [method], ["removal_set"])
        assert unit["method_params"]["atol"] == atol
    assert "atol" not in tev.method_params("boostin", library)
    assert "atol" not in tev.method_params("leafinfluence")   # no library: the default


def test_xgboost_leaf_methods_accept_float32_gradients_at_the_harness_tolerance():
    # XGBoost computes gradients in float32: at the estimators' default 1e-5
    # the recomputed leaves of this model differ, at the harness's 1e-4 not
    import xgboost as xgb
    from treeinf import LeafInfluence
    from treeinf.exceptions import LeafValueMismatchError
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 6)).astype(np.float32)
    y = 200 * X[:, 0] + 50 * rng.normal(size=2000) + 1000
    model = xgb.XGBRegressor(n_estimators=60, max_depth=5, tree_method="hist",
                             random_state=1, n_jobs=1).fit(X, y)
    with pytest.raises(LeafValueMismatchError, match="atol=1e-4 may be needed"):
        LeafInfluence(update_set=0, n_jobs=1).fit(model, X, y)   # default atol 1e-5
    tev.make_method("leafinfsp", library="xgb").fit(model, X, y)
