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


def model_training_params(model, X_train, w):
    """(eta, per-tree list of per-leaf L2) read from the model's own API.

    Independent of treeinf's parse: the learning rate and L2 come from each
    library's documented parameters, and LightGBM's per-leaf ``cat_l2`` from
    its ``dump_model()`` (a leaf made by a categorical split of a feature
    with more than ``max_cat_to_onehot`` categories uses lambda_l2 + cat_l2,
    per LightGBM's parameter documentation). ``w`` are the effective training
    weights (CatBoost scales its L2 by their mean). Leaf arrays are in the
    library's leaf-id order (LightGBM) or None for a scalar L2.
    """
    name = type(model).__name__
    if name.startswith("LGBM"):
        p = model.get_params()
        eta = p["learning_rate"]
        lam = p.get("reg_lambda") or 0.0
        cat_l2 = p.get("cat_l2", 10.0)
        max_onehot = p.get("max_cat_to_onehot", 4)
        dump = model.booster_.dump_model()
        frame = getattr(X_train, "dtypes", None)
        n_cats = {}
        if frame is not None:
            for j, col in enumerate(X_train.columns):
                if str(X_train[col].dtype) == "category":
                    n_cats[j] = int(X_train[col].dropna().nunique())
        per_tree = []
        for info in dump["tree_info"]:
            out = np.full(info["num_leaves"], float(lam))

            def walk(node, parent):
                if "leaf_index" in node:
                    if parent is not None and parent["decision_type"] == "==" and \
                            n_cats.get(parent["split_feature"], 0) > max_onehot:
                        out[node["leaf_index"]] = lam + cat_l2
                    return
                walk(node["left_child"], node)
                walk(node["right_child"], node)
            walk(info["tree_structure"], None)
            per_tree.append(out)
        return eta, per_tree
    if name.startswith("XGB"):
        p = model.get_params()   # XGBoost keeps its training parameters in float32
        lam = 1.0 if p.get("reg_lambda") is None else p["reg_lambda"]
        return float(np.float32(p["learning_rate"])), float(np.float32(lam))
    if name.startswith("CatBoost"):
        p = model.get_all_params()
        return p["learning_rate"], p["l2_leaf_reg"] * float(np.mean(w))
    if name.startswith("HistGradientBoosting"):
        return model.learning_rate, float(model.l2_regularization)
    if name.startswith("GradientBoosting"):
        return model.learning_rate, 0.0
    raise ValueError(name)


def boostin_train_term(ens, leaves, y, w, variant="exact", eta=None, lam=None):
    """D (n, T): eta * w_i (g_i + v_l h_i) / (H_l + lambda) of SPEC §3.

    ``eta`` and ``lam`` (a scalar or a per-tree list of per-leaf arrays in
    leaf-id order) as given by :func:`model_training_params`; the ensemble's
    own values when None.
    """
    g, h = tree_derivatives(ens, leaves, y)
    eta = ens.learning_rate if eta is None else eta
    lam = ens.reg_lambda if lam is None else lam
    D = np.zeros_like(g)
    for j in range(ens.n_trees):
        for leaf in range(ens.n_leaves[j]):
            rows = leaves[:, j] == leaf
            if not rows.any():
                continue
            H = np.sum(w[rows] * h[rows, j])
            phi = ens.leaf_value[ens.leaf_offset[j] + leaf]
            v = phi / eta if variant == "exact" else phi
            lam_l = lam if np.isscalar(lam) else lam[j][np.sort(
                ens.leaf_library_id[ens.leaf_offset[j]:ens.leaf_offset[j + 1]])[leaf]]
            if H + lam_l > 0:
                D[rows, j] = eta * w[rows] * (g[rows, j] + v * h[rows, j]) / (H + lam_l)
    return D, g


def boostin(ens, X_train, y_train, w, X_test, y_test, variant="exact", eta=None, lam=None):
    """Dense BoostIn matrix (n_train, n_test) from SPEC §3."""
    Ltr = ens.apply(X_train).reshape(len(y_train), -1)
    Lte = ens.apply(X_test).reshape(len(y_test), -1)
    D, _ = boostin_train_term(ens, Ltr, y_train, w, variant, eta, lam)
    G, _ = tree_derivatives(ens, Lte, y_test)
    out = np.zeros((len(y_train), len(y_test)))
    for j in range(ens.n_trees):
        same = Ltr[:, j][:, None] == Lte[:, j][None, :]
        out += same * D[:, j][:, None] * G[:, j][None, :]
    return out


def boostin_self(ens, X_train, y_train, w, variant="exact", eta=None, lam=None):
    Ltr = ens.apply(X_train).reshape(len(y_train), -1)
    D, g = boostin_train_term(ens, Ltr, y_train, w, variant, eta, lam)
    return np.sum(D * g, axis=1)


def newton_leaf(g, h, w, eta, lam):
    """Fixed-structure leaf value -eta * sum(w g) / (sum(w h) + lambda)."""
    return -eta * np.sum(w * g) / (np.sum(w * h) + lam)


def _loss(objective, Z, y):
    if objective == "regression":
        return 0.5 * (y - Z[:, 0]) ** 2
    if objective == "binary":
        p = np.clip(_sigmoid(Z[:, 0]), 1e-5, 1 - 1e-5)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    P = np.clip(_softmax(Z), 1e-5, 1 - 1e-5)
    return -np.log(P[np.arange(len(y)), y.astype(int)])


def leaf_formula(G, H, lam, alpha, eta):
    Gs = np.sign(G) * max(abs(G) - alpha, 0.0)
    return -eta * Gs / (H + lam) if H + lam > 0 else 0.0


def refit(ens, leaves, y, w, lam, update=None, extra=None):
    """Leaf-value changes of the fixed-structure model refitted on modified data.

    Recomputes every leaf in boosting order (SPEC §3) with weights ``w`` and
    labels ``y`` (already modified by the caller), g and h at the original
    margins plus the accumulated change of the rows in the update set, and
    returns the change of every leaf relative to the same recomputation on
    the unmodified data ``(y0, w0)`` held in ``extra['base']``.

    update : None (all rows follow) or a function (tree j, delta, changes) ->
        boolean mask of rows whose margins follow.
    extra : dict with 'base' = (y0, w0) and optionally 'row' = (leaf row
        index, label, weight) of an additional copy of a training row.
    """
    y0, w0 = extra["base"]
    n = leaves.shape[0]
    K = ens.n_outputs
    before = margins_before_round(ens, leaves)
    delta = np.zeros((n, K))
    add = extra.get("row")
    d_add = np.zeros(K)
    change = np.zeros(ens.leaf_offset[-1])
    rounds = sorted(set(int(r) for r in ens.tree_round))
    for r in rounds:
        trees = [j for j in range(ens.n_trees) if ens.tree_round[j] == r]
        Z0 = before[r]
        g0, h0 = derivatives(ens.objective, Z0, y0, ens.hessian_factor)
        g1, h1 = derivatives(ens.objective, Z0 + delta, y, ens.hessian_factor)
        if add is not None:
            ga, ha = derivatives(ens.objective, (Z0[add[0]] + d_add)[None, :],
                                 np.array([add[1]], dtype=float), ens.hessian_factor)
        pending = np.zeros((n, K))
        pend_add = np.zeros(K)
        for j in trees:
            c = ens.tree_output[j]
            for leaf in range(ens.n_leaves[j]):
                L = ens.leaf_offset[j] + leaf
                rows = leaves[:, j] == leaf
                base = leaf_formula(np.sum(w0[rows] * g0[rows, c]), np.sum(w0[rows] * h0[rows, c]),
                                    lam[L], ens.reg_alpha, ens.learning_rate)
                G = np.sum(w[rows] * g1[rows, c])
                H = np.sum(w[rows] * h1[rows, c])
                if add is not None and leaves[add[0], j] == leaf:
                    G += add[2] * ga[0, c]
                    H += add[2] * ha[0, c]
                change[L] = leaf_formula(G, H, lam[L], ens.reg_alpha, ens.learning_rate) - base
            follow = np.ones(n, bool) if update is None else update(j, delta[:, c], change)
            pending[follow, c] += change[ens.leaf_offset[j] + leaves[follow, j]]
            if add is not None:
                pend_add[c] += change[ens.leaf_offset[j] + leaves[add[0], j]]
        delta += pending
        d_add += pend_add
    return change


def loss_change(ens, change, leaves_test, margin_test, y_test):
    """l(y, F + sum of leaf changes) - l(y, F) per test row."""
    Z = margin_test.copy()
    for j in range(ens.n_trees):
        Z[:, ens.tree_output[j]] += change[ens.leaf_offset[j] + leaves_test[:, j]]
    return _loss(ens.objective, Z, y_test) - _loss(ens.objective, margin_test, y_test)


def leaf_influence(ens, leaves, y, w, lam, i, update_set, margin_test, leaves_test, y_test):
    """SPEC §3 LeafInfluence of removing row i, by the forward recursion.

    J_l = -eta [sum_{j in l, j in U} w_j Delta_j (h_j + v_l k_j)
                + 1[i in l] w_i (g_i + v_l h_i)] / (H_l + lambda),
    U = all rows (-1), {i} (0), or i plus the rows of the k leaves with the
    largest sum |Delta| (k >= 1). Returns -sum_c g_c(test) sum_t J (m,).
    """
    n = leaves.shape[0]
    K = ens.n_outputs
    eta = ens.learning_rate
    before = margins_before_round(ens, leaves)
    Delta = np.zeros((n, K))
    J = np.zeros(ens.leaf_offset[-1])
    g_all, h_all = tree_derivatives(ens, leaves, y)
    v_all = np.array([ens.leaf_value[ens.leaf_offset[j] + leaves[:, j]] for j in range(ens.n_trees)]).T
    floor = 1e-12 * np.max(np.abs(w[:, None] * (g_all + v_all / eta * h_all)))
    for r in sorted(set(int(t) for t in ens.tree_round)):
        Z = before[r]
        g, h = derivatives(ens.objective, Z, y, ens.hessian_factor)
        if ens.objective == "regression":
            k3 = np.zeros_like(Z)
        elif ens.objective == "binary":
            p = _sigmoid(Z)
            k3 = p * (1 - p) * (1 - 2 * p)
        else:
            P = _softmax(Z)
            k3 = ens.hessian_factor * P * (1 - P) * (1 - 2 * P)
        pending = np.zeros((n, K))
        for j in [t for t in range(ens.n_trees) if ens.tree_round[t] == r]:
            c = ens.tree_output[j]
            n_l = ens.n_leaves[j]
            if update_set == -1:
                U = np.ones(n, bool)
            else:
                U = np.zeros(n, bool)
                if update_set > 0:
                    score = np.bincount(leaves[:, j], weights=np.abs(Delta[:, c]), minlength=n_l)
                    score[score <= floor] = 0.0  # rounding noise is a tie
                    U = np.isin(leaves[:, j], np.argsort(-score, kind="stable")[:update_set])
                U[i] = True
            for leaf in range(n_l):
                L = ens.leaf_offset[j] + leaf
                rows = leaves[:, j] == leaf
                G = np.sum(w[rows] * g[rows, c])
                H = np.sum(w[rows] * h[rows, c])
                if (ens.reg_alpha > 0 and abs(G) <= ens.reg_alpha) or H + lam[L] <= 0:
                    J[L] = 0.0
                    continue
                v = leaf_formula(G, H, lam[L], ens.reg_alpha, eta) / eta
                sel = rows & U
                acc = np.sum(w[sel] * Delta[sel, c] * (h[sel, c] + v * k3[sel, c]))
                if rows[i]:
                    acc += w[i] * (g[i, c] + v * h[i, c])
                J[L] = -eta * acc / (H + lam[L])
                pending[sel, c] += J[L]
        Delta += pending
    G_test, _ = derivatives(ens.objective, margin_test, y_test, ens.hessian_factor)
    out = np.zeros(len(y_test))
    for j in range(ens.n_trees):
        out -= G_test[:, ens.tree_output[j]] * J[ens.leaf_offset[j] + leaves_test[:, j]]
    return out


# --------------------------------------------------------------- SPEC §5
def similarity_sign(objective, y_train, y_test, p_test):
    """s(i, e) (n_train, n_test): classification +1 for the same label;
    regression +1 if y_i and y_e are on the same side of p_e (equal = above)."""
    out = np.empty((len(y_train), len(y_test)))
    for e in range(len(y_test)):
        if objective == "regression":
            same_side = (y_train >= p_test[e]) == (y_test[e] >= p_test[e])
            out[:, e] = np.where(same_side, 1.0, -1.0)
        else:
            out[:, e] = np.where(y_train == y_test[e], 1.0, -1.0)
    return out


def treesim_lpw(ens, X_train, y_train, X_test, y_test):
    """SPEC §5 TreeSim literally: sum_trees 1[same leaf] count(leaf)^-2 s(i, e)."""
    Ltr = ens.apply(X_train).reshape(len(y_train), -1)
    Lte = ens.apply(X_test).reshape(len(y_test), -1)
    p = ens.predict_raw(X_test)[:, 0]
    out = np.zeros((len(y_train), len(y_test)))
    for j in range(ens.n_trees):
        for e in range(len(y_test)):
            same = Ltr[:, j] == Lte[e, j]
            count = same.sum()
            if count:
                out[same, e] += 1.0 / count ** 2
    return out * similarity_sign(ens.objective, y_train, y_test, p)


def leaf_kernel_features(ens, X_train, X, kernel):
    """Dense kernel features (n, n_leaves_total) of SPEC §4's leaf kernels;
    count = training rows in the leaf, 1/count taken as 0 for empty leaves."""
    Ltr = ens.apply(X_train).reshape(len(X_train), -1)
    L = ens.apply(X).reshape(len(X), -1)
    Phi = np.zeros((len(X), ens.leaf_offset[-1]))
    for j in range(ens.n_trees):
        for leaf in range(ens.n_leaves[j]):
            col = ens.leaf_offset[j] + leaf
            count = np.sum(Ltr[:, j] == leaf)
            inv = 1.0 / count if count else 0.0
            value = {"lp_": 1.0, "lpw": inv, "lo_": ens.leaf_value[col],
                     "low": ens.leaf_value[col] * inv}[kernel]
            Phi[L[:, j] == leaf, col] = value
    return Phi


def _pairwise(A, B, similarity, eps):
    """(len(A), len(B)) dot / cosine / 1/(euclidean + eps) between rows."""
    if similarity == "dot":
        return A @ B.T
    if similarity == "cosine":
        na = np.linalg.norm(A, axis=1)
        nb = np.linalg.norm(B, axis=1)
        out = np.zeros((len(A), len(B)))
        for i in range(len(A)):
            for e in range(len(B)):
                if na[i] > 0 and nb[e] > 0:
                    out[i, e] = A[i] @ B[e] / (na[i] * nb[e])
        return out
    out = np.empty((len(A), len(B)))
    for e in range(len(B)):
        out[:, e] = 1.0 / (np.linalg.norm(A - B[e], axis=1) + eps)
    return out


def treesim(ens, X_train, y_train, X_test, y_test, kernel, similarity, eps):
    Ptr = leaf_kernel_features(ens, X_train, X_train, kernel)
    Pte = leaf_kernel_features(ens, X_train, X_test, kernel)
    p = ens.predict_raw(X_test)[:, 0]
    return (_pairwise(Ptr, Pte, similarity, eps)
            * similarity_sign(ens.objective, y_train, y_test, p))


def fill_like_inputsim(X_train, X, standardize):
    """NaN -> training median, +-inf -> training max/min finite, per column."""
    Xtr = np.array(X_train, dtype=float)
    out = np.array(X, dtype=float)
    tr_filled = Xtr.copy()
    for k in range(Xtr.shape[1]):
        fin = Xtr[np.isfinite(Xtr[:, k]), k]
        med = np.median(fin) if fin.size else 0.0
        hi = fin.max() if fin.size else med
        lo = fin.min() if fin.size else med
        for M in (out, tr_filled):
            col = M[:, k]
            col[np.isnan(col)] = med
            col[col == np.inf] = hi
            col[col == -np.inf] = lo
    if standardize:
        mu = tr_filled.mean(axis=0)
        sd = tr_filled.std(axis=0)
        sd[sd == 0] = 1.0
        out = (out - mu) / sd
    return out


def inputsim(ens, X_train, y_train, X_test, y_test, similarity, eps, standardize):
    A = fill_like_inputsim(X_train, X_train, standardize)
    B = fill_like_inputsim(X_train, X_test, standardize)
    p = ens.predict_raw(X_test)[:, 0]
    return _pairwise(A, B, similarity, eps) * similarity_sign(ens.objective, y_train, y_test, p)


# --------------------------------------------------------------- SPEC §4
def _tree_paths(ens, j):
    """{compact leaf: list of global nodes from the root to it} for tree j."""
    start = int(ens.tree_root[j])
    stop = int(ens.tree_root[j + 1]) if j + 1 < ens.n_trees else len(ens.node_left)
    paths = {}
    stack = [(start, [start])]
    while stack:  # depth-first walk down from the root
        node, path = stack.pop()
        if ens.node_left[node] < 0:
            paths[int(ens.node_leaf[node])] = path
        else:
            for child in (int(ens.node_left[node]), int(ens.node_right[node])):
                assert start <= child < stop
                stack.append((child, path + [child]))
    return paths


def trex_features(ens, X_train, X, kernel, similarity="dot"):
    """Dense TREX kernel features (n, d) of SPEC §4, written from the table.

    Columns: tree j ('to_'), global leaf leaf_offset[j] + leaf (leaf
    kernels), global node (path kernels). count = training rows reaching the
    leaf / node; 1/count is 0 where nobody does. 'cosine' scales rows to unit
    norm.
    """
    if kernel in ("lp_", "lpw", "lo_", "low"):
        Phi = leaf_kernel_features(ens, X_train, X, kernel)
    else:
        Ltr = ens.apply(X_train).reshape(len(X_train), -1)
        L = ens.apply(X).reshape(len(X), -1)
        if kernel == "to_":
            Phi = np.zeros((len(X), ens.n_trees))
            for j in range(ens.n_trees):
                Phi[:, j] = ens.leaf_value[ens.leaf_offset[j] + L[:, j]]
        else:
            Phi = np.zeros((len(X), len(ens.node_left)))
            for j in range(ens.n_trees):
                paths = _tree_paths(ens, j)
                count = {}
                for i in range(len(X_train)):
                    for node in paths[Ltr[i, j]]:
                        count[node] = count.get(node, 0) + 1
                for r in range(len(X)):
                    leaf = L[r, j]
                    for node in paths[leaf]:
                        c = count.get(node, 0)
                        value = 1.0 if kernel[2] == "_" else (1.0 / c if c else 0.0)
                        if kernel[1] == "o" and node == paths[leaf][-1]:
                            value *= ens.leaf_value[ens.leaf_offset[j] + leaf]
                        Phi[r, node] = value
    if similarity == "cosine":
        norm = np.linalg.norm(Phi, axis=1)
        Phi = Phi / np.where(norm > 0, norm, 1.0)[:, None]
    return Phi


def trex_activation(objective, Z):
    if objective == "regression":
        return Z
    if objective == "binary":
        return _sigmoid(Z)
    return _softmax(Z)


def trex_gradient(objective, Phi, W, y, w, lmbd):
    """Gradient (d, K) of (1/N) sum_i w_i l_s(Phi_i W, y_i) + lmbd ||W||^2."""
    Z = Phi @ W
    Y = y[:, None] if objective != "multiclass" else np.eye(W.shape[1])[y.astype(int)]
    R = w[:, None] * (trex_activation(objective, Z) - Y)
    return Phi.T @ R / len(y) + 2 * lmbd * W


def trex_local(objective, Phi_train, alpha, Phi_test, y_test):
    """TREX(i, e) = l(y_e, s_e - alpha_i k_ie) - l(y_e, s_e), k = <Phi_i, Phi_e>."""
    alpha = alpha.reshape(len(Phi_train), -1)
    k = Phi_train @ Phi_test.T
    s = k.T @ alpha
    out = np.empty(k.shape)
    for i in range(len(Phi_train)):
        Z = s - k[i][:, None] * alpha[i][None, :]
        out[i] = _loss(objective, Z, y_test) - _loss(objective, s, y_test)
    return out
