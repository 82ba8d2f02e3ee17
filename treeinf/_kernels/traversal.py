"""Tree traversal over the flat node arrays (see ``treeinf._trees._flat``)."""
import numpy as np

from .._numba import njit, pnjit, prange

# split kinds (node_kind)
SPLIT_LE = 0         # x <= threshold goes left
SPLIT_LT = 1         # x <  threshold goes left
SPLIT_CAT_LEFT = 2   # category in the node's set goes left, others right
SPLIT_CAT_RIGHT = 3  # category in the node's set goes right, others left

# missing-value rules (node_missing), applied before the comparison
MISS_DEFAULT = 0       # NaN takes the default side
MISS_AS_ZERO = 1       # NaN is replaced by 0.0, then compared
MISS_ZERO_DEFAULT = 2  # NaN or |x| <= 1e-35f takes the default side (LightGBM "Zero")

# LightGBM's kZeroThreshold is the float literal 1e-35f, compared as a double.
# LightGBM's predict also reads |x| <= kZeroThreshold in a dense row as 0.0
# before any node sees it; that input rule is the LightGBM encoder's (values
# stored in a sparse matrix are kept), the kernel compares what it is given.
ZERO_THRESHOLD = float(np.float32(1e-35))


@njit
def _in_category_set(x, start, n_words, bits):
    if not (x >= 0.0) or x >= 32.0 * n_words:
        return False
    c = np.int64(x)  # truncation toward zero, as the libraries cast
    return ((bits[start + (c >> 5)] >> np.uint32(c & 31)) & np.uint32(1)) == 1


@njit
def _leaf_of(x_row, node, left, right, feature, threshold, kind, missing,
             default_left, cat_start, cat_len, cat_bits, node_leaf):
    while left[node] >= 0:
        x = x_row[feature[node]]
        k = kind[node]
        go_default = False
        if np.isnan(x):
            if missing[node] == MISS_AS_ZERO:
                x = 0.0
            else:
                go_default = True
        elif missing[node] == MISS_ZERO_DEFAULT and abs(x) <= ZERO_THRESHOLD:
            go_default = True
        if go_default:
            go_left = default_left[node]
        elif k == SPLIT_LE:
            go_left = x <= threshold[node]
        elif k == SPLIT_LT:
            go_left = x < threshold[node]
        else:
            inside = _in_category_set(x, cat_start[node], cat_len[node], cat_bits)
            go_left = inside if k == SPLIT_CAT_LEFT else not inside
        node = left[node] if go_left else right[node]
    return node_leaf[node]


@pnjit
def apply_kernel(X, tree_root, left, right, feature, threshold, kind, missing,
                 default_left, cat_start, cat_len, cat_bits, node_leaf, out):
    """Leaf index (within its tree) of every row in every tree.

    X : float64 (n, n_features); out : int32 (n, n_trees), written in place.
    """
    n = X.shape[0]
    n_trees = tree_root.shape[0]
    for i in prange(n):
        for j in range(n_trees):
            out[i, j] = _leaf_of(X[i], tree_root[j], left, right, feature,
                                 threshold, kind, missing, default_left,
                                 cat_start, cat_len, cat_bits, node_leaf)


@pnjit
def leaf_values_kernel(leaves, leaf_offset, leaf_value, tree_class, base, out):
    """Sum of the leaf values of each row per output column, plus ``base``.

    leaves : int32 (n, n_trees); out : float64 (n, K), written in place.
    """
    n = leaves.shape[0]
    n_trees = leaves.shape[1]
    K = base.shape[0]
    for i in prange(n):
        for c in range(K):
            out[i, c] = base[c]
        for j in range(n_trees):
            out[i, tree_class[j]] += leaf_value[leaf_offset[j] + leaves[i, j]]
