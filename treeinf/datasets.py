"""The 22 data sets of the tree-influence benchmark.

The benchmark (Brophy, Hammoudeh & Lowd, JMLR 2023) evaluates influence
methods on 22 tabular data sets. 21 of them are preprocessed train/test
splits stored as ``<name>.npz`` files; the 22nd, ``twitter``, is not public
and is replaced by a synthetic stand-in generated here. Every file is
checked against the sha256 recorded in the manifest that ships with treeinf
(``treeinf/_data/manifest.json``, identical to ``datasets/MANIFEST.json`` in
the repository).

Where the files are looked for, in order of precedence:

1. the ``data_dir`` argument of :func:`load`;
2. the environment variable ``TREEINF_DATA_DIR`` (one directory, or several
   separated by ``os.pathsep``, searched in order);
3. the default ``$XDG_CACHE_HOME/treeinf/datasets``, that is
   ``~/.cache/treeinf/datasets`` when ``XDG_CACHE_HOME`` is unset.

Only the first source that is given is used: setting ``TREEINF_DATA_DIR``
replaces the default instead of adding to it.

Examples
--------
>>> from treeinf import datasets
>>> datasets.list_datasets(task="multiclass")
['bean']
>>> d = datasets.load("twitter")          # generated, no file needed
>>> d.X_train.shape, d.substitute
((200000, 14), True)
"""
import difflib
import hashlib
import json
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Optional, Union

import numpy as np

from .exceptions import DatasetError, DatasetNotFoundError

__all__ = ["Dataset", "list_datasets", "load", "data_dirs", "default_data_dir",
           "make_twitter_substitute", "ENV_VAR", "TASKS", "LI_DATASETS", "TWITTER_RECIPE"]

#: Environment variable naming the directory (or directories) of the .npz files.
ENV_VAR = "TREEINF_DATA_DIR"

#: The three tasks of the benchmark.
TASKS = ("binary", "multiclass", "regression")

#: Data sets on which the slow fixed-structure methods (LeafInfluence,
#: LeafRefit) are run in the benchmark (BENCHMARK.md, "LI data sets").
LI_DATASETS = ("bean", "compas", "concrete", "credit_card", "energy", "german_credit",
               "htru2", "life", "naval", "power", "spambase", "surgical", "wine")

_ARRAYS = ("X_train", "y_train", "X_test", "y_test", "feature_names", "task", "name")
_CHUNK = 1 << 20

# sha256 of a file, keyed by (resolved path, size, mtime in ns): each file is
# hashed at most once per process unless it changes on disk.
_SHA256_CACHE = {}


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """One benchmark data set: a fixed train/test split.

    Attributes
    ----------
    name : str
        Data set name, one of :func:`list_datasets`.
    task : {'binary', 'multiclass', 'regression'}
    X_train : ndarray of shape (n_train, n_features)
        Training features, float32 or float64 exactly as stored in the file
        (a DataFrame and the y's Series with ``load(..., as_frame=True)``).
    y_train : ndarray of shape (n_train,)
        int32 class indices (classification) or float64 targets (regression).
    X_test : ndarray of shape (n_test, n_features)
    y_test : ndarray of shape (n_test,)
    feature_names : tuple of str, length n_features
        Column names of X (one-hot columns are ``<column>_<value>``).
    classes : tuple of str of length n_classes, or None
        Original label of each class index; None for regression.
    substitute : bool
        True when the data set stands in for one the paper used but that is
        not available (``twitter`` is synthetic, ``obesity`` is built from a
        later release of the same table). Results on it are not comparable
        to the paper's.
    status : str
        ``'found'``, ``'reconstructed'`` or ``'substitute'`` (manifest status;
        the generated ``twitter`` is ``'substitute'``).
    n_classes : int or None
        ``len(classes)``; None for regression.
    """

    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple
    classes: Optional[tuple]
    substitute: bool
    status: str
    n_classes: Optional[int]

    @property
    def n_features(self):
        """int: number of columns of X."""
        return self.X_train.shape[1]

    def __repr__(self):
        extra = f", n_classes={self.n_classes}" if self.n_classes is not None else ""
        return (f"Dataset(name={self.name!r}, task={self.task!r}, "
                f"train={self.X_train.shape}, test={self.X_test.shape}{extra}, "
                f"status={self.status!r}, substitute={self.substitute})")


# ----------------------------------------------------------------- manifest --

@lru_cache(maxsize=1)
def _manifest():
    """The shipped manifest as ``{name: entry}``, in the paper's order."""
    text = resources.files("treeinf").joinpath("_data", "manifest.json").read_text("utf-8")
    raw = json.loads(text)
    entries = {e["name"]: e for e in raw["datasets"]}
    if sorted(entries) != sorted(raw["paper_datasets"]):
        raise DatasetError("treeinf/_data/manifest.json is inconsistent: its 'datasets' "
                           "entries do not match 'paper_datasets'; reinstall treeinf.")
    return entries


def _entry(name):
    if not isinstance(name, str):
        raise DatasetError(f"a data set name must be a str, got {type(name).__name__} "
                           f"{name!r}; see treeinf.datasets.list_datasets().")
    entries = _manifest()
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"unknown data set {name!r}.{hint} Valid names: "
                           f"{', '.join(sorted(entries))}.")
    return entries[name]


def list_datasets(task: Optional[str] = None, li_only: bool = False) -> list:
    """Names of the benchmark's data sets.

    Parameters
    ----------
    task : {'binary', 'multiclass', 'regression'} or None, default=None
        Keep only data sets of this task.
    li_only : bool, default=False
        Keep only the "LI data sets" on which the benchmark also runs the
        slow fixed-structure methods (:data:`LI_DATASETS`).

    Returns
    -------
    names : list of str
        Sorted names; all 22 with the defaults.
    """
    if task is not None and task not in TASKS:
        raise DatasetError(f"task must be one of {', '.join(TASKS)} or None, got {task!r}.")
    names = [n for n, e in _manifest().items() if task is None or e["task"] == task]
    if li_only:
        names = [n for n in names if n in LI_DATASETS]
    return sorted(names)


# ------------------------------------------------------------ directories --

def default_data_dir() -> Path:
    """The directory used when neither ``data_dir`` nor ``TREEINF_DATA_DIR`` is given.

    Returns
    -------
    path : pathlib.Path
        ``$XDG_CACHE_HOME/treeinf/datasets`` if ``XDG_CACHE_HOME`` is set to an
        absolute path, else ``~/.cache/treeinf/datasets``. It is not created.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "treeinf" / "datasets"


def _search_dirs(data_dir):
    """``(directories, where they came from)`` by the documented precedence."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise DatasetError(f"data_dir must be a path (str or os.PathLike), got "
                               f"{type(data_dir).__name__}.")
        return [Path(data_dir).expanduser()], "the data_dir argument"
    env = os.environ.get(ENV_VAR, "")
    dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    if dirs:
        return dirs, f"the environment variable {ENV_VAR}"
    return [default_data_dir()], f"the default ({ENV_VAR} is not set)"


def data_dirs(data_dir: Optional[Union[str, os.PathLike]] = None) -> list:
    """The directories :func:`load` searches for ``<name>.npz``, in order.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        As in :func:`load`; when given it is the only directory.

    Returns
    -------
    dirs : list of pathlib.Path
    """
    return _search_dirs(data_dir)[0]


def _find_file(name, entry, data_dir):
    dirs, origin = _search_dirs(data_dir)
    for d in dirs:
        path = d / entry["file"]
        if path.is_file():
            return path
    looked = "; ".join(f"{d.absolute()}" + ("" if d.is_dir() else " (does not exist)")
                       for d in dirs)
    raise DatasetNotFoundError(
        f"data set {name!r} needs the file {entry['file']} ({entry['bytes']} bytes, "
        f"sha256 {entry['sha256'][:16]}...), which is not in the "
        f"{'directory' if len(dirs) == 1 else 'directories'} searched, from {origin}: "
        f"{looked}. To get it, copy the benchmark's preprocessed .npz files (in a "
        f"development checkout they are in ../shared/datasets; datasets/README.md says "
        f"how they were built) into {dirs[0].absolute()}, or set {ENV_VAR} to the "
        f"directory that holds them, or pass data_dir= to load().")


# ----------------------------------------------------------------- hashing --

def _hash_file(path):
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_sha256(path):
    """sha256 of ``path``, computed once per (path, size, mtime) in this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256_CACHE:
        _SHA256_CACHE[key] = _hash_file(path)
    return _SHA256_CACHE[key], st.st_size


def _verify_file(name, path, entry):
    actual, size = _file_sha256(path)
    if actual != entry["sha256"]:
        raise DatasetError(
            f"checksum mismatch for data set {name!r}: {path.absolute()} has sha256 "
            f"{actual} ({size} bytes), but the manifest expects {entry['sha256']} "
            f"({entry['bytes']} bytes). The file is corrupt, truncated or from another "
            f"build of the benchmark: copy it again from the benchmark's data directory, "
            f"or pass verify=False to load it anyway.")


def _arrays_sha256(arrays):
    """sha256 over the dtype, shape and C-order bytes of each array, in order."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape};".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------- loading --

def _read_npz(name, path):
    """The arrays of a data set file (no pickle), as plain ndarrays."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            missing = [k for k in _ARRAYS if k not in files]
            data = {k: npz[k] for k in files if k in _ARRAYS or k == "classes"}
    except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError, EOFError ...
        raise DatasetError(
            f"could not read {path.absolute()} (data set {name!r}) as a .npz archive: "
            f"{type(exc).__name__}: {exc}. Copy the file again; load() with verify=True "
            f"checks it against the manifest first.") from exc
    if missing:
        raise DatasetError(f"{path.absolute()} (data set {name!r}) lacks the arrays "
                           f"{', '.join(missing)}; a benchmark file holds "
                           f"{', '.join(_ARRAYS)} and, for classification, classes.")
    return data


def _check_contents(name, path, entry, data):
    """The file's own metadata and shapes must agree with the manifest."""
    problems = []
    for key in ("name", "task"):
        if str(data[key]) != entry[key]:
            problems.append(f"{key} is {str(data[key])!r}, expected {entry[key]!r}")
    n_tr, n_te, n_f = entry["n_train"], entry["n_test"], entry["n_features"]
    expected = {"X_train": (n_tr, n_f), "y_train": (n_tr,), "X_test": (n_te, n_f),
                "y_test": (n_te,), "feature_names": (n_f,)}
    if entry["task"] != "regression":
        expected["classes"] = (len(entry["classes"]),)
    for key, shape in expected.items():
        got = data[key].shape if key in data else None
        if got != shape:
            problems.append(f"{key} has shape {got}, expected {shape}")
    if problems:
        raise DatasetError(f"{path.absolute()} does not hold data set {name!r} as the "
                           f"manifest describes it: {'; '.join(problems)}.")


def load(name: str, data_dir: Optional[Union[str, os.PathLike]] = None, verify: bool = True,
         *, as_frame: bool = False, return_X_y: bool = False) -> Union["Dataset", tuple]:
    """Load one benchmark data set.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`.
    data_dir : str or os.PathLike, optional
        Directory holding ``<name>.npz``. Default: the directories in
        ``TREEINF_DATA_DIR`` (separated by ``os.pathsep``), else
        :func:`default_data_dir`.
    verify : bool, default=True
        Check the file's sha256 against the manifest (each file is hashed
        once per process unless it changes); for ``twitter``, check that
        the generated arrays are the pinned ones.
    as_frame : bool, default=False
        Return X as pandas DataFrames (columns named by ``feature_names``,
        dtypes as stored) and y as pandas Series named ``'target'`` (class
        indices for classification, see ``classes``), as scikit-learn's
        loaders do.
    return_X_y : bool, default=False
        Return the tuple ``(X_train, X_test, y_train, y_test)`` (the order of
        ``sklearn.model_selection.train_test_split``) instead of a
        :class:`Dataset`.

    Returns
    -------
    dataset : Dataset
        The split with ``X_train`` of shape (n_train, n_features), ``y_train``
        of shape (n_train,), ``X_test`` of shape (n_test, n_features),
        ``y_test`` of shape (n_test,), feature names, classes and status.
        The arrays are fresh: changing them changes nothing else.
    (X_train, X_test, y_train, y_test) : tuple
        If ``return_X_y=True``; ndarrays, or DataFrames and Series with
        ``as_frame=True``.

    Raises
    ------
    DatasetError
        Unknown name (the message lists the valid ones), checksum mismatch
        (names the file, the expected and the actual sha256), or a file that
        does not hold the data set the manifest describes.
    DatasetNotFoundError
        The file is in none of the searched directories; the message lists
        them and says how to provide the file.

    Notes
    -----
    ``twitter`` is generated in memory (see :func:`make_twitter_substitute`),
    so it needs no file; it and ``obesity`` have ``substitute=True``.

    Examples
    --------
    >>> from treeinf import datasets
    >>> X_train, X_test, y_train, y_test = datasets.load(
    ...     "twitter", as_frame=True, return_X_y=True)
    >>> X_train.shape, list(X_train.columns[:3]), y_train.name
    ((200000, 14), ['x0', 'x1', 'x2'], 'target')
    """
    from ._validation import check_value
    check_value(as_frame, "as_frame", ["boolean"], "datasets.load")
    check_value(return_X_y, "return_X_y", ["boolean"], "datasets.load")
    entry = _entry(name)
    if name == "twitter":
        return _shape_output(make_twitter_substitute(verify=verify), as_frame, return_X_y)
    if entry["status"] == "missing" or not entry.get("file"):
        raise DatasetNotFoundError(f"data set {name!r} is not available: the manifest "
                                   f"marks it {entry['status']!r} with no file.")
    path = _find_file(name, entry, data_dir)
    if verify:
        _verify_file(name, path, entry)
    data = _read_npz(name, path)
    _check_contents(name, path, entry, data)
    classes = None
    if entry["task"] != "regression":
        classes = tuple(str(c) for c in data["classes"])
    dataset = Dataset(name=name, task=entry["task"],
                      X_train=data["X_train"], y_train=data["y_train"],
                      X_test=data["X_test"], y_test=data["y_test"],
                      feature_names=tuple(str(f) for f in data["feature_names"]),
                      classes=classes, substitute=entry["status"] == "substitute",
                      status=entry["status"],
                      n_classes=None if classes is None else len(classes))
    return _shape_output(dataset, as_frame, return_X_y)


def _shape_output(dataset, as_frame, return_X_y):
    """The Dataset, with pandas X and y if ``as_frame``, or its four arrays."""
    if as_frame:
        import pandas as pd
        cols = list(dataset.feature_names)
        dataset = replace(dataset,
                          X_train=pd.DataFrame(dataset.X_train, columns=cols, copy=False),
                          X_test=pd.DataFrame(dataset.X_test, columns=cols, copy=False),
                          y_train=pd.Series(dataset.y_train, name="target", copy=False),
                          y_test=pd.Series(dataset.y_test, name="target", copy=False))
    if return_X_y:
        return dataset.X_train, dataset.X_test, dataset.y_train, dataset.y_test
    return dataset


def describe(name: str) -> dict:
    """What the manifest says of a data set, without reading its file.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`.

    Returns
    -------
    dict
        ``name``, ``task``, ``n_train``, ``n_test``, ``status``,
        ``substitute`` (bool) and ``sha256``: the file's checksum, or for the
        generated ``twitter`` the pinned checksum of its arrays. Together they
        identify the data a result was computed on.
    """
    entry = _entry(name)
    if name == "twitter":
        n = TWITTER_RECIPE["n_samples"]
        return {"name": name, "task": "binary", "n_train": n - n // 5, "n_test": n // 5,
                "status": "substitute", "substitute": True, "sha256": _TWITTER_SHA256}
    return {"name": name, "task": entry["task"], "n_train": int(entry["n_train"]),
            "n_test": int(entry["n_test"]), "status": entry["status"],
            "substitute": entry["status"] == "substitute", "sha256": entry["sha256"]}


# ------------------------------------------------------- twitter stand-in --

#: Recipe of the synthetic ``twitter`` stand-in (``make_classification``
#: arguments). 250,000 rows split 80/20 as the paper's twitter split
#: (200,000 / 50,000); 14 features as the 14 numeric features of the paper's
#: twitter preprocessing; 5 informative + 5 redundant features, 2 clusters per
#: class and 5% label noise as the reference implementation's synthetic
#: binary data set.
TWITTER_RECIPE = MappingProxyType(dict(
    n_samples=250_000, n_features=14, n_informative=5, n_redundant=5, n_repeated=0,
    n_classes=2, n_clusters_per_class=2, flip_y=0.05, class_sep=1.0, shuffle=True,
    random_state=1))

# _arrays_sha256 of (X_train, y_train, X_test, y_test) of the stand-in
_TWITTER_SHA256 = "f28cd620d3512f0488b3991c9ee49841686f1f41e5fca3aa191b49c32def9561"


def make_twitter_substitute(verify: bool = True) -> "Dataset":
    """Generate the synthetic stand-in for the ``twitter`` data set.

    The paper's ``twitter`` data (spam comments with graph features) is
    distributed only on request, so treeinf generates a deterministic
    binary task of the same size instead and marks it as a substitute.

    Recipe: ``sklearn.datasets.make_classification(**TWITTER_RECIPE)``
    (seed 1), X cast to float32 and y to int32, then the benchmark's split
    ``train_test_split(test_size=0.2, random_state=1, stratify=y)``.
    Features are named ``x0`` ... ``x13``.

    Parameters
    ----------
    verify : bool, default=True
        Check that the arrays are bit-identical to the pinned ones; raise
        :class:`DatasetError` if this scikit-learn / NumPy generates others.

    Returns
    -------
    dataset : Dataset
        ``X_train`` float32 of shape (200000, 14), ``y_train`` int32 of shape
        (200000,), ``X_test`` of shape (50000, 14), ``y_test`` of shape
        (50000,); ``substitute=True``, ``status='substitute'``.
    """
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(**TWITTER_RECIPE)
    X = X.astype(np.float32)
    y = y.astype(np.int32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=1, stratify=y)
    arrays = [np.ascontiguousarray(a) for a in (X_train, y_train, X_test, y_test)]
    if verify:
        actual = _arrays_sha256(arrays)
        if actual != _TWITTER_SHA256:
            import sklearn
            raise DatasetError(
                f"the generated twitter substitute has sha256 {actual}, expected "
                f"{_TWITTER_SHA256}: scikit-learn {sklearn.__version__} / NumPy "
                f"{np.__version__} generate different data from the same recipe, so "
                f"results on it are not comparable with earlier runs. Pass verify=False "
                f"to use it anyway.")
    X_train, y_train, X_test, y_test = arrays
    return Dataset(name="twitter", task="binary", X_train=X_train, y_train=y_train,
                   X_test=X_test, y_test=y_test,
                   feature_names=tuple(f"x{j}" for j in range(X.shape[1])),
                   classes=("0", "1"), substitute=True, status="substitute", n_classes=2)
