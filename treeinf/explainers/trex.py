"""TREX: representer points of a kernel surrogate of a tree ensemble."""
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from .._kernels.trex import (gather_rows_kernel, leaf_path_fill_kernel,
                             leaf_path_length_kernel, row_length_kernel,
                             surrogate_terms_kernel, trex_scatter_kernel,
                             trex_table_kernel)
from .._losses import OBJECTIVE_CODES, loss
from .._stats import leaf_index, tree_major_leaves
from .. import _checks as C
from .._validation import POSITIVE_INT, POSITIVE_REAL, StrOptions
from ..exceptions import DataValidationError
from ._base import BaseInfluence
from ._progress import blocks, row_chunks

KERNELS = ("to_", "lp_", "lpw", "lo_", "low", "fp_", "fpw", "fo_", "fow")
TARGETS = ("actual", "predicted")
SIMILARITIES = ("dot", "cosine")

# bytes of one dense block of influences summed by get_global_influence
_GLOBAL_BLOCK_BYTES = 32 * 2**20
# bytes of one block of per-test-row leaf tables (path kernels and 'to_')
_TABLE_BLOCK_BYTES = 32 * 2**20
# Newton refinements after L-BFGS-B
_MAX_NEWTON = 10


def model_output(ens, margins):
    """The model's prediction from raw margins, in output space.

    Regression: the predicted value (n, 1). Classification: class
    probabilities, (n, 1) for binary (probability of the positive class) and
    (n, K) for multiclass. The link is ``ens.link`` where the parser
    sets it (sklearn forests average probabilities: identity), otherwise the
    objective's (identity / sigmoid / softmax).
    """
    link = ens.link
    if link is None:
        link = {"regression": "identity", "binary": "sigmoid",
                "multiclass": "softmax"}[ens.objective]
    if link == "identity":
        return margins.copy()
    if link == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * margins))
    Z = margins - margins.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def predicted_target(ens, output):
    """Encoded predicted target (n,) from :func:`model_output`: the value for
    regression, the predicted class index for classification."""
    if ens.objective == "regression":
        return output[:, 0].copy()
    if ens.objective == "binary":
        return (output[:, 0] > 0.5).astype(np.float64)
    return np.argmax(output, axis=1).astype(np.float64)


def _conjugate_gradient(matvec, b, rtol, maxiter):
    """Solve A x = b for symmetric positive definite A given as ``matvec``,
    until ||A x - b|| <= rtol ||b|| (arrays of any shape)."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = float(np.sum(r * r))
    stop = rtol ** 2 * rr
    for _ in range(maxiter):
        if rr <= stop:
            break
        Ap = matvec(p)
        step = rr / float(np.sum(p * Ap))
        x += step * p
        r -= step * Ap
        rr_new = float(np.sum(r * r))
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _pearson(a, b):
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else float("nan")


class TREX(BaseInfluence):
    """TREX: representer-point influence of a kernel surrogate of the model.

    The tree ensemble defines sparse kernel features Phi(x) (one block per
    tree, trees flattened over rounds and output columns). A regularised
    linear model on these features is fitted to the training targets,
    ``W* = argmin (1/N) sum_i w_i l_s(Phi_i W, y~_i) + lmbd ||W||^2``, and
    its stationarity condition writes ``W* = sum_i alpha_i Phi_i`` with
    representer weights ``alpha_i = -w_i dl_s/dz(Phi_i W*, y~_i) / (2 lmbd N)``.
    The influence of training row i on row e is the change of e's loss when
    i's term is removed from the surrogate's output
    ``s_e = sum_j alpha_j <Phi_j, Phi_e>``::

        TREX(i, e) = l(y_e, s_e - alpha_i <Phi_i, Phi_e>) - l(y_e, s_e)

    Parameters
    ----------
    kernel : {'to_', 'lp_', 'lpw', 'lo_', 'low', 'fp_', 'fpw', 'fo_', 'fow'}, default='lpw'
        Kernel features, with count = number of training rows reaching a node
        (unweighted) and value = the leaf's contribution to the margin:

        - 'to_': one column per tree, the tree's output.
        - 'lp_': one-hot leaf per tree. 'lpw': the leaf entry is 1/count.
        - 'lo_': one-hot leaf holding the leaf value. 'low': value / count.
        - 'fp_': 1 for every node on the root-to-leaf path (root and leaf
          included). 'fpw': 1/count for every node on the path.
        - 'fo_': as 'fp_' with the leaf's entry set to the leaf value.
          'fow': as 'fpw' with the leaf's entry set to value / count.

        Nodes or leaves no training row reaches get the entry 0 in the
        weighted kernels.
    target : {'actual', 'predicted'}, default='actual'
        Targets the surrogate is fitted to: the training labels, or the
        model's predictions on the training rows (the predicted class for
        classification, the predicted value for regression).
    lmbd : float, default=0.003
        L2 regularisation lmbd of the surrogate (> 0).
    similarity : {'dot', 'cosine'}, default='dot'
        'cosine' scales every feature row to unit Euclidean norm before the
        surrogate is fitted (the cosine kernel); 'dot' uses the features as
        they are.
    max_iter : int, default=2000
        Maximum L-BFGS-B iterations. L-BFGS-B stops making progress once
        objective values stop changing in float64 (gradients around 1e-9);
        up to 10 Newton steps (conjugate gradients on exact Hessian-vector
        products) then bring the gradient below ``tol``.
    tol : float, default=1e-8
        Stop when every coefficient of W differs from its representer
        expansion ``sum_i alpha_i Phi_i`` by at most ``tol * max(1,
        max|W|)`` (equivalently, the objective's gradient is at most
        ``2 lmbd`` times that in absolute value). Then ``sum_j alpha_j
        <Phi_j, Phi(x)>`` and ``Phi(x) W*`` differ by at most that times
        ``||Phi(x)||_1``. A ConvergenceWarning says
        when the solver stopped short of it.
    n_jobs : int or None, default=None
        Threads for the kernels; None or -1 uses all cores.
    verbose : bool, default=False
        Show progress (tqdm, on stderr): the surrogate solver's iterations
        in ``fit`` and the test rows of ``get_local_influence``,
        ``get_top_influence`` and ``get_global_influence``; and a one-line
        notice before numba compiles the kernels on their first use on a
        machine.

    Attributes
    ----------
    alpha_ : ndarray of shape (n_train,) or (n_train, n_classes)
        Representer weights (per class for multiclass models).
    coef_ : ndarray of shape (n_features_kernel_,) or (n_features_kernel_, n_classes)
        The surrogate's weights W*.
    surrogate_fidelity_ : float
        Pearson correlation, over the training rows, between the surrogate's
        output and the model's (predicted values for regression, probability
        of the positive class for binary, all class probabilities flattened
        for multiclass); NaN if either is constant.
    n_iter_ : int
        L-BFGS-B iterations plus Newton steps used.
    n_features_kernel_ : int
        Number of kernel feature columns.
    ensemble_ : FlatEnsemble
        The parsed, verified model.
    n_train_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when the model was trained with named columns.

    Notes
    -----
    Sign convention: positive = helpful. ``get_local_influence(X, y)[i, e] >
    0`` means removing training row i's term from the surrogate would
    increase the loss of row e.

    Losses: the surrogate is fitted with l_s = 0.5 (y - z)^2 (regression),
    logistic loss (binary) or softmax cross-entropy (multiclass), so the
    representer weights have the same form ``(act(Phi_i W*) - y~_i) * w_i /
    (-2 lmbd N)`` for all three (with ``(y - z)^2`` the regression weights
    would be twice as large). Influences measure the same losses, with
    probabilities clipped to [1e-5, 1 - 1e-5] as everywhere in treeinf.
    Sample weights w (class weights folded in) weight each row's surrogate
    loss; with unit weights this is the unweighted objective above.

    The kernel features (:meth:`transform`) are a scipy.sparse CSR matrix,
    never dense. A row's features depend only on its leaves, so the solver
    works with the factorisation Phi = S L E (S row scales, L the one-hot
    leaf matrix, E the per-leaf entries): O(n_train * n_trees) per
    iteration for every kernel, path kernels included. One row of the local
    influence costs the co-leaf training rows of its leaves for the leaf
    kernels, and O(n_train * n_trees) for 'to_' and the path kernels (whose
    rows all share the root). Self-influence is O(n_train * n_trees); global
    influence is computed in blocks of rows without the full matrix.

    References
    ----------
    Brophy & Lowd, "TREX: Tree-Ensemble Representer-Point Explanations",
    XAI workshop, ICML 2020.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_breast_cancer
    >>> from treeinf import TREX
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X[:400], y[:400])
    >>> explainer = TREX().fit(model, X[:400], y[:400])
    >>> explainer.get_local_influence(X[400:403], y[400:403]).shape
    (400, 3)
    """

    # saved state: the kernel's per-leaf entries, the training rows' leaf
    # matrix, the solution; products and transposes are rebuilt on load
    _STATE = {
        "n_features_kernel_": C.Int(1, dim="d"),
        "_entry_ptr": C.Arr("i8", ("L+1",)),
        "_entry_col": C.Arr("i4", ("*",)),
        "_entry_val": C.Arr("f8", ("*",), finite=True),
        "_L": C.Csr("n", "L"),
        "_scale": C.Arr("f8", ("n",), finite=True),
        "_train_sq": C.Arr("f8", ("n",), finite=True),
        "_leaves_T": C.Arr("u1 u2 i4", ("T", "n"), values="leaf", optional=True),
        "n_iter_": C.Int(0),
        "_grad_max": C.Float(0.0, nan=True),
        "_alpha": C.Arr("f8", ("n", "K"), finite=True),
        "_y": C.Arr("f8", ("n",), values="label"),
        "coef_": C.Arr("f8", lambda d: ("d",) if d["K"] == 1 else ("d", "K"), finite=True),
        "surrogate_fidelity_": C.Float(-1.0, 1.0, nan=True),
    }
    _DERIVED = ("_objective_code", "_cosine", "_scatter", "_E", "_E_T", "_leaf_sq", "_L_T",
                "_phi_T", "_w_rep", "alpha_")

    def _set_state(self, state):
        dims = super()._set_state(state)
        ens = self.ensemble_
        n_leaves, d, K = dims["L"], dims["d"], dims["K"]
        C.check_csr(self._entry_ptr, self._entry_col, n_leaves, d, "TREX._entry_ptr")
        if self._entry_val.shape != self._entry_col.shape:
            C.bad("TREX._entry_val and _entry_col differ in length")
        self._objective_code = OBJECTIVE_CODES[ens.objective]
        self._cosine = self.similarity == "cosine"
        self._scatter = self.kernel in ("lp_", "lpw", "lo_", "low")
        if self._scatter == ("_leaves_T" in self.__dict__):
            C.bad(f"TREX(kernel={self.kernel!r}) {'has' if self._scatter else 'lacks'} "
                  "the training rows' leaves")
        self._E = sp.csr_matrix((self._entry_val, self._entry_col, self._entry_ptr),
                                shape=(n_leaves, d))
        self._E_T = self._E.T.tocsr()
        self._leaf_sq = np.asarray(self._E.multiply(self._E).sum(axis=1)).ravel()
        self._L_T = self._L.T.tocsr()
        if self._scatter:
            self._phi_T = (self._L @ self._E).T.tocsr()
        self._w_rep = self._phi_T_times(self._alpha)
        self.alpha_ = self._alpha[:, 0].copy() if K == 1 else self._alpha.copy()
        return dims

    def __init__(self, kernel="lpw", target="actual", lmbd=0.003, similarity="dot",
                 max_iter=2000, tol=1e-8, n_jobs=None, verbose=False):
        self.kernel = kernel
        self.target = target
        self.lmbd = lmbd
        self.similarity = similarity
        self.max_iter = max_iter
        self.tol = tol
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------- parameters
    _parameter_constraints = {**BaseInfluence._parameter_constraints,
                              "kernel": [StrOptions(set(KERNELS))],
                              "target": [StrOptions(set(TARGETS))],
                              "lmbd": [POSITIVE_REAL],
                              "similarity": [StrOptions(set(SIMILARITIES))],
                              "max_iter": [POSITIVE_INT],
                              "tol": [POSITIVE_REAL]}
    _parameter_hints = {"lmbd": "The default is 0.003.", "tol": "The default is 1e-8."}
    #: True while get_global_influence runs (it shows one bar over its blocks)
    _in_global = False

    # ---------------------------------------------------- kernel features
    def _entries(self, leaves):
        """Per-leaf (column, value) lists of the kernel, from the training leaves.

        Returns entry_ptr (n_leaves_total + 1,) int64, entry_col int32,
        entry_val float64 and the number of feature columns.
        """
        ens = self.ensemble_
        n_leaves = int(ens.leaf_offset[-1])
        leaf_count = np.bincount(leaf_index(ens, leaves).ravel(),
                                 minlength=n_leaves).astype(np.float64)
        weighted = self.kernel[2] == "w"
        output = self.kernel[1] == "o"

        def inverse(count):
            return np.where(count > 0, 1.0 / np.maximum(count, 1.0), 0.0)

        if self.kernel == "to_":
            tree_of_leaf = np.repeat(np.arange(ens.n_trees), ens.n_leaves)
            return (np.arange(n_leaves + 1, dtype=np.int64), tree_of_leaf.astype(np.int32),
                    ens.leaf_value.copy(), ens.n_trees)
        if self.kernel[0] == "l":
            val = ens.leaf_value.copy() if output else np.ones(n_leaves)
            if weighted:
                val *= inverse(leaf_count)
            return (np.arange(n_leaves + 1, dtype=np.int64),
                    np.arange(n_leaves, dtype=np.int32), val, n_leaves)
        # path kernels: the leaf's path from the flat node arrays
        n_nodes = ens.node_left.shape[0]
        internal = np.flatnonzero(ens.node_left >= 0)
        parent = np.full(n_nodes, -1, dtype=np.int64)
        parent[ens.node_left[internal]] = internal
        parent[ens.node_right[internal]] = internal
        leaf_nodes = np.flatnonzero(ens.node_leaf >= 0)
        tree = np.searchsorted(ens.tree_root, leaf_nodes, side="right") - 1
        leaf_node = np.empty(n_leaves, dtype=np.int64)
        leaf_node[ens.leaf_offset[tree] + ens.node_leaf[leaf_nodes]] = leaf_nodes
        length = np.empty(n_leaves, dtype=np.int64)
        leaf_path_length_kernel(leaf_node, parent, length)
        ptr = np.zeros(n_leaves + 1, dtype=np.int64)
        np.cumsum(length, out=ptr[1:])
        nodes = np.empty(ptr[-1], dtype=np.int64)
        leaf_path_fill_kernel(leaf_node, parent, ptr, nodes)
        owner = np.repeat(np.arange(n_leaves), length)
        val = np.ones(nodes.shape[0])
        if weighted:
            node_count = np.bincount(nodes, weights=leaf_count[owner], minlength=n_nodes)
            val = inverse(node_count[nodes])
        if output:
            is_leaf = nodes == leaf_node[owner]
            val[is_leaf] *= ens.leaf_value[owner[is_leaf]]
        return ptr, nodes.astype(np.int32), val, n_nodes

    def _row_scale(self, leaves):
        """Factor (n,) every feature row is multiplied by: 1, or for 'cosine'
        the inverse Euclidean norm (0 for an all-zero row). Trees own disjoint
        columns, so a row's squared norm sums its leaves' entry norms."""
        n = leaves.shape[0]
        if not self._cosine:
            return np.ones(n)
        norm2 = self._leaf_sq[leaf_index(self.ensemble_, leaves)].sum(axis=1)
        return np.where(norm2 > 0, 1.0 / np.sqrt(np.where(norm2 > 0, norm2, 1.0)), 0.0)

    def _leaf_matrix(self, leaves, scale):
        """L (n, n_leaves_total) CSR: row i holds scale[i] at each of its leaves."""
        ens = self.ensemble_
        n, n_trees = leaves.shape
        return sp.csr_matrix(
            (np.repeat(scale, n_trees), leaf_index(ens, leaves).ravel().astype(np.int32),
             np.arange(0, n * n_trees + 1, n_trees, dtype=np.int64)),
            shape=(n, int(ens.leaf_offset[-1])))

    def _features(self, leaves):
        """Kernel features of rows with compact leaves (n, n_trees): CSR (n, d)."""
        ptr, col, val = self._entry_ptr, self._entry_col, self._entry_val
        n = leaves.shape[0]
        row_ptr = np.zeros(n + 1, dtype=np.int64)
        row_length_kernel(leaves, self.ensemble_.leaf_offset, ptr, row_ptr[1:])
        np.cumsum(row_ptr, out=row_ptr)
        out_col = np.empty(row_ptr[-1], dtype=np.int32)
        out_val = np.empty(row_ptr[-1])
        gather_rows_kernel(leaves, self.ensemble_.leaf_offset, ptr, col, val, row_ptr,
                           out_col, out_val)
        if self._cosine:
            out_val *= np.repeat(self._row_scale(leaves), np.diff(row_ptr))
        return sp.csr_matrix((out_val, out_col, row_ptr), shape=(n, self.n_features_kernel_))

    def transform(self, X):
        """Kernel features of X.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_samples, n_features_kernel_), float64
            Columns: trees ('to_'), global leaves ``leaf_offset[tree] + leaf``
            (leaf kernels) or global node indices of the flat ensemble (path
            kernels).
        """
        self._check_fitted()
        from .._numba import num_threads
        Xe = self.ensemble_.encode(X)
        with num_threads(self.n_jobs):
            return self._features(self.ensemble_.apply_encoded(Xe))

    # ------------------------------------------------------------ fitting
    def _surrogate(self, W, target, w, R, row_loss):
        """Objective and gradient at W (d, K); R (n, K) receives w_i dl/dz.

        Returns (f, grad, Z) with Z = Phi W the surrogate's margins.
        """
        N = self.n_train_
        Z = self._phi_times(W)
        surrogate_terms_kernel(self._objective_code, Z, target, w, R, row_loss)
        lam = float(self.lmbd)
        f = row_loss.sum() / N + lam * float(np.sum(W * W))
        grad = self._phi_T_times(R) / N + 2.0 * lam * W
        return f, grad, Z

    def _phi_times(self, W):
        """Phi_train @ W (n, K) through the factorisation Phi = S L E."""
        return np.ascontiguousarray(self._L @ (self._E @ W))

    def _phi_T_times(self, R):
        """Phi_train^T @ R (d, K) through the factorisation Phi = S L E."""
        return self._E_T @ (self._L_T @ R)

    def _hessp(self, V, P, hw):
        """Hessian of the surrogate objective times V (d, K).

        P : (n, K) activations at the current W; hw : (n,) row weights.
        """
        N = self.n_train_
        U = self._phi_times(V)
        if self.ensemble_.objective == "regression":
            M = hw[:, None] * U
        elif self.ensemble_.objective == "binary":
            M = (hw * P[:, 0] * (1.0 - P[:, 0]))[:, None] * U
        else:  # softmax: H_i u = p * (u - <p, u>)
            M = hw[:, None] * P * (U - np.sum(P * U, axis=1, keepdims=True))
        return self._phi_T_times(M) / N + 2.0 * float(self.lmbd) * V

    def _solve(self, target, w, d, K):
        """L-BFGS-B, then Newton steps (conjugate gradients on exact
        Hessian-vector products) until the gradient is below tolerance.

        L-BFGS-B's line search compares objective values, which stop
        changing in float64 once the gradient is ~1e-9; the Newton steps
        only need gradients and reach the tolerance from there.
        """
        n = self.n_train_
        R, row_loss = np.empty((n, K)), np.empty(n)
        gtol = self._gtol(np.zeros(1))

        def fun(x):
            f, grad, _ = self._surrogate(x.reshape(d, K), target, w, R, row_loss)
            return f, grad.ravel()

        # L-BFGS-B's BLAS calls work on vectors of length d * K: threads
        # only add synchronisation (and stall badly on a busy machine)
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm
            bar = tqdm(desc="TREX surrogate (L-BFGS-B)", unit="it")
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                res = scipy.optimize.minimize(
                    fun, np.zeros(d * K), jac=True, method="L-BFGS-B",
                    callback=None if bar is None else (lambda xk: bar.update(1)),
                    options={"maxiter": int(self.max_iter), "gtol": gtol, "ftol": 0.0,
                             "maxfun": 10 * int(self.max_iter), "maxcor": 20})
        finally:
            if bar is not None:
                bar.close()
        W = np.ascontiguousarray(res.x.reshape(d, K))
        n_iter = int(res.nit)
        _, grad, Z = self._surrogate(W, target, w, R, row_loss)
        gmax = float(np.abs(grad).max())
        for _ in range(_MAX_NEWTON):
            if gmax <= self._gtol(W):
                break
            P = self._activation(Z)
            step = _conjugate_gradient(lambda V: self._hessp(V, P, w), -grad,
                                       rtol=1e-3, maxiter=200)
            W_new = W + step
            _, grad_new, Z_new = self._surrogate(W_new, target, w, R, row_loss)
            gmax_new = float(np.abs(grad_new).max())
            n_iter += 1
            if not gmax_new < gmax:
                break
            W, grad, Z, gmax = W_new, grad_new, Z_new, gmax_new
        # R must hold the terms at the returned W
        self._surrogate(W, target, w, R, row_loss)
        return W, Z, R, n_iter, gmax, res.message

    def _gtol(self, W):
        """Gradient bound meaning |W - sum_i alpha_i Phi_i| <= tol * max(1, |W|)."""
        return 2.0 * float(self.lmbd) * float(self.tol) * max(1.0, float(np.abs(W).max()))

    def _fit(self, Xe, y, w):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        n = leaves.shape[0]
        K = ens.n_outputs
        self._objective_code = OBJECTIVE_CODES[ens.objective]
        # fitted state does not follow later set_params calls
        self._cosine = self.similarity == "cosine"
        # leaf kernels (one column per leaf) accumulate similarities over
        # co-leaf training rows; 'to_' and the path kernels, where every pair
        # of rows shares features (the root), read per-row leaf tables
        self._scatter = self.kernel in ("lp_", "lpw", "lo_", "low")
        (self._entry_ptr, self._entry_col, self._entry_val,
         self.n_features_kernel_) = self._entries(leaves)
        d = self.n_features_kernel_
        # A row's features depend only on its leaves: Phi = S L E with L the
        # one-hot leaf matrix (n, n_leaves_total), E the per-leaf entry lists
        # (n_leaves_total, d) and S the row scales. The solver multiplies by
        # L and E: n * n_trees + nnz(E) operations instead of nnz(Phi) (the
        # path kernels have one entry per node of every path), and Phi of the
        # training rows is never stored for them.
        n_leaves = int(ens.leaf_offset[-1])
        self._E = sp.csr_matrix((self._entry_val, self._entry_col, self._entry_ptr),
                                shape=(n_leaves, d))
        self._E_T = self._E.T.tocsr()
        self._leaf_sq = np.asarray(self._E.multiply(self._E).sum(axis=1)).ravel()
        scale = self._row_scale(leaves)
        self._L = self._leaf_matrix(leaves, scale)
        self._L_T = self._L.T.tocsr()
        self._scale = scale
        # <Phi_i, Phi_i>, for self-influence
        self._train_sq = scale ** 2 * self._leaf_sq[leaf_index(ens, leaves)].sum(axis=1)
        if self._scatter:
            # leaf kernels: one column per leaf; Phi^T (d, n) lists each
            # leaf's training rows, so a test row visits only co-leaf rows
            self._phi_T = (self._L @ self._E).T.tocsr()
        else:
            self._leaves_T = tree_major_leaves(ens, leaves)

        output = model_output(ens, ens.margins_from_leaves(leaves))
        target = y if self.target == "actual" else predicted_target(ens, output)
        target = np.ascontiguousarray(target, dtype=np.float64)
        W, Z, R, self.n_iter_, self._grad_max, message = self._solve(target, w, d, K)
        lam = float(self.lmbd)
        if self._grad_max > self._gtol(W):
            warnings.warn(
                f"TREX's surrogate did not converge in {self.n_iter_} iterations "
                f"({message}): coefficients are within {self._grad_max / (2 * lam):.2e} "
                f"of their representer expansion, tol={self.tol}. Increase max_iter "
                "or lmbd, or raise tol.", ConvergenceWarning, stacklevel=3)

        # R holds w_i * dl/dz at W (act(Phi W) - y~ times the weight)
        alpha = R / (-2.0 * lam * n)
        self._alpha = np.ascontiguousarray(alpha)
        self._y = y
        # the representer expansion: s = Phi (Phi^T alpha) = sum_j alpha_j <Phi_j, .>
        self._w_rep = self._phi_T_times(self._alpha)
        self.coef_ = W[:, 0].copy() if K == 1 else W
        self.alpha_ = self._alpha[:, 0].copy() if K == 1 else self._alpha.copy()
        surrogate_out = self._activation(Z)
        if ens.objective == "multiclass":
            self.surrogate_fidelity_ = _pearson(surrogate_out, output)
        else:
            self.surrogate_fidelity_ = _pearson(surrogate_out[:, 0], output[:, 0])

    def _activation(self, Z):
        if self.ensemble_.objective == "regression":
            return Z.copy()
        if self.ensemble_.objective == "binary":
            return 0.5 * (1.0 + np.tanh(0.5 * Z))
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    # -------------------------------------------------------- influence
    def _local(self, Xe, y):
        ens = self.ensemble_
        leaves = ens.apply_encoded(Xe)
        m = leaves.shape[0]
        y = np.ascontiguousarray(y, dtype=np.float64)
        L_test = self._leaf_matrix(leaves, self._row_scale(leaves))
        s = np.ascontiguousarray(L_test @ (self._E @ self._w_rep))
        out = np.empty((m, self.n_train_))
        verbose = self.verbose and not self._in_global
        if self._scatter:
            phi = self._features(leaves)
            for a, z in row_chunks(m, verbose, "TREX test rows"):
                part = phi[a:z]
                trex_scatter_kernel(self._objective_code, part.indptr, part.indices,
                                    part.data, self._phi_T.indptr, self._phi_T.indices,
                                    self._phi_T.data, self._alpha, s[a:z], y[a:z], out[a:z])
            return out.T
        # table[e, g] = <Phi_e, E_g>: similarity of row e to leaf g's entries
        n_leaves = int(ens.leaf_offset[-1])
        block = max(1, _TABLE_BLOCK_BYTES // (8 * n_leaves))
        for b in blocks([slice(a, min(m, a + block)) for a in range(0, m, block)],
                        verbose, "TREX test rows", m):
            start, stop = b.start, b.stop
            table = np.ascontiguousarray((L_test[start:stop] @ self._E @ self._E_T).toarray())
            trex_table_kernel(self._objective_code, table, self._leaves_T, ens.leaf_offset,
                              self._scale, self._alpha, s[start:stop], y[start:stop],
                              out[start:stop])
        return out.T

    def _self(self):
        s = self._phi_times(self._w_rep)
        objective = self.ensemble_.objective
        return (loss(objective, s - self._alpha * self._train_sq[:, None], self._y)
                - loss(objective, s, self._y))

    def _global(self, Xe, y):
        block = max(1, _GLOBAL_BLOCK_BYTES // (8 * self.n_train_))
        total = np.zeros(self.n_train_)
        m = Xe.shape[0]
        self._in_global = True  # one bar over the blocks, none per block
        try:
            for b in blocks([slice(a, min(m, a + block)) for a in range(0, m, block)],
                            self.verbose, "TREX test rows", m):
                total += self._local(Xe[b], y[b]).sum(axis=1)
        finally:
            del self._in_global
        return total
