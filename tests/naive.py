"""Slow, obvious reference implementations written from ../shared/SPEC.md.

Plain numpy with explicit loops over trees and leaves; nothing here calls a
treeinf kernel except the (separately verified) tree traversal ``ens.apply``.
"""
import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def derivatives(objective, Z, y, factor):
    """g, h of shape (n, K) at margins Z (n, K) for targets y (n,)."""
    if objective == "regression":
        return Z - y[:, None], np.ones_like(Z)
    if objective == "binary":
        p = _sigmoid(Z)
        return p - y[:, None], p * (1 - p)
    P = _softmax(Z)
    Y = np.zeros_like(P)
    Y[np.arange(len(y)), y.astype(int)] = 1.0
    return P - Y, factor * P * (1 - P)


def margins_before_round(ens, leaves):
    """Dict round -> margins (n, K) before that round, from compact leaves (n, T)."""
    n = leaves.shape[0]
    Z = np.tile(ens.base_margin, (n, 1))
    out = {}
    for j in range(ens.n_trees):
        r = int(ens.tree_round[j])
        if r not in out:
            # margins before round r: all trees of earlier rounds
            Z = np.tile(ens.base_margin, (n, 1))
            for jj in range(ens.n_trees):
                if ens.tree_round[jj] < r:
                    c = ens.tree_output[jj]
                    Z[:, c] += ens.leaf_value[ens.leaf_offset[jj] + leaves[:, jj]]
            out[r] = Z
    return out


def tree_derivatives(ens, leaves, y):
    """g, h of shape (n, T): derivative for tree j's output before its round."""
    before = margins_before_round(ens, leaves)
    n = leaves.shape[0]
    g = np.empty((n, ens.n_trees))
    h = np.empty((n, ens.n_trees))
    for j in range(ens.n_trees):
        gg, hh = derivatives(ens.objective, before[int(ens.tree_round[j])], y,
                             ens.hessian_factor)
        g[:, j] = gg[:, ens.tree_output[j]]
        h[:, j] = hh[:, ens.tree_output[j]]
    return g, h


def boostin_train_term(ens, leaves, y, w, variant="exact"):
    """D (n, T): eta * w_i (g_i + v_l h_i) / (H_l + lambda) of SPEC §3."""
    g, h = tree_derivatives(ens, leaves, y)
    eta, lam = ens.learning_rate, ens.reg_lambda
    D = np.zeros_like(g)
    for j in range(ens.n_trees):
        for leaf in range(ens.n_leaves[j]):
            rows = leaves[:, j] == leaf
            if not rows.any():
                continue
            H = np.sum(w[rows] * h[rows, j])
            phi = ens.leaf_value[ens.leaf_offset[j] + leaf]
            v = phi / eta if variant == "exact" else phi
            if H + lam > 0:
                D[rows, j] = eta * w[rows] * (g[rows, j] + v * h[rows, j]) / (H + lam)
    return D, g


def boostin(ens, X_train, y_train, w, X_test, y_test, variant="exact"):
    """Dense BoostIn matrix (n_train, n_test) from SPEC §3."""
    Ltr = ens.apply(X_train).reshape(len(y_train), -1)
    Lte = ens.apply(X_test).reshape(len(y_test), -1)
    D, _ = boostin_train_term(ens, Ltr, y_train, w, variant)
    G, _ = tree_derivatives(ens, Lte, y_test)
    out = np.zeros((len(y_train), len(y_test)))
    for j in range(ens.n_trees):
        same = Ltr[:, j][:, None] == Lte[:, j][None, :]
        out += same * D[:, j][:, None] * G[:, j][None, :]
    return out


def boostin_self(ens, X_train, y_train, w, variant="exact"):
    Ltr = ens.apply(X_train).reshape(len(y_train), -1)
    D, g = boostin_train_term(ens, Ltr, y_train, w, variant)
    return np.sum(D * g, axis=1)


def newton_leaf(g, h, w, eta, lam):
    """Fixed-structure leaf value -eta * sum(w g) / (sum(w h) + lambda)."""
    return -eta * np.sum(w * g) / (np.sum(w * h) + lam)
