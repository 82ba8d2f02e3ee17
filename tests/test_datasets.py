"""treeinf.datasets: manifest, directory resolution, checksums, the twitter stand-in.

The reference for every check is independent of the loader: the manifest JSON
read directly, ``numpy.load`` of the benchmark files, ``hashlib`` on the
bytes, and the twitter recipe re-run here from scikit-learn.
"""
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

from treeinf import datasets
from treeinf.exceptions import DatasetError, DatasetNotFoundError, TreeInfError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
MANIFEST = json.loads((REPO / "datasets" / "MANIFEST.json").read_text("utf-8"))
ENTRIES = {e["name"]: e for e in MANIFEST["datasets"]}
# BENCHMARK.md, "LI data sets"
LI = ["bean", "compas", "concrete", "credit_card", "energy", "german_credit", "htru2",
      "life", "naval", "power", "spambase", "surgical", "wine"]


def sha256_bytes(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def arrays_digest(d):
    h = hashlib.sha256()
    for a in (d.X_train, d.y_train, d.X_test, d.y_test):
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    """Every test starts without TREEINF_DATA_DIR, whatever the caller's shell has."""
    monkeypatch.delenv("TREEINF_DATA_DIR", raising=False)


# ------------------------------------------------------------------ manifest --

def test_shipped_manifest_is_the_repository_copy_and_the_shared_one():
    shipped = (REPO / "treeinf" / "_data" / "manifest.json").read_bytes()
    assert shipped == (REPO / "datasets" / "MANIFEST.json").read_bytes()
    assert shipped == (SHARED / "MANIFEST.json").read_bytes()


def test_list_datasets_and_filters():
    names = datasets.list_datasets()
    assert names == sorted(MANIFEST["paper_datasets"]) and len(names) == 22
    by_task = {t: sorted(n for n, e in ENTRIES.items() if e["task"] == t)
               for t in ("binary", "multiclass", "regression")}
    assert len(by_task["binary"]) == 13 and by_task["multiclass"] == ["bean"]
    assert len(by_task["regression"]) == 8
    for task, expected in by_task.items():
        assert datasets.list_datasets(task=task) == expected
    assert datasets.list_datasets(li_only=True) == sorted(LI)
    assert datasets.list_datasets(task="regression", li_only=True) == [
        "concrete", "energy", "life", "naval", "power", "wine"]
    assert datasets.list_datasets(task="multiclass", li_only=True) == ["bean"]
    with pytest.raises(DatasetError, match="binary, multiclass, regression"):
        datasets.list_datasets(task="classification")


def test_unknown_name_lists_valid_names():
    with pytest.raises(DatasetError) as info:
        datasets.load("adutl", data_dir=SHARED)
    msg = str(info.value)
    assert "'adutl'" in msg and "Did you mean 'adult'" in msg
    assert all(n in msg for n in ENTRIES)
    assert isinstance(info.value, TreeInfError) and isinstance(info.value, ValueError)
    with pytest.raises(DatasetError, match="must be a str"):
        datasets.load(3)


# ------------------------------------------------------------ real data sets --

@pytest.mark.parametrize("name", ["concrete", "energy", "german_credit", "compas"])
def test_load_matches_file_and_manifest(name):
    entry = ENTRIES[name]
    d = datasets.load(name, data_dir=SHARED)
    with np.load(SHARED / entry["file"], allow_pickle=False) as ref:
        for key in ("X_train", "y_train", "X_test", "y_test"):
            got = getattr(d, key)
            assert got.dtype == ref[key].dtype
            np.testing.assert_array_equal(got, ref[key])
        assert d.feature_names == tuple(ref["feature_names"].tolist())
    assert d.name == name and d.task == entry["task"]
    assert d.X_train.shape == (entry["n_train"], entry["n_features"])
    assert d.X_test.shape == (entry["n_test"], entry["n_features"])
    assert d.y_train.shape == (entry["n_train"],) and d.y_test.shape == (entry["n_test"],)
    assert str(d.X_train.dtype) == entry["X_dtype"] and d.n_features == entry["n_features"]
    assert d.status == entry["status"] and d.substitute is False
    if entry["task"] == "regression":
        assert d.classes is None and d.n_classes is None
        assert d.y_train.dtype == np.float64
    else:
        assert d.classes == tuple(entry["classes"]) and d.n_classes == len(entry["classes"])
        assert d.y_train.dtype == np.int32
        np.testing.assert_array_equal(np.bincount(d.y_train), entry["train_class_counts"])
    assert f"name={name!r}" in repr(d)


def test_obesity_is_marked_substitute():
    d = datasets.load("obesity", data_dir=SHARED)
    assert d.substitute is True and d.status == "substitute"
    assert ENTRIES["obesity"]["status"] == "substitute"


def test_dataset_is_frozen_and_loads_are_independent():
    a = datasets.load("energy", data_dir=SHARED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.task = "binary"
    b = datasets.load("energy", data_dir=SHARED)
    before = b.X_train.copy()
    a.X_train[:] = -1.0
    np.testing.assert_array_equal(b.X_train, before)


# ---------------------------------------------------------------- directories --

def test_env_var_and_argument_precedence(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TREEINF_DATA_DIR", str(SHARED))
    assert datasets.data_dirs() == [SHARED]
    assert datasets.load("energy").X_train.shape == (614, 16)
    # several directories, searched in order
    monkeypatch.setenv("TREEINF_DATA_DIR", os.pathsep.join([str(empty), str(SHARED)]))
    assert datasets.data_dirs() == [empty, SHARED]
    assert datasets.load("energy").y_test.shape == (154,)
    # the argument replaces the environment
    assert datasets.data_dirs(SHARED) == [SHARED]
    assert datasets.load("energy", data_dir=str(SHARED)).name == "energy"
    monkeypatch.setenv("TREEINF_DATA_DIR", str(SHARED))
    with pytest.raises(DatasetNotFoundError, match="the data_dir argument"):
        datasets.load("energy", data_dir=empty)


def test_default_dir_honours_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "treeinf" / "datasets"
    assert datasets.default_data_dir() == expected
    assert datasets.data_dirs() == [expected]
    expected.mkdir(parents=True)
    shutil.copy(SHARED / "energy.npz", expected)
    assert datasets.load("energy").X_train.shape == (614, 16)
    # unset or relative XDG_CACHE_HOME: ~/.cache
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert datasets.default_data_dir() == tmp_path / "home" / ".cache" / "treeinf" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datasets.default_data_dir() == tmp_path / "home" / ".cache" / "treeinf" / "datasets"


def test_missing_file_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "missing"
    first.mkdir()
    monkeypatch.setenv("TREEINF_DATA_DIR", os.pathsep.join([str(first), str(second)]))
    with pytest.raises(DatasetNotFoundError) as info:
        datasets.load("german_credit")
    msg = str(info.value)
    assert str(first) in msg and str(second) in msg and "does not exist" in msg
    assert "german_credit.npz" in msg and "TREEINF_DATA_DIR" in msg and "copy" in msg
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, DatasetError)
    monkeypatch.delenv("TREEINF_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="TREEINF_DATA_DIR is not set"):
        datasets.load("compas")


# ------------------------------------------------------------------ checksums --

def test_flipped_byte_fails_the_checksum(tmp_path):
    path = tmp_path / "compas.npz"
    data = bytearray((SHARED / "compas.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError) as info:
        datasets.load("compas", data_dir=tmp_path)
    msg = str(info.value)
    assert str(path) in msg
    assert ENTRIES["compas"]["sha256"] in msg and sha256_bytes(path) in msg
    assert "verify=False" in msg


def test_verify_false_loads_a_different_build(tmp_path):
    with np.load(SHARED / "german_credit.npz", allow_pickle=False) as ref:
        arrays = {k: ref[k] for k in ref.files}
    arrays["X_train"] = arrays["X_train"] + np.float32(1)
    np.savez_compressed(tmp_path / "german_credit.npz", **arrays)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.load("german_credit", data_dir=tmp_path)
    d = datasets.load("german_credit", data_dir=tmp_path, verify=False)
    np.testing.assert_array_equal(d.X_train, arrays["X_train"])


def test_file_that_is_not_the_data_set_is_refused(tmp_path):
    with np.load(SHARED / "concrete.npz", allow_pickle=False) as ref:
        arrays = {k: ref[k] for k in ref.files}
    np.savez(tmp_path / "concrete.npz", **{**arrays, "X_train": arrays["X_train"][:-1]})
    with pytest.raises(DatasetError, match=r"X_train has shape \(823, 8\), expected \(824, 8\)"):
        datasets.load("concrete", data_dir=tmp_path, verify=False)
    np.savez(tmp_path / "concrete.npz", **{**arrays, "task": np.array("binary")})
    with pytest.raises(DatasetError, match="task is 'binary', expected 'regression'"):
        datasets.load("concrete", data_dir=tmp_path, verify=False)
    np.savez(tmp_path / "concrete.npz", **{k: v for k, v in arrays.items() if k != "y_test"})
    with pytest.raises(DatasetError, match="lacks the arrays y_test"):
        datasets.load("concrete", data_dir=tmp_path, verify=False)
    (tmp_path / "concrete.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="could not read"):
        datasets.load("concrete", data_dir=tmp_path, verify=False)


def test_each_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    shutil.copy(SHARED / "energy.npz", tmp_path)
    calls = []
    real = datasets._hash_file

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(datasets, "_hash_file", counting)
    datasets.load("energy", data_dir=tmp_path)
    datasets.load("energy", data_dir=tmp_path)
    assert len(calls) == 1
    st = (tmp_path / "energy.npz").stat()
    os.utime(tmp_path / "energy.npz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    datasets.load("energy", data_dir=tmp_path)
    assert len(calls) == 2


# -------------------------------------------------------------------- twitter --

def reference_twitter():
    """The documented recipe, written out independently of the loader."""
    X, y = make_classification(n_samples=250000, n_features=14, n_informative=5,
                               n_redundant=5, n_repeated=0, n_classes=2,
                               n_clusters_per_class=2, flip_y=0.05, random_state=1)
    X_tr, X_te, y_tr, y_te = train_test_split(X.astype("float32"), y.astype("int32"),
                                              test_size=0.2, random_state=1, stratify=y)
    return X_tr, y_tr, X_te, y_te


def test_twitter_substitute_is_deterministic_and_marked(tmp_path):
    a = datasets.load("twitter", data_dir=tmp_path)  # needs no file
    assert a.substitute is True and a.status == "substitute"
    assert a.task == "binary" and a.classes == ("0", "1") and a.n_classes == 2
    assert a.X_train.shape == (200000, 14) and a.X_test.shape == (50000, 14)
    assert a.X_train.dtype == np.float32 and a.y_train.dtype == np.int32
    assert a.feature_names == tuple(f"x{j}" for j in range(14))
    assert abs(a.y_train.mean() - 0.5) < 0.01 and abs(a.y_test.mean() - 0.5) < 0.01
    for got, ref in zip((a.X_train, a.y_train, a.X_test, a.y_test), reference_twitter()):
        np.testing.assert_array_equal(got, ref)
    digest = arrays_digest(a)
    assert arrays_digest(datasets.load("twitter")) == digest
    code = ("import hashlib, numpy as np\n"
            "from treeinf.datasets import load\n"
            "d = load('twitter')\n"
            "h = hashlib.sha256()\n"
            "for a in (d.X_train, d.y_train, d.X_test, d.y_test):\n"
            "    h.update(str(a.dtype).encode() + str(a.shape).encode())\n"
            "    h.update(np.ascontiguousarray(a).tobytes())\n"
            "print(h.hexdigest())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == digest


def test_twitter_pinned_hash_is_checked(monkeypatch):
    monkeypatch.setattr(datasets, "_TWITTER_SHA256", "0" * 64)
    with pytest.raises(DatasetError, match="twitter substitute has sha256 [0-9a-f]{64}, "
                                           "expected 0{64}"):
        datasets.load("twitter")
    assert datasets.load("twitter", verify=False).substitute is True


# ------------------------------------------------- as_frame and return_X_y --

@pytest.mark.parametrize("name", ["concrete", "german_credit"])
def test_as_frame_and_return_x_y_like_sklearn_loaders(name):
    with np.load(SHARED / f"{name}.npz", allow_pickle=False) as ref:
        ref = {k: ref[k] for k in ("X_train", "y_train", "X_test", "y_test",
                                   "feature_names")}
    columns = [str(f) for f in ref["feature_names"]]
    # the default return is unchanged: a Dataset of ndarrays
    d = datasets.load(name, data_dir=SHARED)
    assert isinstance(d, datasets.Dataset) and isinstance(d.X_train, np.ndarray)
    # as_frame: DataFrames with the feature names, Series named 'target'
    f = datasets.load(name, data_dir=SHARED, as_frame=True)
    assert isinstance(f, datasets.Dataset)
    for part in ("train", "test"):
        X, y = getattr(f, f"X_{part}"), getattr(f, f"y_{part}")
        assert isinstance(X, pd.DataFrame) and list(X.columns) == columns
        assert list(X.dtypes.unique()) == [ref[f"X_{part}"].dtype]
        np.testing.assert_array_equal(X.to_numpy(), ref[f"X_{part}"])
        assert isinstance(y, pd.Series) and y.name == "target"
        assert y.dtype == ref[f"y_{part}"].dtype
        np.testing.assert_array_equal(y.to_numpy(), ref[f"y_{part}"])
    assert (f.name, f.task, f.classes, f.feature_names) == (d.name, d.task, d.classes,
                                                            d.feature_names)
    # return_X_y: the four parts in train_test_split's order
    parts = datasets.load(name, data_dir=SHARED, return_X_y=True)
    assert isinstance(parts, tuple) and len(parts) == 4
    for got, key in zip(parts, ("X_train", "X_test", "y_train", "y_test")):
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, ref[key])
    frames = datasets.load(name, data_dir=SHARED, as_frame=True, return_X_y=True)
    assert [type(p).__name__ for p in frames] == ["DataFrame", "DataFrame", "Series",
                                                  "Series"]
    pd.testing.assert_frame_equal(frames[0], f.X_train)
    pd.testing.assert_series_equal(frames[3], f.y_test)


def test_as_frame_and_return_x_y_must_be_booleans():
    from treeinf.exceptions import InvalidParameterError
    for kw in (dict(as_frame="yes"), dict(return_X_y=1)):
        with pytest.raises(InvalidParameterError, match="True or False"):
            datasets.load("concrete", data_dir=SHARED, **kw)
