"""BoostIn against the plain-numpy reference, derivatives and invariants."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone

import naive
from models import GBDT_FAMILIES, TASKS, make_model, trained
from treeinf import BoostIn
from treeinf._validation import encode_target


def _enc_y(ens, y):
    return encode_target(ens, y, len(y))


@pytest.mark.parametrize("variant", ["exact", "paper"])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", GBDT_FAMILIES)
def test_matches_naive(family, task, variant):
    model, Xtr, ytr, w, Xte, yte = trained(family, task, weights=True)
    exp = BoostIn(variant=variant).fit(model, Xtr, ytr, sample_weight=w)
    ens = exp.ensemble_
    got = exp.get_local_influence(Xte, yte)
    assert got.shape == (len(ytr), len(yte)) and got.dtype == np.float64
    cw = ens.class_weight
    w_eff = w if cw is None or task == "regression" else w * np.asarray(cw)[_enc_y(ens, ytr).astype(int)]
    eta, lam = naive.model_training_params(model, Xtr, w_eff)
    ref = naive.boostin(ens, Xtr, _enc_y(ens, ytr), w_eff, Xte, _enc_y(ens, yte), variant,
                        eta=eta, lam=lam)
    scale = np.abs(ref).max()
    assert scale > 0
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * scale)
    self_ref = naive.boostin_self(ens, Xtr, _enc_y(ens, ytr), w_eff, variant, eta=eta, lam=lam)
    np.testing.assert_allclose(exp.get_self_influence(), self_ref, rtol=1e-10,
                               atol=1e-10 * np.abs(self_ref).max())


@pytest.mark.parametrize("task", ["regression", "binary"])
@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "sklearn_gb", "sklearn_hgb"])
def test_train_term_is_leaf_derivative(family, task):
    """One round: the training term is the finite-difference change of the
    fixed-structure leaf value when the row's weight shrinks (w -> w(1-eps))."""
    kw = {"lightgbm": dict(min_child_weight=1e-12, reg_lambda=0.7),
          "xgboost": dict(min_child_weight=0.0, reg_lambda=0.7, max_delta_step=0),
          "sklearn_gb": {}, "sklearn_hgb": dict(l2_regularization=0.7)}[family]
    model, Xtr, ytr, w, _, _ = trained(family, task, weights=True, n_estimators=1)
    model = make_model(family, task, n_estimators=1, **kw).fit(Xtr, ytr, sample_weight=w)
    exp = BoostIn().fit(model, Xtr, ytr, sample_weight=w)
    ens = exp.ensemble_
    D = exp._train_T[0]
    leaves = exp._leaves_T[0].astype(np.int64)
    y = _enc_y(ens, ytr)
    g, h = naive.tree_derivatives(ens, exp._leaves_T.T.astype(np.int64), y)
    eta, lam = ens.learning_rate, ens.reg_lambda
    eps = 1e-6
    rng = np.random.default_rng(0)
    for i in rng.choice(len(ytr), 15, replace=False):
        rows = leaves == leaves[i]
        phi = naive.newton_leaf(g[rows, 0], h[rows, 0], w[rows], eta, lam)
        # the parsed leaf is the library's own Newton step
        assert np.isclose(phi, ens.leaf_value[ens.leaf_offset[0] + leaves[i]], rtol=1e-6, atol=1e-9)
        w2 = w.copy()
        w2[i] *= 1 - eps
        phi2 = naive.newton_leaf(g[rows, 0], h[rows, 0], w2[rows], eta, lam)
        fd = (phi2 - phi) / eps
        assert np.isclose(D[i], fd, rtol=1e-4, atol=1e-9 * max(1.0, abs(fd)))


@pytest.mark.parametrize("family", GBDT_FAMILIES)
def test_invariants(family):
    task = "multiclass" if family in ("lightgbm", "catboost") else "binary"
    model, Xtr, ytr, w, Xte, yte = trained(family, task, weights=True)
    exp = BoostIn(n_jobs=2).fit(model, Xtr, ytr, sample_weight=w)
    local = exp.get_local_influence(Xte, yte)

    # permuting the training rows permutes the influence rows
    perm = np.random.default_rng(3).permutation(len(ytr))
    exp_p = BoostIn().fit(model, Xtr[perm], ytr[perm], sample_weight=w[perm])
    np.testing.assert_allclose(exp_p.get_local_influence(Xte, yte), local[perm],
                               rtol=1e-9, atol=1e-12)

    # clone gives an unfitted copy with the same parameters; pickle round-trip
    c = clone(exp)
    assert c.get_params() == exp.get_params() and not hasattr(c, "ensemble_")
    restored = pickle.loads(pickle.dumps(exp))
    np.testing.assert_array_equal(restored.get_local_influence(Xte, yte), local)

    # thread count does not change the result
    one = BoostIn(n_jobs=1).fit(model, Xtr, ytr, sample_weight=w)
    np.testing.assert_array_equal(one.get_local_influence(Xte, yte), local)
    np.testing.assert_array_equal(one.get_self_influence(), exp.get_self_influence())

    # self = diagonal on the training data, global = row sums
    train_local = exp.get_local_influence(Xtr, ytr)
    np.testing.assert_allclose(exp.get_self_influence(), np.diag(train_local),
                               rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(exp.get_global_influence(Xte, yte), local.sum(axis=1),
                               rtol=1e-9, atol=1e-12)

    # top-k equals sorting each dense column (ties: lower index first)
    k = 7
    for kind, key in (("helpful", -local), ("harmful", local)):
        idx, val = exp.get_top_influence(Xte, yte, k=k, kind=kind)
        assert idx.shape == (len(yte), k) and idx.dtype == np.int64
        order = np.argsort(key, axis=0, kind="stable")[:k].T
        np.testing.assert_array_equal(idx, order)
        np.testing.assert_array_equal(val, np.take_along_axis(local.T, order, axis=1))


def test_dataframe_input_and_names():
    import lightgbm as lgb
    from conftest import make_data
    X, y = make_data("binary", n=200, n_num=4, n_cat=2, nan_frac=0.1, seed=4)
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=5, min_child_samples=5,
                               verbose=-1, n_jobs=1).fit(X, y)
    exp = BoostIn().fit(model, X, y)
    assert list(exp.feature_names_in_) == list(X.columns)
    X_before = X.copy()
    inf = exp.get_local_influence(X.iloc[:5], y[:5])
    assert inf.shape == (200, 5)
    # the user's frame is not modified
    assert X.equals(X_before)
    # numpy input of the same values gives the same numbers for numeric columns
    np.testing.assert_allclose(exp.get_self_influence(), np.diag(exp.get_local_influence(X, y)),
                               rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_scatter_and_masked_paths_agree(task, monkeypatch):
    """Leaves visited by scatter or by a masked column pass give identical sums."""
    import treeinf.explainers.boostin as mod
    model, Xtr, ytr, w, Xte, yte = trained("lightgbm", task, weights=True)
    exp = BoostIn().fit(model, Xtr, ytr, sample_weight=w)
    results = []
    # never / always masked, in the tiled dense and the tiled top-k kernel
    for fraction in (2.0, 0.0):
        monkeypatch.setattr(mod, "TILE_DENSE_FRACTION", fraction)
        results.append((exp.get_local_influence(Xte, yte),
                        exp.get_top_influence(Xte, yte, k=5)[1]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def _per_row_dense(exp, Xe, y):
    """The dense matrix by the per-row kernel (the reference for the tiled one)."""
    from treeinf._kernels.coleaf import coleaf_dense_kernel, dense_threshold
    from treeinf._stats import group_by_leaf, sort_by_leaf
    ens = exp.ensemble_
    train_leaves = np.ascontiguousarray(exp._leaves_T.T, dtype=np.int32)
    ptr, idx = group_by_leaf(ens, train_leaves)
    D = np.ascontiguousarray(exp._train_T.T)
    leaves, G = exp._test_terms(ens.encode(Xe), y)
    out = np.empty((len(leaves), exp.n_train_))
    coleaf_dense_kernel(leaves, G, ens.leaf_offset, ptr, idx, sort_by_leaf(D, idx),
                        exp._leaves_T, exp._train_T, dense_threshold(exp.n_train_), out)
    return out.T


@pytest.mark.parametrize("tile", [1, 7, 64, 10_000])
@pytest.mark.parametrize("fraction", [0.0, 0.2, 2.0])
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_tiled_kernel_matches_per_row(task, fraction, tile, monkeypatch):
    """Tiles of any size (n not a multiple of the tile, a single tile larger
    than n), every mix of scatter and fused masked passes, 1 or 2 threads:
    bit-for-bit the per-row kernel."""
    import treeinf.explainers.boostin as mod
    from treeinf._kernels.coleaf import tile_csr_kernel
    from treeinf._numba import num_threads
    model, Xtr, ytr, w, Xte, yte = trained("lightgbm", task, weights=True)
    exp = BoostIn().fit(model, Xtr, ytr, sample_weight=w)
    ens = exp.ensemble_
    ref = _per_row_dense(exp, Xte, _enc_y(ens, yte).astype(float))
    n, n_trees = exp.n_train_, exp._leaves_T.shape[0]
    assert n % 7 != 0 and n % 64 != 0
    exp._tile = tile
    exp._tile_ptr = np.empty((-(-n // tile), ens.leaf_offset[-1] + 1), dtype=np.int64)
    exp._tile_idx = np.empty(n * n_trees, dtype=np.uint16)
    tile_csr_kernel(exp._leaves_T, ens.leaf_offset, tile, exp._tile_ptr, exp._tile_idx)
    monkeypatch.setattr(mod, "TILE_DENSE_FRACTION", fraction)
    for n_jobs in (1, 2):
        with num_threads(n_jobs):
            got = exp.get_local_influence(Xte, yte)
        np.testing.assert_array_equal(got, ref)


def test_tile_csr_groups_rows_by_leaf():
    from treeinf._kernels.coleaf import tile_csr_kernel, tile_size
    rng = np.random.default_rng(0)
    n, n_trees, tile = 1000, 3, 96
    n_leaves = np.array([5, 1, 31])
    leaf_offset = np.concatenate([[0], np.cumsum(n_leaves)])
    leaves_T = np.stack([rng.integers(0, k, n) for k in n_leaves]).astype(np.uint8)
    n_tiles = -(-n // tile)
    ptr = np.empty((n_tiles, leaf_offset[-1] + 1), dtype=np.int64)
    idx = np.empty(n * n_trees, dtype=np.uint16)
    tile_csr_kernel(leaves_T, leaf_offset, tile, ptr, idx)
    for t in range(n_tiles):
        i0, i1 = t * tile, min(n, (t + 1) * tile)
        assert ptr[t, 0] == i0 * n_trees and ptr[t, -1] == i1 * n_trees
        for j in range(n_trees):
            for leaf in range(n_leaves[j]):
                pos = leaf_offset[j] + leaf
                rows = i0 + idx[ptr[t, pos]:ptr[t, pos + 1]].astype(np.int64)
                np.testing.assert_array_equal(rows, i0 + np.flatnonzero(leaves_T[j, i0:i1] == leaf))
    assert 512 <= tile_size(10) <= tile_size(10**6) <= 4096


def test_ensemble_calls_keep_the_explainers_thread_count(monkeypatch):
    """An explainer's n_jobs holds inside FlatEnsemble calls made without n_jobs."""
    import numba
    from treeinf._trees import _flat
    seen = []
    original = _flat.apply_kernel

    def spy(*args):
        seen.append(numba.get_num_threads())
        return original(*args)

    monkeypatch.setattr(_flat, "apply_kernel", spy)
    model, X, y, _, Xt, yt = trained("lightgbm", "binary")
    exp = BoostIn(n_jobs=1).fit(model, X, y)
    seen.clear()
    exp.get_local_influence(Xt, yt)
    assert seen and set(seen) == {1}
    ens = exp.ensemble_
    ens.apply_encoded(ens.encode(Xt), n_jobs=2)
    assert seen[-1] == min(2, numba.config.NUMBA_NUM_THREADS)


def _abs_bound(ens, Xtr, ytr, w, Xte, yte, variant="exact"):
    """2^-23 * sum over shared leaves of |G| |D| (the documented float32 error)."""
    Ltr = ens.apply(Xtr).reshape(len(ytr), -1)
    Lte = ens.apply(Xte).reshape(len(yte), -1)
    D, _ = naive.boostin_train_term(ens, Ltr, ytr, w, variant)
    G, _ = naive.tree_derivatives(ens, Lte, yte)
    out = np.zeros((len(ytr), len(yte)))
    for j in range(ens.n_trees):
        same = Ltr[:, j][:, None] == Lte[:, j][None, :]
        out += same * np.abs(D[:, j])[:, None] * np.abs(G[:, j])[None, :]
    return np.ldexp(out, -23)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "catboost"])
def test_float32_terms(family, task):
    """dtype='float32': top-k rows and values, self and global influence are
    exactly the float64 explainer's; the dense matrix is within the
    documented bound 2^-23 * sum |G| |D|."""
    model, Xtr, ytr, w, Xte, yte = trained(family, task, weights=True)
    ref = BoostIn().fit(model, Xtr, ytr, sample_weight=w)
    exp = BoostIn(dtype="float32").fit(model, Xtr, ytr, sample_weight=w)
    assert exp._train_T.dtype == np.float32 and ref._train_T.dtype == np.float64
    ens = exp.ensemble_
    cw = ens.params.get("class_weight")
    w_eff = w if cw is None or task == "regression" else w * np.asarray(cw)[_enc_y(ens, ytr).astype(int)]
    bound = _abs_bound(ens, Xtr, _enc_y(ens, ytr), w_eff, Xte, _enc_y(ens, yte))
    local, local64 = exp.get_local_influence(Xte, yte), ref.get_local_influence(Xte, yte)
    assert local.dtype == np.float64
    assert np.all(np.abs(local - local64) <= bound)
    for k in (1, 7, 100):
        for kind in ("helpful", "harmful"):
            i32, v32 = exp.get_top_influence(Xte, yte, k=k, kind=kind)
            i64, v64 = ref.get_top_influence(Xte, yte, k=k, kind=kind)
            np.testing.assert_array_equal(i32, i64)
            np.testing.assert_array_equal(v32, v64)
    np.testing.assert_array_equal(exp.get_self_influence(), ref.get_self_influence())
    np.testing.assert_array_equal(exp.get_global_influence(Xte, yte),
                                  ref.get_global_influence(Xte, yte))
    target = np.resize(np.unique(ytr), len(yte))
    np.testing.assert_array_equal(exp.get_label_edit_influence(Xte, yte, target),
                                  ref.get_label_edit_influence(Xte, yte, target))


def test_float32_top_k_every_path(monkeypatch):
    """Small tiles (full candidate lists), a huge error bound (the dense
    fallback and blocked rescoring of every row) and large k: still the
    float64 explainer's top-k."""
    import treeinf.explainers.boostin as mod
    from treeinf._kernels.coleaf import tile_csr_kernel
    model, Xtr, ytr, w, Xte, yte = trained("lightgbm", "multiclass", weights=True)
    ref = BoostIn().fit(model, Xtr, ytr, sample_weight=w)
    exp = BoostIn(dtype="float32").fit(model, Xtr, ytr, sample_weight=w)
    for e in (ref, exp):
        n, T = e.n_train_, e._leaves_T.shape[0]
        e._tile = 7
        e._tile_ptr = np.empty((-(-n // 7), e.ensemble_.leaf_offset[-1] + 1), dtype=np.int64)
        e._tile_idx = np.empty(n * T, dtype=np.uint16)
        tile_csr_kernel(e._leaves_T, e.ensemble_.leaf_offset, 7, e._tile_ptr, e._tile_idx)
    expected = {k: ref.get_top_influence(Xte, yte, k=k) for k in (1, 3, 70)}
    for k, (i64, v64) in expected.items():
        i32, v32 = exp.get_top_influence(Xte, yte, k=k)
        np.testing.assert_array_equal(i32, i64)
        np.testing.assert_array_equal(v32, v64)
    monkeypatch.setattr(mod.BoostIn, "_error_bound", lambda self, leaves, G: np.full(len(G), 1e300))
    monkeypatch.setattr(mod, "TOPK_SCRATCH", 8 * exp._leaves_T.shape[0] * 5)  # 5 rows a block
    for k, (i64, v64) in expected.items():
        i32, v32 = exp.get_top_influence(Xte, yte, k=k)
        np.testing.assert_array_equal(i32, i64)
        np.testing.assert_array_equal(v32, v64)


def test_chunked_queries_and_progress(monkeypatch):
    """Chunked local / top-k / label-edit queries (with a progress bar) equal
    one-chunk queries."""
    import treeinf.explainers.boostin as mod
    model, Xtr, ytr, w, Xte, yte = trained("lightgbm", "binary", weights=True)
    exp = BoostIn().fit(model, Xtr, ytr, sample_weight=w)
    target = np.resize(np.unique(ytr), len(yte))
    whole = (exp.get_local_influence(Xte, yte), exp.get_top_influence(Xte, yte, k=5),
             exp.get_top_influence(Xte, yte, k=80), exp.get_label_edit_influence(Xte, yte, target))
    monkeypatch.setattr(mod, "LOCAL_CHUNK", 3)
    monkeypatch.setattr(mod, "TOPK_SCRATCH", 1)
    exp.verbose = True
    parts = (exp.get_local_influence(Xte, yte), exp.get_top_influence(Xte, yte, k=5),
             exp.get_top_influence(Xte, yte, k=80), exp.get_label_edit_influence(Xte, yte, target))
    np.testing.assert_array_equal(parts[0], whole[0])
    for a, b in zip(parts[1] + parts[2], whole[1] + whole[2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(parts[3], whole[3])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fitted_state_is_lean_and_persists(dtype, tmp_path):
    """One (n_trees, n) term array in the asked dtype, uint8 leaf ids, uint16
    tile index; nothing else of size n x n_trees. Save/load is bit-identical."""
    import treeinf
    model, Xtr, ytr, w, Xte, yte = trained("lightgbm", "multiclass", weights=True)
    exp = BoostIn(dtype=dtype).fit(model, Xtr, ytr, sample_weight=w)
    n, T = exp.n_train_, exp.ensemble_.n_trees
    arrays = {k: v for k, v in vars(exp).items() if isinstance(v, np.ndarray)}
    big = {k for k, v in arrays.items() if v.size >= n * T}
    assert big == {"_leaves_T", "_train_T", "_tile_idx"}
    assert exp._leaves_T.dtype == np.uint8 and exp._leaves_T.shape == (T, n)
    assert exp._train_T.dtype == np.dtype(dtype) and exp._train_T.shape == (T, n)
    assert exp._tile_idx.dtype == np.uint16
    exp.save(tmp_path / "b.treeinf")
    loaded = treeinf.load(tmp_path / "b.treeinf")
    for k, v in arrays.items():
        np.testing.assert_array_equal(getattr(loaded, k), v)
        assert getattr(loaded, k).dtype == v.dtype
    np.testing.assert_array_equal(loaded.get_top_influence(Xte, yte, k=4)[1],
                                  exp.get_top_influence(Xte, yte, k=4)[1])


def test_dtype_is_validated():
    from treeinf.exceptions import DataValidationError
    model, Xtr, ytr, _, _, _ = trained("lightgbm", "binary")
    with pytest.raises(DataValidationError, match="dtype"):
        BoostIn(dtype="float16").fit(model, Xtr, ytr)
