"""Per-row losses and their derivatives in the raw margin (SPEC §1).

Objectives are small integers so kernels can branch on them:
``REGRESSION`` (squared error), ``BINARY`` (log loss, sigmoid link) and
``MULTICLASS`` (softmax cross-entropy). For classification ``y`` holds class
indices (0/1 for binary). The multiclass hessian is diagonal and scaled by the
library's factor ``f``.
"""
import math

import numpy as np

from ._numba import njit, pnjit, prange

REGRESSION = 0
BINARY = 1
MULTICLASS = 2

OBJECTIVE_CODES = {"regression": REGRESSION, "binary": BINARY, "multiclass": MULTICLASS}

# probability clip for losses (not for gradients), as in the retraining methods
P_CLIP = 1e-5


@njit
def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit
def softmax_row(z, out):
    """Softmax of ``z`` (K,) into ``out`` (K,)."""
    m = z[0]
    for c in range(1, z.shape[0]):
        if z[c] > m:
            m = z[c]
    s = 0.0
    for c in range(z.shape[0]):
        out[c] = math.exp(z[c] - m)
        s += out[c]
    for c in range(z.shape[0]):
        out[c] /= s


@njit
def grad_hess_row(objective, z, y, factor, g, h, k):
    """g, h, k (each (K,)) of one row's loss at margin ``z`` (K,)."""
    K = z.shape[0]
    if objective == REGRESSION:
        g[0] = z[0] - y
        h[0] = 1.0
        k[0] = 0.0
    elif objective == BINARY:
        p = sigmoid(z[0])
        g[0] = p - y
        h[0] = p * (1.0 - p)
        k[0] = p * (1.0 - p) * (1.0 - 2.0 * p)
    else:
        softmax_row(z, g)
        for c in range(K):
            p = g[c]
            h[c] = factor * p * (1.0 - p)
            k[c] = factor * p * (1.0 - p) * (1.0 - 2.0 * p)
            if c == int(y):
                g[c] = p - 1.0


@njit
def grad_hess_1(objective, z, y):
    """(g, h) of a single-output loss (regression or binary) at margin z;
    the same numbers as ``grad_hess_row`` without its arrays."""
    if objective == REGRESSION:
        return z - y, 1.0
    p = sigmoid(z)
    return p - y, p * (1.0 - p)


@pnjit
def loss_kernel(objective, margin, y, out):
    """Per-row loss (n,) at margins (n, K); probabilities clipped to [1e-5, 1-1e-5]."""
    n = margin.shape[0]
    K = margin.shape[1]
    for i in prange(n):
        if objective == REGRESSION:
            d = y[i] - margin[i, 0]
            out[i] = 0.5 * d * d
        elif objective == BINARY:
            p = min(max(sigmoid(margin[i, 0]), P_CLIP), 1.0 - P_CLIP)
            out[i] = -math.log(p) if y[i] == 1.0 else -math.log(1.0 - p)
        else:
            p = np.empty(K)
            softmax_row(margin[i], p)
            out[i] = -math.log(min(max(p[int(y[i])], P_CLIP), 1.0 - P_CLIP))


@pnjit
def gradient_kernel(objective, margin, y, factor, out):
    """Loss gradient (n, K) at margins (n, K)."""
    n = margin.shape[0]
    K = margin.shape[1]
    for i in prange(n):
        h = np.empty(K)
        k = np.empty(K)
        g = np.empty(K)
        grad_hess_row(objective, margin[i], y[i], factor, g, h, k)
        for c in range(K):
            out[i, c] = g[c]


def loss(objective, margin, y):
    """Per-row loss, ndarray of shape (n,)."""
    out = np.empty(margin.shape[0])
    loss_kernel(OBJECTIVE_CODES[objective], np.ascontiguousarray(margin, dtype=np.float64),
                np.ascontiguousarray(y, dtype=np.float64), out)
    return out


def gradient(objective, margin, y, factor=1.0):
    """Gradient of the loss in the margin, ndarray of shape (n, K)."""
    out = np.empty(margin.shape)
    gradient_kernel(OBJECTIVE_CODES[objective], np.ascontiguousarray(margin, dtype=np.float64),
                    np.ascontiguousarray(y, dtype=np.float64), float(factor), out)
    return out


def output_loss(objective, margin, y, link=None):
    """Per-row loss of a model's output, for boosted models and forests.

    Parameters
    ----------
    objective : {'regression', 'binary', 'multiclass'}
    margin : ndarray of shape (n, K)
        What the ensemble's trees sum to (``FlatEnsemble.margins_from_leaves``).
    y : ndarray of shape (n,)
        Targets (class indices for classification).
    link : {None, 'identity', 'sigmoid', 'softmax'}, default=None
        The model's link (``FlatEnsemble.link``). None means the
        objective's natural link (identity, sigmoid, softmax). 'identity' for a
        classifier (scikit-learn forests) means ``margin`` already holds
        probabilities: P(class 1) for binary, one column per class otherwise.

    Returns
    -------
    ndarray of shape (n,)
        Squared error / 2 for regression, log loss otherwise, with
        probabilities clipped to [1e-5, 1 - 1e-5] as in :func:`loss`.
    """
    if objective == "regression" or link != "identity":
        return loss(objective, margin, y)
    margin = np.asarray(margin, dtype=np.float64)
    yi = np.asarray(y).astype(np.int64)
    if objective == "binary":
        p1 = margin[:, 0]
        p = np.where(yi == 1, p1, 1.0 - p1)
    else:
        p = margin[np.arange(margin.shape[0]), yi]
    return -np.log(np.clip(p, P_CLIP, 1.0 - P_CLIP))
