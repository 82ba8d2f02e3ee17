"""Validation of fitted state read from a file, before any kernel sees it.

A saved explainer is data the user does not control: every array that a
numba kernel indexes with, or that sizes a loop, must be checked first, or a
hostile file can crash the process (an out-of-bounds index), hang it (a node
that is its own child) or make it compute silently wrong numbers. This module
holds the checks every estimator's ``_set_state`` uses:

* :class:`Arr`, :class:`Int`, :class:`Float`, ... : small specs of one
  attribute (dtype, shape in named dimensions, value rules), so an
  estimator's state is a table ``{attribute: spec}``;
* :func:`check_state`: applies such a table to a state dict;
* :func:`check_ensemble`: a :class:`~treeinf.FlatEnsemble`, driven by its
  dataclass fields and the table :data:`ENSEMBLE_FIELDS`; its trees are
  walked (iteratively, in a numba kernel) to prove they are trees;
* :func:`check_csr`: a compressed sparse row grouping;
* :func:`ensemble_difference`: where two ensembles differ (``load(model=)``).

Every failure raises :class:`~treeinf.exceptions.PersistenceError` naming the
attribute, what was found and what was expected.

Named dimensions used in shapes: ``n`` training rows, ``T`` trees, ``L``
leaves of all trees, ``K`` output columns, ``R`` boosting rounds, ``N``
nodes, ``F`` encoded input features, ``F_in`` input features of the
explainer, ``*`` any length; estimators bind more (``Int(dim=...)``).
"""
import dataclasses
import hashlib
import json
import math
import numbers

import numpy as np

from ._numba import njit
from .exceptions import PersistenceError

__all__ = ["Arr", "AnyArr", "Int", "Float", "Bool", "Choice", "Str", "Csr", "Names", "Table",
           "Ensemble", "Part", "check_state",
           "check_ensemble", "check_csr", "ensemble_difference", "model_fingerprint",
           "bad"]

#: the most rows, trees, nodes, features a file may declare (int32 kernels)
MAX_DIM = 2 ** 31 - 1


def bad(what):
    """Raise the error of a file whose state breaks an invariant."""
    raise PersistenceError(
        f"The file is corrupted or not a treeinf file: {what}. It was not written by "
        "this treeinf or was edited; fit the explainer again and save it anew.")


# ----------------------------------------------------------------- specs
class Spec:
    """One attribute of a fitted state (subclasses check one kind of value)."""

    optional = False

    def check(self, value, name, dims):
        raise NotImplementedError


class Arr(Spec):
    """A numpy array attribute.

    Parameters
    ----------
    dtypes : str
        Accepted dtypes, space separated (``"f8"``, ``"u1 u2 i4"``).
    shape : tuple of (int or str) or callable
        Length of each axis: an int, a dimension name, or ``"*"``; a callable
        gets the dimensions dict and returns such a tuple.
    finite : bool or 'nonan'
        True: every value finite; 'nonan': no NaN (infinities allowed).
    values : tuple (low, high) or 'leaf' or None
        Every value in [low, high) (ints or dimension names); 'leaf': an
        array of shape (T, n) or (n, T) of compact leaf indices, each below
        the number of leaves of its tree.
    optional : bool
        The attribute may be absent (or None when ``none`` is set).
    none : bool
        None is accepted in place of the array.
    """

    def __init__(self, dtypes, shape, finite=False, values=None, optional=False, none=False):
        self.dtypes = tuple(np.dtype(d) for d in dtypes.split())
        self.shape = shape
        self.finite = finite
        self.values = values
        self.optional = optional
        self.none = none

    def check(self, value, name, dims):
        if value is None and self.none:
            return None
        if type(value) is not np.ndarray:
            bad(f"{name} is a {type(value).__name__}, expected an ndarray")
        if value.dtype not in self.dtypes:
            bad(f"{name} has dtype {value.dtype}, expected "
                f"{' or '.join(str(d) for d in self.dtypes)}")
        shape = self.shape(dims) if callable(self.shape) else self.shape
        want = tuple(s if isinstance(s, int) or s == "*" else dims[s] for s in shape)
        if value.ndim != len(want) or any(w != "*" and w != g
                                          for w, g in zip(want, value.shape)):
            bad(f"{name} has shape {value.shape}, expected {tuple(shape)} = {want}")
        value = np.ascontiguousarray(value)
        if self.finite is True and value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad(f"{name} holds non-finite values")
        if self.finite == "nonan" and value.dtype.kind in "fc" and np.isnan(value).any():
            bad(f"{name} holds NaN")
        if self.values == "leaf":
            check_leaves(value, name, dims)
        elif self.values == "label":
            check_labels(value, name, dims)
        elif self.values is not None and value.size:
            low, high = (v if isinstance(v, (int, float)) else dims[v] for v in self.values)
            check_range(value, name, low, high)
        return value


class Int(Spec):
    """A Python int in [low, high]; ``dim`` binds it as a named dimension."""

    def __init__(self, low=0, high=MAX_DIM, dim=None, optional=False):
        self.low, self.high, self.dim, self.optional = low, high, dim, optional

    def check(self, value, name, dims):
        if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
            bad(f"{name} is {type(value).__name__}, expected an integer")
        value = int(value)
        if not self.low <= value <= self.high:
            bad(f"{name} is {value}, expected an integer in [{self.low}, {self.high}]")
        if self.dim is not None:
            dims[self.dim] = value
        return value


class Float(Spec):
    """A Python float in [low, high] (NaN accepted when ``nan``)."""

    def __init__(self, low=-math.inf, high=math.inf, nan=False, optional=False):
        self.low, self.high, self.nan, self.optional = low, high, nan, optional

    def check(self, value, name, dims):
        if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
            bad(f"{name} is {type(value).__name__}, expected a float")
        value = float(value)
        if value != value:
            if not self.nan:
                bad(f"{name} is NaN")
        elif not self.low <= value <= self.high:
            bad(f"{name} is {value}, expected a float in [{self.low}, {self.high}]")
        return value


class Bool(Spec):
    """True or False."""

    def __init__(self, optional=False):
        self.optional = optional

    def check(self, value, name, dims):
        if not isinstance(value, (bool, np.bool_)):
            bad(f"{name} is {type(value).__name__}, expected True or False")
        return bool(value)


class Choice(Spec):
    """One of a fixed set of plain values."""

    def __init__(self, *choices, optional=False):
        self.choices, self.optional = choices, optional

    def check(self, value, name, dims):
        if type(value) not in (str, int, type(None)) or value not in self.choices:
            bad(f"{name} is {value!r}, expected one of {self.choices}")
        return value


class Str(Spec):
    """A str of bounded length."""

    def __init__(self, optional=False, none=False):
        self.optional, self.none = optional, none

    def check(self, value, name, dims):
        if value is None and self.none:
            return None
        if type(value) is not str or len(value) > 10_000:
            bad(f"{name} is {type(value).__name__}, expected a short str")
        return value


class OptFloat(Float):
    """A float in [low, high], or None."""

    def check(self, value, name, dims):
        return None if value is None else super().check(value, name, dims)


class StrSeq(Spec):
    """A short list or tuple of short strings (returned as a tuple)."""

    def check(self, value, name, dims):
        if type(value) not in (list, tuple) or len(value) > 100 or not all(
                type(v) is str and len(v) <= 10_000 for v in value):
            bad(f"{name} is not a short list of strings")
        return tuple(value)


class StrDict(Spec):
    """A small dict of str keys to values among ``choices``."""

    def __init__(self, keys, choices, optional=False):
        self.keys, self.choices, self.optional = keys, choices, optional

    def check(self, value, name, dims):
        if type(value) is not dict or set(value) - set(self.keys) or not all(
                type(v) is str and v in self.choices for v in value.values()):
            bad(f"{name} is not a dict of {self.keys} to {self.choices}")
        return dict(value)


class TrainSplit(Spec):
    """None or the early-stopping split of scikit-learn (FlatEnsemble.train_split)."""

    def check(self, value, name, dims):
        if value is None:
            return None
        keys = {"validation_fraction", "random_state", "stratify", "shuffle"}
        if type(value) is not dict or set(value) != keys:
            bad(f"{name} is not None or a dict with keys {sorted(keys)}")
        fraction = Float(1e-12, 1.0 - 1e-12).check(value["validation_fraction"],
                                                   f"{name}['validation_fraction']", dims)
        seed = value["random_state"]
        if type(seed) is not int or not 0 <= seed < 2 ** 32:
            bad(f"{name}['random_state'] is not an integer seed")
        return {"validation_fraction": fraction, "random_state": seed,
                "stratify": Bool().check(value["stratify"], f"{name}['stratify']", dims),
                "shuffle": Bool().check(value["shuffle"], f"{name}['shuffle']", dims)}


class Report(Spec):
    """A small dict of plain values: bool, number, str, None, a dict of str,
    or a 1-D float array (``fidelity_``)."""

    def __init__(self, optional=False):
        self.optional = optional

    def check(self, value, name, dims):
        if type(value) is not dict or len(value) > 100:
            bad(f"{name} is not a small dict")
        out = {}
        for k, v in value.items():
            where = f"{name}[{k!r}]"
            if type(k) is not str or len(k) > 100:
                bad(f"{name} has a key that is not a short str")
            if v is None or isinstance(v, (bool, np.bool_)):
                out[k] = None if v is None else bool(v)
            elif isinstance(v, numbers.Real):
                out[k] = Float(nan=True).check(v, where, dims) if not isinstance(
                    v, numbers.Integral) else int(v)
            elif type(v) is str:
                out[k] = Str().check(v, where, dims)
            elif type(v) is dict:
                if not all(type(a) is str and type(b) is str for a, b in v.items()) \
                        or len(v) > 100:
                    bad(f"{where} is not a small dict of str")
                out[k] = dict(v)
            elif type(v) is np.ndarray:
                out[k] = Arr("f8", ("*",)).check(v, where, dims)
            else:
                bad(f"{where} is a {type(v).__name__}")
        return out


class AnyArr(Spec):
    """An array of any plain (non-structured) dtype and the given shape."""

    def __init__(self, shape, optional=False, none=False):
        self.shape, self.optional, self.none = shape, optional, none

    def check(self, value, name, dims):
        if value is None and self.none:
            return None
        if type(value) is not np.ndarray or value.dtype.fields is not None:
            bad(f"{name} is a {type(value).__name__}, expected a plain ndarray")
        shape = self.shape(dims) if callable(self.shape) else self.shape
        want = tuple(s if isinstance(s, int) or s == "*" else dims[s] for s in shape)
        if value.ndim != len(want) or any(w != "*" and w != g
                                          for w, g in zip(want, value.shape)):
            bad(f"{name} has shape {value.shape}, expected {shape} = {want}")
        return value


class Names(Spec):
    """An object array of ``dim`` str (feature names)."""

    def __init__(self, dim, optional=False):
        self.dim, self.optional = dim, optional

    def check(self, value, name, dims):
        if type(value) is not np.ndarray or value.dtype != object or value.ndim != 1 \
                or value.shape[0] != dims[self.dim] \
                or not all(type(v) is str for v in value):
            bad(f"{name} is not an object array of {dims[self.dim]} str")
        return value


class Table(Spec):
    """The user's training data: a DataFrame or a 2-D ndarray of shape (rows, cols)."""

    def __init__(self, rows, cols, optional=False):
        self.rows, self.cols, self.optional = rows, cols, optional

    def check(self, value, name, dims):
        want = (dims[self.rows], dims[self.cols])
        frame = type(value).__module__.startswith("pandas") and hasattr(value, "iloc") \
            and getattr(value, "ndim", 0) == 2
        if not (frame or type(value) is np.ndarray and value.dtype.fields is None):
            bad(f"{name} is a {type(value).__name__}, expected a DataFrame or an ndarray")
        if tuple(value.shape) != want:
            bad(f"{name} has shape {tuple(value.shape)}, expected {want}")
        return value


class Ensemble(Spec):
    """A FlatEnsemble (see :func:`check_ensemble`)."""

    def check(self, value, name, dims):
        return check_ensemble(value, dims, name)


class Part(Spec):
    """A model object given to ``load`` (checked there to be that object)."""

    def check(self, value, name, dims):
        if value is None or isinstance(value, (np.ndarray, dict, list, str, int, float)):
            bad(f"{name} is not a model object")
        return value


class Csr(Spec):
    """A scipy CSR matrix of shape (rows, cols) with finite values."""

    def __init__(self, rows, cols, optional=False):
        self.rows, self.cols, self.optional = rows, cols, optional

    def check(self, value, name, dims):
        import scipy.sparse as sp
        if not sp.issparse(value) or value.format != "csr":
            bad(f"{name} is a {type(value).__name__}, expected a CSR matrix")
        rows, cols = (s if isinstance(s, int) else dims[s] for s in (self.rows, self.cols))
        if value.shape != (rows, cols):
            bad(f"{name} has shape {value.shape}, expected ({self.rows}, {self.cols}) = "
                f"{(rows, cols)}")
        check_csr(value.indptr, value.indices, rows, cols, name)
        Arr("f8", (value.indices.shape[0],), finite=True).check(value.data, f"{name}.data",
                                                                 dims)
        return value


def check_range(arr, name, low, high):
    """Every value of ``arr`` in [low, high)."""
    if arr.size == 0:
        return
    lo, hi = arr.min(), arr.max()
    if not (lo >= low and hi < high):
        bad(f"{name} holds values in [{lo}, {hi}], expected [{low}, {high})")


def check_labels(arr, name, dims):
    """Encoded targets: finite; for classification class indices 0 .. C-1."""
    if not np.isfinite(arr).all():
        bad(f"{name} holds non-finite targets")
    C = dims["C"]
    if C is not None and arr.size and (arr.min() < 0 or arr.max() >= C
                                       or (arr != np.floor(arr)).any()):
        bad(f"{name} holds values that are not class indices 0 .. {C - 1}")


def check_leaves(arr, name, dims):
    """Compact leaf indices, (T, n) or (n, T): below each tree's leaf count."""
    n_leaves = dims["n_leaves"]
    if arr.dtype.kind not in "iu" or arr.ndim != 2 or n_leaves.shape[0] not in arr.shape:
        bad(f"{name} is not an integer (n_trees, n) or (n, n_trees) leaf array")
    per_tree = n_leaves[:, None] if arr.shape[0] == n_leaves.shape[0] else n_leaves[None, :]
    if arr.size and ((arr.dtype.kind == "i" and arr.min() < 0) or not (arr < per_tree).all()):
        bad(f"{name} holds leaf indices outside their tree's leaves")


def check_csr(ptr, idx, n_rows, n_cols, name):
    """A CSR grouping: ptr (n_rows + 1,) from 0, non-decreasing, ending at
    len(idx); every idx in [0, n_cols)."""
    if type(ptr) is not np.ndarray or type(idx) is not np.ndarray \
            or ptr.dtype.kind not in "iu" or idx.dtype.kind not in "iu" \
            or ptr.ndim != 1 or idx.ndim != 1:
        bad(f"{name}: pointers and indices must be 1-D integer arrays")
    if ptr.shape[0] != n_rows + 1:
        bad(f"{name}: {ptr.shape[0]} pointers for {n_rows} rows")
    if ptr[0] != 0 or ptr[-1] != idx.shape[0] or (ptr.shape[0] > 1 and
                                                   (np.diff(ptr) < 0).any()):
        bad(f"{name}: pointers are not non-decreasing from 0 to {idx.shape[0]}")
    check_range(idx, f"{name} indices", 0, n_cols)


def check_state(state, table, dims, owner):
    """Check ``state`` (dict) against ``table`` {attribute: Spec}, in table order.

    Returns the checked state (arrays made C-contiguous). Attributes not in
    the table, and required ones that are missing, are refused.
    """
    if not isinstance(state, dict) or not all(type(k) is str for k in state):
        bad(f"the state of {owner} is not a dict of attribute names")
    unknown = sorted(set(state) - set(table))
    if unknown:
        bad(f"{owner} has no attribute(s) {unknown[:5]} in its state table")
    out = {}
    for key, spec in table.items():
        if key not in state:
            if not spec.optional:
                bad(f"{owner}.{key} is missing")
            continue
        out[key] = spec.check(state[key], f"{owner}.{key}", dims)
    return out


# -------------------------------------------------------------- ensemble
OBJECTIVES = ("regression", "binary", "multiclass")
KINDS = ("boosting", "forest")
LIBRARIES = ("lightgbm", "xgboost", "catboost", "sklearn")

#: FlatEnsemble array fields: dtype, shape, value rules (indices that need
#: more than a range, children and leaves, are checked by the tree walk)
ENSEMBLE_FIELDS = {
    "node_left": Arr("i4", ("N",)),
    "node_right": Arr("i4", ("N",)),
    "node_feature": Arr("i4", ("N",)),
    "node_threshold": Arr("f8", ("N",), finite="nonan"),
    "node_kind": Arr("i1", ("N",), values=(0, 4)),
    "node_missing": Arr("i1", ("N",), values=(0, 3)),
    "node_default_left": Arr("?", ("N",)),
    "node_cat_start": Arr("i4", ("N",)),
    "node_cat_len": Arr("i4", ("N",)),
    "cat_bits": Arr("u4", ("*",)),
    "node_leaf": Arr("i4", ("N",), values=(-1, MAX_DIM)),
    "tree_root": Arr("i4", ("T",), values=(0, "N")),
    "tree_round": Arr("i4", ("T",)),
    "tree_output": Arr("i4", ("T",)),
    "leaf_offset": Arr("i8", ("T+1",)),
    "leaf_value": Arr("f8", ("L",), finite=True),
    "leaf_library_id": Arr("i8", ("L",)),
    "base_margin": Arr("f8", ("K",), finite=True),
    "leaf_reg_lambda": Arr("f8", ("L",), finite=True),
    "class_weight": Arr("f8", ("*",), finite=True, none=True),
    "leaf_train_stat": Arr("f8", ("L",), none=True),   # NaN: not recorded
    "leaf_train_class_fraction": Arr("f8", ("*",), finite=True, none=True),
}

#: FlatEnsemble scalar fields
ENSEMBLE_SCALARS = {
    "objective": Choice(*OBJECTIVES),
    "kind": Choice(*KINDS),
    "learning_rate": Float(1e-300, 1e6),
    "reg_lambda": Float(0.0, 1e300),
    "reg_alpha": Float(0.0, 1e300),
    "hessian_factor": Float(1e-300, 1e6),
    "library": Choice(*LIBRARIES),
    "model_name": Str(),
    "l2_weight_scaling": Choice("none", "mean_weight"),
    "link": Choice("identity", "sigmoid", "softmax"),
    "exact_leaves": Bool(),
    "exact_leaves_reasons": StrSeq(),
    "params_source": StrDict(("learning_rate", "reg_lambda"), ("model", "estimated", "user")),
    "train_split": TrainSplit(),
    "leaf_train_stat_kind": Choice("", "count", "weight", "hessian"),
    "leaf_train_stat_exact": Bool(),
    "leaf_train_fraction": OptFloat(1e-12, 1e6),
}


#: encoder attributes: (common to all, {class name: extra attributes})
ENCODER_COMMON = ("n_features", "feature_names", "input_dtype", "categories",
                  "categorical_columns", "preprocessor", "model_name")
ENCODER_EXTRA = {
    "TabularEncoder": (),
    "LightGBMEncoder": ("pandas_categorical", "split_categorical"),
    "_XGBoostEncoder": ("missing", "raw_categories"),
    "CatBoostEncoder": ("hash_codes",),
    "SklearnEncoder": ("allow_nan", "allow_inf", "ordinal", "accept_sparse"),
}


@njit
def tree_walk_kernel(left, right, node_leaf, tree_root, leaf_offset, seen_node, seen_leaf,
                     stack):
    """Walk every tree from its root without recursion.

    Returns (code, tree, node): code 0 when every tree is a tree (each node
    reached once, internal nodes with two in-range children, leaves with a
    compact index below their tree's leaf count, used once); otherwise the
    first violation: 1 node reached twice (a cycle or a shared node), 2 a
    leaf with a child, 3 a child out of range, 4 a leaf index out of range,
    5 a leaf index used twice, 6 an internal node with a leaf index.
    """
    n_nodes = left.shape[0]
    for t in range(tree_root.shape[0]):
        n_leaves = leaf_offset[t + 1] - leaf_offset[t]
        stack[0] = tree_root[t]
        top = 1
        while top > 0:
            top -= 1
            node = stack[top]
            if seen_node[node]:
                return 1, t, node
            seen_node[node] = True
            a = left[node]
            b = right[node]
            if a < 0:
                if a != -1 or b != -1:
                    return 2, t, node
                leaf = node_leaf[node]
                if leaf < 0 or leaf >= n_leaves:
                    return 4, t, node
                if seen_leaf[leaf_offset[t] + leaf]:
                    return 5, t, node
                seen_leaf[leaf_offset[t] + leaf] = True
            else:
                if b < 0 or a >= n_nodes or b >= n_nodes:
                    return 3, t, node
                if node_leaf[node] != -1:
                    return 6, t, node
                stack[top] = a
                stack[top + 1] = b
                top += 2
    return 0, 0, 0


_WALK_ERRORS = {1: "is reached twice (a cycle, or a node shared by two trees)",
                2: "is a leaf with a child", 3: "has a child outside the node arrays",
                4: "has a leaf index outside its tree's leaves",
                5: "reuses a leaf index of its tree",
                6: "is an internal node with a leaf index"}


def check_trees(ens):
    """Prove that the node arrays of ``ens`` form ``n_trees`` disjoint trees."""
    n_nodes, n_leaves_total = ens.node_left.shape[0], int(ens.leaf_offset[-1])
    seen_node = np.zeros(n_nodes, dtype=np.bool_)
    seen_leaf = np.zeros(n_leaves_total, dtype=np.bool_)
    stack = np.empty(2 * n_nodes + 2, dtype=np.int64)
    code, t, node = tree_walk_kernel(ens.node_left, ens.node_right, ens.node_leaf,
                                     ens.tree_root, ens.leaf_offset, seen_node, seen_leaf,
                                     stack)
    if code:
        bad(f"node {node} of tree {t} {_WALK_ERRORS[code]}")
    if not seen_node.all():
        bad(f"node {int(np.argmin(seen_node))} belongs to no tree")
    if not seen_leaf.all():
        bad(f"leaf position {int(np.argmin(seen_leaf))} has no node")


def check_encoder(enc, where="ensemble_.encoder"):
    """The encoder's attributes: names, types and column indices in range."""
    name = type(enc).__name__
    if name not in ENCODER_EXTRA:
        bad(f"{where} is a {name}, not a treeinf encoder")
    state = vars(enc)
    want = set(ENCODER_COMMON) | set(ENCODER_EXTRA[name])
    if set(state) != want:
        bad(f"{where} has attributes {sorted(set(state) ^ want)[:5]} it should not "
            "(or lacks them)")
    dims = {}
    F = Int(1, MAX_DIM, dim="F").check(enc.n_features, f"{where}.n_features", dims)
    names = enc.feature_names
    if names is not None and (type(names) is not list or len(names) != F
                              or not all(type(s) is str for s in names)):
        bad(f"{where}.feature_names is not None or a list of {F} str")
    if not isinstance(enc.input_dtype, np.dtype) or enc.input_dtype not in (
            np.dtype(np.float32), np.dtype(np.float64)):
        bad(f"{where}.input_dtype is {enc.input_dtype!r}, expected float32 or float64")
    cats = enc.categories
    if type(cats) is not dict or not all(type(k) is int and 0 <= k < F and type(v) is list
                                         for k, v in cats.items()):
        bad(f"{where}.categories is not a dict {{column: list}} with columns < {F}")
    cols = enc.categorical_columns
    if type(cols) is not list or not all(type(c) is int and 0 <= c < F for c in cols):
        bad(f"{where}.categorical_columns is not a list of columns < {F}")
    Str().check(enc.model_name, f"{where}.model_name", dims)
    if name == "LightGBMEncoder":
        Arr("i8", ("*",), values=(0, F)).check(enc.split_categorical,
                                               f"{where}.split_categorical", dims)
        pc = enc.pandas_categorical
        if pc is not None and (type(pc) is not list or not all(type(c) is list for c in pc)):
            bad(f"{where}.pandas_categorical is not None or a list of lists")
    elif name == "_XGBoostEncoder":
        Float(nan=True).check(enc.missing, f"{where}.missing", dims)
        if type(enc.raw_categories) is not dict:
            bad(f"{where}.raw_categories is not a dict")
    elif name == "CatBoostEncoder":
        hc = enc.hash_codes
        if type(hc) is not dict or not all(
                type(c) is int and 0 <= c < F and type(m) is dict
                and all(type(h) is int and type(k) is int for h, k in m.items())
                for c, m in hc.items()):
            bad(f"{where}.hash_codes is not a dict {{column: {{hash: code}}}}")
    elif name == "SklearnEncoder":
        for key in ENCODER_EXTRA[name]:
            Bool().check(state[key], f"{where}.{key}", dims)


def unchecked_ensemble_fields():
    """FlatEnsemble fields without a spec: a new field needs one line in
    :data:`ENSEMBLE_FIELDS` (arrays) or :data:`ENSEMBLE_SCALARS`."""
    from ._trees._flat import FlatEnsemble
    fields = {f.name for f in dataclasses.fields(FlatEnsemble)}
    return sorted(fields - set(ENSEMBLE_FIELDS) - set(ENSEMBLE_SCALARS)
                  - {"encoder", "classes", "params"})


def check_ensemble(ens, dims, where="ensemble_"):
    """Check every field of a FlatEnsemble; bind T, L, K, R, N, F, n_leaves.

    Arrays are checked against :data:`ENSEMBLE_FIELDS` and scalars against
    :data:`ENSEMBLE_SCALARS` (a field in neither table is refused, so a new
    field cannot go unchecked: adding one is one line), then the trees are
    walked (:func:`check_trees`), split features and category sets are
    checked against the encoder and the bitset, and the tree order against
    the output columns.
    """
    from ._trees._flat import FlatEnsemble
    if type(ens) is not FlatEnsemble:
        bad(f"{where} is a {type(ens).__name__}, expected a FlatEnsemble")
    fields = {f.name for f in dataclasses.fields(FlatEnsemble)}
    state = vars(ens)
    if set(state) != fields:
        bad(f"{where} has fields {sorted(set(state) ^ fields)[:5]} that FlatEnsemble "
            "does not (or lacks them)")
    unchecked = unchecked_ensemble_fields()
    if unchecked:
        bad(f"{where} fields {unchecked} have no entry in treeinf._checks.ENSEMBLE_FIELDS "
            "or ENSEMBLE_SCALARS")
    check_encoder(ens.encoder, f"{where}.encoder")
    for key, spec in ENSEMBLE_SCALARS.items():
        if key in fields:
            setattr(ens, key, spec.check(state[key], f"{where}.{key}", dims))
    for key in ("node_left", "tree_root", "base_margin"):
        if type(state[key]) is not np.ndarray or state[key].ndim != 1:
            bad(f"{where}.{key} is not a 1-D array")
    N, T, K = (state[k].shape[0] for k in ("node_left", "tree_root", "base_margin"))
    if not (N >= 1 and T >= 1 and K >= 1 and T % K == 0):
        bad(f"{where} has {N} nodes, {T} trees and {K} outputs")
    dims.update(N=N, T=T, K=K, F=ens.encoder.n_features)
    dims["T+1"] = T + 1
    off = ENSEMBLE_FIELDS["leaf_offset"].check(state["leaf_offset"], f"{where}.leaf_offset",
                                               dims)
    if off[0] != 0 or (np.diff(off) < 1).any() or off[-1] > MAX_DIM:
        bad(f"{where}.leaf_offset does not rise from 0 by at least 1 per tree")
    dims["L"] = int(off[-1])
    dims["L+1"] = dims["L"] + 1
    dims["n_leaves"] = np.diff(off)
    for key, spec in ENSEMBLE_FIELDS.items():
        if key in fields:
            setattr(ens, key, spec.check(state[key], f"{where}.{key}", dims))
    if (ens.tree_output != np.arange(T) % K).any():
        bad(f"{where}.tree_output is not the output column of each tree (round-major)")
    r = ens.tree_round
    if r[0] != 0 or (T > 1 and not np.isin(np.diff(r), (0, 1)).all()):
        bad(f"{where}.tree_round does not count rounds 0, 1, ... in order")
    dims["R"] = int(r[-1]) + 1
    check_trees(ens)
    internal = ens.node_left >= 0
    check_range(ens.node_feature[internal], f"{where}.node_feature", 0, dims["F"])
    cat = internal & (ens.node_kind >= 2)
    start = ens.node_cat_start[cat].astype(np.int64)
    length = ens.node_cat_len[cat].astype(np.int64)
    if cat.any() and (start.min() < 0 or length.min() < 0
                      or (start + length).max() > ens.cat_bits.shape[0]):
        bad(f"{where}: a categorical split's bitset lies outside cat_bits")
    classes = ens.classes
    dims["C"] = {"regression": None, "binary": 2, "multiclass": K}[ens.objective]
    n_classes = {"regression": 0, "binary": 2, "multiclass": K}[ens.objective]
    if (ens.objective == "multiclass") != (K > 1):
        bad(f"{where} has {K} outputs for objective {ens.objective!r}")
    if n_classes == 0:
        if classes is not None:
            bad(f"{where}.classes is set for a regression model")
    elif (type(classes) is not np.ndarray or classes.ndim != 1
          or classes.shape[0] != n_classes or classes.dtype.hasobject
          and not all(isinstance(c, (str, int, float, bool, np.generic)) for c in classes)):
        bad(f"{where}.classes is not a 1-D array of {n_classes} labels")
    params = ens.params
    if type(params) is not dict or not all(type(k) is str for k in params):
        bad(f"{where}.params is not a dict")
    return ens


# ---------------------------------------------------- model comparisons
def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and a.shape == b.shape
                and bool(np.all((a == b) | ((a != a) & (b != b)))
                         if a.dtype.kind in "fc" else np.all(a == b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def ensemble_difference(loaded, parsed):
    """Name of the first FlatEnsemble field that differs, or None.

    Every array field is compared exactly (dtype, shape, values), then the
    scalar fields, the classes, the parameters and the encoder's input rules
    (not its preprocessing steps, which are compared separately).
    """
    for f in dataclasses.fields(type(parsed)):
        key = f.name
        a, b = getattr(loaded, key), getattr(parsed, key)
        if key == "encoder":
            va = {k: v for k, v in vars(a).items() if k != "preprocessor"}
            vb = {k: v for k, v in vars(b).items() if k != "preprocessor"}
            if type(a) is not type(b) or not _same(va, vb):
                return "encoder (input columns, categories or dtype)"
        elif key == "params":
            ka = {k: v for k, v in a.items() if k != "verified_rows"}
            kb = {k: v for k, v in b.items() if k != "verified_rows"}
            if not _same(ka, kb):
                return "params"
        elif not _same(a, b):
            return key
    return None


def _hash_array(h, arr):
    arr = np.ascontiguousarray(arr)
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.reshape(-1).view(np.uint8))


#: FlatEnsemble arrays that define the model (fingerprint)
_STRUCTURE = ("node_left", "node_right", "node_feature", "node_threshold", "node_kind",
              "node_missing", "node_default_left", "node_cat_start", "node_cat_len",
              "cat_bits", "node_leaf", "tree_root", "tree_round", "tree_output",
              "leaf_offset", "leaf_value", "leaf_library_id", "base_margin")


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
