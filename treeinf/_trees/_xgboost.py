"""Parser for XGBoost models (``XGBRegressor``, ``XGBClassifier``, ``XGBModel``,
``XGBRF*`` and ``xgboost.Booster``).

The model is read from its JSON serialisation (``Booster.save_raw('json')``),
never from the text dump, and its training parameters from
``Booster.save_config()``. Facts this module relies on (checked against
XGBoost 3.2 by ``tests/test_parse_xgboost.py``):

* A numeric split sends ``x < split_condition`` left, compared in float32; a
  missing value (NaN, or the sklearn wrapper's ``missing`` value) takes
  ``default_left``. A categorical split (``split_type == 1``) sends the
  categories listed for the node RIGHT and everything else (negative codes,
  codes beyond the list, unseen codes) left; NaN takes ``default_left``.
* Leaf values are stored in ``split_conditions`` already multiplied by the
  learning rate (and by ``1/num_parallel_tree``, see below); ``pred_leaf``
  reports node ids.
* ``base_score`` is stored in output space: ``binary:logistic`` needs the
  logit, ``reg:squarederror``, ``binary:logitraw`` and ``multi:*`` use it as
  the margin unchanged (XGBoost 3.x writes it as a string such as
  ``"[5E-1]"``, a vector for multiclass).
* The sklearn wrapper predicts with the first ``best_iteration + 1`` rounds
  after early stopping; a raw ``Booster`` predicts with every round. The
  parse uses exactly the rounds of the default prediction of the object
  passed in.
* With ``num_parallel_tree = P > 1`` (and ``XGBRF*``), each round grows P
  trees per class, all fitted to the gradients at the start of the round,
  each with learning rate ``eta / P``; predictions sum them. They are
  emitted as P consecutive "rounds" of the flat ensemble (``n_rounds =
  rounds x P``) whose ``tree_round`` is the true boosting round, so methods
  that need F^(t-1) must group trees by ``tree_round``. ``learning_rate`` is
  the per-tree rate ``eta / P``.
* The Newton step of ``multi:softprob``/``multi:softmax`` uses the diagonal
  hessian ``2 p (1 - p)`` (hessian factor 2); ``scale_pos_weight``
  multiplies the weight of rows whose label is exactly 1 for every
  ``reg:*``/``binary:*`` objective.
* Training parameters (eta, lambda, alpha, max_delta_step, subsampling) come
  from the booster's configuration. XGBoost does not write them to model
  files: a Booster loaded from a file reports XGBoost's defaults (a pickled
  model keeps them). Likewise a custom objective passed to ``xgb.train(obj=)``
  and a DMatrix ``base_margin`` used in training leave no trace in the model
  and cannot be detected (the sklearn wrapper's callable objective is
  refused); methods that need exact leaf values detect such models through
  their leaf-value check.
* XGBoost 3.x stores the pandas category names in the model and re-codes
  prediction frames by name, so a frame whose category list is in another
  order predicts the same; a value not seen in training is an error. (3.2
  mis-stores names with non-ASCII characters; see ``_XGBoostEncoder``.)
"""
import json
import math

import numpy as np

from ..exceptions import DataValidationError, NotFittedError, UnsupportedModelError
from ._encode import TabularEncoder, is_dataframe, is_sparse
from ._flat import (RawTree, build_ensemble, SPLIT_LT, SPLIT_CAT_RIGHT,
                    MISS_DEFAULT)

__all__ = ["parse", "reference"]

LIBRARY = "xgboost"

_OBJECTIVES = {
    "reg:squarederror": "regression",
    "binary:logistic": "binary",
    "binary:logitraw": "binary",
    "multi:softprob": "multiclass",
    "multi:softmax": "multiclass",
}
_SUPPORTED_TEXT = ("objectives " + ", ".join(sorted(_OBJECTIVES)) +
                   " with booster='gbtree'")

# XGBoost's defaults for the parameters of its Newton step
_TRAIN_DEFAULTS = {"eta": 0.3, "lambda": 1.0, "alpha": 0.0, "max_delta_step": 0.0,
                   "subsample": 1.0, "colsample_bytree": 1.0,
                   "colsample_bylevel": 1.0, "colsample_bynode": 1.0,
                   "min_child_weight": 1.0, "gamma": 0.0}


# --------------------------------------------------------------------- access
def _is_booster(model):
    return any(f"{c.__module__}.{c.__qualname__}" == "xgboost.core.Booster"
               for c in type(model).__mro__)


def _booster_of(model):
    """(booster, sklearn wrapper or None) of a supported XGBoost object."""
    if _is_booster(model):
        return model, None
    if callable(getattr(model, "objective", None)):
        raise UnsupportedModelError(
            f"{type(model).__name__} was trained with a custom objective "
            f"({getattr(model.objective, '__name__', model.objective)!r}); "
            f"treeinf supports {_SUPPORTED_TEXT}.")
    if getattr(model, "_Booster", None) is None:
        raise NotFittedError(
            f"This {type(model).__name__} instance is not fitted yet; call fit "
            "before parsing it.")
    return model.get_booster(), model


def _load(booster):
    raw = booster.save_raw(raw_format="json")
    model = json.loads(bytes(raw).decode("utf-8"))
    config = json.loads(booster.save_config())
    return model["learner"], config["learner"]


def _num(value, default=None):
    if value is None:
        return default
    return float(value)


def _parse_base_score(value, K):
    """base_score in any stored form (number, "0.5", "[5E-1]", list) -> (K,)."""
    if isinstance(value, (list, tuple)):
        vals = [float(v) for v in value]
    elif isinstance(value, str):
        text = value.strip().strip("[]")
        vals = [float(v) for v in text.split(",") if v.strip()]
    else:
        vals = [float(value)]
    if len(vals) == 1 and K > 1:
        vals = vals * K
    if len(vals) != K:
        raise UnsupportedModelError(
            f"XGBoost base_score {value!r} has {len(vals)} values, but the model "
            f"has {K} outputs.")
    return np.asarray(vals, dtype=np.float64)


def _check_supported(learner, config, name):
    gbm = learner["gradient_booster"]
    booster_name = gbm.get("name", "gbtree")
    if booster_name != "gbtree":
        raise UnsupportedModelError(
            f"{name} uses booster={booster_name!r}; treeinf supports {_SUPPORTED_TEXT} "
            "(dart rescales trees at every round and gblinear has no trees).")
    strategy = config.get("learner_train_param", {}).get("multi_strategy",
                                                         "one_output_per_tree")
    if strategy != "one_output_per_tree":
        raise UnsupportedModelError(
            f"{name} uses multi_strategy={strategy!r} (vector-leaf trees); treeinf "
            "supports multi_strategy='one_output_per_tree' only.")
    mparam = learner["learner_model_param"]
    n_target = int(mparam.get("num_target", 1))
    if n_target > 1:
        raise UnsupportedModelError(
            f"{name} is a multi-output model (num_target={n_target}, 2-D y); "
            "treeinf supports single-output regression, binary and multiclass "
            "classification.")
    objective = learner["objective"]["name"]
    if objective not in _OBJECTIVES:
        raise UnsupportedModelError(
            f"{name} uses objective={objective!r}; treeinf supports "
            f"{_SUPPORTED_TEXT}.")
    return objective


def _shape(learner):
    """(outputs K, num_parallel_tree P, number of trees) of a model."""
    model = learner["gradient_booster"]["model"]
    K = 1
    if learner["objective"]["name"].startswith("multi:"):
        K = max(int(learner["learner_model_param"].get("num_class", 0)), 1)
    P = int(model["gbtree_model_param"].get("num_parallel_tree", 1))
    return K, P, len(model["trees"])


def _layout(learner, n_rounds_used):
    """Order of XGBoost's trees in the flat ensemble.

    Returns (K, P, order, rounds, classes) where ``order[j]`` is XGBoost's
    index of flat tree j (flat tree j = sub_round * K + class, sub_round =
    round * P + parallel position).
    """
    model = learner["gradient_booster"]["model"]
    K, P, n_trees = _shape(learner)
    tree_info = np.asarray(model.get("tree_info", [0] * n_trees), dtype=np.int64)
    per_round = K * P
    indptr = model.get("iteration_indptr")
    if indptr is None:
        indptr = list(range(0, n_trees + 1, per_round))
    indptr = np.asarray(indptr, dtype=np.int64)
    if np.any(np.diff(indptr) != per_round) or indptr[-1] != n_trees:
        raise UnsupportedModelError(
            f"XGBoost model has rounds of unequal size (iteration_indptr "
            f"{indptr.tolist()[:10]}...), expected {per_round} trees per round "
            f"({K} classes x num_parallel_tree={P}).")
    order, rounds, classes = [], [], []
    for r in range(n_rounds_used):
        idx = np.arange(indptr[r], indptr[r + 1])
        by_class = [idx[tree_info[idx] == c] for c in range(K)]
        if any(b.shape[0] != P for b in by_class):
            raise UnsupportedModelError(
                f"XGBoost round {r} does not hold {P} trees for each of {K} classes "
                f"(tree_info {tree_info[idx].tolist()}).")
        for p in range(P):
            for c in range(K):
                order.append(int(by_class[c][p]))
                rounds.append(r)
                classes.append(c)
    return K, P, np.asarray(order, dtype=np.int64), rounds, classes


def _rounds_used(booster, sk, n_rounds_total):
    """Rounds the default prediction of the object uses."""
    best = None
    if sk is not None:
        # the sklearn wrapper predicts with iteration_range (0, best_iteration + 1)
        try:
            best = int(sk.best_iteration)
        except (AttributeError, TypeError, ValueError):
            best = None
    if best is None:
        return n_rounds_total, None
    return min(best + 1, n_rounds_total), best


# ---------------------------------------------------------------------- trees
def _parse_tree(tree, r, c):
    left = np.asarray(tree["left_children"], dtype=np.int64)
    right = np.asarray(tree["right_children"], dtype=np.int64)
    feat = np.asarray(tree["split_indices"], dtype=np.int64)
    cond = np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64)
    dleft = np.asarray(tree["default_left"], dtype=bool)
    n = left.shape[0]
    stype = np.asarray(tree.get("split_type", [0] * n), dtype=np.int64)
    size_leaf = int(tree.get("tree_param", {}).get("size_leaf_vector", 1) or 1)
    if size_leaf > 1:
        raise UnsupportedModelError(
            f"XGBoost tree has vector leaves (size_leaf_vector={size_leaf}); "
            "treeinf supports one output per tree.")
    cat_nodes = tree.get("categories_nodes", [])
    cat_seg = tree.get("categories_segments", [])
    cat_size = tree.get("categories_sizes", [])
    cat_all = tree.get("categories", [])
    node_cats = {int(nd): cat_all[int(s):int(s) + int(z)]
                 for nd, s, z in zip(cat_nodes, cat_seg, cat_size)}

    # keep only nodes reachable from the root (deleted nodes stay in the arrays)
    local = {0: 0}
    queue = [0]
    for node in queue:
        if left[node] >= 0:
            for child in (left[node], right[node]):
                local[int(child)] = len(queue)
                queue.append(int(child))
    old = np.asarray(queue, dtype=np.int64)
    is_leaf = left[old] < 0
    new_left = np.array([local[int(left[o])] if left[o] >= 0 else -1 for o in old])
    new_right = np.array([local[int(right[o])] if left[o] >= 0 else -1 for o in old])
    kind = np.where(stype[old] == 1, SPLIT_CAT_RIGHT, SPLIT_LT)
    categories = {}
    for j, o in enumerate(old):
        if not is_leaf[j] and stype[o] == 1:
            categories[j] = node_cats.get(int(o), [])
    return RawTree(
        left=new_left, right=new_right, feature=np.where(is_leaf, 0, feat[old]),
        threshold=np.where(is_leaf, 0.0, cond[old]), kind=kind,
        missing=np.full(old.shape[0], MISS_DEFAULT), default_left=dleft[old],
        value=np.where(is_leaf, cond[old], 0.0), leaf_id=old, round=r, output=c,
        categories=categories)


# -------------------------------------------------------------------- encoder
def _string_signature(names):
    """How XGBoost 3.2 stores a list of string categories: (offsets, bytes).

    Offsets count characters, bytes are UTF-8 (truncated to the last offset),
    so names with non-ASCII characters are stored inconsistently.
    """
    offsets = [0]
    for s in names:
        offsets.append(offsets[-1] + len(s))
    data = "".join(names).encode("utf-8")[:offsets[-1]]
    return offsets, [b - 256 if b > 127 else b for b in data]


def _decode_categories(enc):
    """Category names of one feature from the model's ``cats`` container.

    Returns (names or None, raw signature or None). ``raw`` is set instead of
    ``names`` when the stored strings are not reliable (non-ASCII bytes).
    """
    if not enc:
        return None, None
    values = enc.get("values", [])
    if "offsets" in enc:
        offsets = enc["offsets"]
        if len(offsets) < 2:
            return None, None
        if any(v < 0 or v > 127 for v in values):
            return None, (list(offsets), list(values))
        data = bytes(values)
        return [data[offsets[i]:offsets[i + 1]].decode("ascii")
                for i in range(len(offsets) - 1)], None
    if not values:
        return None, None
    return [v for v in values], None


class _XGBoostEncoder(TabularEncoder):
    """TabularEncoder with XGBoost's category re-coding and ``missing`` value.

    * Named categories (stored by XGBoost 3.x when trained on pandas
      categoricals) are looked up by name; a value the model never saw raises
      :class:`DataValidationError`, as XGBoost does.
    * Categorical columns without stored names take pandas' codes (what
      XGBoost does for such models), numeric input is taken as the code.
    * Columns whose names XGBoost 3.2 stored inconsistently (non-ASCII) are
      accepted only as pandas categoricals with exactly the training category
      list (XGBoost itself fails on other lists); their codes are used.
    * Values equal to the sklearn wrapper's ``missing`` become NaN.
    * Entries a sparse matrix does not store are missing (NaN), as in
      XGBoost's DMatrix; stored zeros are values.
    """

    sparse_implicit = np.nan

    def __init__(self, *args, missing=np.nan, raw_categories=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.missing = float(missing)
        self.raw_categories = dict(raw_categories or {})
        self.categorical_columns = sorted(set(self.categorical_columns)
                                          | set(self.raw_categories))

    def _encode_categorical(self, values, col):
        out = super()._encode_categorical(values, col)
        if self.categories.get(col) is None:
            return out
        values = np.asarray(values, dtype=object)
        unseen = np.isnan(out) & ~_is_null(values)
        if unseen.any():
            raise DataValidationError(
                f"Column {self._name(col)} holds the category "
                f"{values[np.flatnonzero(unseen)[0]]!r} that {self.model_name} did "
                f"not see in training (known: {list(self.categories[col])[:10]}); "
                "XGBoost refuses such values too.")
        return out

    def _from_frame(self, X):
        replaced = None
        for j in self.categorical_columns:
            if j >= X.shape[1] or self.categories.get(j) is not None:
                continue
            col = X.iloc[:, j]
            if str(col.dtype) != "category":
                if j in self.raw_categories and getattr(col.dtype, "kind", "O") not in "biuf":
                    raise DataValidationError(
                        f"Column {self._name(j)}: {self.model_name} stored its "
                        "category names garbled (XGBoost 3.2 bug with non-ASCII "
                        "names); pass it as a pandas categorical with exactly the "
                        "training categories, or the integer codes.")
                continue
            if j in self.raw_categories:
                names = [str(c) for c in col.cat.categories]
                if _string_signature(names) != self.raw_categories[j]:
                    raise DataValidationError(
                        f"Column {self._name(j)}: its categories {names[:10]} are "
                        f"not those {self.model_name} was trained on. The model's "
                        "names contain non-ASCII characters that XGBoost 3.2 "
                        "stores garbled, so only the training category list, in "
                        "training order, can be used.")
            codes = col.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            if replaced is None:
                replaced = X.copy(deep=False)
            replaced.isetitem(j, codes)
        return super()._from_frame(X if replaced is None else replaced)

    def transform(self, X):
        out = super().transform(X)
        if not math.isnan(self.missing):
            out[out == float(np.float32(self.missing))] = np.nan
        return out


def _is_null(values):
    res = np.zeros(values.shape[0], dtype=bool)
    for i, v in enumerate(values):
        try:
            res[i] = v is None or bool(v != v)
        except (TypeError, ValueError):  # pd.NA
            res[i] = True
    return res


def _encoder(learner, sk, name):
    n_features = int(learner["learner_model_param"]["num_feature"])
    names = learner.get("feature_names") or None
    types = learner.get("feature_types") or []
    cat_cols = [j for j, t in enumerate(types) if t == "c"]
    categories, raw = {}, {}
    encs = learner["gradient_booster"]["model"].get("cats", {}).get("enc", [])
    for j, enc in enumerate(encs):
        cats, sig = _decode_categories(enc)
        if cats is not None:
            categories[j] = cats
        elif sig is not None:
            raw[j] = sig
    missing = np.nan
    if sk is not None and getattr(sk, "missing", None) is not None:
        missing = float(sk.missing)
    return _XGBoostEncoder(n_features, feature_names=names, input_dtype=np.float32,
                           categories=categories, categorical_columns=cat_cols,
                           model_name=name, missing=missing, raw_categories=raw)


# ---------------------------------------------------------------------- parse
def parse(model):
    """Parse an XGBoost model into a :class:`~treeinf._trees.FlatEnsemble`.

    Parameters
    ----------
    model : XGBRegressor, XGBClassifier, XGBModel, XGBRF* or xgboost.Booster

    Returns
    -------
    FlatEnsemble
    """
    booster, sk = _booster_of(model)
    name = type(model).__name__
    learner, config = _load(booster)
    xgb_objective = _check_supported(learner, config, name)
    objective = _OBJECTIVES[xgb_objective]
    gbm = learner["gradient_booster"]["model"]
    trees_json = gbm["trees"]
    if len(trees_json) == 0:
        raise NotFittedError(f"{name} has no trees; train it for at least one round.")

    K, P, n_trees = _shape(learner)
    n_rounds_total = n_trees // (K * P)
    n_used, best = _rounds_used(booster, sk, n_rounds_total)
    K, P, order, rounds, classes = _layout(learner, n_used)

    # base margin (base_score is in output space)
    base_score = _parse_base_score(learner["learner_model_param"]["base_score"], K)
    if xgb_objective == "binary:logistic":
        p = base_score
        if np.any(p <= 0) or np.any(p >= 1):
            raise UnsupportedModelError(
                f"{name} has base_score={p.tolist()} outside (0, 1) for "
                "binary:logistic.")
        base_margin = np.log(p) - np.log1p(-p)
    else:
        base_margin = base_score
    base_margin = base_margin.astype(np.float32).astype(np.float64)

    # parameters of the Newton step
    ttp = config.get("gradient_booster", {}).get("tree_train_param")
    train = dict(_TRAIN_DEFAULTS)
    if ttp:
        for key in train:
            if key in ttp:
                # XGBoost holds its training parameters in float32 and prints
                # them with 9 digits: take the float32 value they print
                train[key] = float(np.float32(ttp[key]))
    obj_json = learner["objective"]
    spw = _num(obj_json.get("reg_loss_param", {}).get("scale_pos_weight"), 1.0)
    class_weight = None
    if objective == "binary" and spw != 1.0:
        class_weight = np.array([1.0, spw])
    elif objective == "regression" and spw != 1.0:
        raise UnsupportedModelError(
            f"{name} uses scale_pos_weight={spw:g} with objective "
            f"{xgb_objective!r}, which reweights only rows whose target is "
            "exactly 1.0; treeinf supports scale_pos_weight only for binary "
            "objectives.")
    monotone = (ttp or {}).get("monotone_constraints", "()")
    has_monotone = monotone not in ("()", "", "[]") and \
        any(ch not in "()[], 0" for ch in monotone)

    trees = [_parse_tree(trees_json[i], r, c)
             for i, r, c in zip(order, rounds, classes)]
    # XGBoost's cover (sum of training hessians) per leaf, in compact leaf order
    covers = []
    for i, tree in zip(order, trees):
        ids = np.asarray(tree.leaf_id)[np.asarray(tree.left) < 0]
        hess = np.asarray(trees_json[i].get("sum_hessian", np.full(len(
            trees_json[i]["left_children"]), np.nan)), dtype=np.float64)
        covers.append(hess[np.sort(ids)])

    eta = train["eta"]
    classes_ = getattr(sk, "classes_", None) if sk is not None else None
    reasons = []
    if train["subsample"] < 1.0:
        reasons.append(f"row subsampling (subsample={train['subsample']:g})")
    if train["max_delta_step"] != 0.0:
        reasons.append(f"max_delta_step={train['max_delta_step']:g} clips leaf values")
    if has_monotone:
        reasons.append("monotone constraints clip leaf values")
    params = {
        "xgb_objective": xgb_objective,
        "scale_pos_weight": spw,
        "base_score": base_score,
        "eta": eta,
        "num_parallel_tree": P,
        "n_rounds_used": n_used,
        "n_rounds_total": n_rounds_total,
        "best_iteration": best,
        "max_delta_step": train["max_delta_step"],
        "min_child_weight": train["min_child_weight"],
        "gamma": train["gamma"],
        "subsample": train["subsample"],
        "colsample_bytree": train["colsample_bytree"],
        "colsample_bylevel": train["colsample_bylevel"],
        "colsample_bynode": train["colsample_bynode"],
        "monotone_constraints": monotone,
        "leaf_sum_hessian": np.concatenate(covers),
        "xgb_tree_order": order,
    }
    return build_ensemble(
        trees, base_margin=base_margin, objective=objective, kind="boosting",
        learning_rate=eta / P, encoder=_encoder(learner, sk, name), library=LIBRARY,
        model_name=name, reg_lambda=train["lambda"], reg_alpha=train["alpha"],
        hessian_factor=2.0 if objective == "multiclass" else 1.0,
        classes=classes_, params=params, class_weight=class_weight,
        # the Newton step reproduces the leaves when no row is subsampled and
        # no leaf is clipped; model files do not store eta and lambda, so they
        # are only as good as the fidelity check at fit says
        exact_leaves=not reasons, exact_leaves_reasons=reasons,
        leaf_train_stat=np.concatenate(covers), leaf_train_stat_kind="hessian",
        leaf_train_stat_exact=train["subsample"] == 1.0,
        leaf_train_fraction=train["subsample"])


# ------------------------------------------------------------------ reference
def _dmatrix(booster, X, missing=np.nan):
    import xgboost
    if is_dataframe(X):
        return xgboost.DMatrix(X, missing=missing, enable_categorical=True)
    return xgboost.DMatrix(X if is_sparse(X) else np.asarray(X), missing=missing,
                           feature_names=booster.feature_names,
                           feature_types=booster.feature_types,
                           enable_categorical=True)


def reference(model, X):
    """XGBoost's own raw margins and leaf ids, in the flat ensemble's order.

    Uses the default prediction of the object: the sklearn wrapper's
    ``predict(output_margin=True)``/``apply`` (best iteration after early
    stopping), or ``Booster.predict(output_margin=True / pred_leaf=True)``
    (all rounds).

    Returns
    -------
    dict with ``margin`` of shape (n, K) and ``leaves`` of shape
    (n, n_rounds, K)
    """
    booster, sk = _booster_of(model)
    learner, _ = _load(booster)
    K, P, n_trees = _shape(learner)
    n_used, _ = _rounds_used(booster, sk, n_trees // (K * P))
    K, P, order, _, _ = _layout(learner, n_used)
    if sk is not None:
        margin = sk.predict(X, output_margin=True)
        # sk.apply refuses arrays for models trained on named columns: ask the
        # booster with the wrapper's iteration range and missing value
        missing = np.nan if getattr(sk, "missing", None) is None else sk.missing
        leaves = booster.predict(_dmatrix(booster, X, missing), pred_leaf=True,
                                 iteration_range=(0, n_used))
    else:
        dm = _dmatrix(booster, X)
        margin = booster.predict(dm, output_margin=True)
        leaves = booster.predict(dm, pred_leaf=True)
    n = margin.shape[0]
    leaves = np.asarray(leaves).reshape(n, -1)
    if leaves.shape[1] != order.shape[0]:
        raise UnsupportedModelError(
            f"XGBoost reported {leaves.shape[1]} trees per row, expected "
            f"{order.shape[0]}.")
    leaves = leaves[:, order].astype(np.int64).reshape(n, n_used * P, K)
    return {"margin": np.asarray(margin, dtype=np.float64).reshape(n, K),
            "leaves": leaves}
