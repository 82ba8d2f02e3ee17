"""explainer.save(file) / treeinf.load(file): exact round trips, no code execution.

Every estimator is fitted on a small model of LightGBM, XGBoost, CatBoost and
scikit-learn HistGradientBoosting (DataFrames with NaNs, a categorical column
and sample weights), saved, loaded and compared with the original: local,
self and label-edit influence must be bitwise equal. Then the file is
damaged in every way we can think of (other model, flipped and truncated
bytes, edited metadata, another version, not a treeinf file, pickled
payloads) and must be refused with a clear error, never read wrongly.
"""
import functools
import hashlib
import io
import json
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest

import treeinf
from conftest import make_data
from models import make_model
from treeinf import _checks, _persist
from treeinf.explainers import _io
from treeinf.exceptions import (ModelMismatchError, NotFittedError, PersistenceError,
                                VersionMismatchError)

N_TRAIN, N_TEST = 16, 3
# one task per family, so every output type is covered
TASKS = {"lightgbm": "multiclass", "xgboost": "binary", "catboost": "regression",
         "sklearn_hgb": "binary"}
FAMILIES = list(TASKS)
EXACT = {  # Newton-step leaves for LeafInfluence / LeafRefit
    "lightgbm": dict(min_child_weight=1e-12),
    "xgboost": dict(min_child_weight=0.0, max_delta_step=0),
    "catboost": dict(leaf_estimation_method="Newton", leaf_estimation_iterations=1,
                     boosting_type="Plain", bootstrap_type="No"),
    "sklearn_hgb": {},
}
FAMILY_KW = {"lightgbm": {}, "xgboost": dict(enable_categorical=True, tree_method="hist"),
             "catboost": dict(one_hot_max_size=10), "sklearn_hgb": {}}
# CatBoost gets cat_features at fit (a constructor cat_features breaks sklearn's clone)
FIT_KW = {"catboost": {"cat_features": ["c0"]}}
ATOL = {"xgboost": 1e-4, "sklearn_hgb": 1e-4}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: OpenMP thread pools (XGBoost, HistGradientBoosting) only cost
    time here, many times over on a busy machine."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        yield


@functools.lru_cache(maxsize=None)
def _data(family):
    task = TASKS[family]
    X, y = make_data(task, n=N_TRAIN + N_TEST, n_num=3, n_cat=1, n_levels=4, nan_frac=0.1,
                     seed=3)
    if family == "catboost":  # CatBoost takes categorical values as strings, no NaN
        X["c0"] = X["c0"].cat.add_categories("none").fillna("none").astype("str")
    w = np.random.default_rng(7).uniform(0.5, 2.0, size=N_TRAIN)
    return task, X.iloc[:N_TRAIN], y[:N_TRAIN], w, X.iloc[N_TRAIN:], y[N_TRAIN:]


@functools.lru_cache(maxsize=None)
def _model(family, exact=False, more_trees=0):
    task, Xtr, ytr, w, _, _ = _data(family)
    kw = dict(FAMILY_KW[family], **(EXACT[family] if exact else {}))
    return make_model(family, task, n_estimators=3 + more_trees, **kw).fit(
        Xtr, ytr, sample_weight=w, **FIT_KW.get(family, {}))


# name -> (factory, needs Newton leaves, needs the model at load)
ESTIMATORS = {
    "BoostIn": (lambda f: treeinf.BoostIn(), False, False),
    "BoostIn-paper": (lambda f: treeinf.BoostIn(variant="paper"), False, False),
    "LeafInfluence": (lambda f: treeinf.LeafInfluence(atol=ATOL.get(f, 1e-5)), True, False),
    "LeafInfluence-single": (lambda f: treeinf.LeafInfluence(update_set=0,
                                                             atol=ATOL.get(f, 1e-5)),
                             True, False),
    "LeafInfluence-top2": (lambda f: treeinf.LeafInfluence(update_set=2,
                                                           atol=ATOL.get(f, 1e-5)),
                           True, False),
    "LeafRefit": (lambda f: treeinf.LeafRefit(atol=ATOL.get(f, 1e-5)), True, False),
    "TREX": (lambda f: treeinf.TREX(), False, False),
    "TREX-fp_": (lambda f: treeinf.TREX(kernel="fp_"), False, False),
    "TreeSim": (lambda f: treeinf.TreeSim(), False, False),
    "TreeSim-euclidean": (lambda f: treeinf.TreeSim(similarity="euclidean"), False, False),
    "InputSim": (lambda f: treeinf.InputSim(), False, False),
    "Target": (lambda f: treeinf.Target(random_state=0), False, False),
    "Random": (lambda f: treeinf.Random(), False, False),  # seed drawn at fit, kept
    "Loss": (lambda f: treeinf.Loss(), False, False),
    "LOO": (lambda f: treeinf.LOO(n_jobs=1, fit_params=FIT_KW.get(f)), False, True),
    "SubSample": (lambda f: treeinf.SubSample(n_models=4, random_state=0, n_jobs=1,
                                              fit_params=FIT_KW.get(f)), False, True),
    "DShap": (lambda f: treeinf.DShap(max_permutations=2, random_state=0, n_jobs=1,
                                      fit_params=FIT_KW.get(f)), False, True),
}


def _fitted(name, family):
    make, exact, _ = ESTIMATORS[name]
    _, Xtr, ytr, w, _, _ = _data(family)
    return make(family).fit(_model(family, exact), Xtr, ytr, sample_weight=w)


def _influences(est, family):
    """Every influence the estimator defines, on the test rows."""
    task, _, _, _, Xte, yte = _data(family)
    out = {"self": est.get_self_influence()}
    if not isinstance(est, treeinf.Loss):
        out["local"] = est.get_local_influence(Xte, yte)
    if hasattr(est, "get_label_edit_influence"):
        target = yte + 1.5 if task == "regression" else (yte + 1) % (3 if task == "multiclass"
                                                                     else 2)
        out["edit"] = est.get_label_edit_influence(Xte, yte, target)
    return out


CASES = [(name, family) for name in ESTIMATORS for family in FAMILIES]


@pytest.mark.parametrize("name,family", CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_round_trip_is_exact(name, family, tmp_path):
    est = _fitted(name, family)
    before = _influences(est, family)
    path = tmp_path / "explainer.treeinf"
    est.save(path)
    needs_model = ESTIMATORS[name][2]
    model = _model(family, ESTIMATORS[name][1])
    if needs_model:
        with pytest.raises(PersistenceError, match="model=model"):
            treeinf.load(path)
        loaded = treeinf.load(path, model=model)
    else:  # everything it needs is in the file
        loaded = treeinf.load(str(path))
    assert type(loaded) is type(est) and loaded.ensemble_ is not est.ensemble_
    assert loaded.get_params() == est.get_params()
    assert loaded.n_train_ == est.n_train_ and loaded.n_features_in_ == est.n_features_in_
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    after = _influences(loaded, family)
    assert sorted(after) == sorted(before)
    for kind in before:
        np.testing.assert_array_equal(after[kind], before[kind], err_msg=kind)
    # the loaded explainer is a normal one: saved again, directly or after a
    # pickle round trip, it gives the same metadata (which holds the SHA-256 of
    # every array), so its whole state is identical
    saved = _members(path.read_bytes())["meta.json"]
    assert _meta_of(loaded) == saved
    assert _meta_of(pickle.loads(pickle.dumps(loaded))) == saved


def test_training_frame_of_retraining_methods_round_trips(tmp_path):
    """LOO keeps X in the user's format: the str column, the category column and
    the index come back with the same dtypes and values."""
    _, Xtr, ytr, w, _, _ = _data("catboost")
    Xtr = Xtr.set_axis(np.arange(100, 100 + N_TRAIN), axis=0)
    est = treeinf.LOO(n_jobs=1, fit_params=FIT_KW["catboost"])
    est.fit(_model("catboost"), Xtr, ytr, sample_weight=w)
    est.save(tmp_path / "loo")
    loaded = treeinf.load(tmp_path / "loo", model=_model("catboost"))
    pd.testing.assert_frame_equal(loaded._X, Xtr, check_exact=True)
    assert str(loaded._X["c0"].dtype) == "str"
    # one stored copy, shared again (as in the fitted explainer)
    assert loaded._trainer.X is loaded._X and loaded._trainer.y is loaded._y
    np.testing.assert_array_equal(loaded._trainer.sample_weight, w)
    assert loaded._model is _model("catboost")


# -------------------------------------------------------- the generic serializer
class _Boom:
    """An object pickle would store (and a loader must never create)."""

    calls = []

    def __reduce__(self):
        return (_Boom.calls.append, ("executed",))


def _codec(value, path="BoostIn"):
    """``value`` written by the file format as the attribute ``_probe`` of a
    state, read back and decoded (no estimator involved)."""
    buf = io.BytesIO()
    _persist.write(buf, class_name=path, params={}, state={"_probe": value}, parts={},
                   object_tags={}, model_info={})
    buf.seek(0)
    meta, arrays = _persist.read(buf)
    return _persist.decode(meta, arrays, {}, {})[1]["_probe"]


def test_every_supported_type_round_trips_with_its_type():
    shared = np.arange(6.0).reshape(2, 3)
    frame = pd.DataFrame({
        "f": [1.5, np.nan, -np.inf], "i": np.array([1, 2, 3], dtype=np.int16),
        "b": [True, False, True], "s": pd.array(["x", None, "z"], dtype="str"),
        "S": pd.array(["x", None, "z"], dtype="string"),
        "n": pd.array([1, None, 3], dtype="Int64"),
        "c": pd.Categorical([10, 30, None], categories=[30, 10], ordered=True),
        "o": np.array(["a", 2, None], dtype=object),
        "t": pd.to_datetime(["2020-01-01", None, "2021-05-03"]),
    }, index=pd.Index(["r0", "r1", "r2"], name="row"))
    import scipy.sparse as sp
    probe = {
        "scalars": [None, True, 3, -0.0, np.nan, np.inf, "text", 2 ** 70],
        "numpy": (np.float32(2.5), np.int8(-3), np.bool_(True), np.str_("s"),
                  np.float64(np.nan), np.complex128(1 + 2j), np.datetime64("2020-01-02")),
        1: {"nested": {(1, "a"): frozenset({1, 2}), "set": {"u"}}},
        "arrays": [shared, shared, np.asfortranarray(shared), np.array(["ab", "c"]),
                   np.array([b"x", b"yz"]), np.zeros(0, dtype=np.uint32),
                   np.array([1, "a", None, np.nan, np.int64(4), b"q", pd.NA],
                            dtype=object).reshape(7, 1)],
        "dtype": np.dtype(np.float32),
        "frame": frame, "frame_again": frame, "series": frame["n"],
        "index": pd.Index([3, 1], name="k"),
        "csr": sp.csr_matrix(shared), "csc_array": sp.csc_array(shared),
    }
    got = _codec(probe)
    assert got["scalars"][:4] == [None, True, 3, -0.0] and np.signbit(got["scalars"][3])
    assert np.isnan(got["scalars"][4]) and got["scalars"][5:] == [np.inf, "text", 2 ** 70]
    assert type(got["numpy"]) is tuple
    for a, b in zip(got["numpy"], probe["numpy"]):
        assert type(a) is type(b) and (a == b or (a != a and b != b))
    assert got[1] == probe[1] and type(got[1]["nested"]["set"]) is set
    arrays = got["arrays"]
    assert arrays[0] is arrays[1] and arrays[2] is not arrays[0]
    assert arrays[2].flags.f_contiguous and not arrays[2].flags.c_contiguous
    for a, b in zip(arrays, probe["arrays"]):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert [repr(v) for v in a.ravel()] == [repr(v) for v in b.ravel()]
    assert got["dtype"] == np.float32
    pd.testing.assert_frame_equal(got["frame"], frame, check_exact=True)
    assert got["frame_again"] is got["frame"]
    pd.testing.assert_series_equal(got["series"], frame["n"], check_exact=True)
    pd.testing.assert_index_equal(got["index"], probe["index"], exact=True)
    for key in ("csr", "csc_array"):
        assert type(got[key]) is type(probe[key])
        np.testing.assert_array_equal(got[key].toarray(), shared)


@pytest.mark.parametrize("value,match", [
    (object(), "_odd.*builtins.object"),
    (lambda: 1, "_odd.*function"),
    ({"k": [1, _Boom()]}, r"_odd'\]\['k'\]\[1\].*_Boom"),
    (np.array([1, _Boom()], dtype=object), r"_odd'\]\[1\].*_Boom"),
    (pd.DataFrame({"p": pd.period_range("2020", periods=2, freq="M")}), "Period"),
])
def test_unsupported_value_is_refused_and_named(value, match):
    with pytest.raises(PersistenceError, match=match.replace("_odd", "_probe")):
        _codec(value)


def test_undeclared_attribute_is_refused_and_named(tmp_path):
    """Every fitted attribute is either stored and checked or rebuilt: one in
    neither table cannot be saved (it would be lost silently)."""
    est = _fitted("BoostIn", "xgboost")
    est._odd = np.zeros(3)
    try:
        with pytest.raises(PersistenceError, match="'_odd'.*_STATE.*_DERIVED"):
            est.save(tmp_path / "x")
    finally:
        del est._odd
    assert list(tmp_path.iterdir()) == []


def test_unsupported_parameter_is_refused():
    _, Xtr, ytr, w, _, _ = _data("lightgbm")
    est = treeinf.Random(random_state=np.random.RandomState(0))
    est.fit(_model("lightgbm"), Xtr, ytr, sample_weight=w)
    with pytest.raises(PersistenceError, match="Random parameter.*random_state.*RandomState"):
        est.save(io.BytesIO())


def test_save_needs_a_fitted_treeinf_estimator():
    with pytest.raises(NotFittedError, match="not fitted"):
        treeinf.BoostIn().save(io.BytesIO())

    class Mine(treeinf.BoostIn):
        pass
    _, Xtr, ytr, w, _, _ = _data("lightgbm")
    with pytest.raises(PersistenceError, match="Only treeinf's estimators"):
        Mine().fit(_model("lightgbm"), Xtr, ytr, sample_weight=w).save(io.BytesIO())


def test_registries_cover_every_estimator_and_encoder():
    import importlib
    from treeinf._trees._encode import TabularEncoder
    assert set(_io.ESTIMATORS) == set(treeinf.explainers.__all__)
    for module in ("_lightgbm", "_xgboost", "_catboost", "_sklearn"):
        importlib.import_module(f"treeinf._trees.{module}")
    todo, seen = [TabularEncoder], set()
    while todo:
        cls = todo.pop()
        seen.add(cls)
        todo.extend(cls.__subclasses__())
    assert seen <= set(_io.object_classes().values())
    assert {c.__name__ for c in seen} <= set(_checks.ENCODER_EXTRA)


# ---------------------------------------------------------------- model checks
def test_model_fingerprint():
    from treeinf import parse_model
    fp = _checks.model_fingerprint
    model = _model("lightgbm")
    copy = pickle.loads(pickle.dumps(model))
    assert fp(parse_model(model)) == fp(parse_model(copy))
    assert len(fp(parse_model(model))) == 64
    assert fp(parse_model(model)) != fp(parse_model(_model("lightgbm", more_trees=1)))
    ens = parse_model(model)
    ens.leaf_value = ens.leaf_value.copy()
    ens.leaf_value[5] += 1e-12  # one leaf value, one ulp-scale change
    assert fp(ens) != fp(parse_model(model))


@pytest.mark.parametrize("name", ["BoostIn", "LOO"])
def test_other_model_is_refused(name, tmp_path):
    est = _fitted(name, "lightgbm")
    est.save(tmp_path / "x")
    for other in (_model("lightgbm", more_trees=1), _model("xgboost")):
        with pytest.raises(ModelMismatchError, match="not the one the saved .* was fitted on"):
            treeinf.load(tmp_path / "x", model=other)
    # the same trees behind preprocessing steps the explainer never saw
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    _, Xtr, _, _, Xte, yte = _data("lightgbm")
    piped = make_pipeline(FunctionTransformer().fit(Xtr), _model("lightgbm"))
    with pytest.raises(ModelMismatchError, match="preprocessing.*fitted without any"):
        treeinf.load(tmp_path / "x", model=piped)
    # the same model after a pickle round trip (a new session) is accepted
    copy = pickle.loads(pickle.dumps(_model("lightgbm")))
    np.testing.assert_array_equal(
        treeinf.load(tmp_path / "x", model=copy).get_local_influence(Xte, yte),
        est.get_local_influence(Xte, yte))


def test_retraining_method_needs_the_same_estimator_type(tmp_path):
    from sklearn.pipeline import make_pipeline
    est = _fitted("LOO", "lightgbm")
    est.save(tmp_path / "x")
    wrapped = make_pipeline(_model("lightgbm"))  # same trees, refitted differently
    with pytest.raises(ModelMismatchError, match="LGBMClassifier.*Pipeline"):
        treeinf.load(tmp_path / "x", model=wrapped)


def test_pipeline_preprocessing_is_checked(tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    _, Xtr, ytr, w, Xte, yte = _data("xgboost")
    Xn, Xn_te = Xtr[["f0", "f1", "f2"]], Xte[["f0", "f1", "f2"]]
    pipe = make_pipeline(StandardScaler(), make_model("sklearn_hgb", "binary", 3))
    pipe.fit(Xn, ytr)
    est = treeinf.BoostIn().fit(pipe, Xn, ytr)
    est.save(tmp_path / "x")
    with pytest.raises(PersistenceError, match="Pipeline.*model=model"):
        treeinf.load(tmp_path / "x")
    loaded = treeinf.load(tmp_path / "x", model=pickle.loads(pickle.dumps(pipe)))
    np.testing.assert_array_equal(loaded.get_local_influence(Xn_te, yte),
                                  est.get_local_influence(Xn_te, yte))
    # same trees behind another scaler: the fingerprint of the trees agrees,
    # the preprocessing check does not
    other = make_pipeline(StandardScaler().fit(Xn * 2.0), pipe[-1])
    with pytest.raises(ModelMismatchError, match="preprocessing.*fitted state differs"):
        treeinf.load(tmp_path / "x", model=other)
    with pytest.raises(ModelMismatchError, match="preprocessing.*given model has none"):
        treeinf.load(tmp_path / "x", model=pipe[-1])


def test_subsample_refits_are_checked(tmp_path):
    """An unseeded model refits differently at load: refused, not silently wrong."""
    from sklearn.ensemble import RandomForestClassifier
    _, Xtr, ytr, w, _, _ = _data("sklearn_hgb")
    Xn = Xtr[["f0", "f1", "f2"]]
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=None)
    forest.fit(Xn, ytr)
    est = treeinf.SubSample(n_models=3, random_state=0, n_jobs=1).fit(forest, Xn, ytr)
    est.save(tmp_path / "x")
    with pytest.raises(ModelMismatchError, match="deterministic"):
        treeinf.load(tmp_path / "x", model=forest)


# ------------------------------------------------------------- damaged files
@functools.lru_cache(maxsize=None)
def _saved_boostin():
    est = _fitted("BoostIn", "xgboost")
    buf = io.BytesIO()
    est.save(buf)
    return est, buf.getvalue()


def _meta_of(est):
    buf = io.BytesIO()
    est.save(buf)
    return _members(buf.getvalue())["meta.json"]


def _load_bytes(data, **kw):
    return treeinf.load(io.BytesIO(data), **kw)


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info.filename) for info in zf.infolist()}


def _zip(members):
    """A valid zip (correct CRCs) of the given members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


def _with_meta(data, edit, rehash=True):
    members = _members(data)
    meta = json.loads(members["meta.json"])
    edit(meta)
    if rehash:
        meta["sha256"] = _persist._meta_digest(meta)
    members["meta.json"] = json.dumps(meta).encode()
    return _zip(members)


def _npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_every_flipped_byte_is_refused_or_harmless():
    """Flip bytes all over the file: loading raises PersistenceError or (for a
    byte no reader looks at, e.g. a zip timestamp) gives the same influences."""
    est, data = _saved_boostin()
    _, _, _, _, Xte, yte = _data("xgboost")
    ref = est.get_local_influence(Xte, yte)
    positions = np.unique(np.linspace(0, len(data) - 1, 60).astype(int))
    refused = 0
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        try:
            got = _load_bytes(bytes(bad))
        except PersistenceError:
            refused += 1
            continue
        np.testing.assert_array_equal(got.get_local_influence(Xte, yte), ref)
    assert refused >= len(positions) // 2


def test_flipped_payload_bytes_are_refused():
    _, data = _saved_boostin()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    for name in ("meta.json", "a3.npy", "a15.npy"):
        info = infos[name]
        local = data[info.header_offset:info.header_offset + 30]  # local file header
        name_len, extra_len = int.from_bytes(local[26:28], "little"), \
            int.from_bytes(local[28:30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        for pos in (start, start + info.compress_size // 2, start + info.compress_size - 1):
            bad = bytearray(data)
            bad[pos] ^= 0x01
            with pytest.raises(PersistenceError, match="corrupted"):
                _load_bytes(bytes(bad))


@pytest.mark.parametrize("keep", [0, 3, 10, 100, 0.5, 0.99, -1])
def test_truncated_file_is_refused(keep):
    _, data = _saved_boostin()
    n = keep if isinstance(keep, int) and keep >= 0 else (
        len(data) - 1 if keep == -1 else int(keep * len(data)))
    with pytest.raises(PersistenceError, match="corrupted|not a treeinf"):
        _load_bytes(data[:n])


def test_array_changed_behind_the_zip_checksums_is_refused():
    """A member rewritten with a valid zip CRC still fails treeinf's SHA-256."""
    _, data = _saved_boostin()
    members = _members(data)
    arr = np.lib.format.read_array(io.BytesIO(members["a15.npy"]))
    arr = arr.copy()
    arr.flat[0] = np.nextafter(arr.flat[0], np.inf)
    members["a15.npy"] = _npy(arr)
    with pytest.raises(PersistenceError, match="a15 does not match .* checksum"):
        _load_bytes(_zip(members))


def test_edited_metadata_is_refused():
    _, data = _saved_boostin()

    def edit(meta):
        for item in meta["params"]["items"]:
            if item[0] == "variant":
                item[1] = "paper"  # 'exact' -> 'paper'
    with pytest.raises(PersistenceError, match="checksum of meta.json"):
        _load_bytes(_with_meta(data, edit, rehash=False))
    assert _load_bytes(_with_meta(data, edit)).variant == "paper"  # the edit itself is valid


@pytest.mark.parametrize("field,value,match", [
    ("treeinf_version", "0.0.1", r"written by treeinf '0\.0\.1', but this is treeinf '"
                                 + treeinf.__version__.replace(".", r"\.")),
    ("format_version", 3, "file format version 3"),
])
def test_other_version_is_refused(field, value, match):
    _, data = _saved_boostin()
    for rehash in (True, False):
        with pytest.raises(VersionMismatchError, match=match):
            _load_bytes(_with_meta(data, lambda m: m.__setitem__(field, value), rehash))


def test_not_a_treeinf_file_is_refused(tmp_path):
    cases = {
        "text": b"hello, world\n",
        "empty": b"",
        "pickle": pickle.dumps({"a": 1}),
        "npy": _npy(np.arange(3)),
        "npz": None,
        "other json": _zip({"meta.json": b'{"format": "something-else"}'}),
        "not json": _zip({"meta.json": b"\x00\x01 not json"}),
    }
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(3))
    cases["npz"] = buf.getvalue()
    for name, data in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(data)
        with pytest.raises(PersistenceError, match="not a treeinf|corrupted"):
            treeinf.load(path)
    with pytest.raises(PersistenceError, match="Cannot read"):
        treeinf.load(tmp_path / "missing")
    with pytest.raises(PersistenceError, match="binary mode"):
        treeinf.load(io.StringIO("text"))


# ---------------------------------------------------------- no code execution
def test_loader_reads_arrays_without_pickle(monkeypatch):
    """Neither numpy's loader (which can unpickle) nor pickle is ever called."""
    _, data = _saved_boostin()

    def refuse(*args, **kwargs):
        raise AssertionError("called while loading")
    for module, name in ((np, "load"), (pickle, "loads"), (pickle, "load"),
                         (np.lib.format, "read_array")):
        monkeypatch.setattr(module, name, refuse)
    _load_bytes(data)


def test_pickled_payloads_are_never_executed():
    _, data = _saved_boostin()
    _Boom.calls.clear()
    payload = _npy(np.array([_Boom()], dtype=object), allow_pickle=True)
    # an object array in place of a listed array (metadata rehashed to match)
    members = _members(data)
    members["a3.npy"] = payload
    with pytest.raises(PersistenceError, match="Python objects.*never"):
        _load_bytes(_zip(members))
    # an extra member, listed in the metadata
    members = _members(data)
    meta = json.loads(members["meta.json"])
    meta["arrays"]["evil"] = {"dtype": "|O", "shape": [1], "sha256": "0" * 64}
    meta["sha256"] = _persist._meta_digest(meta)
    members["meta.json"] = json.dumps(meta).encode()
    members["evil.npy"] = payload
    with pytest.raises(PersistenceError, match="Python objects"):
        _load_bytes(_zip(members))
    # an extra member that is a plain pickle, not listed
    members = _members(data)
    members["evil.pkl"] = pickle.dumps(_Boom())
    with pytest.raises(PersistenceError, match="evil.pkl"):
        _load_bytes(_zip(members))
    assert _Boom.calls == []


@pytest.mark.parametrize("edit,match", [
    (lambda m: m.__setitem__("class", "os.system"), "not a treeinf estimator"),
    (lambda m: m["state"]["items"][0][1].__setitem__("class", "subprocess.Popen"),
     "unknown object class"),
    (lambda m: m["state"]["items"].append(["_x", {"type": "pickle", "data": "80"}]),
     "unknown node type 'pickle'"),
    (lambda m: m["state"]["items"].append(["_x", {"type": "model", "part": "model"}]),
     "model part 'model'"),
])
def test_crafted_metadata_cannot_name_other_classes(edit, match):
    _, data = _saved_boostin()
    with pytest.raises(PersistenceError, match=match):
        _load_bytes(_with_meta(data, edit))


def test_save_is_atomic_and_leaves_the_explainer_unchanged(tmp_path):
    est, data = _saved_boostin()
    path = tmp_path / "x.treeinf"
    path.write_bytes(b"previous content")
    est._odd = object()
    try:
        with pytest.raises(PersistenceError):
            est.save(path)
    finally:
        del est._odd
    assert path.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.treeinf"]
    with pytest.raises(PersistenceError, match="Cannot write"):
        est.save(tmp_path / "no such directory" / "x.treeinf")
    est.save(path, compress=True)
    assert len(path.read_bytes()) < len(data)
    # saving twice gives the same arrays and metadata (deterministic)
    assert hashlib.sha256(_members(path.read_bytes())["meta.json"]).digest() == \
        hashlib.sha256(_members(data)["meta.json"]).digest()
