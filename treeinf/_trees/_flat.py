"""The one flat representation every supported model is parsed into.

A :class:`FlatEnsemble` is a bag of C-contiguous numpy arrays plus metadata.
Nodes of all trees are concatenated; node ``j``'s children are global node
indices (``-1`` marks a leaf). Leaves of tree ``t`` are numbered
``0 .. n_leaves[t]-1`` (the *compact* leaf index, in the order of the
library's own leaf ids) and their values live in ``leaf_value[leaf_offset[t]
+ leaf]``. Trees are ordered by boosting round, then output column.

Parsers (one module per library) build a list of :class:`RawTree` and call
:func:`build_ensemble`, or, when they already hold the concatenated arrays
(CatBoost's oblivious trees, built for all trees at once), call
:func:`assemble_ensemble`; nothing else constructs a FlatEnsemble.
"""
import contextlib
from dataclasses import dataclass, field

import numpy as np

from .._kernels.traversal import (apply_kernel, leaf_values_kernel,
                                  SPLIT_LE, SPLIT_LT, SPLIT_CAT_LEFT,
                                  SPLIT_CAT_RIGHT, MISS_DEFAULT, MISS_AS_ZERO,
                                  MISS_ZERO_DEFAULT)
from .._numba import num_threads
from ._encode import TabularEncoder


def _threads(n_jobs):
    """``num_threads(n_jobs)``, or keep the caller's thread count when None.

    An explainer sets its own ``n_jobs`` around everything it calls; an
    ensemble method called without ``n_jobs`` must not override it.
    """
    return contextlib.nullcontext() if n_jobs is None else num_threads(n_jobs)


__all__ = ["RawTree", "FlatEnsemble", "build_ensemble", "assemble_ensemble", "SPLIT_LE",
           "SPLIT_LT", "SPLIT_CAT_LEFT", "SPLIT_CAT_RIGHT", "MISS_DEFAULT", "MISS_AS_ZERO",
           "MISS_ZERO_DEFAULT"]

# dtypes, declared once
NODE_INT = np.int32
LEAF_INT = np.int32
FLOAT = np.float64

OBJECTIVES = ("regression", "binary", "multiclass")


@dataclass
class RawTree:
    """One tree as a parser sees it, with tree-local node numbering.

    Parameters
    ----------
    left, right : sequence of int, length n_nodes
        Local child indices; ``-1`` for leaves. Node 0 is the root.
    feature : sequence of int
        Column of the encoded X compared at the node (ignored for leaves).
    threshold : sequence of float
        Split threshold for numeric splits (ignored otherwise).
    kind : sequence of int
        One of ``SPLIT_LE``, ``SPLIT_LT``, ``SPLIT_CAT_LEFT``, ``SPLIT_CAT_RIGHT``.
    missing : sequence of int
        One of ``MISS_DEFAULT``, ``MISS_AS_ZERO``, ``MISS_ZERO_DEFAULT``.
    default_left : sequence of bool
        Side taken by a missing value under ``MISS_DEFAULT``/``MISS_ZERO_DEFAULT``.
    value : sequence of float
        Leaf contribution to the raw margin (shrinkage and any tree weight
        already applied); ignored for internal nodes.
    leaf_id : sequence of int
        The library's own id of each leaf (what ``pred_leaf``/``apply``
        report); ignored for internal nodes.
    categories : dict {local node: sequence of int}, optional
        Category set of each categorical split.
    round, output : int
        Boosting round (or tree number for forests) and output column.
    """
    left: object
    right: object
    feature: object
    threshold: object
    kind: object
    missing: object
    default_left: object
    value: object
    leaf_id: object
    round: int = 0
    output: int = 0
    categories: dict = field(default_factory=dict)


@dataclass
class FlatEnsemble:
    """A parsed tree ensemble: flat arrays plus what is needed to use them.

    Attributes
    ----------
    node_left, node_right : int32 ndarray of shape (n_nodes,)
        Global child indices, ``-1`` for leaves.
    node_feature : int32 ndarray of shape (n_nodes,)
    node_threshold : float64 ndarray of shape (n_nodes,)
    node_kind, node_missing : int8 ndarray of shape (n_nodes,)
    node_default_left : bool ndarray of shape (n_nodes,)
    node_cat_start, node_cat_len : int32 ndarray of shape (n_nodes,)
        Position and number of 32-bit words of a categorical split's bitset in
        ``cat_bits``.
    cat_bits : uint32 ndarray
    node_leaf : int32 ndarray of shape (n_nodes,)
        Compact leaf index of leaf nodes, ``-1`` for internal nodes.
    tree_root, tree_round, tree_output : int32 ndarray of shape (n_trees,)
    leaf_offset : int64 ndarray of shape (n_trees + 1,)
    leaf_value : float64 ndarray of shape (n_leaves_total,)
        Leaf contribution to the margin (shrunk by the learning rate; divided
        by the number of trees for forests).
    leaf_library_id : int64 ndarray of shape (n_leaves_total,)
        The library's id of each leaf.
    base_margin : float64 ndarray of shape (n_outputs,)
    objective : {'regression', 'binary', 'multiclass'}
    kind : {'boosting', 'forest'}
    learning_rate, reg_lambda, reg_alpha : float
        Shrinkage and leaf regularisers as used by the library's Newton step.
    hessian_factor : float
        Multiclass: the factor f of the diagonal hessian f * p_c * (1 - p_c)
        that reproduces the library's Newton leaves (e.g. K / (K - 1) for
        LightGBM and GradientBoosting, 2 for XGBoost); 1 otherwise.
    library : str
        'lightgbm', 'xgboost', 'catboost' or 'sklearn'.
    model_name : str
        Class name of the parsed model, for messages.
    encoder : TabularEncoder
        Turns user input into the float64 matrix the kernels compare.
    classes : ndarray or None
        Class labels in output order (classification).
    leaf_reg_lambda : float64 ndarray of shape (n_leaves_total,)
        The L2 regulariser of each leaf's Newton step before any scaling by
        the training weights (LightGBM adds ``cat_l2`` on many-vs-many
        categorical splits; equal to ``reg_lambda`` elsewhere). Use
        :func:`treeinf._stats.effective_l2` for the value the model used.
    l2_weight_scaling : {'none', 'mean_weight'}
        'mean_weight': the library multiplies the L2 term by the mean training
        weight (CatBoost).
    link : {'identity', 'sigmoid', 'softmax'}
        What turns the margin into the prediction. 'identity' for a classifier
        means the trees already output probabilities (scikit-learn forests).
    class_weight : float64 ndarray of shape (n_classes,) or None
        Weight the library multiplied into each row's weight by its class
        (``class_weight``, ``scale_pos_weight``, CatBoost ``class_weights``).
    exact_leaves : bool
        Whether every leaf value is exactly the Newton step on the training
        rows (no row subsampling, no clipping, no multi-step leaf estimation).
    exact_leaves_reasons : tuple of str
        Why not, when ``exact_leaves`` is False.
    params_source : dict {'learning_rate': str, 'reg_lambda': str}
        Where each training parameter came from: 'model' (stored in the
        model), 'estimated' (estimated from the training data and verified
        to reproduce every leaf) or 'user' (passed to ``fit``).
    train_split : dict or None
        How the library split the rows passed to ``fit`` into training and
        validation rows (scikit-learn early stopping), or None when it trained
        on all of them: ``{'validation_fraction', 'random_state', 'stratify',
        'shuffle'}``; see :func:`treeinf._fidelity.training_rows`.
    leaf_train_stat : float64 ndarray of shape (n_leaves_total,) or None
        What the model recorded about each leaf's training rows (NaN where
        it recorded nothing): see ``leaf_train_stat_kind``.
    leaf_train_stat_kind : {'count', 'weight', 'hessian', ''}
        Number of rows (HistGradientBoosting), their summed weight (CatBoost,
        scikit-learn trees) or summed weighted hessian (LightGBM, XGBoost).
    leaf_train_stat_exact : bool
        Whether the statistic covers every training row (no row sampling),
        so that the training data reproduces it leaf by leaf.
    leaf_train_fraction : float or None
        Expected ratio of the recorded statistic to the one of all training
        rows when rows were sampled (bagging fraction, subsample); None when
        unknown (GOSS, an absolute bootstrap size with no recorded row count).
    leaf_train_class_fraction : float64 ndarray of shape (n_classes,) or None
        Class-dependent row sampling (LightGBM ``neg_bagging_fraction`` /
        ``pos_bagging_fraction``): the expected fraction of the rows of each
        class, in ``classes`` order, that each tree saw. When set it replaces
        ``leaf_train_fraction``: the data check compares the recorded
        statistic with the data's, each row weighted by its class's fraction.
    params : dict
        Descriptive library settings, for display only (methods read the
        typed fields above).
    """
    node_left: np.ndarray
    node_right: np.ndarray
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_kind: np.ndarray
    node_missing: np.ndarray
    node_default_left: np.ndarray
    node_cat_start: np.ndarray
    node_cat_len: np.ndarray
    cat_bits: np.ndarray
    node_leaf: np.ndarray
    tree_root: np.ndarray
    tree_round: np.ndarray
    tree_output: np.ndarray
    leaf_offset: np.ndarray
    leaf_value: np.ndarray
    leaf_library_id: np.ndarray
    base_margin: np.ndarray
    objective: str
    kind: str
    learning_rate: float
    reg_lambda: float
    reg_alpha: float
    hessian_factor: float
    library: str
    model_name: str
    encoder: TabularEncoder
    classes: object = None
    params: dict = field(default_factory=dict)
    leaf_reg_lambda: object = None
    l2_weight_scaling: str = "none"
    link: str = ""
    class_weight: object = None
    exact_leaves: bool = True
    exact_leaves_reasons: tuple = ()
    params_source: dict = field(default_factory=dict)
    train_split: object = None
    leaf_train_stat: object = None
    leaf_train_stat_kind: str = ""
    leaf_train_stat_exact: bool = False
    leaf_train_fraction: object = None
    leaf_train_class_fraction: object = None

    def __post_init__(self):
        n_leaves = int(self.leaf_offset[-1])
        if self.leaf_reg_lambda is None:
            self.leaf_reg_lambda = np.full(n_leaves, float(self.reg_lambda))
        self.leaf_reg_lambda = np.ascontiguousarray(self.leaf_reg_lambda, dtype=FLOAT)
        if self.leaf_reg_lambda.shape != (n_leaves,):
            raise ValueError(f"leaf_reg_lambda must have shape ({n_leaves},), "
                             f"got {self.leaf_reg_lambda.shape}")
        if not self.link:
            self.link = {"regression": "identity", "binary": "sigmoid",
                         "multiclass": "softmax"}[self.objective]
        if self.l2_weight_scaling not in ("none", "mean_weight"):
            raise ValueError(f"l2_weight_scaling must be 'none' or 'mean_weight', "
                             f"got {self.l2_weight_scaling!r}")
        if self.class_weight is not None:
            self.class_weight = np.ascontiguousarray(self.class_weight, dtype=FLOAT)
        self.exact_leaves = bool(self.exact_leaves)
        self.exact_leaves_reasons = tuple(str(r) for r in self.exact_leaves_reasons)
        if self.leaf_train_stat is not None:
            self.leaf_train_stat = np.ascontiguousarray(self.leaf_train_stat, dtype=FLOAT)
            if self.leaf_train_stat.shape != (n_leaves,):
                raise ValueError(f"leaf_train_stat must have shape ({n_leaves},), "
                                 f"got {self.leaf_train_stat.shape}")
        self.leaf_train_stat_exact = bool(self.leaf_train_stat_exact)
        if self.leaf_train_class_fraction is not None:
            self.leaf_train_class_fraction = np.ascontiguousarray(
                self.leaf_train_class_fraction, dtype=FLOAT)
        source = {"learning_rate": "model", "reg_lambda": "model"}
        source.update(self.params_source or {})
        self.params_source = source

    # ------------------------------------------------------------------ shape
    @property
    def n_outputs(self):
        """Number of margin columns K (1 for regression and binary)."""
        return int(self.base_margin.shape[0])

    @property
    def n_trees(self):
        """Total number of trees (rounds x outputs for boosting)."""
        return int(self.tree_root.shape[0])

    @property
    def n_rounds(self):
        """Trees per output column."""
        return self.n_trees // self.n_outputs

    @property
    def n_features(self):
        return self.encoder.n_features

    @property
    def n_leaves(self):
        """ndarray of shape (n_trees,): leaves per tree."""
        return np.diff(self.leaf_offset)

    # ------------------------------------------------------------- prediction
    def encode(self, X):
        """Validate user input and return the float64 matrix the kernels use.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features), float64, C-contiguous
        """
        return self.encoder.transform(X)

    def apply_encoded(self, Xe, n_jobs=None):
        """Compact leaf index per tree for an already encoded matrix.

        Returns
        -------
        ndarray of shape (n_samples, n_trees), int32
        """
        out = np.empty((Xe.shape[0], self.n_trees), dtype=LEAF_INT)
        with _threads(n_jobs):
            apply_kernel(Xe, self.tree_root, self.node_left, self.node_right,
                         self.node_feature, self.node_threshold, self.node_kind,
                         self.node_missing, self.node_default_left,
                         self.node_cat_start, self.node_cat_len, self.cat_bits,
                         self.node_leaf, out)
        return out

    def margins_from_leaves(self, leaves, n_jobs=None):
        """Raw margins (n_samples, n_outputs) from compact leaf indices."""
        out = np.empty((leaves.shape[0], self.n_outputs), dtype=FLOAT)
        with _threads(n_jobs):
            leaf_values_kernel(leaves, self.leaf_offset, self.leaf_value,
                               self.tree_output, self.base_margin, out)
        return out

    def apply(self, X, library_ids=False, n_jobs=None):
        """Leaf of every row in every tree.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        library_ids : bool, default=False
            Return the library's own leaf ids (as ``pred_leaf=True``,
            ``calc_leaf_indexes`` or ``apply`` report them) instead of the
            compact index ``0 .. n_leaves-1`` of the leaf within its tree.

        Returns
        -------
        ndarray of shape (n_samples, n_rounds, n_outputs), int64
        """
        leaves = self.apply_encoded(self.encode(X), n_jobs=n_jobs)
        if library_ids:
            leaves = self.leaf_library_id[self.leaf_offset[:-1][None, :] + leaves]
        return leaves.astype(np.int64).reshape(leaves.shape[0], self.n_rounds,
                                               self.n_outputs)

    def predict_raw(self, X, n_jobs=None):
        """Raw margin (before the link) of every row.

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), float64
        """
        leaves = self.apply_encoded(self.encode(X), n_jobs=n_jobs)
        return self.margins_from_leaves(leaves, n_jobs=n_jobs)

    def __repr__(self):
        return (f"FlatEnsemble(library={self.library!r}, model={self.model_name!r}, "
                f"objective={self.objective!r}, n_rounds={self.n_rounds}, "
                f"n_outputs={self.n_outputs}, n_features={self.n_features})")


def build_ensemble(trees, *, base_margin, objective, kind, learning_rate,
                   encoder, library, model_name, reg_lambda=0.0, reg_alpha=0.0,
                   hessian_factor=1.0, classes=None, params=None, **typed):
    """Concatenate parser output into a :class:`FlatEnsemble`.

    ``trees`` must be ordered by round, then output column, with every output
    column having the same number of trees.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    K = np.atleast_1d(base_margin).shape[0]
    if len(trees) == 0:
        raise ValueError("a model with no trees cannot be parsed")
    if len(trees) % K:
        raise ValueError(f"{len(trees)} trees do not divide into {K} outputs")

    cols = {k: [] for k in ("left", "right", "feature", "threshold", "kind",
                            "missing", "default_left", "cat_start", "cat_len",
                            "node_leaf")}
    words = []
    n_words = 0
    roots, rounds, outputs, leaf_offsets = [], [], [], [0]
    leaf_values, leaf_ids = [], []
    node_offset = 0
    for pos, tree in enumerate(trees):
        if tree.output != pos % K:
            raise ValueError("trees must be ordered by round, then output column")
        left = np.asarray(tree.left, dtype=np.int64)
        right = np.asarray(tree.right, dtype=np.int64)
        n_nodes = left.shape[0]
        is_leaf = left < 0
        lib_id = np.asarray(tree.leaf_id, dtype=np.int64)
        leaf_nodes = np.flatnonzero(is_leaf)
        order = leaf_nodes[np.argsort(lib_id[leaf_nodes], kind="stable")]
        node_leaf = np.full(n_nodes, -1, dtype=np.int64)
        node_leaf[order] = np.arange(order.shape[0])
        cols["left"].append(np.where(is_leaf, -1, left + node_offset))
        cols["right"].append(np.where(is_leaf, -1, right + node_offset))
        cols["feature"].append(np.where(is_leaf, 0, np.asarray(tree.feature, dtype=np.int64)))
        cols["threshold"].append(np.asarray(tree.threshold, dtype=FLOAT))
        cols["kind"].append(np.asarray(tree.kind, dtype=np.int64))
        cols["missing"].append(np.asarray(tree.missing, dtype=np.int64))
        cols["default_left"].append(np.asarray(tree.default_left, dtype=bool))
        cols["node_leaf"].append(node_leaf)
        start = np.zeros(n_nodes, dtype=np.int64)
        length = np.zeros(n_nodes, dtype=np.int64)
        for node, cats in tree.categories.items():
            cats = np.asarray(cats, dtype=np.int64)
            nw = int(cats.max()) // 32 + 1 if cats.size else 1
            bits = np.zeros(nw, dtype=np.uint32)
            np.bitwise_or.at(bits, cats >> 5, (np.uint32(1) << (cats & 31).astype(np.uint32)))
            start[node], length[node] = n_words, nw
            words.append(bits)
            n_words += nw
        cols["cat_start"].append(start)
        cols["cat_len"].append(length)
        roots.append(node_offset)
        rounds.append(tree.round)
        outputs.append(tree.output)
        leaf_values.append(np.asarray(tree.value, dtype=FLOAT)[order])
        leaf_ids.append(lib_id[order])
        leaf_offsets.append(leaf_offsets[-1] + order.shape[0])
        node_offset += n_nodes

    def cat(name):
        return np.concatenate(cols[name])

    return assemble_ensemble(
        node_left=cat("left"), node_right=cat("right"), node_feature=cat("feature"),
        node_threshold=cat("threshold"), node_kind=cat("kind"), node_missing=cat("missing"),
        node_default_left=cat("default_left"), node_cat_start=cat("cat_start"),
        node_cat_len=cat("cat_len"),
        cat_bits=np.concatenate(words) if words else np.zeros(1, dtype=np.uint32),
        node_leaf=cat("node_leaf"), tree_root=roots, tree_round=rounds, tree_output=outputs,
        leaf_offset=leaf_offsets, leaf_value=np.concatenate(leaf_values),
        leaf_library_id=np.concatenate(leaf_ids), base_margin=base_margin,
        objective=objective, kind=kind, learning_rate=learning_rate, encoder=encoder,
        library=library, model_name=model_name, reg_lambda=reg_lambda, reg_alpha=reg_alpha,
        hessian_factor=hessian_factor, classes=classes, params=params, **typed)


def assemble_ensemble(*, node_left, node_right, node_feature, node_threshold, node_kind,
                      node_missing, node_default_left, node_cat_start, node_cat_len,
                      cat_bits, node_leaf, tree_root, tree_round, tree_output, leaf_offset,
                      leaf_value, leaf_library_id, base_margin, objective, kind,
                      learning_rate, encoder, library, model_name, reg_lambda=0.0,
                      reg_alpha=0.0, hessian_factor=1.0, classes=None, params=None,
                      **typed):
    """A :class:`FlatEnsemble` from already concatenated arrays (global node
    indices, see the attributes of :class:`FlatEnsemble`), cast to the declared
    dtypes. Trees must be ordered by round, then output column. ``typed``
    holds the optional typed fields (``leaf_reg_lambda``, ``link``,
    ``class_weight``, ``exact_leaves``, ...)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    base_margin = np.ascontiguousarray(np.atleast_1d(base_margin), dtype=FLOAT)
    K = base_margin.shape[0]
    tree_output = np.asarray(tree_output, dtype=np.int32)
    n_trees = tree_output.shape[0]
    if n_trees == 0:
        raise ValueError("a model with no trees cannot be parsed")
    if n_trees % K:
        raise ValueError(f"{n_trees} trees do not divide into {K} outputs")
    if np.any(tree_output != np.arange(n_trees) % K):
        raise ValueError("trees must be ordered by round, then output column")

    def arr(a, dtype):
        return np.ascontiguousarray(a, dtype=dtype)

    return FlatEnsemble(
        node_left=arr(node_left, NODE_INT), node_right=arr(node_right, NODE_INT),
        node_feature=arr(node_feature, NODE_INT), node_threshold=arr(node_threshold, FLOAT),
        node_kind=arr(node_kind, np.int8), node_missing=arr(node_missing, np.int8),
        node_default_left=arr(node_default_left, np.bool_),
        node_cat_start=arr(node_cat_start, np.int32), node_cat_len=arr(node_cat_len, np.int32),
        cat_bits=arr(cat_bits, np.uint32), node_leaf=arr(node_leaf, LEAF_INT),
        tree_root=arr(tree_root, NODE_INT), tree_round=arr(tree_round, np.int32),
        tree_output=tree_output, leaf_offset=arr(leaf_offset, np.int64),
        leaf_value=arr(leaf_value, FLOAT), leaf_library_id=arr(leaf_library_id, np.int64),
        base_margin=base_margin, objective=objective, kind=kind,
        learning_rate=float(learning_rate), reg_lambda=float(reg_lambda),
        reg_alpha=float(reg_alpha), hessian_factor=float(hessian_factor),
        library=library, model_name=model_name, encoder=encoder,
        classes=None if classes is None else np.asarray(classes),
        params=dict(params or {}), **typed)
