"""CatBoost models (CatBoostRegressor, CatBoostClassifier, catboost.CatBoost).

The model is read from CatBoost's own JSON export (``save_model(format='json')``),
which holds every tree the model predicts with (after early stopping's
``use_best_model`` shrink), the float32 borders, the categorical one-hot
values and ``scale_and_bias``.

What the export means, each point checked against ``predict(prediction_type=
'RawFormulaVal')`` and ``calc_leaf_indexes`` in the tests:

* Symmetric (oblivious) trees, key ``oblivious_trees``: ``splits[d]`` is true
  when ``x > border`` (float features, compared in float32) or when the
  category's hash equals ``value`` (one-hot splits); a true ``splits[d]`` sets
  bit ``d`` of the leaf index. A tree of depth d becomes an explicit binary
  tree (level k tests ``splits[k]``, the right child sets bit k) whose leaves
  carry CatBoost's leaf index. Leaf values are stored leaf-major:
  ``leaf_values[leaf * K + c]``. A tree without a split (``"splits": null``,
  e.g. when ``rsm`` < 1 left a round no feature, or ``depth=0``) is one leaf.
* Non-symmetric trees (``grow_policy`` Depthwise / Lossguide), key ``trees``:
  nested ``{split, left, right}`` dicts whose leaves hold ``value`` (a list of
  K numbers); the right child is the side where the split is true, and
  ``calc_leaf_indexes`` numbers the leaves left to right (depth first).
* NaN: ``nan_value_treatment`` AsFalse (``nan_mode='Min'``) sends NaN to the
  false (left) side, AsTrue (``'Max'``) to the true (right) side; AsIs
  (``'Forbidden'``) compares NaN like CatBoost does, i.e. false.
* A split names ``float_feature_index`` / ``cat_feature_index``; the column of
  X is the feature's ``flat_feature_index``.
* ``scale_and_bias = [scale, [bias_0, ..]]``: raw = scale * sum(leaves) + bias.
  The scale is folded into the leaf values, the bias is the base margin. With
  ``boost_from_average`` the bias is the starting margin F^(0) the first tree
  was fitted at (checked by recomputing the leaves).
* Categorical values are hashed by CatBoost as the low 32 bits of CityHash64
  (v1.0) of the value's bytes (strings as UTF-8, integers and booleans as their
  decimal string); see :func:`catboost_cat_hash`. One-hot splits compare that
  hash with the split's ``value``. The encoder maps each hash seen in the
  model's one-hot splits to a dense code and everything else to -1 (a code in
  no set), and the split becomes ``SPLIT_CAT_RIGHT`` with a one-element set.

Leaf values and the fixed-structure Newton step (see the tests): with
``leaf_estimation_method='Newton'``, ``leaf_estimation_iterations=1``,
``boosting_type='Plain'`` and ``bootstrap_type='No'`` the RMSE and Logloss
leaves are exactly ``-eta * sum(w g) / (sum(w h) + lambda)`` with
``lambda = l2_leaf_reg * sum(w) / n`` (CatBoost scales its L2 by the mean
training weight, class weights included). ``reg_lambda`` is ``l2_leaf_reg``,
exact for unit weights; ``l2_weight_scaling='mean_weight'`` says to multiply
it by the mean row weight otherwise. MultiClass leaves are a full-hessian
Newton step ``-eta (sum H_j + lambda I)^-1 sum g_j`` with
``H_j = diag(p) - p p^T``, which no diagonal factor reproduces:
``exact_leaves`` is False for them.
"""
import json
import os
import tempfile

import numpy as np

from ..exceptions import DataValidationError, NotFittedError, UnsupportedModelError
from ._encode import TabularEncoder, is_dataframe, is_sparse
from ._flat import (RawTree, assemble_ensemble, build_ensemble, SPLIT_LE,
                    SPLIT_CAT_RIGHT, MISS_DEFAULT)

__all__ = ["parse", "reference", "catboost_cat_hash"]

_OBJECTIVES = {"RMSE": "regression", "Logloss": "binary",
               "CrossEntropy": "binary", "MultiClass": "multiclass"}
_SUPPORTED_LOSSES = "RMSE, Logloss, CrossEntropy, MultiClass"
_SPLIT_FLOAT = "FloatFeature"
_SPLIT_ONEHOT = "OneHotFeature"
_UNSEEN_CODE = -1.0


# ----------------------------------------------------------------------------
# CatBoost's categorical hash: low 32 bits of CityHash64 v1.0, as int32.
# ----------------------------------------------------------------------------
_M64 = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F
_K3 = 0xC949D7C7509E6557
_KMUL = 0x9DDFEA08EB382D69


def _u64(s, i):
    return int.from_bytes(s[i:i + 8], "little")


def _u32(s, i):
    return int.from_bytes(s[i:i + 4], "little")


def _rotr(v, k):
    return v if k == 0 else ((v >> k) | (v << (64 - k))) & _M64


def _shift_mix(v):
    return v ^ (v >> 47)


def _hash16(u, v):
    a = ((u ^ v) * _KMUL) & _M64
    a ^= a >> 47
    b = ((v ^ a) * _KMUL) & _M64
    b ^= b >> 47
    return (b * _KMUL) & _M64


def _hash_0_to_16(s, n):
    if n > 8:
        a, b = _u64(s, 0), _u64(s, n - 8)
        return _hash16(a, _rotr((b + n) & _M64, n)) ^ b
    if n >= 4:
        return _hash16((n + (_u32(s, 0) << 3)) & _M64, _u32(s, n - 4))
    if n > 0:
        y = (s[0] + (s[n >> 1] << 8)) & 0xFFFFFFFF
        z = (n + (s[n - 1] << 2)) & 0xFFFFFFFF
        return (_shift_mix(((y * _K2) ^ (z * _K3)) & _M64) * _K2) & _M64
    return _K2


def _hash_17_to_32(s, n):
    a = (_u64(s, 0) * _K1) & _M64
    b = _u64(s, 8)
    c = (_u64(s, n - 8) * _K2) & _M64
    d = (_u64(s, n - 16) * _K0) & _M64
    return _hash16((_rotr((a - b) & _M64, 43) + _rotr(c, 30) + d) & _M64,
                   (a + _rotr(b ^ _K3, 20) - c + n) & _M64)


def _hash_33_to_64(s, n):
    z = _u64(s, 24)
    a = (_u64(s, 0) + (n + _u64(s, n - 16)) * _K0) & _M64
    b = _rotr((a + z) & _M64, 52)
    c = _rotr(a, 37)
    a = (a + _u64(s, 8)) & _M64
    c = (c + _rotr(a, 7)) & _M64
    a = (a + _u64(s, 16)) & _M64
    vf = (a + z) & _M64
    vs = (b + _rotr(a, 31) + c) & _M64
    a = (_u64(s, 16) + _u64(s, n - 32)) & _M64
    z = _u64(s, n - 8)
    b = _rotr((a + z) & _M64, 52)
    c = _rotr(a, 37)
    a = (a + _u64(s, n - 24)) & _M64
    c = (c + _rotr(a, 7)) & _M64
    a = (a + _u64(s, n - 16)) & _M64
    wf = (a + z) & _M64
    ws = (b + _rotr(a, 31) + c) & _M64
    r = _shift_mix(((vf + ws) * _K2 + (wf + vs) * _K0) & _M64)
    return (_shift_mix((r * _K0 + vs) & _M64) * _K2) & _M64


def _weak_hash32(s, i, a, b):
    w, x, y, z = _u64(s, i), _u64(s, i + 8), _u64(s, i + 16), _u64(s, i + 24)
    a = (a + w) & _M64
    b = _rotr((b + a + z) & _M64, 21)
    c = a
    a = (a + x + y) & _M64
    b = (b + _rotr(a, 44)) & _M64
    return (a + z) & _M64, (b + c) & _M64


def _city_hash64(s):
    """CityHash64 (v1.0) of a bytes object, as an unsigned 64-bit int."""
    n = len(s)
    if n <= 16:
        return _hash_0_to_16(s, n)
    if n <= 32:
        return _hash_17_to_32(s, n)
    if n <= 64:
        return _hash_33_to_64(s, n)
    x = _u64(s, 0)
    y = _u64(s, n - 16) ^ _K1
    z = _u64(s, n - 56) ^ _K0
    v = _weak_hash32(s, n - 64, n, y)
    w = _weak_hash32(s, n - 32, (n * _K1) & _M64, _K0)
    z = (z + _shift_mix(v[1]) * _K1) & _M64
    x = (_rotr((z + x) & _M64, 39) * _K1) & _M64
    y = (_rotr(y, 33) * _K1) & _M64
    remaining = (n - 1) & ~63
    pos = 0
    while True:
        x = (_rotr((x + y + v[0] + _u64(s, pos + 16)) & _M64, 37) * _K1) & _M64
        y = (_rotr((y + v[1] + _u64(s, pos + 48)) & _M64, 42) * _K1) & _M64
        x ^= w[1]
        y ^= v[0]
        z = _rotr(z ^ w[0], 33)
        v = _weak_hash32(s, pos, (v[1] * _K1) & _M64, (x + w[0]) & _M64)
        w = _weak_hash32(s, pos + 32, (z + w[1]) & _M64, y)
        z, x = x, z
        pos += 64
        remaining -= 64
        if remaining == 0:
            break
    return _hash16((_hash16(v[0], w[0]) + _shift_mix(y) * _K1 + z) & _M64,
                   (_hash16(v[1], w[1]) + x) & _M64)


def _cat_bytes(value):
    """The bytes CatBoost hashes for one categorical value, or None if it refuses it."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bool, int, np.bool_, np.integer)):
        return str(int(value)).encode("ascii")
    return None


def catboost_cat_hash(value):
    """CatBoost's hash of a categorical value (int32, as in its JSON export).

    Strings are hashed as UTF-8, integers and booleans as their decimal string
    (CatBoost converts them so); floats, NaN and None are refused by CatBoost
    and raise :class:`~treeinf.exceptions.DataValidationError` here.
    """
    raw = _cat_bytes(value)
    if raw is None:
        raise DataValidationError(
            f"Categorical value {value!r} of type {type(value).__name__} cannot be "
            "used: CatBoost accepts only integers and strings as categorical "
            "values (convert floats and NaN to strings, as at training time).")
    h = _city_hash64(raw) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


# ----------------------------------------------------------------------------
# Encoder: raw categorical values -> dense codes of the model's one-hot hashes
# ----------------------------------------------------------------------------
class CatBoostEncoder(TabularEncoder):
    """Encoder whose categorical codes index the hashes of CatBoost's one-hot splits.

    Parameters
    ----------
    hash_codes : dict {column: dict {hash: code}}
        For every categorical column of X, the code of each hash that occurs
        in the model's one-hot splits on it. Any other value gets -1, a code
        in no split's set (CatBoost's one-hot split is false for it).
    Other parameters as :class:`TabularEncoder`.
    """

    def __init__(self, n_features, hash_codes, feature_names=None,
                 input_dtype=np.float32, preprocessor=None, model_name="model"):
        super().__init__(n_features, feature_names=feature_names,
                         input_dtype=input_dtype,
                         categorical_columns=sorted(hash_codes),
                         preprocessor=preprocessor, model_name=model_name)
        self.hash_codes = {int(c): {int(h): int(k) for h, k in m.items()}
                           for c, m in hash_codes.items()}

    def _code(self, value, col, cache):
        code = cache.get(value)
        if code is None:
            try:
                h = catboost_cat_hash(value)
            except DataValidationError as exc:
                raise DataValidationError(f"Column {self._name(col)}: {exc}") from None
            code = float(self.hash_codes.get(col, {}).get(h, _UNSEEN_CODE))
            cache[value] = code
        return code

    def _encode_categorical(self, values, col):
        cache = {}
        values = np.asarray(values, dtype=object)
        out = np.empty(values.shape[0], dtype=np.float64)
        for i, v in enumerate(values):
            try:
                out[i] = self._code(v, col, cache)
            except TypeError:  # unhashable value: CatBoost refuses it as well
                raise DataValidationError(
                    f"Column {self._name(col)} holds a value of type "
                    f"{type(v).__name__}; categorical values must be integers "
                    "or strings.") from None
        return out

    def _encode_series(self, col, j):
        if str(col.dtype) == "category":
            cats = col.cat.categories
            codes = col.cat.codes.to_numpy()
            if np.any(codes < 0):
                raise DataValidationError(
                    f"Column {self._name(j)} holds missing values; CatBoost does "
                    "not accept NaN as a categorical value (convert it to a "
                    "string such as 'nan', as at training time).")
            table = self._encode_categorical(np.asarray(cats, dtype=object), j)
            return table[codes]
        if col.dtype.kind == "f":
            raise DataValidationError(
                f"Column {self._name(j)} is categorical in the model but has float "
                f"dtype {col.dtype}; CatBoost accepts only integers and strings as "
                "categorical values.")
        return self._encode_categorical(col.to_numpy(dtype=object), j)

    def _from_frame(self, X):
        self._check_names(X.columns)
        self._check_shape(X, X.shape[1])
        if not self.categorical_columns:
            return super()._from_frame(X)
        X = X.copy(deep=False)
        for j in self.categorical_columns:
            X.isetitem(j, self._encode_series(X.iloc[:, j], j))
        return super()._from_frame(X)

    def _from_array(self, X):
        if not self.categorical_columns:
            return super()._from_array(X)
        if is_sparse(X):
            self._refuse_sparse(X, f"it has categorical columns {self.categorical_columns}, "
                                "whose values CatBoost takes as integers or strings")
        arr = np.asarray(X)
        if arr.ndim != 2:
            return super()._from_array(arr)  # raises the shape error
        self._check_shape(arr, arr.shape[1])
        if arr.dtype.kind == "f":
            raise DataValidationError(
                f"X is a float array, but {self.model_name} has categorical "
                f"columns {self.categorical_columns}; CatBoost accepts only "
                "integers and strings there: pass an object array or a DataFrame.")
        return self._columns_from_array(arr)


# ----------------------------------------------------------------------------
# Reading the model
# ----------------------------------------------------------------------------
def _model_json(model):
    fd, path = tempfile.mkstemp(suffix=".json", prefix="treeinf_catboost_")
    os.close(fd)
    try:
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except UnsupportedModelError:
        raise
    except Exception as exc:
        raise UnsupportedModelError(
            f"The {type(model).__name__} could not be exported to CatBoost's JSON "
            f"format ({exc}); models with CTR, text or embedding features are not "
            "supported.") from exc
    finally:
        os.remove(path)


def _loss_name(model, info_params):
    loss = info_params.get("loss_function")
    if isinstance(loss, dict) and loss.get("type"):
        return str(loss["type"])
    return str(model._object._get_loss_function_name())


def _reject_unsupported(model, J, name):
    info = J["features_info"]
    for key in ("text_features", "embedding_features", "estimated_features"):
        if info.get(key):
            raise UnsupportedModelError(
                f"{name} uses {key.replace('_', ' ')}; only numeric and one-hot "
                "categorical features are supported.")
    if J.get("ctr_data") or info.get("ctrs"):
        cat_params = (J.get("model_info", {}).get("params", {}) or {}).get(
            "cat_feature_params", {}) or {}
        seen = cat_params.get("one_hot_max_size")
        raise UnsupportedModelError(
            f"{name} has CTR (target statistics) features of categorical columns"
            f"{'' if seen is None else f' (one_hot_max_size={seen})'}; only one-hot "
            "categorical splits are supported. Retrain with one_hot_max_size >= "
            "the number of categories of every categorical feature.")


def _check_split(split, name):
    kind = split.get("split_type")
    if kind == _SPLIT_FLOAT or kind == _SPLIT_ONEHOT:
        return
    if kind == "OnlineCtr":
        raise UnsupportedModelError(
            f"{name} splits on a CTR (target statistic) of categorical features; "
            "only one-hot categorical splits are supported. Retrain with "
            "one_hot_max_size >= the number of categories of every categorical "
            "feature (and max_ctr_complexity=1).")
    raise UnsupportedModelError(
        f"{name} has a split of type {kind!r}; only FloatFeature and "
        "OneHotFeature splits are supported.")


class _Splits:
    """Turns JSON splits into (feature column, kind, threshold, default_left, code)."""

    def __init__(self, J, name):
        info = J["features_info"]
        self.name = name
        self.float_col = {}
        self.nan_left = {}
        for f in info.get("float_features", []):
            idx = int(f["feature_index"])
            self.float_col[idx] = int(f["flat_feature_index"])
            treat = f.get("nan_value_treatment", "AsFalse")
            if treat not in ("AsFalse", "AsTrue", "AsIs"):
                raise UnsupportedModelError(
                    f"{name} has nan_value_treatment {treat!r}; supported are "
                    "AsFalse (nan_mode='Min'), AsTrue ('Max') and AsIs ('Forbidden').")
            # x > border is the "true" (right) side; NaN is false unless AsTrue
            self.nan_left[idx] = treat != "AsTrue"
        self.cat_col = {int(f["feature_index"]): int(f["flat_feature_index"])
                        for f in info.get("categorical_features", [])}
        self.hashes = {col: set() for col in self.cat_col.values()}
        self._codes = None

    def collect(self, split):
        _check_split(split, self.name)
        if split["split_type"] == _SPLIT_ONEHOT:
            col = self.cat_col[int(split["cat_feature_index"])]
            self.hashes[col].add(int(split["value"]))

    @property
    def codes(self):
        if self._codes is None:
            self._codes = {col: {h: k for k, h in enumerate(sorted(hs))}
                           for col, hs in self.hashes.items()}
        return self._codes

    def node(self, split):
        """(feature, kind, threshold, default_left, category set or None)."""
        if split["split_type"] == _SPLIT_FLOAT:
            idx = int(split["float_feature_index"])
            return (self.float_col[idx], SPLIT_LE, float(split["border"]),
                    self.nan_left[idx], None)
        col = self.cat_col[int(split["cat_feature_index"])]
        return (col, SPLIT_CAT_RIGHT, 0.0, True, [self.codes[col][int(split["value"])]])


class _TreeBuilder:
    """Accumulates the nodes of one explicit tree, K value columns per leaf."""

    def __init__(self):
        self.left, self.right, self.feature, self.threshold = [], [], [], []
        self.kind, self.missing, self.default_left = [], [], []
        self.values, self.leaf_id, self.categories = [], [], {}

    def add_split(self, spec):
        feature, kind, threshold, default_left, cats = spec
        node = self._add(feature, threshold, kind, default_left, None, -1)
        if cats is not None:
            self.categories[node] = cats
        return node

    def add_leaf(self, values, leaf_id):
        return self._add(0, 0.0, SPLIT_LE, True, values, leaf_id)

    def _add(self, feature, threshold, kind, default_left, values, leaf_id):
        self.left.append(-1)
        self.right.append(-1)
        self.feature.append(feature)
        self.threshold.append(threshold)
        self.kind.append(kind)
        self.missing.append(MISS_DEFAULT)
        self.default_left.append(default_left)
        self.values.append(values)
        self.leaf_id.append(leaf_id)
        return len(self.left) - 1

    def raw_trees(self, round_, K, scale):
        vals = np.zeros((len(self.values), K))
        for node, v in enumerate(self.values):
            if v is not None:
                vals[node] = v
        return [RawTree(left=list(self.left), right=list(self.right),
                        feature=list(self.feature), threshold=list(self.threshold),
                        kind=list(self.kind), missing=list(self.missing),
                        default_left=list(self.default_left),
                        value=scale * vals[:, c], leaf_id=list(self.leaf_id),
                        round=round_, output=c, categories=dict(self.categories))
                for c in range(K)]


def _tree_splits(tree):
    """The splits of a symmetric tree; ``[]`` for a tree without a split.

    CatBoost exports a tree that found no split (e.g. ``rsm`` < 1 left it no
    feature, or ``depth=0``) with ``"splits": null``: a single leaf, leaf
    index 0.
    """
    splits = tree.get("splits")
    return [] if splits is None else splits


def _bit_reverse(pos, depth):
    """``pos`` (int64 array) with its lowest ``depth`` bits in reverse order."""
    out = np.zeros_like(pos)
    for lvl in range(depth):
        out |= ((pos >> (depth - 1 - lvl)) & 1) << lvl
    return out


def _oblivious_arrays(trees, splits, K, scale):
    """Concatenated node and leaf arrays of all symmetric trees at once.

    Each tree of depth d becomes an explicit binary tree in breadth-first
    order: internal node k (k < 2^d - 1) has children 2k+1 (split false) and
    2k+2 (split true) and tests ``splits[level(k)]``. The leaf at position p
    of the last level went "true" at level l iff bit (d-1-l) of p is set, and
    CatBoost's leaf index sets bit l for it, so its leaf id (and compact leaf
    index) is p with its d bits reversed. A round gives K trees (one per
    output) that share the nodes. Trees of equal depth are built together.

    Returns a dict of the keyword arguments of :func:`assemble_ensemble` that
    describe the trees.
    """
    n_rounds = len(trees)
    depth = np.fromiter((len(_tree_splits(t)) for t in trees), dtype=np.int64,
                        count=n_rounds)
    n_values = np.fromiter((len(t["leaf_values"]) for t in trees), dtype=np.int64,
                           count=n_rounds)
    bad = np.flatnonzero(n_values != K << depth)
    if bad.size:
        r = int(bad[0])
        raise UnsupportedModelError(
            f"{splits.name} has a symmetric tree of depth {depth[r]} with "
            f"{n_values[r]} leaf values, expected {K << depth[r]} ({K} per leaf).")
    # one spec per split, trees in order: split l of round r is split_start[r] + l
    specs = [splits.node(sp) for t in trees for sp in _tree_splits(t)]
    feat = np.array([sp[0] for sp in specs] + [0], dtype=np.int64)  # + a dummy for leaves
    kind = np.array([sp[1] for sp in specs] + [SPLIT_LE], dtype=np.int64)
    thr = np.array([sp[2] for sp in specs] + [0.0], dtype=np.float64)
    dleft = np.array([sp[3] for sp in specs] + [True], dtype=bool)
    code = np.array([sp[4][0] if sp[4] is not None else -1 for sp in specs] + [-1],
                    dtype=np.int64)
    dummy = len(specs)
    split_start = np.concatenate(([0], np.cumsum(depth)[:-1]))
    # one bitset per category code of a one-hot split, shared by its nodes
    codes = np.unique(code[code >= 0])
    n_words = codes // 32 + 1
    word_start = np.concatenate(([0], np.cumsum(n_words)[:-1])).astype(np.int64)
    cat_bits = np.zeros(max(int(n_words.sum()), 1), dtype=np.uint32)
    cat_bits[word_start + (codes >> 5)] = np.left_shift(1, codes & 31).astype(np.uint32)
    is_cat = code >= 0
    split_cat_start = np.zeros(code.shape[0], dtype=np.int64)
    split_cat_len = np.zeros(code.shape[0], dtype=np.int64)
    split_cat_start[is_cat] = word_start[np.searchsorted(codes, code[is_cat])]
    split_cat_len[is_cat] = n_words[np.searchsorted(codes, code[is_cat])]

    tree_depth = np.repeat(depth, K)  # trees ordered by round, then output
    n_nodes = (2 << tree_depth) - 1
    n_leaves = 1 << tree_depth
    node_start = np.concatenate(([0], np.cumsum(n_nodes)))
    leaf_offset = np.concatenate(([0], np.cumsum(n_leaves)))
    total = int(node_start[-1])
    out = {name: np.empty(total, dtype=dt) for name, dt in (
        ("node_left", np.int64), ("node_right", np.int64), ("node_feature", np.int64),
        ("node_threshold", np.float64), ("node_kind", np.int64),
        ("node_default_left", bool), ("node_cat_start", np.int64),
        ("node_cat_len", np.int64), ("node_leaf", np.int64))}
    leaf_value = np.empty(int(leaf_offset[-1]), dtype=np.float64)
    flat_values = np.fromiter((v for t in trees for v in t["leaf_values"]),
                              dtype=np.float64, count=int(n_values.sum()))
    value_start = np.concatenate(([0], np.cumsum(n_values)))
    for d in np.unique(depth).tolist():
        rounds = np.flatnonzero(depth == d)
        tids = (rounds[:, None] * K + np.arange(K)).ravel()  # (round, output) order
        n_int, n_all = (1 << d) - 1, (2 << d) - 1
        local = np.arange(n_all)
        internal = local < n_int
        level = np.repeat(np.arange(d + 1), 1 << np.arange(d + 1))  # (n_all,)
        base = node_start[tids][:, None]
        pos = base + local  # (n_trees_d, n_all) global node index
        out["node_left"][pos] = np.where(internal, base + 2 * local + 1, -1)
        out["node_right"][pos] = np.where(internal, base + 2 * local + 2, -1)
        sidx = np.where(internal, split_start[np.repeat(rounds, K)][:, None] + level, dummy)
        out["node_feature"][pos] = feat[sidx]
        out["node_threshold"][pos] = thr[sidx]
        out["node_kind"][pos] = kind[sidx]
        out["node_default_left"][pos] = dleft[sidx]
        out["node_cat_start"][pos] = split_cat_start[sidx]
        out["node_cat_len"][pos] = split_cat_len[sidx]
        out["node_leaf"][pos] = np.concatenate((np.full(n_int, -1),
                                                _bit_reverse(np.arange(1 << d), d)))
        # CatBoost stores values leaf-major (leaf * K + c), leaf = its leaf id
        vals = flat_values[value_start[rounds][:, None] + np.arange(K << d)]
        vals = vals.reshape(rounds.size, 1 << d, K).transpose(0, 2, 1).reshape(-1, 1 << d)
        leaf_value[leaf_offset[tids][:, None] + np.arange(1 << d)] = scale * vals
    return dict(
        out, node_missing=np.full(total, MISS_DEFAULT, dtype=np.int64), cat_bits=cat_bits,
        tree_root=node_start[:-1], tree_round=np.repeat(np.arange(n_rounds), K),
        tree_output=np.tile(np.arange(K), n_rounds), leaf_offset=leaf_offset,
        leaf_value=leaf_value,
        leaf_library_id=np.arange(leaf_offset[-1]) - np.repeat(leaf_offset[:-1], n_leaves))


def _nonsymmetric_tree(tree, splits, K, steps, node_to_leaf):
    """Explicit tree of a non-symmetric CatBoost tree.

    CatBoost stores such a tree as step nodes: node ``i`` continues to node
    ``i + left_diff`` when its split is false and ``i + right_diff`` when it is
    true; a zero diff ends the walk at ``i`` and the leaf id is
    ``node_to_leaf[i]``. The JSON export nests the same nodes depth first; both
    are walked together so each JSON leaf gets CatBoost's own leaf id.
    """
    b = _TreeBuilder()

    def leaf(node, cb_node):
        if "split" in node:
            raise UnsupportedModelError(
                f"{splits.name}: the JSON tree and CatBoost's step nodes disagree.")
        value = np.atleast_1d(np.asarray(node["value"], dtype=np.float64))
        if value.shape[0] != K:
            raise UnsupportedModelError(
                f"{splits.name} has a leaf with {value.shape[0]} values, expected {K}.")
        return b.add_leaf(value, int(node_to_leaf[cb_node]))

    def grow(node, cb_node):
        left_diff, right_diff = (int(d) for d in steps[cb_node])
        if "split" not in node:
            return leaf(node, cb_node)
        idx = b.add_split(splits.node(node["split"]))
        b.left[idx] = (grow(node["left"], cb_node + left_diff) if left_diff
                       else leaf(node["left"], cb_node))
        b.right[idx] = (grow(node["right"], cb_node + right_diff) if right_diff
                        else leaf(node["right"], cb_node))
        return idx

    grow(tree, 0)
    return b


def _walk_splits(J):
    for tree in J.get("oblivious_trees", []):
        yield from _tree_splits(tree)
    stack = list(J.get("trees", []))
    while stack:
        node = stack.pop()
        if "split" in node:
            yield node["split"]
            stack.extend((node["left"], node["right"]))


def _class_weight(dp, name, classes, K_classes):
    weights = dp.get("class_weights") or []
    auto = dp.get("auto_class_weights", "None") or "None"
    if not weights:
        if auto not in ("None", None):
            raise UnsupportedModelError(
                f"{name} was trained with auto_class_weights={auto!r} but its "
                "class weights are not recorded; pass class_weights explicitly.")
        return None
    weights = np.asarray(weights, dtype=np.float64)
    if K_classes is not None and weights.shape[0] != K_classes:
        raise UnsupportedModelError(
            f"{name} has {weights.shape[0]} class weights for {K_classes} classes.")
    if np.all(weights == 1.0):
        return None
    return weights


def _check_fitted(model):
    fitted = getattr(model, "is_fitted", None)
    if fitted is None or not fitted():
        raise NotFittedError(
            f"This {type(model).__name__} is not fitted yet; call fit() before "
            "parsing it.")


def parse(model):
    """Parse a fitted CatBoost model into a :class:`FlatEnsemble`.

    Raises
    ------
    NotFittedError
        If the model is not trained.
    UnsupportedModelError
        For losses other than RMSE, Logloss, CrossEntropy and MultiClass,
        multi-output models, CTR / text / embedding features, or split types
        other than float and one-hot categorical.
    """
    _check_fitted(model)
    name = type(model).__name__
    obj = model._object
    for getter, what in (("_get_text_feature_indices", "text"),
                         ("_get_embedding_feature_indices", "embedding")):
        if hasattr(obj, getter) and len(getattr(obj, getter)()):
            raise UnsupportedModelError(
                f"{name} uses {what} features; only numeric and one-hot "
                "categorical features are supported.")
    J = _model_json(model)
    info_params = J.get("model_info", {}).get("params", {}) or {}
    loss = _loss_name(model, info_params)
    objective = _OBJECTIVES.get(loss)
    if objective is None:
        raise UnsupportedModelError(
            f"{name} uses loss_function {loss!r}; supported are "
            f"{_SUPPORTED_LOSSES}.")
    _reject_unsupported(model, J, name)

    scale, bias = J.get("scale_and_bias", [1.0, [0.0]])
    bias = np.atleast_1d(np.asarray(bias, dtype=np.float64))
    K = int(bias.shape[0])
    if (objective == "multiclass") != (K > 1):
        raise UnsupportedModelError(
            f"{name} with loss {loss} has {K} output dimensions; multi-output "
            "models other than MultiClass are not supported.")

    splits = _Splits(J, name)
    for s in _walk_splits(J):
        splits.collect(s)

    if J.get("oblivious_trees") and J.get("trees"):
        raise UnsupportedModelError(f"{name} mixes symmetric and non-symmetric trees.")
    if "oblivious_trees" in J:
        n_rounds = len(J["oblivious_trees"])
        tree_arrays = (_oblivious_arrays(J["oblivious_trees"], splits, K, float(scale))
                       if n_rounds else None)
    else:
        builders = [_nonsymmetric_tree(t, splits, K, obj._get_tree_step_nodes(i),
                                       obj._get_tree_node_to_leaf(i))
                    for i, t in enumerate(J.get("trees", []))]
        n_rounds = len(builders)
        trees = [raw for r, b in enumerate(builders) for raw in b.raw_trees(r, K, float(scale))]
    if not n_rounds:
        raise NotFittedError(f"This {name} has no trees.")

    n_features = int(obj._get_n_features_in()) if hasattr(
        obj, "_get_n_features_in") else None
    info = J["features_info"]
    feats = info.get("float_features", []) + info.get("categorical_features", [])
    if not n_features:
        n_features = max(int(f["flat_feature_index"]) for f in feats) + 1
    ids = {int(f["flat_feature_index"]): f.get("feature_id", "") for f in feats}
    feature_names = None
    if len(ids) == n_features and all(ids.get(j) for j in range(n_features)):
        feature_names = [str(ids[j]) for j in range(n_features)]

    encoder = CatBoostEncoder(n_features, splits.codes, feature_names=feature_names,
                              input_dtype=np.float32, model_name=name)

    classes = None
    class_params = J.get("model_info", {}).get("class_params") or {}
    if objective != "regression":
        labels = getattr(model, "classes_", None)
        if labels is None or len(labels) == 0:
            labels = class_params.get("class_names") or None
        if labels is not None and len(labels) == (K if K > 1 else 2):
            classes = np.asarray(labels)

    tl = info_params.get("tree_learner_options", {}) or {}
    bo = info_params.get("boosting_options", {}) or {}
    dp = info_params.get("data_processing_options", {}) or {}
    boot = tl.get("bootstrap", {}) or {}
    n_classes = (K if K > 1 else 2) if objective != "regression" else None
    class_weight = _class_weight(dp, name, classes, n_classes)
    lr = bo.get("learning_rate")
    if lr is None:
        lr = obj._get_learning_rate()
    if not isinstance(lr, (int, float, np.floating, np.integer)):
        raise UnsupportedModelError(
            "this CatBoost model carries no single training learning rate (got "
            f"{lr!r}); models combined with catboost.sum_models or otherwise stripped "
            "of their training parameters are not supported. Explain a model "
            "trained by one CatBoost fit.")
    l2 = float(tl.get("l2_leaf_reg", 3.0))
    shrink_rate = float(bo.get("model_shrink_rate", 0.0) or 0.0)
    params = {
        "loss_function": loss,
        "grow_policy": tl.get("grow_policy", "SymmetricTree"),
        "depth": tl.get("depth"),
        "leaf_estimation_method": tl.get("leaf_estimation_method"),
        "leaf_estimation_iterations": tl.get("leaf_estimation_iterations"),
        "leaf_estimation_backtracking": tl.get("leaf_estimation_backtracking"),
        "boosting_type": bo.get("boosting_type"),
        "bootstrap_type": boot.get("type"),
        "subsample": boot.get("subsample"),
        "bagging_temperature": boot.get("bagging_temperature"),
        "sampling_frequency": tl.get("sampling_frequency"),
        "rsm": tl.get("rsm"),
        "random_strength": tl.get("random_strength"),
        "l2_leaf_reg": l2,
        "boost_from_average": bo.get("boost_from_average"),
        "model_shrink_rate": shrink_rate,
        "model_shrink_mode": bo.get("model_shrink_mode"),
        "posterior_sampling": bo.get("posterior_sampling"),
        "langevin": bo.get("langevin"),
        "nan_mode": (dp.get("float_features_binarization", {}) or {}).get("nan_mode"),
        "one_hot_max_size": (info_params.get("cat_feature_params", {}) or {}).get(
            "one_hot_max_size"),
        "scale": float(scale),
        "n_trees": n_rounds,
        "best_iteration": model.get_best_iteration(),
        "multiclass_newton": "full_hessian" if objective == "multiclass" else None,
        # CatBoost keeps labels and weights in float32: recomputed leaves and
        # the boost_from_average bias match only with float32 y and w
        "target_dtype": "float32",
        "weight_dtype": "float32",
    }
    method = params["leaf_estimation_method"]
    reasons = []
    if objective == "multiclass":
        reasons.append("MultiClass leaves are a full-hessian Newton step")
    # for RMSE (h = 1) one Gradient step equals one Newton step
    if not (method == "Newton" or (objective == "regression" and method == "Gradient")):
        reasons.append(f"leaf_estimation_method={method!r}")
    if params["leaf_estimation_iterations"] != 1:
        reasons.append(f"leaf_estimation_iterations={params['leaf_estimation_iterations']}")
    if params["boosting_type"] != "Plain":
        reasons.append(f"boosting_type={params['boosting_type']!r}")
    if params["bootstrap_type"] != "No":
        reasons.append(f"bootstrap_type={params['bootstrap_type']!r}")
    if shrink_rate != 0.0:
        reasons.append(f"model_shrink_rate={shrink_rate:g}")
    if params["posterior_sampling"] or params["langevin"]:
        reasons.append("posterior_sampling/langevin")
    if float(scale) != 1.0:
        reasons.append(f"scale_and_bias scale={float(scale):g}")

    # no diagonal factor reproduces MultiClass leaves (params['multiclass_newton']);
    # K/(K-1) is the closest one (max leaf error ~0.05 against ~0.15 for f=1 or 2)
    K_factor = K / (K - 1.0) if K > 1 else 1.0
    meta = dict(base_margin=bias, objective=objective, kind="boosting",
                learning_rate=float(lr), encoder=encoder, library="catboost",
                model_name=name, reg_lambda=l2, reg_alpha=0.0, hessian_factor=K_factor,
                classes=classes, params=params, class_weight=class_weight,
                # CatBoost multiplies l2_leaf_reg by the mean training weight
                l2_weight_scaling="mean_weight", exact_leaves=not reasons,
                exact_leaves_reasons=reasons)
    if "oblivious_trees" in J:
        # leaf_weights: summed weight (class weights included) of every
        # learning row in each leaf, bootstrap or not
        stat = []
        for t in J["oblivious_trees"]:
            n_leaf = len(t["leaf_values"]) // K
            lw = np.asarray(t.get("leaf_weights") or [], dtype=np.float64)
            stat.extend([lw if lw.shape[0] == n_leaf else np.full(n_leaf, np.nan)] * K)
        meta.update(leaf_train_stat=np.concatenate(stat), leaf_train_stat_kind="weight",
                    leaf_train_stat_exact=True)
        return assemble_ensemble(**tree_arrays, **meta)
    return build_ensemble(trees, **meta)


def reference(model, X):
    """CatBoost's own raw margins and leaf indices on X (user input)."""
    from catboost import Pool
    cat = list(model.get_cat_feature_indices())
    if is_dataframe(X):
        pool = Pool(X, cat_features=cat or None)
    elif is_sparse(X):
        pool = Pool(X, cat_features=cat or None)
    else:
        arr = np.asarray(X)
        pool = Pool(arr, cat_features=cat or None)
    margin = np.asarray(model.predict(pool, prediction_type="RawFormulaVal"),
                        dtype=np.float64)
    if margin.ndim == 1:
        margin = margin[:, None]
    leaves = np.asarray(model.calc_leaf_indexes(pool), dtype=np.int64)
    K = margin.shape[1]
    leaves = np.repeat(leaves[:, :, None], K, axis=2)
    return {"margin": margin, "leaves": leaves}
