"""Parser for scikit-learn tree ensembles.

Supported: ``GradientBoostingRegressor`` / ``GradientBoostingClassifier``
(squared error, log loss), ``HistGradientBoostingRegressor`` /
``HistGradientBoostingClassifier`` (squared error, log loss) and
``RandomForest*`` / ``ExtraTrees*`` (single-output regression and
classification).

What each model stores and how it predicts (facts this module relies on):

- ``sklearn.tree`` trees (GradientBoosting and forests) compare the float32 cast
  of X with float64 thresholds, ``x <= threshold`` going left, and send NaN to
  ``tree_.missing_go_to_left[node]``. That array is filled at every split,
  also where training saw no missing value (then it points to the child that
  received more samples). Leaf ids are node indices (what ``apply`` reports).
- GradientBoosting stores the unshrunk Newton leaf value in ``tree_.value``;
  the prediction is ``init`` raw prediction + ``learning_rate`` x tree outputs.
  Multiclass leaf updates are ``(K-1)/K * sum(w g) / sum(w h)``, i.e. a
  diagonal hessian factor ``K/(K-1)``.
- HistGradientBoosting predictors hold records whose ``value`` is already
  shrunk; splits compare float64 X, ``x <= num_threshold`` going left. A
  categorical split sends the categories of its raw bitset left, other known
  categories right, and negative, unknown and missing values to the
  ``missing_go_to_left`` side. Categorical columns are ordinal-encoded by the
  model's ``_preprocessor`` (sorted unique training values, unknown -> NaN) and
  moved to the front of the column order the predictors index.
- Forest classifiers store per-leaf class fractions (counts before 1.4.1; they
  are normalised here as ``predict_proba`` does) and average the trees.
"""
import warnings

import numpy as np

from ..exceptions import DataValidationError, NotFittedError, UnsupportedModelError
from ._encode import TabularEncoder, is_sparse
from ._flat import (RawTree, build_ensemble, SPLIT_LE, SPLIT_CAT_LEFT,
                    SPLIT_CAT_RIGHT, MISS_DEFAULT)

__all__ = ["parse", "reference"]

LIBRARY = "sklearn"

_GB = ("GradientBoostingRegressor", "GradientBoostingClassifier")
_HGB = ("HistGradientBoostingRegressor", "HistGradientBoostingClassifier")
_FOREST = ("RandomForestRegressor", "RandomForestClassifier",
           "ExtraTreesRegressor", "ExtraTreesClassifier")


# --------------------------------------------------------------------- encoder
class SklearnEncoder(TabularEncoder):
    """:class:`TabularEncoder` with scikit-learn's input rules.

    Parameters
    ----------
    n_features, feature_names, input_dtype, categories, categorical_columns, \
preprocessor, model_name
        As for :class:`TabularEncoder`.
    allow_nan : bool
        Whether the model accepts NaN (``GradientBoosting*`` does not).
    allow_inf : bool
        Whether the model accepts infinite values (only HistGradientBoosting
        does; the others reject them, including values that overflow float32).
    ordinal : bool
        Categorical columns are mapped through ``categories`` whatever their
        dtype, as HistGradientBoosting's ``OrdinalEncoder`` does: numeric
        category values are looked up too, missing and unseen values become
        NaN.
    accept_sparse : bool
        Whether the model accepts scipy sparse input (HistGradientBoosting
        does not; trees, forests and GradientBoosting do, zeros as zeros).
    """

    def __init__(self, n_features, feature_names=None, input_dtype=np.float64,
                 categories=None, categorical_columns=None, preprocessor=None,
                 model_name="model", allow_nan=True, allow_inf=False, ordinal=False,
                 accept_sparse=True):
        super().__init__(n_features, feature_names=feature_names,
                         input_dtype=input_dtype, categories=categories,
                         categorical_columns=categorical_columns,
                         preprocessor=preprocessor, model_name=model_name)
        self.allow_nan = bool(allow_nan)
        self.allow_inf = bool(allow_inf)
        self.ordinal = bool(ordinal)
        self.accept_sparse = bool(accept_sparse)

    def _ordinal_codes(self, values, col):
        """OrdinalEncoder codes of one column (float64, NaN if missing/unseen)."""
        cats = self.categories[col]
        values = np.asarray(values, dtype=object)
        out = np.full(values.shape[0], np.nan)
        lookup = {}
        for i, c in enumerate(cats):
            lookup.setdefault(c, i)
        text = bool(cats) and all(isinstance(c, str) for c in cats)
        for i, v in enumerate(values):
            if v is None or (isinstance(v, (float, np.floating)) and v != v):
                continue
            if bool(cats) and isinstance(v, str) != text:
                # scikit-learn refuses this too: integer codes of a categorical
                # column would all become "missing"
                raise DataValidationError(
                    f"Column {self._name(col)} holds {type(v).__name__} values (e.g. "
                    f"{v!r}), but {self.model_name} was trained on it as a categorical "
                    f"column with {'string' if text else 'numeric'} categories "
                    f"{list(cats)[:6]}; pass the category values themselves (or the "
                    "pandas categorical), not their integer codes.")
            try:
                code = lookup.get(v)
            except TypeError:  # unhashable
                code = None
            if code is not None:
                out[i] = code
        return out

    def _numeric_column(self, values, col, dtype):
        try:
            return np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataValidationError(
                f"Column {self._name(col)} has dtype {dtype} that cannot be "
                f"converted to numbers, and {self.model_name} treats it as "
                "numeric.") from None

    def _from_frame(self, X):
        if not self.ordinal:
            return super()._from_frame(X)
        self._check_names(X.columns)
        self._check_shape(X, X.shape[1])
        out = np.empty(X.shape, dtype=np.float64)
        for j in range(X.shape[1]):
            col = X.iloc[:, j]
            if j in self.categories:
                out[:, j] = self._ordinal_codes(col.to_numpy(dtype=object), j)
            elif str(col.dtype) == "category":
                raise DataValidationError(
                    f"Column {self._name(j)} is a pandas categorical, but "
                    f"{self.model_name} treats it as numeric; convert it to numbers.")
            else:
                try:
                    out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
                except (TypeError, ValueError):
                    out[:, j] = self._numeric_column(col.to_numpy(), j, col.dtype)
        return out

    def _from_array(self, X):
        if not self.ordinal:
            return super()._from_array(X)
        if is_sparse(X):
            return self._from_sparse(X)  # refused: HistGradientBoosting is dense only
        arr = np.asarray(X)
        if arr.ndim != 2:
            return super()._from_array(X)  # raises the shape error
        self._check_shape(arr, arr.shape[1])
        out = np.empty(arr.shape, dtype=np.float64)
        for j in range(arr.shape[1]):
            if j in self.categories:
                out[:, j] = self._ordinal_codes(arr[:, j], j)
            else:
                out[:, j] = self._numeric_column(
                    [np.nan if v is None else v for v in arr[:, j]]
                    if arr.dtype == object else arr[:, j], j, arr.dtype)
        return out

    def transform(self, X):
        with np.errstate(over="ignore"):  # float32 overflow is reported below
            out = super().transform(X)
        if not self.allow_nan and np.isnan(out).any():
            i, j = np.argwhere(np.isnan(out))[0]
            raise DataValidationError(
                f"X contains NaN (first at row {i}, column {self._name(j)}), but "
                f"{self.model_name} does not accept missing values; impute them "
                "or use HistGradientBoosting.")
        if not self.allow_inf and np.isinf(out).any():
            i, j = np.argwhere(np.isinf(out))[0]
            raise DataValidationError(
                f"X contains an infinite value or one too large for "
                f"{self.input_dtype} (first at row {i}, column {self._name(j)}), "
                f"which {self.model_name} does not accept.")
        return out


# --------------------------------------------------------------------- helpers
def _name(model):
    return type(model).__name__


def _family(model):
    """'gb', 'hgb' or 'forest' from the model's class hierarchy."""
    for cls in type(model).__mro__:
        if not cls.__module__.startswith("sklearn."):
            continue
        if cls.__name__ in _GB:
            return "gb", cls.__name__
        if cls.__name__ in _HGB:
            return "hgb", cls.__name__
        if cls.__name__ in _FOREST:
            return "forest", cls.__name__
    raise UnsupportedModelError(
        f"{type(model).__module__}.{type(model).__qualname__} is not a supported "
        f"scikit-learn model; supported: {', '.join(_GB + _HGB + _FOREST)}.")


def _check_fitted(model, attribute):
    if not hasattr(model, attribute):
        raise NotFittedError(
            f"This {_name(model)} is not fitted yet; call fit before parsing it.")


def _allow_nan(model):
    try:
        from sklearn.utils import get_tags
        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:  # older tag API
        return bool(getattr(model, "_get_tags", lambda: {})().get("allow_nan", False))


def _feature_names(model):
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _class_weight_array(model, classes):
    """sklearn ``class_weight`` as per-class multipliers in ``classes`` order."""
    cw = getattr(model, "class_weight", None)
    if cw is None:
        return None
    if isinstance(cw, str):
        raise UnsupportedModelError(
            f"{_name(model)}(class_weight={cw!r}) is not supported: its weights "
            "depend on the training labels, which the model does not store. "
            "Pass the equivalent dict instead, e.g. class_weight=dict(zip(classes, "
            "sklearn.utils.class_weight.compute_class_weight('balanced', "
            "classes=classes, y=y))), or weight the rows with sample_weight.")
    if isinstance(cw, dict):
        return np.asarray([float(cw.get(c, 1.0)) for c in classes], dtype=np.float64)
    raise UnsupportedModelError(
        f"{_name(model)}(class_weight={type(cw).__name__}) is not supported; use "
        "a dict {class: weight} or None (multi-output class weights are not "
        "supported).")


def _sk_tree(tree_, value, round_, output):
    """RawTree from a ``sklearn.tree._tree.Tree`` with the given node values."""
    left = np.asarray(tree_.children_left, dtype=np.int64)
    right = np.asarray(tree_.children_right, dtype=np.int64)
    n = left.shape[0]
    leaf = left < 0
    return RawTree(
        left=np.where(leaf, -1, left), right=np.where(leaf, -1, right),
        feature=np.where(leaf, 0, tree_.feature),
        threshold=np.asarray(tree_.threshold, dtype=np.float64),
        kind=np.full(n, SPLIT_LE), missing=np.full(n, MISS_DEFAULT),
        default_left=np.asarray(tree_.missing_go_to_left, dtype=bool),
        value=np.asarray(value, dtype=np.float64), leaf_id=np.arange(n),
        round=round_, output=output)


def _leaf_weights(tree_):
    """Summed training weight of each leaf (node order = compact leaf order)."""
    leaf = np.asarray(tree_.children_left) < 0
    return np.asarray(tree_.weighted_n_node_samples, dtype=np.float64)[leaf]


def _tree_encoder(model, name):
    """Encoder for models built on ``sklearn.tree`` (float32 comparisons)."""
    return SklearnEncoder(model.n_features_in_, feature_names=_feature_names(model),
                          input_dtype=np.float32, model_name=name,
                          allow_nan=_allow_nan(model), allow_inf=False)


# ----------------------------------------------------------- GradientBoosting
def _parse_gb(model, name):
    _check_fitted(model, "estimators_")
    classifier = name == "GradientBoostingClassifier"
    supported = ("log_loss",) if classifier else ("squared_error",)
    if model.loss not in supported:
        raise UnsupportedModelError(
            f"{name}(loss={model.loss!r}) is not supported; supported loss: "
            f"{supported[0]!r}.")
    init = model.init
    if init is not None and not (isinstance(init, str) and init == "zero"):
        raise UnsupportedModelError(
            f"{name}(init={type(init).__name__}) is not supported: a user-supplied "
            "init estimator makes the starting margin depend on x. Use the "
            "default init=None or init='zero'.")
    estimators = model.estimators_[:model.n_estimators_]
    n_rounds, K = estimators.shape
    if isinstance(model.init_, str) and model.init_ == "zero":
        base = np.zeros(K)
    else:
        # the default Dummy* init predicts a constant: evaluate it on one row
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = np.asarray(model._raw_predict_init(
                np.zeros((1, model.n_features_in_), dtype=np.float32)),
                dtype=np.float64).reshape(K)
    eta = float(model.learning_rate)
    trees = []
    for t in range(n_rounds):
        for c in range(K):
            tree_ = estimators[t, c].tree_
            trees.append(_sk_tree(tree_, tree_.value[:, 0, 0] * eta, t, c))
    if not classifier:
        objective, link, factor, classes = "regression", "identity", 1.0, None
    elif K == 1:
        objective, link, factor, classes = "binary", "sigmoid", 1.0, model.classes_
    else:
        objective, link, factor, classes = "multiclass", "softmax", K / (K - 1.0), model.classes_
    validation_split = model.n_iter_no_change is not None
    subsample = float(model.subsample)
    params = {
        "subsample": subsample,
        "n_estimators": int(model.n_estimators), "n_rounds_used": int(n_rounds),
        "n_iter_no_change": model.n_iter_no_change,
        "validation_fraction": float(model.validation_fraction) if validation_split else None,
        "max_features": model.max_features, "init": "zero" if init == "zero" else "default",
    }
    reasons = [f"row subsampling (subsample={subsample:g})"] if subsample < 1.0 else []
    split = None
    if validation_split:
        # with n_iter_no_change, fit trains on a train_test_split of X only
        rs = model.random_state
        if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
            split = {"validation_fraction": float(model.validation_fraction),
                     "random_state": int(rs), "stratify": classifier, "shuffle": True}
        else:
            reasons.append("n_iter_no_change with random_state=None: the rows held out "
                           "for early stopping cannot be reconstructed")
    return build_ensemble(
        trees, base_margin=base, objective=objective, kind="boosting",
        learning_rate=eta, encoder=_tree_encoder(model, name), library=LIBRARY,
        model_name=name, reg_lambda=0.0, reg_alpha=0.0, hessian_factor=factor,
        classes=classes, params=params, link=link, exact_leaves=not reasons,
        exact_leaves_reasons=reasons, train_split=split,
        leaf_train_stat=np.concatenate([_leaf_weights(estimators[t, c].tree_)
                                        for t in range(n_rounds) for c in range(K)]),
        leaf_train_stat_kind="weight",
        leaf_train_stat_exact=subsample == 1.0 and not (validation_split and split is None),
        # with an unreproducible early-stopping split the trees saw only the
        # training part of the rows passed to fit
        leaf_train_fraction=subsample * (1.0 - float(model.validation_fraction)
                                         if validation_split and split is None else 1.0))


# -------------------------------------------------------- HistGradientBoosting
def _hgb_columns(model):
    """Map from the predictors' column index to the user's, plus categories.

    Returns ``(perm, categories)``: ``perm[j]`` is the user column of the
    predictors' column ``j``; ``categories`` maps a user column to the list of
    category values whose position is the code the splits use.
    """
    n = int(model.n_features_in_)
    pre = getattr(model, "_preprocessor", None)
    if pre is None:
        return np.arange(n), {}
    perm = np.full(n, -1, dtype=np.int64)
    for tname, _, cols in pre.transformers_:
        if tname not in pre.output_indices_:
            continue
        out = np.arange(n)[pre.output_indices_[tname]]
        cols = np.asarray(cols)
        if cols.dtype == bool:
            idx = np.flatnonzero(cols)
        elif cols.dtype.kind in "iu":
            idx = cols.astype(np.int64)
        else:
            names = list(pre.feature_names_in_)
            idx = np.asarray([names.index(c) for c in cols], dtype=np.int64)
        if idx.shape[0] != out.shape[0]:
            raise UnsupportedModelError(
                f"{_name(model)}: unexpected layout of the categorical "
                f"preprocessor ({tname!r} maps {idx.shape[0]} columns to "
                f"{out.shape[0]}); please report this with the model.")
        perm[out] = idx
    if (perm < 0).any() or np.unique(perm).shape[0] != n:
        raise UnsupportedModelError(
            f"{_name(model)}: could not map the preprocessor's columns back to the "
            "input columns; please report this with the model.")
    categories = {}
    enc = pre.named_transformers_["encoder"]
    cat_cols = np.flatnonzero(np.asarray(model.is_categorical_, dtype=bool))
    for col, cats in zip(cat_cols, enc.categories_):
        cats = list(cats)
        if cats and isinstance(cats[-1], (float, np.floating)) and cats[-1] != cats[-1]:
            cats = cats[:-1]  # OrdinalEncoder puts NaN last; it encodes to NaN
        categories[int(col)] = cats
    return perm, categories


def _bitset_members(bits):
    """Set members of a row of uint32 words (bit b of word w = value 32w + b)."""
    bits = np.asarray(bits, dtype=np.uint32)
    members = [32 * w + b for w in range(bits.shape[0]) for b in range(32)
               if (int(bits[w]) >> b) & 1]
    return np.asarray(members, dtype=np.int64)


def _hgb_tree(pred, perm, known, f_idx_map, round_, output):
    nodes = pred.nodes
    names = nodes.dtype.names
    for field in ("value", "feature_idx", "num_threshold", "missing_go_to_left",
                  "left", "right", "is_leaf", "is_categorical", "bitset_idx"):
        if field not in names:
            raise UnsupportedModelError(
                f"HistGradientBoosting predictor nodes lack the field {field!r} "
                "(another scikit-learn version?); please report this.")
    n = nodes.shape[0]
    leaf = nodes["is_leaf"].astype(bool)
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    right = np.where(leaf, -1, nodes["right"].astype(np.int64))
    feat_local = nodes["feature_idx"].astype(np.int64)
    miss_left = nodes["missing_go_to_left"].astype(bool)
    kind = np.full(n, SPLIT_LE, dtype=np.int64)
    cats = {}
    for node in np.flatnonzero(~leaf & nodes["is_categorical"].astype(bool)):
        f = feat_local[node]
        left_set = _bitset_members(pred.raw_left_cat_bitsets[nodes["bitset_idx"][node]])
        if miss_left[node]:
            # known categories not going left go right; the rest (left set,
            # unknown, negative, NaN) go left
            known_set = _bitset_members(known[f_idx_map[f]])
            kind[node] = SPLIT_CAT_RIGHT
            cats[int(node)] = np.setdiff1d(known_set, left_set)
        else:
            kind[node] = SPLIT_CAT_LEFT
            cats[int(node)] = left_set
    return RawTree(
        left=left, right=right, feature=np.where(leaf, 0, perm[np.where(leaf, 0, feat_local)]),
        threshold=nodes["num_threshold"].astype(np.float64), kind=kind,
        missing=np.full(n, MISS_DEFAULT), default_left=miss_left,
        value=nodes["value"].astype(np.float64), leaf_id=np.arange(n),
        round=round_, output=output, categories=cats)


def _parse_hgb(model, name):
    _check_fitted(model, "_predictors")
    classifier = name == "HistGradientBoostingClassifier"
    supported = "log_loss" if classifier else "squared_error"
    if not (isinstance(model.loss, str) and model.loss == supported):
        loss = model.loss if isinstance(model.loss, str) else type(model.loss).__name__
        raise UnsupportedModelError(
            f"{name}(loss={loss!r}) is not supported; supported loss: {supported!r}.")
    K = int(model.n_trees_per_iteration_)
    base = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(K)
    perm, categories = _hgb_columns(model)
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    trees = []
    root_only = 0
    for t, preds in enumerate(model._predictors):
        if len(preds) != K:
            raise UnsupportedModelError(
                f"{name}: round {t} has {len(preds)} trees, expected {K}.")
        for c, pred in enumerate(preds):
            tree = _hgb_tree(pred, perm, known, f_idx_map, t, c)
            root_only += int(tree.left[0] < 0)
            trees.append(tree)
    if not classifier:
        objective, link, classes, cw = "regression", "identity", None, None
    else:
        classes = model.classes_
        cw = _class_weight_array(model, classes)
        objective, link = ("binary", "sigmoid") if K == 1 else ("multiclass", "softmax")
    early = bool(getattr(model, "do_early_stopping_", False))
    validation_split = early and bool(getattr(model, "_use_validation_data", False))
    monotonic = model.monotonic_cst is not None
    params = {
        "max_iter": int(model.max_iter),
        "n_rounds_used": len(model._predictors), "early_stopping": early,
        "validation_fraction": model.validation_fraction if validation_split else None,
        "max_features": float(model.max_features), "max_bins": int(model.max_bins),
        "monotonic_cst": model.monotonic_cst,
        "categorical_columns": sorted(categories),
        "root_only_trees": root_only,
    }
    reasons = []
    if root_only:
        reasons.append(f"{root_only} tree(s) without a split hold 0, not a Newton step")
    if monotonic:
        reasons.append("monotonic constraints clip leaf values")
    split = None
    if validation_split:
        # fit trains on a train_test_split of X (unless X_val was passed to fit,
        # which the model does not record: the fidelity check then tries all rows)
        split = {"validation_fraction": float(model.validation_fraction),
                 "random_state": int(model._random_seed), "stratify": classifier,
                 "shuffle": True}
    encoder = SklearnEncoder(
        model.n_features_in_, feature_names=_feature_names(model),
        input_dtype=np.float64, categories=categories,
        categorical_columns=sorted(categories), model_name=name, allow_nan=True,
        allow_inf=True, ordinal=bool(categories), accept_sparse=False)
    return build_ensemble(
        trees, base_margin=base, objective=objective, kind="boosting",
        learning_rate=float(model.learning_rate), encoder=encoder, library=LIBRARY,
        model_name=name, reg_lambda=float(model.l2_regularization), reg_alpha=0.0,
        hessian_factor=1.0, classes=classes, params=params, link=link, class_weight=cw,
        exact_leaves=not reasons, exact_leaves_reasons=reasons, train_split=split,
        leaf_train_stat=np.concatenate([
            np.asarray(p.nodes["count"], dtype=np.float64)[p.nodes["is_leaf"].astype(bool)]
            for preds in model._predictors for p in preds]),
        leaf_train_stat_kind="count", leaf_train_stat_exact=True)


# ------------------------------------------------------------------- forests
def _parse_forest(model, name):
    _check_fitted(model, "estimators_")
    if int(getattr(model, "n_outputs_", 1)) != 1:
        raise UnsupportedModelError(
            f"{name} was trained on a multi-output y ({model.n_outputs_} outputs); "
            "only single-output models are supported.")
    estimators = list(model.estimators_)
    T = len(estimators)
    classifier = name.endswith("Classifier")
    trees = []
    if classifier:
        classes = model.classes_
        n_classes = int(model.n_classes_)
        K = 1 if n_classes == 2 else n_classes
        cols = [1] if n_classes == 2 else list(range(n_classes))
        cw = _class_weight_array(model, classes)
        for t, est in enumerate(estimators):
            frac = np.asarray(est.tree_.value[:, 0, :n_classes], dtype=np.float64)
            norm = frac.sum(axis=1, keepdims=True)  # as predict_proba normalises
            norm[norm == 0.0] = 1.0
            frac = frac / norm
            for c, col in enumerate(cols):
                trees.append(_sk_tree(est.tree_, frac[:, col] / T, t, c))
        objective = "binary" if K == 1 else "multiclass"
    else:
        classes, cw, K, objective = None, None, 1, "regression"
        for t, est in enumerate(estimators):
            trees.append(_sk_tree(est.tree_, est.tree_.value[:, 0, 0] / T, t, 0))
    params = {
        "bootstrap": bool(model.bootstrap),
        "max_samples": model.max_samples, "n_trees": T,
        "criterion": model.criterion, "max_features": model.max_features,
    }
    return build_ensemble(
        trees, base_margin=np.zeros(K), objective=objective, kind="forest",
        learning_rate=1.0, encoder=_tree_encoder(model, name), library=LIBRARY,
        model_name=name, reg_lambda=0.0, reg_alpha=0.0, hessian_factor=1.0,
        classes=classes, params=params, link="identity", class_weight=cw,
        exact_leaves=False, exact_leaves_reasons=("a forest's leaves are not Newton steps",),
        leaf_train_stat=np.concatenate([_leaf_weights(est.tree_) for est in estimators
                                        for _ in range(K)]),
        leaf_train_stat_kind=_forest_stat_kind(model),
        leaf_train_stat_exact=not model.bootstrap,
        leaf_train_fraction=_bootstrap_fraction(model))


def _forest_stat_kind(model):
    """What a forest's ``weighted_n_node_samples`` sums.

    Without bootstrap: the training weights. With it, scikit-learn versions
    that draw the bootstrap sample with probabilities proportional to the
    sample weights (``_generate_sample_indices(..., sample_weight)``) pass
    only the draw counts to the trees, so a tree's total is the number of
    draws; older versions multiply the counts by the weights.
    """
    if not model.bootstrap:
        return "weight"
    import inspect
    try:
        from sklearn.ensemble._forest import _generate_sample_indices
        weighted_draws = "sample_weight" in inspect.signature(
            _generate_sample_indices).parameters
    except (ImportError, TypeError, ValueError):
        weighted_draws = False
    return "count" if weighted_draws else "weight"


def _bootstrap_fraction(model):
    """Expected summed bootstrap count per training row (``max_samples``)."""
    if not model.bootstrap:
        return 1.0
    ms = model.max_samples
    if ms is None:
        return 1.0
    if isinstance(ms, (float, np.floating)):
        return float(ms)
    # an absolute number of draws: a fraction of the number of rows the
    # forest was fitted on, which scikit-learn records as ``_n_samples``
    n_fit = getattr(model, "_n_samples", None)
    if isinstance(n_fit, (int, np.integer)) and n_fit > 0:
        return int(ms) / float(n_fit)
    return None


# ---------------------------------------------------------------- public API
def parse(model):
    """Parse a fitted scikit-learn tree ensemble into a :class:`FlatEnsemble`.

    Raises
    ------
    UnsupportedModelError
        For unsupported losses, a user-supplied GradientBoosting ``init``,
        ``class_weight='balanced'``/``'balanced_subsample'``, multi-output
        forests or other model types.
    NotFittedError
        If the model has not been fitted.
    """
    family, name = _family(model)
    if family == "gb":
        return _parse_gb(model, name)
    if family == "hgb":
        return _parse_hgb(model, name)
    return _parse_forest(model, name)


def _hgb_leaves(model, X):
    """Library leaf ids of HistGradientBoosting, from its own traversal code.

    Each predictor is copied with every node's ``value`` replaced by its
    index; the library's ``TreePredictor.predict`` then returns the index of
    the leaf each row reaches.
    """
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    Xp = model._preprocess_X(X, reset=False)
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    K = int(model.n_trees_per_iteration_)
    n_rounds = len(model._predictors)
    out = np.empty((Xp.shape[0], n_rounds, K), dtype=np.int64)
    for t, preds in enumerate(model._predictors):
        for c, pred in enumerate(preds):
            nodes = pred.nodes.copy()
            nodes["value"] = np.arange(nodes.shape[0], dtype=np.float64)
            ids = TreePredictor(nodes, pred.binned_left_cat_bitsets,
                                pred.raw_left_cat_bitsets).predict(
                Xp, known_cat_bitsets=known, f_idx_map=f_idx_map, n_threads=1)
            out[:, t, c] = ids.astype(np.int64)
    return out


def reference(model, X):
    """The library's own raw margins and leaf ids on ``X`` (as the model takes it).

    Returns
    -------
    dict with ``margin`` of shape (n, K) and ``leaves`` of shape (n, n_rounds, K)
    """
    family, name = _family(model)
    if family == "gb":
        # decision_function (classifier) / predict (squared error) validate X
        # and return the raw margin
        raw = model.decision_function(X) if name.endswith("Classifier") \
            else model.predict(X)
        margin = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
        # GradientBoosting*.apply validates X with a tree fitted without
        # feature names (a spurious warning for DataFrames): names were checked
        # by the call above, so pass the values
        Xa = X.to_numpy(dtype=np.float32) if hasattr(X, "columns") else X
        leaves = np.asarray(model.apply(Xa))
        K = margin.shape[1]
        leaves = leaves.reshape(leaves.shape[0], -1, K)
        return {"margin": margin, "leaves": leaves}
    if family == "hgb":
        margin = np.asarray(model._raw_predict(X), dtype=np.float64)
        return {"margin": margin, "leaves": _hgb_leaves(model, X)}
    if name.endswith("Classifier"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        margin = proba[:, 1:2] if proba.shape[1] == 2 else proba
    else:
        margin = np.asarray(model.predict(X), dtype=np.float64).reshape(-1, 1)
    K = margin.shape[1]
    leaves = np.asarray(model.apply(X))
    leaves = np.repeat(leaves[:, :, None], K, axis=2)
    return {"margin": margin, "leaves": leaves}
