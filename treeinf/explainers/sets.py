"""Influential sets: the training rows whose *joint* removal raises a loss most.

Influence is not additive: two near-duplicate rows can each look harmless
because the other one stands in for it, and two rows that push a prediction
in opposite directions cancel when removed together. Ranking rows by their
one-at-a-time influence and removing the top k ("one-shot") ignores both.
The adaptive greedy selection of the "Most Influential Subset Selection"
analysis (Hu, Hu, Zhao & Ma) re-estimates every remaining row's influence
after each removed batch, on the model *without* the rows removed so far.

For boosted trees with Newton leaves the re-estimate can be exact for the
fixed tree structure: :class:`InfluentialSet` keeps, for the current removed
set S, the fixed-structure refit of the model without S (every leaf
recomputed in boosting order with the weights of S set to 0, g and h at the
refitted margins, as :class:`~treeinf.LeafRefit` does for one row) and asks
LeafRefit's kernel for the exact loss change of removing each further row
from that refitted model.
"""
import numpy as np

from .._kernels.fixed import refit_kernel
from .._kernels.stats import round_derivatives_kernel
from .._losses import OBJECTIVE_CODES, loss
from .._numba import num_threads
from .._stats import leaf_index, leaf_sums
from .._validation import check_k
from ..exceptions import DataValidationError
from .._fidelity import newton_leaves as _newton_leaves
from .leaf import LeafRefit

_EMPTY = np.empty((0, 0))


class InfluentialSet(LeafRefit):
    """The k training rows whose joint removal raises the loss most.

    A :class:`~treeinf.LeafRefit` (same fit, same leaf-value check, same
    ``get_local_influence``) that also selects *sets* of training rows for a
    set of query rows, on their summed loss, by adaptive greedy selection
    with exact fixed-structure refits, or by the one-shot ranking for
    comparison.

    Parameters
    ----------
    batch_size : int, default=1
        Rows added to the set per greedy step; every step re-estimates all
        remaining rows on the model refitted without the set so far.
        ``batch_size >= k`` is the one-shot ranking.
    update_set : int, default=-1
        As for :class:`~treeinf.LeafRefit` (-1: exact).
    atol : float, default=1e-5
        Tolerance of the leaf-value check (1e-4 for XGBoost and
        HistGradientBoosting, which compute gradients in float32).
    n_jobs : int or None, default=None
        Threads for the kernels.
    verbose : bool, default=False
        Progress bars of the refits.

    Notes
    -----
    Cost per greedy step: one refit of the model without the current set,
    O(n_train · n_trees · n_rounds), plus one LeafRefit pass over every
    training row, O(n_train² · n_trees); ``ceil(k / batch_size)`` steps.
    Exact only for the fixed structure (the trees' splits are kept), which
    is what LeafRefit computes; models whose leaves are not Newton steps are
    refused at ``fit`` with LeafValueMismatchError.

    Examples
    --------
    >>> import lightgbm as lgb
    >>> from sklearn.datasets import load_diabetes
    >>> from treeinf.explainers.sets import InfluentialSet
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X[:150], y[:150])
    >>> sets = InfluentialSet(batch_size=2).fit(model, X[:150], y[:150])
    >>> rows, increase = sets.get_influential_set(X[150:151], y[150:151], k=4)
    >>> rows.shape, bool(increase == sets.set_loss_change(X[150:151], y[150:151], rows))
    ((4,), True)
    """

    def __init__(self, batch_size=1, update_set=-1, atol=1e-5, n_jobs=None, verbose=False):
        self.batch_size = batch_size
        self.update_set = update_set
        self.atol = atol
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _check_params(self):
        super()._check_params()
        b = self.batch_size
        if not isinstance(b, (int, np.integer)) or isinstance(b, bool) or b < 1:
            raise DataValidationError(f"batch_size must be a positive integer, got {b!r}.")

    # ------------------------------------------------------------- public
    def get_influential_set(self, X, y, k, adaptive=True, batch_size=None):
        """The k training rows whose joint removal raises the summed loss most.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_query, n_features)
            One query row, or several: their losses are summed.
        y : array-like of shape (n_query,)
            Targets the loss is measured against (usually the true labels).
        k : int
            Size of the set, 1 <= k <= n_train.
        adaptive : bool, default=True
            True: greedy, ``batch_size`` rows per step, every remaining row
            re-estimated after each step on the model refitted without the
            set so far. False: the one-shot ranking, the k rows of largest
            LeafRefit influence on the summed loss.
        batch_size : int or None, default=None
            Rows per greedy step for this call; None: the estimator's
            ``batch_size``.

        Returns
        -------
        rows : ndarray of shape (k,), int64
            Training row indices in the order they were selected.
        loss_increase : float
            The exact fixed-structure change of the summed loss of the query
            rows when all k rows are removed (:meth:`set_loss_change`).
        """
        self._check_params()
        if batch_size is not None:
            InfluentialSet(batch_size=batch_size)._check_params()
        Xe, y_enc = self._encode_query(X, y)
        k = check_k(k, self.n_train_)
        with num_threads(getattr(self, "n_jobs", None)):
            leaves = self.ensemble_.apply_encoded(Xe)
            w = self._w.copy()
            chosen = []
            step = int(self.batch_size if batch_size is None else batch_size) if adaptive else k
            while len(chosen) < k:
                gains = self._gains(self._state(w), leaves, y_enc)
                gains[chosen] = -np.inf
                take = np.argsort(-gains, kind="stable")[:min(step, k - len(chosen))]
                chosen.extend(int(t) for t in take)
                w[take] = 0.0
            rows = np.asarray(chosen, dtype=np.int64)
            return rows, self._set_change(rows, leaves, y_enc)

    def set_loss_change(self, X, y, rows):
        """Exact fixed-structure change of the summed loss when ``rows`` are removed.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_query, n_features)
        y : array-like of shape (n_query,)
        rows : array-like of int
            Training row indices removed together.

        Returns
        -------
        float
            ``sum_e l(y_e, F_without_rows(x_e)) - sum_e l(y_e, F(x_e))``,
            F the fixed-structure refit. Positive: removing the rows raises
            the loss (they are helpful together).
        """
        Xe, y_enc = self._encode_query(X, y)
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and (rows.dtype.kind not in "iu" or rows.min() < 0
                                             or rows.max() >= self.n_train_)):
            raise DataValidationError(
                f"rows must be a 1-D array of training row indices in [0, {self.n_train_}), "
                f"got {rows!r}.")
        with num_threads(getattr(self, "n_jobs", None)):
            return self._set_change(rows.astype(np.int64), self.ensemble_.apply_encoded(Xe),
                                    y_enc)

    # ------------------------------------------------------------ private
    def _set_change(self, rows, leaves, y):
        w = self._w.copy()
        w[rows] = 0.0
        obj = self.ensemble_.objective
        base = self._margins(self._state(self._w)[3], leaves)
        after = self._margins(self._state(w)[3], leaves)
        return float(np.sum(loss(obj, after, y)) - np.sum(loss(obj, base, y)))

    def _margins(self, phi, leaves):
        """Margins (m, K) of the fixed structure with leaf values ``phi``."""
        ens = self.ensemble_
        vals = phi[leaf_index(ens, leaves)]
        z = np.tile(ens.base_margin, (leaves.shape[0], 1))
        for c in range(ens.n_outputs):
            z[:, c] += vals[:, ens.tree_output == c].sum(axis=1)
        return z

    def _state(self, w):
        """The fixed-structure refit with row weights ``w``.

        Returns
        -------
        w : the weights
        G, H : per-leaf weighted sums of g and h at the refitted margins
        phi : refitted leaf values (shrunk), one per leaf
        before : (n_rounds, K, n) refitted training margins before each round
        """
        ens = self.ensemble_
        leaves = np.ascontiguousarray(self._leaves_T.T, dtype=np.int32)
        n, n_trees = leaves.shape
        y = np.ascontiguousarray(self._y, dtype=np.float64)
        obj = OBJECTIVE_CODES[ens.objective]
        phi = np.array(self._phi, dtype=np.float64)
        g = np.empty((n, n_trees))
        h = np.empty((n, n_trees))
        lo, hi = ens.leaf_offset[:-1], ens.leaf_offset[1:]
        n_rounds = int(ens.tree_round.max()) + 1

        def derivatives():
            round_derivatives_kernel(leaves, ens.tree_round, ens.tree_output,
                                     ens.leaf_offset, phi, ens.base_margin, y, obj,
                                     ens.hessian_factor, g, h, _EMPTY)

        for r in range(n_rounds):   # g, h of round r depend on rounds < r only
            derivatives()
            G = leaf_sums(ens, self._ptr, self._idx, g, w)
            H = leaf_sums(ens, self._ptr, self._idx, h, w)
            new = _newton_leaves(G, H, self._lam, ens.reg_alpha, ens.learning_rate)
            for t in np.flatnonzero(ens.tree_round == r):
                phi[lo[t]:hi[t]] = new[lo[t]:hi[t]]
        derivatives()
        G = leaf_sums(ens, self._ptr, self._idx, g, w)
        H = leaf_sums(ens, self._ptr, self._idx, h, w)
        before = np.empty((n_rounds, ens.n_outputs, n))
        z = np.tile(ens.base_margin, (n, 1))
        vals = phi[leaf_index(ens, leaves)]
        for r in range(n_rounds):
            before[r] = z.T
            in_round = np.flatnonzero(ens.tree_round == r)
            np.add.at(z.T, ens.tree_output[in_round], vals[:, in_round].T)
        return w, G, H, phi, before

    def _gains(self, state, leaves, y):
        """Summed query-loss change of removing each row from the refit ``state``."""
        ens = self.ensemble_
        w, G, H, phi, before = state
        margin = self._margins(phi, leaves)
        out = np.empty((self.n_train_, leaves.shape[0]))
        yq = np.ascontiguousarray(y, dtype=np.float64)
        for start, stop in self._chunks(self.n_train_, "refits"):
            refit_kernel(int(self.update_set), OBJECTIVE_CODES[ens.objective],
                         ens.hessian_factor, ens.learning_rate, ens.reg_alpha, self._y,
                         self._y, w, True, before, self._leaves_T, ens.tree_round,
                         ens.tree_output, ens.leaf_offset, self._ptr, self._idx, G, H,
                         self._lam, phi, leaves, margin, yq, False, start, stop, out)
        return out.sum(axis=1)
