"""Saving fitted explainers to one file that executes no code when loaded.

File format (``format_version`` 1)
----------------------------------
A zip archive (what :func:`numpy.savez` writes) holding

* ``meta.json``: UTF-8 JSON with the format name and version, the treeinf
  version, the estimator's class name, its constructor parameters and its
  fitted state as a tree of plain JSON nodes, the model fingerprint, the
  dtype, shape and SHA-256 of every array, and a SHA-256 of the metadata
  itself;
* ``a0.npy``, ``a1.npy`` ...: every array of the fitted state, in ``.npy``
  format, written and read with ``allow_pickle=False``.

Loading reads the archive with ``numpy.load(..., allow_pickle=False)`` and
``json.loads``; it never unpickles or evaluates anything. Only treeinf's own
estimator classes (and the few internal classes their state is made of,
listed in ``_OBJECT_CLASSES``) are instantiated, looked up in fixed tables,
never by a module path read from the file.

State is serialized generically: the estimator's ``__dict__`` is walked and
arrays, numpy scalars and dtypes, Python scalars, strings, lists, tuples,
dicts, sets, scipy CSR/CSC matrices, pandas DataFrames/Series/Index (numeric,
bool, category, string, object and nullable extension columns) and the
registered internal objects (the FlatEnsemble, its encoder, the retraining
methods' trainer) are stored; anything else raises
:class:`~treeinf.exceptions.PersistenceError` naming the attribute, so a new
attribute can never be dropped silently. Objects shared between attributes
(one array referenced twice) are stored once and shared again after loading.

Model objects
-------------
A trained model cannot in general be stored without pickle, so it is not
stored. Every file records a fingerprint of the parsed model (SHA-256 over
the FlatEnsemble's structure arrays, leaf values, base margin and settings),
and ``load(path, model=...)`` refuses a model whose fingerprint differs.
Explainers that keep the model object need it passed back to :func:`load`:

* the retraining methods (:class:`~treeinf.LOO`, :class:`~treeinf.SubSample`,
  :class:`~treeinf.DShap`), which refit clones of it. SubSample's refitted
  models are refitted again at load (from the stored subsets, with the
  model's own seed) and each is checked against the fingerprint recorded at
  save time, so loading costs as much as its ``fit``;
* any explainer fitted on a scikit-learn ``Pipeline`` with preprocessing
  steps: the fitted steps are taken from the given pipeline and checked
  against a hash of their state (:func:`joblib.hash`) recorded at save time.
"""
import hashlib
import io
import json
import os
import secrets
import struct
import sys
import zipfile
import zlib

import numpy as np

from .exceptions import (ModelMismatchError, NotFittedError, PersistenceError,
                         VersionMismatchError)

__all__ = ["save", "load", "model_fingerprint"]

FORMAT = "treeinf-explainer"
FORMAT_VERSION = 1
META = "meta.json"
_ZIP_MAGIC = b"PK\x03\x04"

# estimator classes that may be saved and instantiated on load
_ESTIMATORS = ("BoostIn", "LeafInfluence", "LeafRefit", "TREX", "TreeSim", "InputSim",
               "Target", "Random", "Loss", "LOO", "SubSample", "DShap")

# internal classes whose __dict__ is stored: tag -> (module, class name)
_OBJECT_CLASSES = {
    "FlatEnsemble": ("treeinf._trees._flat", "FlatEnsemble"),
    "TabularEncoder": ("treeinf._trees._encode", "TabularEncoder"),
    "LightGBMEncoder": ("treeinf._trees._lightgbm", "LightGBMEncoder"),
    "XGBoostEncoder": ("treeinf._trees._xgboost", "_XGBoostEncoder"),
    "CatBoostEncoder": ("treeinf._trees._catboost", "CatBoostEncoder"),
    "SklearnEncoder": ("treeinf._trees._sklearn", "SklearnEncoder"),
    "Trainer": ("treeinf.explainers.retrain", "_Trainer"),
}

# FlatEnsemble arrays that define the model (fingerprint)
_STRUCTURE = ("node_left", "node_right", "node_feature", "node_threshold", "node_kind",
              "node_missing", "node_default_left", "node_cat_start", "node_cat_len",
              "cat_bits", "node_leaf", "tree_root", "tree_round", "tree_output",
              "leaf_offset", "leaf_value", "leaf_library_id", "base_margin")

_INLINE_SCALAR_KINDS = "biuU"

# what reading a damaged zip or .npy member can raise (zipfile raises
# NotImplementedError/RuntimeError for flag bits such as encryption, zlib.error
# for damaged deflate data)
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
                KeyError, NotImplementedError, RuntimeError, zlib.error, struct.error)


def _version():
    from . import __version__
    return __version__


def _full_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _estimator_classes():
    from . import explainers
    return {name: getattr(explainers, name) for name in _ESTIMATORS}


def _object_class(tag):
    import importlib
    module, name = _OBJECT_CLASSES[tag]
    return getattr(importlib.import_module(module), name)


def _object_tags():
    """{class: tag} of the registered internal classes."""
    return {_object_class(tag): tag for tag in _OBJECT_CLASSES}


# ------------------------------------------------------------- hashing
def _hash_array(h, arr):
    arr = np.ascontiguousarray(arr)
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.reshape(-1).view(np.uint8))


def _array_digest(arr):
    h = hashlib.sha256()
    _hash_array(h, arr)
    return h.hexdigest()


def model_fingerprint(ens):
    """SHA-256 (hex) of a parsed model: structure, leaf values and settings.

    Two models have the same fingerprint when their flat ensembles have
    identical node and leaf arrays, base margin, objective, kind, learning
    rate, regularisers, number of input features and classes.

    Parameters
    ----------
    ens : FlatEnsemble

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    h = hashlib.sha256(b"treeinf-model-fingerprint-1|")
    for name in _STRUCTURE:
        h.update(name.encode())
        _hash_array(h, getattr(ens, name))
    classes = None if ens.classes is None else [str(c) for c in np.asarray(ens.classes)]
    settings = [ens.objective, ens.kind, float(ens.learning_rate), float(ens.reg_lambda),
                float(ens.reg_alpha), float(ens.hessian_factor), ens.library,
                int(ens.n_features), classes]
    h.update(json.dumps(settings).encode())
    return h.hexdigest()


def _preprocessor_hash(preprocessor):
    import joblib
    return joblib.hash(preprocessor, hash_name="sha1")


def _meta_digest(meta):
    body = {k: v for k, v in meta.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------- writing
class _Writer:
    """Turns a Python value into JSON nodes plus a dict of named arrays."""

    def __init__(self, parts):
        self.parts = parts          # id(obj) -> (obj, part name): model objects
        self.arrays = {}            # member name -> ndarray
        self.array_memo = {}        # id(ndarray) -> (ndarray, node)
        self.tables = []            # pandas objects, referenced by position
        self.table_memo = {}        # id(obj) -> (obj, node)
        self.object_tags = _object_tags()

    # --------------------------------------------------------- helpers
    def fail(self, path, value, why=None):
        raise PersistenceError(
            f"Cannot save {path}: {why or 'objects of type'} "
            f"{type(value).__module__}.{type(value).__qualname__}"
            f"{'' if why else ' cannot be stored without pickle'}. Supported: numpy "
            "arrays and scalars, Python scalars, str, list, tuple, dict, set, scipy "
            "CSR/CSC matrices and pandas DataFrame/Series/Index. Pickle the explainer "
            "instead (pickle.dump) if it must hold such an object.")

    def add_array(self, arr, path):
        key = id(arr)
        if key in self.array_memo:
            return self.array_memo[key][1]
        if arr.dtype.hasobject:
            self.fail(path, arr, f"an array of dtype {arr.dtype} holding Python objects "
                                 "inside a structured dtype, of type")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = arr
        node = {"type": "array", "name": name}
        self.array_memo[key] = (arr, node)
        return node

    @staticmethod
    def float_node(x):
        x = float(x)
        if np.isfinite(x):
            return x
        return {"type": "float", "value": "nan" if x != x else ("inf" if x > 0 else "-inf")}

    # ---------------------------------------------------------- encode
    def encode(self, value, path):
        part = self.parts.get(id(value))
        if part is not None and part[0] is value:
            return {"type": "model", "part": part[1]}
        if isinstance(value, np.generic):  # before str/float: np.str_, np.float64 subclass them
            return self.scalar(value, path)
        if value is None or type(value) in (bool, str):
            return value
        if type(value) is int:
            return value
        if type(value) is float:
            return self.float_node(value)
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                return self.object_array(value, path)
            return self.add_array(value, path)
        if isinstance(value, np.dtype):
            if value.fields is not None or value.hasobject and value != np.dtype(object):
                self.fail(path, value, "structured dtypes, of type")
            return {"type": "dtype", "str": value.str}
        if type(value) is list:
            return [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if type(value) is tuple:
            return {"type": "tuple",
                    "items": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if type(value) is dict:
            return {"type": "dict",
                    "items": [[self.encode(k, f"{path} key {k!r}"),
                               self.encode(v, f"{path}[{k!r}]")] for k, v in value.items()]}
        if type(value) in (set, frozenset):
            return {"type": type(value).__name__,
                    "items": [self.encode(v, f"{path} item") for v in value]}
        module = type(value).__module__
        if module.startswith("scipy.sparse"):
            return self.sparse(value, path)
        if module.startswith("pandas"):
            return self.table(value, path)
        tag = self.object_tags.get(type(value))
        if tag is not None:
            return {"type": "object", "class": tag,
                    "state": self.encode(dict(vars(value)), f"{path}")}
        self.fail(path, value)

    def scalar(self, value, path):
        dt = value.dtype
        if dt.kind in _INLINE_SCALAR_KINDS:
            return {"type": "scalar", "dtype": dt.str, "value": value.item()}
        if dt.kind == "f" and dt.itemsize <= 8:
            return {"type": "scalar", "dtype": dt.str, "value": self.float_node(value)}
        if dt.hasobject:
            self.fail(path, value)
        return {"type": "scalar0d", "array": self.add_array(np.asarray(value), path)}

    def object_array(self, arr, path):
        flat = arr.reshape(-1)
        shape = list(arr.shape)
        if flat.size and all(type(v) is str and not v.endswith("\x00") for v in flat):
            return {"type": "objarray", "shape": shape,
                    "strings": self.add_array(np.array(list(flat), dtype=str), path)}
        return {"type": "objarray", "shape": shape,
                "items": [self.item(v, f"{path}[{i}]") for i, v in enumerate(flat)]}

    def item(self, v, path):
        """One element of an object array (scalars and missing markers only)."""
        if v is None or isinstance(v, (bool, str, int, float, np.generic)):
            if isinstance(v, np.generic) and v.dtype.hasobject:
                self.fail(path, v)
            return self.encode(v, path)
        if type(v).__module__.startswith("pandas"):
            import pandas as pd
            if v is pd.NA:
                return {"type": "NA"}
            if v is pd.NaT:
                return {"type": "NaT"}
        if isinstance(v, bytes):
            return {"type": "bytes", "hex": v.hex()}
        self.fail(path, v, "object-array elements of type")

    def sparse(self, value, path):
        import scipy.sparse as sp
        fmt = getattr(value, "format", None)
        if fmt not in ("csr", "csc"):
            self.fail(path, value, f"sparse matrices in format {fmt!r} (only csr and csc), "
                                   "of type")
        return {"type": "sparse", "format": fmt, "array": isinstance(value, sp.sparray),
                "shape": [int(s) for s in value.shape],
                "data": self.encode(value.data, path + ".data"),
                "indices": self.encode(value.indices, path + ".indices"),
                "indptr": self.encode(value.indptr, path + ".indptr")}

    # ---------------------------------------------------------- pandas
    def table(self, value, path):
        import pandas as pd
        key = id(value)
        if key in self.table_memo:
            return self.table_memo[key][1]
        if isinstance(value, pd.DataFrame):
            body = {"kind": "DataFrame", "n_rows": int(value.shape[0]),
                    "columns": self.index(value.columns, path + ".columns"),
                    "index": self.index(value.index, path + ".index"),
                    "data": [self.column(value.iloc[:, j], f"{path}.iloc[:, {j}]")
                             for j in range(value.shape[1])]}
        elif isinstance(value, pd.Series):
            body = {"kind": "Series", "name": self.encode(value.name, path + ".name"),
                    "index": self.index(value.index, path + ".index"),
                    "data": self.column(value, path)}
        elif isinstance(value, pd.Index):
            body = {"kind": "Index", "data": self.index(value, path)}
        else:
            self.fail(path, value)
        node = {"type": "table", "index": len(self.tables)}
        self.tables.append(body)
        self.table_memo[key] = (value, node)
        return node

    def index(self, idx, path):
        import pandas as pd
        if isinstance(idx, pd.MultiIndex):
            self.fail(path, idx, "a MultiIndex, of type")
        name = self.encode(idx.name, path + ".name")
        if isinstance(idx, pd.RangeIndex):
            return {"kind": "range", "start": int(idx.start), "stop": int(idx.stop),
                    "step": int(idx.step), "name": name}
        return {"kind": "index", "name": name,
                "values": self.column(pd.Series(idx, copy=False), path)}

    def column(self, s, path):
        import pandas as pd
        dtype = s.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            return {"kind": "category", "ordered": bool(dtype.ordered),
                    "categories": self.index(dtype.categories, path + ".categories"),
                    "codes": self.encode(np.array(s.cat.codes.to_numpy()), path + ".codes")}
        if isinstance(dtype, np.dtype):
            if dtype == object:
                return {"kind": "object",
                        "values": self.object_array(s.to_numpy(dtype=object), path)}
            return {"kind": "numpy", "values": self.encode(np.array(s.to_numpy()), path)}
        name = str(dtype)
        try:
            same = pd.api.types.pandas_dtype(name) == dtype
        except TypeError:
            same = False
        if not same:
            self.fail(path, s, f"a column of dtype {dtype!r} (which its name {name!r} "
                               "does not reproduce), of type")
        return {"kind": "extension", "dtype": name,
                "values": self.object_array(s.to_numpy(dtype=object), path)}


# ------------------------------------------------------------- reading
class _Refits:
    """Placeholder for SubSample's refitted models (refitted after loading)."""


class _Reader:
    """Turns JSON nodes back into values (the inverse of :class:`_Writer`)."""

    def __init__(self, meta, arrays, parts):
        self.arrays = arrays        # member name -> ndarray (already verified)
        self.cache = {}
        self.tables = meta["tables"]
        self.table_cache = {}
        self.parts = parts          # part name -> object

    def bad(self, what):
        raise PersistenceError(f"The file is corrupted or not a treeinf file: {what}.")

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict) or "type" not in node:
            self.bad(f"unexpected node {str(node)[:80]}")
        kind = node["type"]
        method = getattr(self, f"_n_{kind}", None)
        if method is None:
            self.bad(f"unknown node type {kind!r}")
        try:
            return method(node)
        except PersistenceError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            self.bad(f"a {kind!r} node could not be read ({type(exc).__name__}: {exc})")

    def _n_model(self, node):
        part = node["part"]
        if part not in self.parts:
            self.bad(f"it refers to a model part {part!r} its metadata does not declare")
        return self.parts[part]

    def _n_float(self, node):
        value = node["value"]
        if value not in ("nan", "inf", "-inf"):
            self.bad(f"float value {value!r}")
        return float(value)

    def _n_scalar(self, node):
        dt = np.dtype(node["dtype"])
        if dt.kind not in _INLINE_SCALAR_KINDS + "f":
            self.bad(f"inline scalar of dtype {dt}")
        value = self.decode(node["value"])
        return np.array(value, dtype=dt)[()]

    def _n_scalar0d(self, node):
        arr = self.decode(node["array"])
        if arr.ndim != 0:
            self.bad("a scalar stored as a non-scalar array")
        return arr[()]

    def _n_array(self, node):
        name = node["name"]
        if name not in self.arrays:
            self.bad(f"array {name!r} is referenced but not listed")
        return self.arrays[name]

    def _n_dtype(self, node):
        return np.dtype(str(node["str"]))

    def _n_tuple(self, node):
        return tuple(self.decode(v) for v in node["items"])

    def _n_dict(self, node):
        return {self.decode(k): self.decode(v) for k, v in node["items"]}

    def _n_set(self, node):
        return {self.decode(v) for v in node["items"]}

    def _n_frozenset(self, node):
        return frozenset(self.decode(v) for v in node["items"])

    def _n_NA(self, node):
        import pandas as pd
        return pd.NA

    def _n_NaT(self, node):
        import pandas as pd
        return pd.NaT

    def _n_bytes(self, node):
        return bytes.fromhex(node["hex"])

    def _n_objarray(self, node):
        shape = tuple(int(s) for s in node["shape"])
        if "strings" in node:
            flat = self.decode(node["strings"])
            if flat.dtype.kind != "U":
                self.bad("an object array of strings stored with another dtype")
            out = flat.astype(object)
        else:
            items = [self.decode(v) for v in node["items"]]
            out = np.empty(len(items), dtype=object)
            out[:] = items
        return out.reshape(shape)

    def _n_sparse(self, node):
        import scipy.sparse as sp
        fmt = node["format"]
        if fmt not in ("csr", "csc"):
            self.bad(f"sparse format {fmt!r}")
        cls = {("csr", False): sp.csr_matrix, ("csr", True): sp.csr_array,
               ("csc", False): sp.csc_matrix, ("csc", True): sp.csc_array}[fmt, bool(node["array"])]
        data, indices, indptr = (self.decode(node[k]) for k in ("data", "indices", "indptr"))
        out = cls((data, indices, indptr), shape=tuple(int(s) for s in node["shape"]))
        # keep the exact stored arrays (the constructor may change index dtypes)
        out.data, out.indices, out.indptr = data, indices, indptr
        return out

    def _n_object(self, node):
        tag = node["class"]
        if tag not in _OBJECT_CLASSES:
            self.bad(f"unknown object class {tag!r}")
        state = self.decode(node["state"])
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            self.bad(f"the state of a {tag} object")
        cls = _object_class(tag)
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        return obj

    # ---------------------------------------------------------- pandas
    def _n_table(self, node):
        import pandas as pd
        k = int(node["index"])
        if k in self.table_cache:
            return self.table_cache[k]
        if not 0 <= k < len(self.tables):
            self.bad(f"table {k} is referenced but not stored")
        body = self.tables[k]
        kind = body["kind"]
        if kind == "DataFrame":
            index = self.index(body["index"])
            data = {j: self.column(c) for j, c in enumerate(body["data"])}
            out = pd.DataFrame(data, index=index)
            out.columns = self.index(body["columns"])
            if out.shape[0] != int(body["n_rows"]):
                self.bad("a DataFrame with another number of rows than recorded")
        elif kind == "Series":
            out = pd.Series(self.column(body["data"]), index=self.index(body["index"]),
                            name=self.decode(body["name"]))
        elif kind == "Index":
            out = self.index(body["data"])
        else:
            self.bad(f"table kind {kind!r}")
        self.table_cache[k] = out
        return out

    def index(self, node):
        import pandas as pd
        name = self.decode(node["name"])
        if node["kind"] == "range":
            return pd.RangeIndex(int(node["start"]), int(node["stop"]), int(node["step"]),
                                 name=name)
        if node["kind"] != "index":
            self.bad(f"index kind {node['kind']!r}")
        values = self.column(node["values"])
        return pd.Index(values, dtype=values.dtype, name=name)

    def column(self, node):
        import pandas as pd
        kind = node["kind"]
        if kind == "category":
            dtype = pd.CategoricalDtype(self.index(node["categories"]),
                                        ordered=bool(node["ordered"]))
            return pd.Categorical.from_codes(self.decode(node["codes"]), dtype=dtype)
        if kind == "numpy":
            values = self.decode(node["values"])
            if not isinstance(values, np.ndarray):
                self.bad("a numeric column that is not an array")
            return values
        if kind == "object":
            return self.decode(node["values"])
        if kind == "extension":
            dtype = pd.api.types.pandas_dtype(str(node["dtype"]))
            if isinstance(dtype, (np.dtype, pd.CategoricalDtype)):
                self.bad(f"extension column of dtype {dtype}")
            return pd.array(self.decode(node["values"]), dtype=dtype)
        self.bad(f"column kind {kind!r}")


# ------------------------------------------------------------------ API
def _model_parts(est):
    """Model objects the explainer holds: {id: (object, part name)}."""
    parts = {}
    pre = est.ensemble_.encoder.preprocessor
    if pre is not None:
        parts[id(pre)] = (pre, "preprocessor")
    model = est.__dict__.get("_model")
    if model is not None:
        parts[id(model)] = (model, "model")
    trainer = est.__dict__.get("_trainer")
    if trainer is not None:
        parts[id(trainer.template)] = (trainer.template, "template")
    refits = est.__dict__.get("models_")
    if type(est).__name__ == "SubSample" and refits is not None:
        parts[id(refits)] = (refits, "refits")
    return parts


def save(estimator, file, compress=False):
    """Write a fitted explainer to ``file``; see :meth:`BaseInfluence.save`."""
    cls = type(estimator)
    registry = _estimator_classes()
    if registry.get(cls.__name__) is not cls:
        raise PersistenceError(
            f"Only treeinf's estimators ({', '.join(_ESTIMATORS)}) can be saved; got "
            f"{_full_name(cls)}. Pickle subclasses instead.")
    if not hasattr(estimator, "ensemble_"):
        raise NotFittedError(
            f"This {cls.__name__} instance is not fitted yet; call fit(model, X_train, "
            "y_train) before save().")
    parts = _model_parts(estimator)
    writer = _Writer(parts)
    params = estimator.get_params(deep=False)
    state = {k: v for k, v in vars(estimator).items() if k not in params}
    name = cls.__name__
    params_node = writer.encode(params, f"{name} parameter")
    state_node = writer.encode(state, name)
    ens = estimator.ensemble_
    part_names = sorted({p for _, p in parts.values()})
    model_info = {
        "fingerprint": model_fingerprint(ens),
        "library": ens.library, "model_name": ens.model_name, "objective": ens.objective,
        "needs": part_names,
        "preprocessor_hash": (None if ens.encoder.preprocessor is None
                              else _preprocessor_hash(ens.encoder.preprocessor)),
        "class": (None if "_model" not in estimator.__dict__
                  else _full_name(type(estimator.__dict__["_model"]))),
    }
    if "refits" in part_names:
        from ._trees import parse_model
        model_info["refit_fingerprints"] = [model_fingerprint(parse_model(m))
                                            for m in estimator.models_]
    arrays = writer.arrays
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "treeinf_version": _version(),
        "class": name, "params": params_node, "state": state_node, "tables": writer.tables,
        "model": model_info,
        "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": _array_digest(a)}
                   for k, a in arrays.items()},
        "written_with": {"python": sys.version.split()[0], "numpy": np.__version__},
    }
    meta["sha256"] = _meta_digest(meta)
    payload = json.dumps(meta, allow_nan=False).encode("utf-8")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED

    def write(fh):
        with zipfile.ZipFile(fh, "w", compression=method, allowZip64=True) as zf:
            zf.writestr(META, payload)
            for key, arr in arrays.items():
                with zf.open(key + ".npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, arr, allow_pickle=False)

    if hasattr(file, "write"):
        write(file)
        return
    path = os.path.abspath(os.fspath(file))
    # a temporary file next to the target, renamed over it when complete: a
    # failed save never leaves a half-written file (open() keeps the umask)
    tmp = os.path.join(os.path.dirname(path),
                       f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
        os.replace(tmp, path)
    except OSError as exc:
        raise PersistenceError(f"Cannot write {os.fspath(file)!r}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _describe(file):
    return repr(os.fspath(file)) if not hasattr(file, "read") else "the given file object"


def _read(file):
    """(meta dict, {name: ndarray}) of a treeinf file, all checks done but the version."""
    if hasattr(file, "read"):
        return _read_open(file, _describe(file))
    try:
        fh = open(file, "rb")
    except OSError as exc:
        raise PersistenceError(f"Cannot read {_describe(file)}: {exc}") from exc
    with fh:
        return _read_open(fh, _describe(file))


def _read_open(fh, where):
    corrupted = f"{where} is corrupted or truncated ({{}}); save the explainer again"
    head = fh.read(len(_ZIP_MAGIC))
    if not isinstance(head, bytes):
        raise PersistenceError(f"{where} must be opened in binary mode ('rb').")
    if head != _ZIP_MAGIC:
        raise PersistenceError(
            f"{where} is not a treeinf explainer file (it does not start like the zip "
            "archive explainer.save() writes).")
    fh.seek(-len(head), io.SEEK_CUR)
    try:
        npz = np.load(fh, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise PersistenceError(corrupted.format(exc)) from exc
    with npz:
        names = set(npz.zip.namelist())
        if META not in names:
            raise PersistenceError(
                f"{where} is not a treeinf explainer file (it has no {META}).")
        try:
            raw = npz.zip.read(META)
            meta = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except _READ_ERRORS as exc:
            raise PersistenceError(corrupted.format(f"{META}: {exc}")) from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise PersistenceError(
                f"{where} is not a treeinf explainer file ({META} does not declare "
                f"format {FORMAT!r}).")
        fv = meta.get("format_version")
        if fv != FORMAT_VERSION:
            raise VersionMismatchError(
                f"{where} uses file format version {fv!r}; this treeinf "
                f"({_version()}) reads version {FORMAT_VERSION}. Load it with the "
                f"treeinf version that wrote it ({meta.get('treeinf_version')!r}) or "
                "fit the explainer again.")
        written = meta.get("treeinf_version")
        if written != _version():
            raise VersionMismatchError(
                f"{where} was written by treeinf {written!r}, but this is treeinf "
                f"{_version()!r}; fitted state is not compatible across versions. Load "
                f"it with treeinf {written!r}, or fit the explainer again with this "
                "version and save it anew.")
        if meta.get("sha256") != _meta_digest(meta):
            raise PersistenceError(corrupted.format(
                f"the checksum of {META} does not match its content"))
        listed = meta.get("arrays")
        if not isinstance(listed, dict):
            raise PersistenceError(corrupted.format(f"{META} lists no arrays"))
        expected = {k + ".npy" for k in listed} | {META}
        if names != expected:
            odd = sorted(names - expected)[:3] or sorted(expected - names)[:3]
            raise PersistenceError(corrupted.format(
                f"its members {odd} are not the ones {META} lists"))
        arrays = {}
        for key, info in listed.items():
            if not isinstance(info, dict):
                raise PersistenceError(corrupted.format(f"{META} entry of {key}"))
            member = key + ".npy"
            try:
                # the header first: refuse object arrays and unexpected shapes
                # before numpy allocates or reads anything
                with npz.zip.open(member) as fm:
                    version = np.lib.format.read_magic(fm)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fm)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fm)
                    else:
                        raise ValueError(f"unexpected .npy format version {version}")
                if dtype.hasobject:
                    raise PersistenceError(
                        f"{where} holds an array of Python objects ({member}); reading "
                        "it would unpickle data, which treeinf never does. The file was "
                        "not written by treeinf or was tampered with.")
                if dtype.str != info.get("dtype") or list(shape) != info.get("shape"):
                    raise ValueError(f"dtype {dtype.str} and shape {shape} differ from "
                                     f"the recorded {info.get('dtype')} and "
                                     f"{info.get('shape')}")
                arr = npz[member]
            except PersistenceError:
                raise
            except _READ_ERRORS as exc:
                raise PersistenceError(corrupted.format(f"{member}: {exc}")) from exc
            if _array_digest(arr) != info.get("sha256"):
                raise PersistenceError(corrupted.format(
                    f"array {key} does not match its recorded checksum"))
            arrays[key] = arr
    return meta, arrays


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def load(file, model=None):
    """Load an explainer written by :meth:`BaseInfluence.save`.

    Reading executes no code from the file: arrays are read with
    ``numpy.load(..., allow_pickle=False)``, everything else is JSON, and only
    treeinf's own estimator classes are instantiated.

    Parameters
    ----------
    file : str, path-like or binary file object
        A file written by ``explainer.save(file)``.
    model : trained model or Pipeline, optional
        The model the explainer was fitted on. Required by the explainers
        that keep the model object: LOO, SubSample and DShap (they refit
        it), and any explainer fitted on a ``Pipeline`` with preprocessing
        steps (the fitted steps are taken from it). For the others it is
        optional and, when given, checked like for those.

    Returns
    -------
    BaseInfluence
        The fitted explainer; its influences equal the saved one's exactly.
        SubSample's refitted models are refitted from the stored subsets
        (as in its ``fit``) and checked against their saved fingerprints.

    Raises
    ------
    PersistenceError
        The file is not a treeinf file, is corrupted or truncated, or the
        explainer needs ``model`` and none was given.
    VersionMismatchError
        The file was written by another treeinf version (both are named).
    ModelMismatchError
        ``model`` is not the model the explainer was fitted on (its parsed
        trees, leaf values or preprocessing steps differ), or SubSample's
        refits do not reproduce the saved ones (an unseeded model).

    Examples
    --------
    >>> import lightgbm as lgb, treeinf
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    >>> explainer = treeinf.BoostIn().fit(model, X, y)
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "boostin.treeinf")
    >>> explainer.save(path)
    >>> again = treeinf.load(path)          # BoostIn needs no model object
    >>> (again.get_self_influence() == explainer.get_self_influence()).all()
    np.True_
    """
    meta, arrays = _read(file)
    where = _describe(file)
    name = meta.get("class")
    registry = _estimator_classes()
    if not isinstance(name, str) or name not in registry:
        raise PersistenceError(
            f"{where} holds a {name!r}, which is not a treeinf estimator "
            f"({', '.join(_ESTIMATORS)}).")
    cls = registry[name]
    info = meta.get("model")
    needs = info.get("needs") if isinstance(info, dict) else None
    if (not isinstance(needs, list) or not isinstance(meta.get("tables"), list)
            or not all(k in meta for k in ("params", "state"))):
        raise PersistenceError(f"{where} is corrupted or not a treeinf file: its "
                               f"{META} lacks the model, tables, params or state entries.")
    parts = _check_model(model, info, name, needs)
    reader = _Reader(meta, arrays, parts)
    params = reader.decode(meta["params"])
    state = reader.decode(meta["state"])
    if not isinstance(params, dict) or not isinstance(state, dict) \
            or not all(isinstance(k, str) for k in list(params) + list(state)):
        reader.bad("parameters or state are not dicts of attribute names")
    try:
        est = cls(**params)
    except TypeError as exc:
        reader.bad(f"parameters {sorted(params)} do not fit {name}: {exc}")
    est.__dict__.update(state)
    if "refits" in needs:
        _refit_subsample(est, info.get("refit_fingerprints") or [])
    return est


def _check_model(model, info, name, needs):
    """Model parts for the reader; raises unless ``model`` is the fitted one."""
    if model is None:
        if needs:
            why = ("refits clones of the model" if "model" in needs else
                   "was fitted on a Pipeline whose preprocessing steps it uses")
            raise PersistenceError(
                f"{name} {why}, which the file does not store (storing a model object "
                f"would need pickle). Pass the model it was fitted on "
                f"({info.get('model_name')}): treeinf.load(file, model=model).")
        return {}
    from ._trees import parse_model
    ens = parse_model(model)
    got = model_fingerprint(ens)
    if got != info["fingerprint"]:
        raise ModelMismatchError(
            f"The given model is not the one the saved {name} was fitted on: its "
            f"trees or leaf values differ (model fingerprint {got[:12]}..., saved "
            f"{str(info['fingerprint'])[:12]}..., a {info.get('model_name')} "
            f"({info.get('library')}, {info.get('objective')})). Pass the exact trained "
            "model the explainer was fitted with.")
    parts = {}
    pre_hash = info.get("preprocessor_hash")
    pre = ens.encoder.preprocessor
    got_pre = None if pre is None else _preprocessor_hash(pre)
    if got_pre != pre_hash:
        detail = ("the given model has none" if pre is None else
                  "the saved explainer was fitted without any" if pre_hash is None else
                  "their fitted state differs")
        raise ModelMismatchError(
            f"The given model's preprocessing steps differ from those the saved {name} "
            f"was fitted with ({detail}); pass the same fitted model or Pipeline.")
    if pre is not None:
        parts["preprocessor"] = pre
    if "model" in needs:
        expected = info.get("class")
        if _full_name(type(model)) != expected:
            raise ModelMismatchError(
                f"The saved {name} was fitted with a {expected}, but the given model is a "
                f"{_full_name(type(model))}; pass the same estimator object type (it is "
                "refitted).")
        parts["model"] = model
    if "template" in needs:
        from .explainers.retrain import _single_threaded
        parts["template"] = _single_threaded(model)
    if "refits" in needs:
        parts["refits"] = _Refits()
    return parts


def _refit_subsample(est, fingerprints):
    """Refit SubSample's models from the stored subsets and check each one."""
    from ._trees import parse_model
    from .explainers.retrain import _fit_task
    subsets = [np.flatnonzero(row) for row in est.in_subset_]
    if len(fingerprints) != len(subsets):
        raise PersistenceError(
            "The file is corrupted or not a treeinf file: SubSample records "
            f"{len(fingerprints)} refit fingerprints for {len(subsets)} subsets.")
    models = est._run(_fit_task, [(est._trainer, rows) for rows in subsets], "refits")
    for k, (m, fp) in enumerate(zip(models, fingerprints)):
        if model_fingerprint(parse_model(m)) != fp:
            raise ModelMismatchError(
                f"SubSample: model {k} refitted at load differs from the one refitted "
                f"before saving, so the saved influences cannot be reproduced. The model "
                "must be deterministic: fix its seed (random_state / random_seed) and "
                "fit the explainer again; or pickle SubSample, which keeps the models.")
    est.models_ = models
