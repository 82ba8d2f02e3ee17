"""The explainer file format: one zip archive that loads without running code.

This module is only the file format. It knows nothing about estimators: the
caller (:mod:`treeinf.explainers._io`) gives it a class name, parameters and
a fitted state (from the estimator's ``_get_state``) to write, and gets them
back, decoded but not yet validated, from :func:`read` and :func:`decode`;
the estimator's ``_set_state`` validates them.

File format (``format_version`` 2)
----------------------------------
A zip archive holding

* ``meta.json``: UTF-8 JSON with the format name and version, the treeinf
  version, the estimator's class name, its constructor parameters and its
  fitted state as a tree of plain JSON nodes, information on the model, the
  dtype, shape and SHA-256 of every array, and a SHA-256 of the metadata
  itself;
* ``a0.npy``, ``a1.npy`` ...: every array of the fitted state, in ``.npy``
  format, written without pickle and read by this module's own bounded
  reader (never unpickled).

Values are encoded generically: arrays, numpy scalars and dtypes, Python
scalars, strings, lists, tuples, dicts, sets, scipy CSR/CSC matrices, pandas
DataFrames/Series/Index, the caller's registered internal classes (stored as
their ``__dict__``, instantiated on load from a fixed table, never by a
module path read from the file) and references to model objects, which are
not stored (``{"type": "model", "part": name}``, filled in on load by the
caller). Anything else raises :class:`~treeinf.exceptions.PersistenceError`
naming the attribute. Objects shared between attributes are stored once.

Bounded reading
---------------
Before anything is inflated, the zip's end record is read to refuse more than
:data:`MAX_MEMBERS` members; ``meta.json`` may inflate to at most
:data:`MAX_META_BYTES` and nest at most :data:`MAX_DEPTH` deep; every array
member must declare exactly the size of the dtype and shape listed for it in
the metadata (a deflated member at most :data:`MAX_DEFLATE_RATIO` times its
compressed size), and all arrays together at most ``max_bytes``. Members
are then inflated in a streaming way into arrays of the declared size, so no
member can inflate to more than it declared. Every limit, when hit, raises
``PersistenceError`` naming it.
"""
import hashlib
import io
import json
import math
import os
import re
import secrets
import struct
import sys
import zipfile
import zlib

import numpy as np

from .exceptions import PersistenceError, VersionMismatchError

__all__ = ["write", "read", "decode", "describe", "memory_budget"]

FORMAT = "treeinf-explainer"
FORMAT_VERSION = 2
META = "meta.json"
_ZIP_MAGIC = b"PK\x03\x04"

#: most members a file may have (meta.json and the arrays)
MAX_MEMBERS = 65535
#: most bytes meta.json may inflate to
MAX_META_BYTES = 16 << 20
#: deepest nesting of lists and objects in meta.json
MAX_DEPTH = 100
#: most central-directory bytes per member (46 fixed, the name, zip64 extras)
_MAX_ENTRY_BYTES = 160
#: largest .npy header of an array member
MAX_NPY_HEADER = 4096
#: a deflated member declaring more than this many times its compressed
#: size is refused (deflate cannot exceed about 1032:1)
MAX_DEFLATE_RATIO = 1100
#: array element kinds a file may hold (no objects, no structured records)
_ARRAY_KINDS = "biufcUSmM"

_INLINE_SCALAR_KINDS = "biuU"

# what reading a damaged zip or .npy member can raise (zipfile raises
# NotImplementedError/RuntimeError for flag bits such as encryption, zlib.error
# for damaged deflate data)
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
                KeyError, NotImplementedError, RuntimeError, zlib.error, struct.error,
                TypeError, OverflowError)


def _version():
    from . import __version__
    return __version__


# ------------------------------------------------------------- hashing
def _hash_array(h, arr):
    arr = np.ascontiguousarray(arr)
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.reshape(-1).view(np.uint8))


def _array_digest(arr):
    h = hashlib.sha256()
    _hash_array(h, arr)
    return h.hexdigest()


def _meta_digest(meta):
    body = {k: v for k, v in meta.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------- writing
class _Writer:
    """Turns a Python value into JSON nodes plus a dict of named arrays."""

    def __init__(self, parts, object_tags):
        self.parts = parts          # id(obj) -> (obj, part name): model objects
        self.arrays = {}            # member name -> ndarray
        self.array_memo = {}        # id(ndarray) -> (ndarray, node)
        self.tables = []            # pandas objects, referenced by position
        self.table_memo = {}        # id(obj) -> (obj, node)
        self.object_tags = object_tags  # class -> tag

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

    def __init__(self, meta, arrays, parts, classes):
        self.classes = classes      # tag -> class
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
        if dt.kind not in _INLINE_SCALAR_KINDS + "f" or dt.itemsize > 1 << 16:
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
        if not isinstance(tag, str) or tag not in self.classes:
            self.bad(f"unknown object class {tag!r}")
        state = self.decode(node["state"])
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            self.bad(f"the state of a {tag} object")
        cls = self.classes[tag]
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
def describe(file):
    """How ``file`` is named in messages."""
    return repr(os.fspath(file)) if not hasattr(file, "read") else "the given file object"


def write(file, *, class_name, params, state, parts, object_tags, model_info,
          compress=False):
    """Write one explainer file.

    Parameters
    ----------
    file : str, path-like or binary file object
        Written atomically when a path.
    class_name : str
    params, state : dict
        Constructor parameters and fitted state (from ``_get_state``).
    parts : dict {id(obj): (obj, part name)}
        Model objects referenced by the state; stored as references only.
    object_tags : dict {class: tag}
        Internal classes whose ``__dict__`` may be stored.
    model_info : dict
        JSON-ready information on the model, stored as ``meta["model"]``.
    compress : bool
        Deflate the members.
    """
    writer = _Writer(parts, object_tags)
    params_node = writer.encode(params, f"{class_name} parameter")
    state_node = writer.encode(state, class_name)
    arrays = writer.arrays
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "treeinf_version": _version(),
        "class": class_name, "params": params_node, "state": state_node,
        "tables": writer.tables, "model": model_info,
        "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": _array_digest(a)}
                   for k, a in arrays.items()},
        "written_with": {"python": sys.version.split()[0], "numpy": np.__version__},
    }
    meta["sha256"] = _meta_digest(meta)
    payload = json.dumps(meta, allow_nan=False).encode("utf-8")
    if len(payload) > MAX_META_BYTES:
        raise PersistenceError(
            f"The metadata of this {class_name} takes {len(payload)} bytes, more than the "
            f"{MAX_META_BYTES} bytes a file may hold (MAX_META_BYTES); it holds large "
            "Python objects (e.g. object columns of a DataFrame). Pickle it instead.")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED

    def write_to(fh):
        with zipfile.ZipFile(fh, "w", compression=method, allowZip64=True) as zf:
            zf.writestr(META, payload)
            for key, arr in arrays.items():
                with zf.open(key + ".npy", "w", force_zip64=True) as out:
                    np.lib.format.write_array(out, arr, allow_pickle=False)

    if hasattr(file, "write"):
        write_to(file)
        return
    path = os.path.abspath(os.fspath(file))
    # a temporary file next to the target, renamed over it when complete: a
    # failed save never leaves a half-written file (open() keeps the umask)
    tmp = os.path.join(os.path.dirname(path),
                       f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write_to(fh)
        os.replace(tmp, path)
    except OSError as exc:
        raise PersistenceError(f"Cannot write {os.fspath(file)!r}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def memory_budget():
    """Bytes the arrays of one file may take by default.

    Three quarters of the memory the process can still use: the smaller of
    the system's available memory and the room left under the process's
    address-space limit (``RLIMIT_AS``), where these can be read.
    """
    room = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    room.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = 0
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmSize:"):
                        used = int(line.split()[1]) * 1024
            room.append(max(0, soft - used))
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return int(0.75 * min(room)) if room else 16 << 30


def read(file, max_bytes=None):
    """(meta dict, {name: ndarray}) of an explainer file, read within bounds.

    Checks the format, the version, every limit of the module docstring and
    every checksum; the state is not decoded (see :func:`decode`).
    """
    if max_bytes is None:
        max_bytes = memory_budget()
    if hasattr(file, "read"):
        return _read_open(file, describe(file), max_bytes)
    try:
        fh = open(file, "rb")
    except OSError as exc:
        raise PersistenceError(f"Cannot read {describe(file)}: {exc}") from exc
    with fh:
        return _read_open(fh, describe(file), max_bytes)


def _json_depth(raw):
    """Deepest nesting of [ and { in JSON text (strings skipped), without recursion."""
    text = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', raw)
    b = np.frombuffer(text, dtype=np.uint8)
    opens = (b == ord("[")) | (b == ord("{"))
    closes = (b == ord("]")) | (b == ord("}"))
    step = opens[opens | closes].astype(np.int64) * 2 - 1
    return int(np.cumsum(step).max()) if step.size else 0


def _read_member(zf, info, limit):
    """Bytes of a member, inflated in chunks; refused beyond ``limit`` bytes."""
    out = bytearray()
    with zf.open(info) as fm:
        while True:
            chunk = fm.read(min(1 << 20, limit + 1 - len(out)))
            if not chunk:
                return bytes(out)
            out += chunk
            if len(out) > limit:
                return None


def _array_size(info, key):
    """Declared (dtype, shape, nbytes) of one listed array, or an error."""
    if not isinstance(info, dict) or not isinstance(info.get("dtype"), str) \
            or not isinstance(info.get("shape"), list) or len(info["shape"]) > 32:
        raise ValueError(f"the entry of array {key} is not a dtype and a shape")
    dtype = np.dtype(info["dtype"])
    if dtype.hasobject:
        raise PersistenceError(
            f"The file lists an array of Python objects ({key}); reading it would "
            "unpickle data, which treeinf never does. The file was not written by "
            "treeinf or was tampered with.")
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype \
            or dtype.hasobject or dtype.str != info["dtype"]:
        raise ValueError(f"array {key} has dtype {info['dtype']!r}; files hold plain "
                         "numeric, boolean, string and datetime arrays only")
    shape = info["shape"]
    if not all(type(s) is int and 0 <= s < 2 ** 62 for s in shape):
        raise ValueError(f"array {key} has shape {shape}")
    return dtype, tuple(shape), math.prod(shape) * dtype.itemsize


def _read_array(zf, zinfo, dtype, shape, nbytes, where, member):
    """One .npy member, read into an array of the declared dtype and shape."""
    with zf.open(zinfo) as fm:
        version = np.lib.format.read_magic(fm)
        if version == (1, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(
                fm, max_header_size=MAX_NPY_HEADER)
        elif version == (2, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(
                fm, max_header_size=MAX_NPY_HEADER)
        else:
            raise ValueError(f"unexpected .npy format version {version}")
        if got_dtype.hasobject:
            raise PersistenceError(
                f"{where} holds an array of Python objects ({member}); reading "
                "it would unpickle data, which treeinf never does. The file was "
                "not written by treeinf or was tampered with.")
        if got_dtype != dtype or got_dtype.str != dtype.str or tuple(got_shape) != shape:
            raise ValueError(f"dtype {got_dtype.str} and shape {got_shape} differ from "
                             f"the recorded {dtype.str} and {list(shape)}")
        header = fm.tell()
        if header + nbytes != zinfo.file_size:
            raise ValueError(f"it declares {zinfo.file_size} bytes, but its header and "
                             f"data take {header + nbytes}")
        arr = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        view = memoryview(arr.reshape(-1, order="A").view(np.uint8)) if nbytes else b""
        pos = 0
        while pos < nbytes:
            got = fm.readinto(view[pos:pos + (8 << 20)])
            if not got:
                raise EOFError(f"its data ends after {pos} of {nbytes} bytes")
            pos += got
        if fm.read(1):
            raise ValueError("it holds more data than its shape")
    return arr


def _read_open(fh, where, max_bytes):
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
        # the member count from the end record, before zipfile reads the
        # central directory into memory
        end = zipfile._EndRecData(fh)
        if end is None:
            raise zipfile.BadZipFile("no zip end record")
        n_members, cd_size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
        if n_members > MAX_MEMBERS or cd_size > MAX_MEMBERS * _MAX_ENTRY_BYTES:
            raise PersistenceError(
                f"{where} declares {n_members} members ({cd_size} bytes of directory); "
                f"treeinf files have at most {MAX_MEMBERS} (MAX_MEMBERS). It was not "
                "written by treeinf or was tampered with.")
        fh.seek(0)
        zf = zipfile.ZipFile(fh)
    except PersistenceError:
        raise
    except (*_READ_ERRORS, MemoryError) as exc:
        raise PersistenceError(corrupted.format(exc)) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise PersistenceError(
                f"{where} has {len(infos)} members; treeinf files have at most "
                f"{MAX_MEMBERS} (MAX_MEMBERS).")
        members = {}
        for info in infos:
            if info.filename in members:
                raise PersistenceError(corrupted.format(f"member {info.filename!r} twice"))
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) \
                    or info.flag_bits & 0x1:
                raise PersistenceError(corrupted.format(
                    f"member {info.filename!r} is encrypted or uses compression method "
                    f"{info.compress_type}; treeinf writes stored or deflated members"))
            members[info.filename] = info
        if META not in members:
            raise PersistenceError(
                f"{where} is not a treeinf explainer file (it has no {META}).")
        meta_info = members[META]
        try:
            raw = None
            if meta_info.file_size <= MAX_META_BYTES:
                raw = _read_member(zf, meta_info, MAX_META_BYTES)
            if raw is None:
                raise PersistenceError(
                    f"{where}: its {META} inflates to more than {MAX_META_BYTES} bytes, "
                    f"the most a treeinf file's metadata may take (MAX_META_BYTES). It "
                    "was not written by treeinf or was tampered with.")
            depth = _json_depth(raw)
            if depth > MAX_DEPTH:
                raise PersistenceError(
                    f"{where}: its {META} nests {depth} levels deep, more than the "
                    f"{MAX_DEPTH} a treeinf file may (MAX_DEPTH). It was not written by "
                    "treeinf or was tampered with.")
            meta = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except PersistenceError:
            raise
        except (*_READ_ERRORS, RecursionError, MemoryError) as exc:
            raise PersistenceError(corrupted.format(f"{META}: {exc}")) from exc
        _check_header(meta, where, corrupted)
        listed = meta["arrays"]
        expected = {k + ".npy" for k in listed} | {META}
        if set(members) != expected:
            odd = sorted(set(members) - expected)[:3] or sorted(expected - set(members))[:3]
            raise PersistenceError(corrupted.format(
                f"its members {odd} are not the ones {META} lists"))
        # every size from the metadata, before anything is inflated
        sizes, total = {}, 0
        for key, info in listed.items():
            member = key + ".npy"
            zinfo = members[member]
            try:
                dtype, shape, nbytes = _array_size(info, key)
            except (ValueError, TypeError) as exc:
                raise PersistenceError(corrupted.format(f"{META}: {exc}")) from exc
            if not nbytes < zinfo.file_size <= nbytes + MAX_NPY_HEADER + 16:
                raise PersistenceError(corrupted.format(
                    f"{member} inflates to {zinfo.file_size} bytes, but its listed dtype "
                    f"{dtype.str} and shape {list(shape)} take {nbytes} bytes plus a header"))
            if zinfo.compress_type == zipfile.ZIP_STORED and \
                    zinfo.compress_size != zinfo.file_size or \
                    zinfo.file_size > MAX_DEFLATE_RATIO * zinfo.compress_size + 1024:
                raise PersistenceError(corrupted.format(
                    f"{member} declares {zinfo.file_size} bytes from {zinfo.compress_size} "
                    f"stored bytes, more than deflate can produce (MAX_DEFLATE_RATIO)"))
            sizes[key] = (dtype, shape, nbytes)
            total += nbytes
        if total > max_bytes:
            raise PersistenceError(
                f"{where} declares arrays of {total / 2**20:.1f} MiB in total, more than "
                f"the max_bytes limit of {max_bytes / 2**20:.1f} MiB (by default three "
                "quarters of the memory this process can still use). If the file is "
                "trusted and the memory is there, pass a larger max_bytes to load().")
        arrays = {}
        for key, (dtype, shape, nbytes) in sizes.items():
            member = key + ".npy"
            try:
                arr = _read_array(zf, members[member], dtype, shape, nbytes, where, member)
            except PersistenceError:
                raise
            except MemoryError as exc:
                raise PersistenceError(
                    f"{where}: not enough memory for array {key} ({nbytes} bytes) within "
                    f"the max_bytes limit of {max_bytes} bytes; pass a smaller "
                    "max_bytes to refuse such files early.") from exc
            except _READ_ERRORS as exc:
                raise PersistenceError(corrupted.format(f"{member}: {exc}")) from exc
            if _array_digest(arr) != listed[key].get("sha256"):
                raise PersistenceError(corrupted.format(
                    f"array {key} does not match its recorded checksum"))
            arrays[key] = arr
    return meta, arrays


def _check_header(meta, where, corrupted):
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
    if not isinstance(meta.get("arrays"), dict):
        raise PersistenceError(corrupted.format(f"{META} lists no arrays"))
    if not all(k in meta for k in ("class", "params", "state", "model")) \
            or not isinstance(meta.get("tables"), list) \
            or not isinstance(meta.get("model"), dict):
        raise PersistenceError(f"{where} is corrupted or not a treeinf file: its "
                               f"{META} lacks the model, tables, params or state entries.")


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def decode(meta, arrays, parts, classes):
    """(params, state) of a file read by :func:`read`.

    ``parts`` maps model part names to the objects to put in their place;
    ``classes`` maps object tags to the internal classes that may be built.
    Nothing is validated beyond the encoding itself.
    """
    reader = _Reader(meta, arrays, parts, classes)
    try:
        params = reader.decode(meta["params"])
        state = reader.decode(meta["state"])
    except RecursionError:
        reader.bad("its state nests too deeply")
    if not isinstance(params, dict) or not isinstance(state, dict) \
            or not all(isinstance(k, str) for k in list(params) + list(state)):
        reader.bad("parameters or state are not dicts of attribute names")
    return params, state
