"""Influential sets: adaptive greedy selection against one-shot ranking.

References compute everything themselves: a plain-numpy fixed-structure refit
of a LightGBM regression model from its own leaf indices (pred_leaf), checked
first against LightGBM's predictions.
"""
import lightgbm as lgb
import numpy as np
import pytest

from treeinf import LeafRefit
from treeinf.exceptions import DataValidationError
from treeinf.explainers.sets import InfluentialSet


def refit_reference(model, X, y, Xq, removed=()):
    """Predictions on Xq of the model's fixed structure refitted without ``removed``.

    Squared error, lambda_l2 = 0: every leaf is -eta * sum(z - y) / count over
    its remaining rows, z the refitted margin before the tree; the initial
    score (LightGBM's boost_from_average: the mean of y) stays fixed.
    """
    eta = model.get_params()["learning_rate"]
    keep = np.ones(len(y), dtype=bool)
    keep[list(removed)] = False
    leaves = model.predict(X, pred_leaf=True).reshape(len(y), -1)
    q_leaves = model.predict(Xq, pred_leaf=True).reshape(len(Xq), -1)
    z = np.full(len(y), np.mean(y))
    zq = np.full(len(Xq), np.mean(y))
    for t in range(leaves.shape[1]):
        for leaf in np.unique(leaves[:, t]):
            rows = (leaves[:, t] == leaf) & keep
            value = -eta * np.sum(z[rows] - y[rows]) / rows.sum() if rows.any() else 0.0
            z[leaves[:, t] == leaf] += value
            zq[q_leaves[:, t] == leaf] += value
    return zq


def loss_change(model, X, y, Xq, yq, removed):
    before = refit_reference(model, X, y, Xq)
    after = refit_reference(model, X, y, Xq, removed)
    return float(np.sum(0.5 * (yq - after) ** 2) - np.sum(0.5 * (yq - before) ** 2))


@pytest.fixture(scope="module")
def duplicates():
    """One leaf holding 20 rows at 0, two near-duplicate rows C, D (10.5 and
    9.5) and a row E at -9.5; the query row's target is the prediction.

    One at a time, C moves the prediction most, then E, then D (each by
    |y_i - mean| / 22), so one-shot ranking with k=2 removes C and E, which
    cancel. Once C is gone, the mean is 0 and D moves it by as much as E,
    the other way, where C had moved it: adaptive selection removes C and D,
    whose joint removal moves the prediction twice as far.
    """
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(23, 2))
    X[21, :] = X[20, :] + 1e-3           # D, a near-duplicate of C
    y = np.zeros(23)
    y[20], y[21], y[22] = 10.5, 9.5, -9.5
    model = lgb.LGBMRegressor(n_estimators=1, learning_rate=1.0, num_leaves=2,
                              min_child_samples=100, verbose=-1).fit(X, y)
    Xq = X[:1] + 0.01
    yq = model.predict(Xq)
    return model, X, y, Xq, yq


def test_reference_reproduces_the_model(duplicates):
    model, X, y, Xq, _ = duplicates
    np.testing.assert_allclose(refit_reference(model, X, y, X), model.predict(X), atol=1e-10)
    rng = np.random.default_rng(1)
    Xb = rng.normal(size=(200, 3))
    yb = Xb[:, 0] * 2 + rng.normal(size=200)
    m = lgb.LGBMRegressor(n_estimators=6, num_leaves=5, min_child_samples=5,
                          verbose=-1).fit(Xb, yb)
    np.testing.assert_allclose(refit_reference(m, Xb, yb, Xb), m.predict(Xb), atol=1e-8)


def test_adaptive_selection_finds_the_pair_one_shot_misses(duplicates):
    model, X, y, Xq, yq = duplicates
    sets = InfluentialSet(batch_size=1).fit(model, X, y)
    one_rows, one_gain = sets.get_influential_set(Xq, yq, k=2, adaptive=False)
    ada_rows, ada_gain = sets.get_influential_set(Xq, yq, k=2)
    assert one_rows.tolist() == [20, 22]       # C and E: they cancel
    assert ada_rows.tolist() == [20, 21]       # C, then its near-duplicate D
    ref_one = loss_change(model, X, y, Xq, yq, [20, 22])
    ref_ada = loss_change(model, X, y, Xq, yq, [20, 21])
    assert one_gain == pytest.approx(ref_one, rel=1e-8, abs=1e-12)
    assert ada_gain == pytest.approx(ref_ada, rel=1e-8)
    assert ada_gain > 1000 * one_gain > 0
    # the pair is the best pair of all (brute force over every pair)
    best = max((loss_change(model, X, y, Xq, yq, [a, b]), (a, b))
               for a in range(23) for b in range(a + 1, 23))
    assert best[1] == (20, 21) and ada_gain == pytest.approx(best[0], rel=1e-8)
    # batch_size >= k is the one-shot ranking
    big = InfluentialSet(batch_size=2).fit(model, X, y)
    assert big.get_influential_set(Xq, yq, k=2)[0].tolist() == [20, 22]
    assert big.get_influential_set(Xq, yq, k=2, batch_size=1)[0].tolist() == [20, 21]


def test_set_loss_change_equals_the_reference_on_a_boosted_model():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(150, 3))
    y = 2 * X[:, 0] + rng.normal(size=150)
    model = lgb.LGBMRegressor(n_estimators=6, num_leaves=5, min_child_samples=5,
                              verbose=-1).fit(X, y)
    sets = InfluentialSet(batch_size=2).fit(model, X, y)
    Xq, yq = X[:4] + 0.05, y[:4]
    for removed in ([3], [3, 40, 77], list(range(0, 150, 7))):
        assert sets.set_loss_change(Xq, yq, removed) == pytest.approx(
            loss_change(model, X, y, Xq, yq, removed), rel=1e-7, abs=1e-10)
    # one row: LeafRefit's leave-one-out, summed over the query rows
    inf = LeafRefit().fit(model, X, y).get_local_influence(Xq, yq).sum(axis=1)
    for i in (0, 5, 149):
        assert sets.set_loss_change(Xq, yq, [i]) == pytest.approx(inf[i], rel=1e-6,
                                                                   abs=1e-10)
    rows, gain = sets.get_influential_set(Xq, yq, k=5)
    assert len(set(rows.tolist())) == 5
    assert gain == pytest.approx(loss_change(model, X, y, Xq, yq, rows), rel=1e-7)
    # greedy with re-estimation never does worse here than the one-shot top 5
    assert gain >= sets.get_influential_set(Xq, yq, k=5, adaptive=False)[1] - 1e-12


def test_bad_input(duplicates):
    model, X, y, Xq, yq = duplicates
    with pytest.raises(DataValidationError, match="batch_size must be a positive integer"):
        InfluentialSet(batch_size=0).fit(model, X, y)
    sets = InfluentialSet().fit(model, X, y)
    with pytest.raises(DataValidationError, match="batch_size must be a positive integer"):
        sets.get_influential_set(Xq, yq, k=2, batch_size=-1)
    with pytest.raises(DataValidationError, match="k=24 is larger"):
        sets.get_influential_set(Xq, yq, k=24)
    with pytest.raises(DataValidationError, match="rows must be a 1-D array"):
        sets.set_loss_change(Xq, yq, [23])
