"""LightGBM models (``LGBMRegressor``, ``LGBMClassifier``, ``LGBMModel``,
``lightgbm.Booster``) -> :class:`~treeinf._trees._flat.FlatEnsemble`.

The model is read from its text form (``Booster.model_to_string``), which
holds every threshold and leaf value with 17 significant digits, i.e. the
exact doubles LightGBM predicts with, and the node arrays in LightGBM's own
numbering (leaf ``~child``), so leaf ids are the ones ``pred_leaf`` reports.

What LightGBM does when predicting, and how it is mapped here:

* numerical node ``x <= threshold`` goes left (doubles). ``missing_type``
  (bits 2-3 of ``decision_type``): None -> NaN is replaced by 0.0 before the
  comparison (``MISS_AS_ZERO``); Zero -> NaN or ``|x| <= kZeroThreshold``
  takes the default side (``MISS_ZERO_DEFAULT``); NaN -> NaN takes the default
  side (``MISS_DEFAULT``).
* categorical node: ``int(x)`` (truncation toward zero) in the node's bitset
  goes left. NaN and ``int(x) < 0`` go right whatever the missing type
  (LightGBM's ``static_cast<int>(NaN)`` is negative on x86; checked in the
  tests), so every categorical node is ``MISS_DEFAULT`` with default right.
  Values in (-1, 0) truncate to category 0: the encoder maps them to 0.0,
  since the kernel treats any negative value as "not in the set".
* ``kZeroThreshold`` is the float ``1e-35f`` (1.0000000180025095e-35 as a
  double); the kernel's ``ZERO_THRESHOLD`` is that same value. LightGBM's
  ``predict`` reads a dense row (numpy array or DataFrame) by keeping only
  values with ``|x| > kZeroThreshold`` or NaN, so every ``|x| <=
  kZeroThreshold`` is 0.0 before any node compares it, whatever the missing
  type: training on zeros and negatives often yields the threshold
  ``-kZeroThreshold``, and ``x = -kZeroThreshold`` goes right there (as 0.0),
  not left. The encoder applies that rule to dense input. Stored entries of
  a scipy sparse matrix are passed as they are (LightGBM's CSR/CSC readers do
  not filter them), so a stored ``-kZeroThreshold`` goes left, as in
  LightGBM; the Zero missing type still sends ``|x| <= kZeroThreshold`` to
  the default side (``IsZero`` in ``NumericalDecision``), in the kernel.
* ``boost_from_average``: the init score F0 is added to every leaf of the
  first tree of each class (``Tree::AddBias``, which also forces the tree's
  ``shrinkage`` to 1). It is taken back out into ``base_margin``; see
  :func:`_fold_out_init_score`. A first tree that cannot split becomes a
  constant tree holding F0 alone: its value goes to ``base_margin`` and the
  tree's leaf to 0.
* multiclass softmax: trees are stored iteration-major (tree ``t*K + k``),
  the order treeinf uses; the hessian LightGBM fits is
  ``K/(K-1) p (1-p)`` (``hessian_factor``), verified by recomputing leaves.
* ``boosting='rf'``: every tree holds F0 plus its own Newton value and the
  prediction is the average of the trees: parsed as ``kind='forest'`` with
  ``base_margin`` 0 and leaf values divided by the number of trees.
"""
import json
import re

import numpy as np

from ..exceptions import DataValidationError, NotFittedError, UnsupportedModelError
from .._kernels.traversal import ZERO_THRESHOLD
from ._encode import TabularEncoder, is_sparse
from ._flat import (RawTree, build_ensemble, SPLIT_LE, SPLIT_CAT_LEFT,
                    MISS_DEFAULT, MISS_AS_ZERO, MISS_ZERO_DEFAULT)

__all__ = ["parse", "reference"]

LIBRARY = "lightgbm"

# decision_type bits (LightGBM include/LightGBM/tree.h)
_CATEGORICAL_MASK = 1
_DEFAULT_LEFT_MASK = 2
_MISSING_RULE = {0: MISS_AS_ZERO, 1: MISS_ZERO_DEFAULT, 2: MISS_DEFAULT}

# |init score| at or below this is not folded into the first tree
_K_EPSILON = 1e-15

_SUPPORTED_OBJECTIVES = ("regression (L2)", "binary (sigmoid:1)",
                         "multiclass (softmax)")


# --------------------------------------------------------------------- input
class LightGBMEncoder(TabularEncoder):
    """:class:`TabularEncoder` that maps input as LightGBM's ``predict`` does.

    * DataFrame columns of pandas ``category`` dtype are matched, in the order
      they appear, with the model's ``pandas_categorical`` lists (by position
      among the category columns, as LightGBM does, not by column name) and
      replaced by their codes; values outside the training categories become
      NaN. A model trained without pandas categories uses each frame's own
      categories, again as LightGBM does.
    * Values in (-1, 0) of categorical columns become 0.0 (LightGBM truncates
      them to category 0).
    * Dense input: values with ``|x| <= kZeroThreshold`` become 0.0, as
      LightGBM's dense row reader makes them (not for sparse matrices, whose
      stored values LightGBM keeps).
    * Feature names are compared after LightGBM's replacement of whitespace
      by ``_``.

    Parameters
    ----------
    pandas_categorical : list of list or None
        ``Booster.pandas_categorical``: the categories of each pandas
        ``category`` column at training time, in column order.
    split_categorical : sequence of int
        Columns the model splits on categorically.
    Other parameters as :class:`TabularEncoder`.
    """

    def __init__(self, n_features, feature_names=None, pandas_categorical=None,
                 split_categorical=(), categories=None, categorical_columns=None,
                 preprocessor=None, model_name="model"):
        super().__init__(n_features, feature_names=feature_names,
                         input_dtype=np.float64, categories=categories,
                         categorical_columns=categorical_columns,
                         preprocessor=preprocessor, model_name=model_name)
        self.pandas_categorical = (None if pandas_categorical is None else
                                   [list(c) for c in pandas_categorical])
        self.split_categorical = np.asarray(sorted(set(int(c) for c in split_categorical)),
                                            dtype=np.int64)

    def _check_names(self, columns):
        if self.feature_names is None:
            return
        normalised = [re.sub(r"\s", "_", str(c)) for c in columns]
        expected = [re.sub(r"\s", "_", f) for f in self.feature_names]
        if normalised != expected:
            super()._check_names(columns)

    def _from_frame(self, X):
        dtypes = list(X.dtypes)
        cat_pos = [j for j, dt in enumerate(dtypes) if str(dt) == "category"]
        if cat_pos:
            if self.pandas_categorical is not None and len(self.pandas_categorical) != len(cat_pos):
                raise DataValidationError(
                    f"X has {len(cat_pos)} pandas 'category' columns, but "
                    f"{self.model_name} was trained on a DataFrame with "
                    f"{len(self.pandas_categorical)}; LightGBM matches category "
                    "columns by their order, so pass the same category columns as "
                    "at training time.")
            X = X.copy(deep=False)
            for i, j in enumerate(cat_pos):
                col = X.iloc[:, j]
                if self.pandas_categorical is not None:
                    cats = self.pandas_categorical[i]
                    if list(col.cat.categories) != cats:
                        col = col.cat.set_categories(cats)
                codes = col.cat.codes.to_numpy().astype(np.float64)
                codes[codes < 0] = np.nan
                X.isetitem(j, codes)
        return _zero_tiny(super()._from_frame(X))

    def _from_array(self, X):
        out = super()._from_array(X)
        return out if is_sparse(X) else _zero_tiny(out)

    def transform(self, X):
        out = super().transform(X)
        # LightGBM truncates categorical values toward zero: (-1, 0) is category 0
        if self.split_categorical.size:
            block = out[:, self.split_categorical]
            block[(block > -1.0) & (block < 0.0)] = 0.0
            out[:, self.split_categorical] = block
        return out


def _zero_tiny(out):
    """``out`` (float64, owned) with ``|x| <= kZeroThreshold`` set to 0.0 in place."""
    out[np.abs(out) <= ZERO_THRESHOLD] = 0.0
    return out


# ------------------------------------------------------------ model reading
def _booster_of(model):
    """(booster, is_sklearn) or raise NotFittedError."""
    if hasattr(model, "model_to_string") and hasattr(model, "dump_model"):
        try:
            n_iter = model.current_iteration()
        except Exception as exc:
            raise NotFittedError(f"The lightgbm.Booster holds no model ({exc}).") from exc
        if n_iter <= 0 or model.num_trees() == 0:
            raise NotFittedError("The lightgbm.Booster has no trees; train it first.")
        return model, False
    booster = getattr(model, "_Booster", None)
    if booster is None:
        raise NotFittedError(
            f"This {type(model).__name__} instance is not fitted yet; call fit "
            "before parsing it.")
    if booster.num_trees() == 0:
        raise NotFittedError(f"This {type(model).__name__} has no trees.")
    return booster, True


def _is_average_output(booster):
    text = booster.model_to_string(num_iteration=1)
    head = text[:text.find("Tree=")] if "Tree=" in text else text
    return any(line.strip() == "average_output" for line in head.splitlines())


def _n_iterations(booster, num_iteration):
    """Iterations ``predict`` uses with this ``num_iteration`` (None: default)."""
    total = booster.current_iteration()
    if num_iteration is None:
        num_iteration = booster.best_iteration
    if num_iteration is None or num_iteration <= 0 or num_iteration > total:
        return total
    return int(num_iteration)


def _read_model_string(text):
    """Header dict, list of tree dicts and training-parameter dict."""
    header, trees, params = {}, [], {}
    section = "header"
    tree = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("Tree="):
            section = "trees"
            tree = {}
            trees.append(tree)
            continue
        if line == "end of trees":
            section = "after"
            continue
        if line == "parameters:":
            section = "params"
            continue
        if line == "end of parameters":
            section = "after"
            continue
        if section == "header":
            key, _, value = line.partition("=")
            header[key] = value if _ else True
        elif section == "trees":
            key, _, value = line.partition("=")
            tree[key] = value
        elif section == "params" and line.startswith("[") and line.endswith("]"):
            key, _, value = line[1:-1].partition(": ")
            params[key] = value
    return header, trees, params


def _floats(s):
    return np.array([float(v) for v in s.split()], dtype=np.float64) if s else np.zeros(0)


def _ints(s):
    return np.array([int(v) for v in s.split()], dtype=np.int64) if s else np.zeros(0, np.int64)


def _param(params, key, default, cast=float):
    value = params.get(key, "")
    if value == "":
        return default
    try:
        return cast(value)
    except ValueError:
        return default


def _flag(params, key, default=False):
    value = params.get(key, "")
    if value == "":
        return default
    return value.strip().lower() in ("1", "true")


def _objective(header, params, name):
    """('regression'|'binary'|'multiclass', K) or raise UnsupportedModelError."""
    text = header.get("objective")
    if not isinstance(text, str) or not text.strip():
        seen = params.get("objective", "none")
        raise UnsupportedModelError(
            f"{name} was trained with a custom objective (objective={seen!r}); "
            f"supported objectives: {', '.join(_SUPPORTED_OBJECTIVES)}.")
    tokens = text.split()
    kind, options = tokens[0], dict(t.split(":", 1) for t in tokens[1:] if ":" in t)
    flags = [t for t in tokens[1:] if ":" not in t]
    if kind == "regression" and not flags:
        return "regression", 1
    if kind == "regression":
        raise UnsupportedModelError(
            f"{name} uses objective 'regression' with {' '.join(flags)!r} "
            "(reg_sqrt=True fits sqrt-transformed labels); only plain squared "
            "error is supported.")
    if kind == "binary":
        sigmoid = float(options.get("sigmoid", 1.0))
        if sigmoid != 1.0:
            raise UnsupportedModelError(
                f"{name} uses objective 'binary' with sigmoid={sigmoid:g}; only "
                "sigmoid=1 (the logistic link) is supported.")
        return "binary", 1
    if kind == "multiclass":
        return "multiclass", int(options.get("num_class", header.get("num_class", 1)))
    if kind == "multiclassova":
        raise UnsupportedModelError(
            f"{name} uses objective 'multiclassova' (one-vs-all sigmoids, not "
            "softmax); use objective='multiclass'. Supported objectives: "
            f"{', '.join(_SUPPORTED_OBJECTIVES)}.")
    raise UnsupportedModelError(
        f"{name} uses objective {kind!r}; supported objectives: "
        f"{', '.join(_SUPPORTED_OBJECTIVES)}.")


# ------------------------------------------------------------------- trees
def _bitset_members(words):
    out = []
    for w, word in enumerate(words):
        word = int(word)
        for b in range(32):
            if (word >> b) & 1:
                out.append(32 * w + b)
    return out


def _raw_tree(t, rnd, out, scale, leaf_shift):
    """RawTree from one 'Tree=' block; leaves get ``(value + leaf_shift) * scale``."""
    n_leaves = int(t["num_leaves"])
    values = (_floats(t["leaf_value"]) + leaf_shift) * scale
    if n_leaves == 1:
        return RawTree(left=[-1], right=[-1], feature=[0], threshold=[0.0],
                       kind=[SPLIT_LE], missing=[MISS_DEFAULT], default_left=[False],
                       value=[values[0]], leaf_id=[0], round=rnd, output=out)
    n_int = n_leaves - 1
    n = n_int + n_leaves
    feature = np.zeros(n, np.int64)
    threshold = np.zeros(n)
    kind = np.full(n, SPLIT_LE, np.int64)
    missing = np.full(n, MISS_DEFAULT, np.int64)
    default_left = np.zeros(n, bool)
    left = np.full(n, -1, np.int64)
    right = np.full(n, -1, np.int64)
    value = np.zeros(n)
    leaf_id = np.full(n, -1, np.int64)

    def child(c):  # LightGBM: c >= 0 internal node, ~c a leaf
        return c if c >= 0 else n_int + (~c)

    left[:n_int] = [child(c) for c in _ints(t["left_child"])]
    right[:n_int] = [child(c) for c in _ints(t["right_child"])]
    feature[:n_int] = _ints(t["split_feature"])
    thr = _floats(t["threshold"])
    dtype = _ints(t["decision_type"])
    categories = {}
    if int(t.get("num_cat", "0")) > 0:
        bounds = _ints(t["cat_boundaries"])
        words = _ints(t["cat_threshold"])
    for j in range(n_int):
        dt = int(dtype[j])
        if dt & _CATEGORICAL_MASK:
            idx = int(thr[j])
            kind[j] = SPLIT_CAT_LEFT
            missing[j] = MISS_DEFAULT   # NaN and negatives go right
            default_left[j] = False
            categories[j] = _bitset_members(words[bounds[idx]:bounds[idx + 1]])
        else:
            threshold[j] = thr[j]
            missing[j] = _MISSING_RULE[(dt >> 2) & 3]
            default_left[j] = bool(dt & _DEFAULT_LEFT_MASK)
    value[n_int:] = values
    leaf_id[n_int:] = np.arange(n_leaves)
    return RawTree(left=left, right=right, feature=feature, threshold=threshold,
                   kind=kind, missing=missing, default_left=default_left,
                   value=value, leaf_id=leaf_id, round=rnd, output=out,
                   categories=categories)


def _leaf_lambdas(t, reg_lambda, cat_l2, many_vs_many):
    """L2 regulariser each leaf's value was computed with, in leaf-id order.

    LightGBM computes a leaf's value when the split creating it is chosen;
    for a many-vs-many categorical split (feature with more bins than
    ``max_cat_to_onehot``) it uses ``lambda_l2 + cat_l2``.
    """
    n_leaves = int(t["num_leaves"])
    lam = np.full(n_leaves, float(reg_lambda))
    if n_leaves == 1 or int(t.get("num_cat", "0")) == 0 or cat_l2 == 0.0:
        return lam
    feats = _ints(t["split_feature"])
    dtypes = _ints(t["decision_type"])
    for children in (_ints(t["left_child"]), _ints(t["right_child"])):
        for node, c in enumerate(children):
            if c < 0 and dtypes[node] & _CATEGORICAL_MASK and int(feats[node]) in many_vs_many:
                lam[~c] = reg_lambda + cat_l2
    return lam


def _g_root(c, H_root, objective, pos_weight):
    """Gradient sum over all rows at the init score c (see below)."""
    if objective == "binary" and pos_weight != 1.0:
        p0 = 1.0 / (1.0 + np.exp(-c))
        return (1.0 - pos_weight) * H_root / (1.0 - p0 + pos_weight * p0)
    return 0.0


def _root_value(t, c, eta, reg_lambda, reg_alpha, objective, pos_weight):
    """Root ``internal_value`` LightGBM stores for a first tree fitted at c."""
    H_root = float(_floats(t["leaf_weight"]).sum())
    G = _g_root(c, H_root, objective, pos_weight)
    G = np.sign(G) * max(abs(G) - reg_alpha, 0.0)
    return c - eta * G / (H_root + reg_lambda)


def _fold_out_init_score(t, eta, lam, reg_alpha, objective, pos_weight):
    """The init score F0 that ``Tree::AddBias`` added to this first tree.

    Each leaf holds ``F0 + eta v_l`` with ``v_l`` the Newton value
    ``-T_alpha(G_l) / (H_l + lambda)`` (``T_alpha`` the L1 soft threshold) of
    the leaf's gradient sum G_l at F0, and ``H_l`` is stored (``leaf_weight``).
    At F0 = the (weighted) label average the gradients of the rows the tree
    saw sum to a known G_root: 0 for squared error, softmax and the logistic
    loss, and ``(1-s) H / (1 - p0 + s p0)`` for the logistic loss with
    ``scale_pos_weight`` s (p0 = sigmoid(F0)). ``sum_l G_l = G_root`` is one
    monotone equation in F0, solved here; it is exact when the tree was
    grown on all training rows with plain Newton leaves. ``lam`` holds each
    leaf's L2 regulariser (see :func:`_leaf_lambdas`).
    """
    leaves = _floats(t["leaf_value"])
    H = _floats(t["leaf_weight"])
    Hl = H + lam
    H_root = float(H.sum())

    if reg_alpha == 0.0 and (objective != "binary" or pos_weight == 1.0):
        return float(np.dot(leaves, Hl) / Hl.sum())

    def f(c):  # decreasing in c; its root is F0
        d = leaves - c
        return float(np.dot(d, Hl) / eta + reg_alpha * np.sign(d).sum()
                     + _g_root(c, H_root, objective, pos_weight))

    lo, hi = float(leaves.min()), float(leaves.max())
    span = max(hi - lo, 1.0)
    while f(lo) < 0:
        lo -= span
        span *= 2
    span = max(hi - lo, 1.0)
    while f(hi) > 0:
        hi += span
        span *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    # at a jump of the L1 term the root is a leaf value itself
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------ parsing
def _classifier_class_weight(model, n_classes, name):
    cw = getattr(model, "class_weight", None)
    if cw is None:
        return None
    if isinstance(cw, str):
        raise UnsupportedModelError(
            f"{name} uses class_weight={cw!r}, whose per-class weights depend on "
            "the training label counts, which the model does not store; pass an "
            "explicit dict {label: weight} instead.")
    classes = list(getattr(model, "classes_", range(n_classes)))
    out = np.ones(len(classes))
    for label, w in dict(cw).items():
        if label not in classes:
            raise UnsupportedModelError(
                f"{name} has class_weight for label {label!r}, which is not one of "
                f"its classes {classes}.")
        out[classes.index(label)] = float(w)
    return out


def _categorical_columns(header, trees):
    """Columns split categorically, and each one's number of categories."""
    cols = {}
    infos = header.get("feature_infos", "")
    for j, info in enumerate(infos.split() if isinstance(infos, str) else ()):
        if info != "none" and not info.startswith("["):
            cols[j] = len(info.split(":"))
    for t in trees:
        if int(t.get("num_cat", "0")) > 0:
            for f, dt in zip(_ints(t["split_feature"]), _ints(t["decision_type"])):
                if dt & _CATEGORICAL_MASK:
                    cols.setdefault(int(f), 0)
    return cols


def parse(model, num_iteration=None):
    """Parse a trained LightGBM model into a :class:`FlatEnsemble`.

    Parameters
    ----------
    model : LGBMRegressor, LGBMClassifier, LGBMModel or lightgbm.Booster
    num_iteration : int or None, default=None
        Use the first ``num_iteration`` boosting iterations, as
        ``predict(num_iteration=...)`` does. None (default): the iterations
        ``predict`` uses by default, i.e. ``best_iteration`` after early
        stopping, else all.

    Returns
    -------
    FlatEnsemble

    Raises
    ------
    NotFittedError
        The model has not been trained.
    UnsupportedModelError
        Objective other than L2 regression, binary (sigmoid 1) or softmax
        multiclass; a custom objective; ``boosting='dart'``; linear trees;
        ``is_unbalance``; ``class_weight='balanced'``; a learning-rate
        schedule.
    """
    booster, is_sklearn = _booster_of(model)
    name = type(model).__name__
    n_iter = _n_iterations(booster, num_iteration)
    text = booster.model_to_string(num_iteration=n_iter)
    header, trees, params = _read_model_string(text)

    objective, K = _objective(header, params, name)
    n_per_iter = int(header.get("num_tree_per_iteration", K))
    if n_per_iter != K:
        raise UnsupportedModelError(
            f"{name} has {n_per_iter} trees per iteration for objective "
            f"{objective!r} with {K} classes; expected {K}.")
    boosting = params.get("boosting", "gbdt").strip().lower()
    if boosting in ("dart",):
        raise UnsupportedModelError(
            f"{name} uses boosting='dart' (trees are re-weighted by dropout after "
            "they are fitted); supported: 'gbdt', 'goss', 'rf'.")
    if boosting not in ("gbdt", "gbrt", "goss", "rf", "random_forest"):
        raise UnsupportedModelError(
            f"{name} uses boosting={boosting!r}; supported: 'gbdt', 'goss', 'rf'.")
    is_rf = boosting in ("rf", "random_forest") or header.get("average_output") is True
    if any(t.get("is_linear", "0").strip() == "1" for t in trees) or _flag(params, "linear_tree"):
        raise UnsupportedModelError(
            f"{name} was trained with linear_tree=True (leaves hold linear "
            "models); only constant leaves are supported.")
    if _flag(params, "is_unbalance") and objective == "binary":
        raise UnsupportedModelError(
            f"{name} was trained with is_unbalance=True, whose class weight "
            "depends on the training label counts, which the model does not "
            "store; use scale_pos_weight=n_negative/n_positive instead.")
    if len(trees) != n_iter * K:
        raise UnsupportedModelError(
            f"{name}: the model string holds {len(trees)} trees, expected "
            f"{n_iter} iterations x {K} classes.")

    lr_param = _param(params, "learning_rate", None)
    reg_lambda = _param(params, "lambda_l2", 0.0)
    reg_alpha = _param(params, "lambda_l1", 0.0)
    spw = _param(params, "scale_pos_weight", 1.0) if objective == "binary" else 1.0
    boost_from_average = _flag(params, "boost_from_average", True)

    n_leaves = [int(t["num_leaves"]) for t in trees]
    shrink = np.array([float(t.get("shrinkage", "1")) for t in trees])

    # learning rate: the shrinkage of every tree that was shrunk (not the first
    # iteration's trees, whose shrinkage AddBias forces to 1, nor stumps)
    shrunk = np.array([(i >= K or not boost_from_average) and n_leaves[i] > 1
                       for i in range(len(trees))], dtype=bool)
    if is_rf:
        eta = 1.0
    elif shrunk.any():
        rates = np.unique(shrink[shrunk])
        if rates.size > 1 and np.ptp(rates) > 1e-12 * np.max(np.abs(rates)):
            raise UnsupportedModelError(
                f"{name} was trained with a learning-rate schedule (tree "
                f"shrinkage takes the values {rates[:5].tolist()}); only a "
                "constant learning_rate is supported.")
        eta = float(rates[0])
    elif lr_param is not None:
        eta = float(lr_param)
    else:
        eta = float(shrink[0])

    bagging = (_param(params, "bagging_freq", 0, int) > 0
               and min(_param(params, "bagging_fraction", 1.0),
                       _param(params, "pos_bagging_fraction", 1.0),
                       _param(params, "neg_bagging_fraction", 1.0)) < 1.0)
    goss = (boosting == "goss"
            or params.get("data_sample_strategy", "bagging").strip() == "goss")
    not_newton = []
    if bagging:
        not_newton.append("bagging (bagging_fraction < 1 with bagging_freq > 0)")
    # GOSS samples rows only from iteration int(1 / learning_rate) on
    goss_full = int(1.0 / eta) if eta > 0 else 0
    if goss and n_iter > goss_full:
        not_newton.append(f"GOSS row sampling (from iteration {goss_full} on)")
    if _param(params, "max_delta_step", 0.0) > 0:
        not_newton.append("max_delta_step > 0")
    if _param(params, "path_smooth", 0.0) > 0:
        not_newton.append("path_smooth > 0")
    mono = params.get("monotone_constraints", "")
    if any(v not in ("0", "") for v in re.split(r"[,\s]+", mono)):
        not_newton.append("monotone_constraints")
    if _flag(params, "use_quantized_grad"):
        not_newton.append("use_quantized_grad")
    cat_cols = _categorical_columns(header, trees)
    max_onehot = _param(params, "max_cat_to_onehot", 4, int)
    cat_l2 = _param(params, "cat_l2", 10.0)
    many_vs_many = {j for j, n_bins in cat_cols.items() if n_bins == 0 or n_bins > max_onehot}
    # many-vs-many categorical splits give their leaves lambda_l2 + cat_l2
    # (FlatEnsemble.leaf_reg_lambda)
    leaf_lambda = [_leaf_lambdas(t, reg_lambda, cat_l2, many_vs_many) for t in trees]
    if is_rf:
        not_newton.append("boosting='rf' (random forest: no boosting rounds)")

    # ---- base margin: take boost_from_average's init score out of tree 0
    base = np.zeros(K)
    shift = np.zeros(len(trees))
    folded = np.zeros(K, dtype=bool)
    init_checks = []
    if not is_rf:
        for k in range(K):
            t = trees[k]
            if n_leaves[k] == 1:
                # constant first tree: it holds F0 only (AsConstantTree)
                base[k] = float(_floats(t["leaf_value"])[0])
                shift[k] = -base[k]
                folded[k] = base[k] != 0.0
                continue
            was_folded = (shrink[k] == 1.0 and eta != 1.0) or (
                eta == 1.0 and boost_from_average)
            if not was_folded:
                continue
            c = _fold_out_init_score(t, eta, leaf_lambda[k], reg_alpha, objective, spw)
            if abs(c) <= _K_EPSILON and eta == 1.0:
                continue
            base[k] = c
            shift[k] = -c
            folded[k] = True
            root = _floats(t.get("internal_value", ""))
            if root.size:  # printed with 6 significant digits
                init_checks.append(abs(root[0] - _root_value(t, c, eta, reg_lambda, reg_alpha,
                                                             objective, spw))
                                   <= 1e-5 * (1.0 + abs(root[0])))
    base_exact = not (bagging or any("max_delta_step" in r or "path_smooth" in r
                                     or "monotone" in r or "quantized" in r
                                     for r in not_newton)) and all(init_checks)

    scale = 1.0 / n_iter if is_rf else 1.0
    raw = [_raw_tree(t, i // K, i % K, scale, shift[i]) for i, t in enumerate(trees)]

    # ---- encoder
    feature_names = None
    if is_sklearn:
        if getattr(model, "_fitted_with_feature_names", False):
            feature_names = [str(f) for f in booster.feature_name()]
    else:
        names = booster.feature_name()
        if not all(f == f"Column_{j}" for j, f in enumerate(names)):
            feature_names = [str(f) for f in names]
    n_features = int(header.get("max_feature_idx", -1)) + 1
    pandas_cat = getattr(booster, "pandas_categorical", None)
    categories = None
    if pandas_cat and len(pandas_cat) == len(cat_cols):
        categories = dict(zip(sorted(cat_cols), pandas_cat))
    encoder = LightGBMEncoder(n_features, feature_names=feature_names,
                              pandas_categorical=pandas_cat,
                              split_categorical=sorted(cat_cols),
                              categories=categories,
                              categorical_columns=sorted(cat_cols), model_name=name)

    # ---- classes and class weights
    classes = None
    class_weight = None
    if is_sklearn and objective in ("binary", "multiclass") and hasattr(model, "classes_"):
        classes = np.asarray(model.classes_)
        class_weight = _classifier_class_weight(model, K if K > 1 else 2, name)
    if objective == "binary" and spw != 1.0:
        class_weight = (np.ones(2) if class_weight is None else class_weight) * np.array([1.0, spw])

    best = booster.best_iteration
    out_params = {
        "n_iterations": n_iter,
        "n_iterations_total": booster.current_iteration(),
        "best_iteration": int(best) if best else None,
        "boosting": "rf" if is_rf else ("goss" if goss else boosting),
        "boost_from_average": boost_from_average,
        "init_score_folded": folded,
        "base_margin_exact": bool(base_exact) and not is_rf,
        "bagging_fraction": _param(params, "bagging_fraction", 1.0),
        "bagging_freq": _param(params, "bagging_freq", 0, int),
        "pos_bagging_fraction": _param(params, "pos_bagging_fraction", 1.0),
        "neg_bagging_fraction": _param(params, "neg_bagging_fraction", 1.0),
        "feature_fraction": _param(params, "feature_fraction", 1.0),
        "feature_fraction_bynode": _param(params, "feature_fraction_bynode", 1.0),
        "subsample": (_param(params, "bagging_fraction", 1.0) if bagging else 1.0),
        "min_child_weight": _param(params, "min_sum_hessian_in_leaf", 1e-3),
        "min_data_in_leaf": _param(params, "min_data_in_leaf", 20, int),
        "max_delta_step": _param(params, "max_delta_step", 0.0),
        "path_smooth": _param(params, "path_smooth", 0.0),
        "cat_l2": cat_l2,
        "max_cat_to_onehot": max_onehot,
        "max_bin": _param(params, "max_bin", 255, int),
        "scale_pos_weight": spw,
        "gradient_dtype": "float32",   # LightGBM rounds g, h to float (score_t)
        "weight_dtype": "float32",     # and sample weights (label_t)
    }
    return build_ensemble(
        raw, base_margin=base, objective=objective,
        kind="forest" if is_rf else "boosting", learning_rate=eta,
        encoder=encoder, library=LIBRARY, model_name=name,
        reg_lambda=reg_lambda, reg_alpha=reg_alpha,
        hessian_factor=K / (K - 1.0) if objective == "multiclass" else 1.0,
        classes=classes, params=out_params, leaf_reg_lambda=np.concatenate(leaf_lambda),
        leaf_train_stat=np.concatenate([_leaf_hessians(t, n) for t, n in zip(trees, n_leaves)]),
        leaf_train_stat_kind="hessian", leaf_train_stat_exact=not (bagging or goss),
        # GOSS reweights the rows it keeps so that hessian sums stay unbiased
        leaf_train_fraction=(1.0 if goss and not bagging else
                             _bag_fraction(params) if bagging and not goss else None),
        leaf_train_class_fraction=(_class_bag_fraction(params)
                                   if bagging and not goss and objective == "binary"
                                   else None),
        class_weight=class_weight, exact_leaves=not not_newton,
        exact_leaves_reasons=not_newton)


def _leaf_hessians(tree, n_leaves):
    """LightGBM's ``leaf_weight`` (summed hessian of the leaf's training rows)."""
    values = _floats(tree.get("leaf_weight", ""))
    return values if values.shape[0] == n_leaves else np.full(n_leaves, np.nan)


def _bag_fraction(params):
    """The bagging fraction, or None when it depends on the class."""
    pos = _param(params, "pos_bagging_fraction", 1.0)
    neg = _param(params, "neg_bagging_fraction", 1.0)
    if pos != 1.0 or neg != 1.0:
        return None
    return _param(params, "bagging_fraction", 1.0)


def _class_bag_fraction(params):
    """(negative, positive) bagging fractions of balanced bagging, or None.

    LightGBM samples ``neg_bagging_fraction`` of the negative and
    ``pos_bagging_fraction`` of the positive rows when either is below 1
    (``bagging_fraction`` is then not used).
    """
    pos = _param(params, "pos_bagging_fraction", 1.0)
    neg = _param(params, "neg_bagging_fraction", 1.0)
    if pos == 1.0 and neg == 1.0:
        return None
    return np.array([neg, pos], dtype=np.float64)


def reference(model, X, num_iteration=None):
    """LightGBM's own raw margins and leaf ids for X.

    For ``boosting='rf'`` LightGBM's ``raw_score=True`` is the sum of the
    trees while ``predict`` applies the link to their average; the margin
    returned here is the average.

    Returns
    -------
    dict with ``margin`` of shape (n, K) and ``leaves`` of shape
    (n, n_rounds, K) (``pred_leaf=True``, iteration-major).
    """
    booster, is_sklearn = _booster_of(model)
    n_iter = _n_iterations(booster, num_iteration)
    predictor = model if is_sklearn else booster
    margin = np.asarray(predictor.predict(X, raw_score=True, num_iteration=n_iter),
                        dtype=np.float64)
    leaves = np.asarray(predictor.predict(X, pred_leaf=True, num_iteration=n_iter))
    n = margin.shape[0]
    K = booster.num_model_per_iteration()
    margin = margin.reshape(n, -1)
    if _is_average_output(booster):
        # boosting='rf': raw_score=True returns the *sum* of the trees; the
        # margin the link is applied to (predict()) is their average
        margin = margin / n_iter
    return {"margin": margin,
            "leaves": leaves.reshape(n, -1, K).astype(np.int64)}
