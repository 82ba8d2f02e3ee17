"""Statistics of an ensemble on data: leaf ids, per-round derivatives, leaf sums.

Thin wrappers that allocate outputs and call the kernels of
``treeinf._kernels.stats``; all inputs are already validated and encoded.
"""
import numpy as np

from ._kernels.stats import (group_by_leaf_kernel, leaf_aggregate_kernel,
                             leaf_sums_kernel, round_derivatives_kernel)
from ._losses import OBJECTIVE_CODES

_EMPTY = np.empty((0, 0))


def effective_l2(ens, w):
    """The L2 term of every leaf's Newton step, as the model used it.

    Parameters
    ----------
    ens : FlatEnsemble
    w : ndarray of shape (n_train,)
        Training weights (sample weight times class weight) of the rows
        passed to ``fit``.

    Returns
    -------
    ndarray of shape (n_leaves_total,), float64
        ``ens.leaf_reg_lambda``, times the mean training weight when the
        library scales its L2 by it (CatBoost).
    """
    lam = ens.leaf_reg_lambda
    if ens.l2_weight_scaling == "mean_weight":
        lam = lam * float(np.mean(w))
    return np.ascontiguousarray(lam, dtype=np.float64)


def round_derivatives(ens, leaves, y, hessian=True, third=False):
    """Loss derivatives of each row at the margin before each tree's round.

    Parameters
    ----------
    ens : FlatEnsemble
    leaves : ndarray of shape (n, n_trees), int32
    y : ndarray of shape (n,), float64 (class index for classification)

    Returns
    -------
    g, h, k : ndarrays of shape (n, n_trees); h and k are None unless asked for.
    """
    n, T = leaves.shape
    g = np.empty((n, T))
    h = np.empty((n, T)) if hessian else _EMPTY
    k = np.empty((n, T)) if third else _EMPTY
    round_derivatives_kernel(leaves, ens.tree_round, ens.tree_output, ens.leaf_offset,
                             ens.leaf_value, ens.base_margin, y,
                             OBJECTIVE_CODES[ens.objective], ens.hessian_factor, g, h, k)
    return g, (h if hessian else None), (k if third else None)


def group_by_leaf(ens, leaves):
    """CSR grouping of rows by leaf: (ptr (n_leaves_total+1,), idx (n*n_trees,) uint32)."""
    n, T = leaves.shape
    ptr = np.empty(ens.leaf_offset[-1] + 1, dtype=np.int64)
    idx = np.empty(n * T, dtype=np.uint32)
    group_by_leaf_kernel(leaves, ens.leaf_offset, ptr, idx)
    return ptr, idx


def leaf_sums(ens, ptr, idx, values, weight):
    """Weighted sum of ``values`` (n, n_trees) over each leaf's rows."""
    out = np.empty(ens.leaf_offset[-1])
    leaf_sums_kernel(ptr, idx, values, weight, ens.leaf_offset, out)
    return out


def leaf_aggregate(ens, leaves, values):
    """Unweighted sum of ``values`` (m, n_trees) per leaf over the given rows."""
    out = np.zeros(ens.leaf_offset[-1])
    leaf_aggregate_kernel(leaves, values, ens.leaf_offset, out)
    return out


def sort_by_leaf(values, idx):
    """``values`` (n, n_trees) rearranged into the CSR order of ``idx``."""
    n, T = values.shape
    return np.ascontiguousarray(
        np.take_along_axis(values.T, idx.reshape(T, n), axis=1).ravel())


def tree_major_leaves(ens, leaves):
    """Leaves transposed to (n_trees, n), in the smallest integer type that fits."""
    dtype = np.uint8 if ens.n_leaves.max() <= 256 else np.int32
    return np.ascontiguousarray(leaves.T, dtype=dtype)


def leaf_index(ens, leaves):
    """Global leaf position (n, n_trees) int64 of compact leaf ids."""
    return ens.leaf_offset[:-1][None, :] + leaves


def leaf_id_dtype(ens):
    """Smallest unsigned integer type holding every compact leaf id."""
    m = int(ens.n_leaves.max()) - 1 if ens.n_trees else 0
    for dt in (np.uint8, np.uint16, np.uint32):
        if m <= np.iinfo(dt).max:
            return dt
    return np.uint64
