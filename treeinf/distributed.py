"""BoostIn on Dask: training rows partitioned over the workers of a cluster.

:class:`DaskBoostIn` computes the same influence as :class:`treeinf.BoostIn`
(to floating-point rounding of the leaf sums, ~1e-15 relative) when the
training data is a Dask collection that no single machine needs to hold:

``fit`` is a map-reduce on ``dask.distributed`` futures:

1. *map*: on each partition's worker, the rows are encoded, the model's parse
   is verified against the library on a sample of them, and BoostIn's fused
   traversal kernel (the one the in-memory fit and the data check share)
   writes the partition's leaf ids and per-leaf sums (gradients, hessians,
   the check's error scale, weights, targets, counts). The margins before
   each round are the partition's own rows' margins: no other partition is
   needed.
2. *reduce*: the per-leaf sums (a few numbers per leaf, per partition) are
   gathered and added in partition order on the client, and the data check
   of :mod:`treeinf._fidelity` judges them exactly as it judges an in-memory
   fit: data that is not the training data raises
   :class:`~treeinf.exceptions.TrainingDataMismatchError`.
3. *map*: each worker builds an in-memory :class:`~treeinf.BoostIn` shard of
   its partition with the *global* leaf denominators (training terms,
   self-influence and the co-leaf index of BoostIn's own kernels). Shards
   stay on the workers as futures; they are never gathered.

Queries broadcast the (small) encoded query to every shard and merge:
local influence is the shards' blocks stacked in partition order (a NumPy
array, or a Dask array whose blocks stay on the workers), top-k is each
shard's exact top-k merged with the same tie rule as on one machine (lower
global training index first), global and self-influence are concatenated.

Lost workers: every future here has a task-graph lineage back to the Dask
collections passed to ``fit`` (nothing is ``scatter``-ed), so when a worker
dies, Dask recomputes the shards it held on the remaining workers and reruns
the interrupted query tasks; tasks that raise are retried ``retries`` times.

Importing :mod:`treeinf` does not import Dask; ``treeinf.DaskBoostIn``
imports this module on first use.
"""
import numbers
import operator
import uuid

import numpy as np
from sklearn.base import BaseEstimator

from ._numba import num_threads, resolve_n_jobs
from ._validation import (N_JOBS, Interval, StrOptions, check_k, check_params, check_sample_weight,
                          check_value, encode_target)
from .exceptions import (DataValidationError, NotFittedError, PersistenceError,
                         UnsupportedModelError)

__all__ = ["DaskBoostIn"]

#: indices of the stacked per-leaf sums (the keys of _fidelity.newton_sums)
_SUM_KEYS = ("G", "H", "S", "W", "Y", "C")


# --------------------------------------------------------------- helpers
def _full_names(obj):
    for cls in type(obj).__mro__:
        yield f"{cls.__module__}.{cls.__qualname__}"


def _local_model(model):
    """The in-memory model behind a ``lightgbm.dask`` / ``xgboost.dask`` one."""
    names = list(_full_names(model))
    if any(n.startswith("lightgbm.dask.") for n in names):
        return model.to_local()
    if any(n.startswith("xgboost.dask.") for n in names):
        return model.get_booster()
    return model


def _is_dask(obj):
    return any(n.startswith(("dask.array.", "dask.dataframe.")) for n in _full_names(obj))


def _partitions(data, name):
    """Delayed row partitions of a Dask Array / DataFrame / Series, in order."""
    import dask.array as da
    if isinstance(data, da.Array):
        if data.ndim == 2:
            return list(data.rechunk({1: -1}).to_delayed()[:, 0])
        if data.ndim == 1:
            return list(data.to_delayed())
        raise DataValidationError(
            f"{name} is a {data.ndim}-D Dask array; pass a 2-D array (rows x features) "
            "for X and a 1-D one for y and sample_weight.")
    if hasattr(data, "to_delayed"):
        return list(data.to_delayed())
    raise DataValidationError(
        f"{name} of type {type(data).__name__} is not a Dask collection; pass a "
        "dask.array.Array or a dask.dataframe DataFrame/Series.")


def _const(client, value):
    """A future holding ``value``, recomputable if its worker dies (unlike
    ``scatter``: its task carries the value)."""
    return client.submit(_identity, value, pure=False,
                         key=f"treeinf-const-{uuid.uuid4().hex}")


def _identity(value):
    return value


def _final_and_reference(model):
    """(last estimator, the library's reference function) for verification."""
    from ._trees import _is_pipeline, _lookup
    final = model.steps[-1][1] if _is_pipeline(model) else model
    return final, _lookup(final).reference


def _sums_dict(arr):
    return {k: arr[:, j] for j, k in enumerate(_SUM_KEYS)}


# ------------------------------------------------- tasks run on the workers
def _fit_partition(ens, model, X, y, w, n_jobs, verify):
    """Stage 1 on one partition: encode, verify, leaf ids and per-leaf sums.

    ``y`` and ``w`` are this partition's (or None for unit weights).
    Returns a dict with the partition's encoded targets and weights, its
    leaf ids (n_trees, n_p) and its per-leaf sums (n_leaves_total, 6).
    """
    from ._fidelity import fused_newton_sums
    from ._trees._verify import verify_ensemble
    Xe = ens.encode(X)
    n = Xe.shape[0]
    if verify:
        final, reference = _final_and_reference(model)
        verify_ensemble(ens, final, X, reference)
    y_enc = encode_target(ens, y, n)
    wp = check_sample_weight(w, n) if w is not None else np.ones(n)
    cw = ens.class_weight
    if cw is not None and ens.objective != "regression":
        wp = wp * np.asarray(cw, dtype=np.float64)[y_enc.astype(np.int64)]
    with num_threads(n_jobs):
        leaves_T, sums = fused_newton_sums(ens, Xe, y_enc, wp)
    stacked = np.column_stack([sums[k] for k in _SUM_KEYS])
    return {"n": n, "leaves_T": leaves_T, "y": y_enc, "w": wp, "sums": stacked,
            "weight_sum": float(wp.sum())}


def _partition_length(part):
    return int(part.shape[0]) if hasattr(part, "shape") else len(part)


def _build_shard(params, ens, part, denom):
    """Stage 3 on one partition: a fitted in-memory BoostIn over its rows,
    with the global leaf denominators (BoostIn's own fit pass 2)."""
    from .explainers.boostin import BoostIn
    shard = BoostIn(**params)
    shard.ensemble_ = ens
    shard.n_train_ = part["n"]
    shard._y, shard._w = part["y"], part["w"]
    shard._denom = denom
    shard._leaves_T = part["leaves_T"]
    with num_threads(params["n_jobs"]):
        shard._build_derived()
    return shard


def _shard_local(shard, query):
    Xe, y = query
    with num_threads(shard.n_jobs):
        return shard._local(Xe, y)


def _shard_top(shard, query, k, largest):
    Xe, y = query
    with num_threads(shard.n_jobs):
        return shard._top(Xe, y, min(k, shard.n_train_), largest)


def _shard_global(shard, query):
    Xe, y = query
    with num_threads(shard.n_jobs):
        return shard._global(Xe, y)


def _shard_self(shard):
    with num_threads(shard.n_jobs):
        return shard._self()


def _shard_label_edit(shard, query, target):
    Xe, y = query
    out = np.empty((shard.n_train_, Xe.shape[0]))
    with num_threads(shard.n_jobs):
        for value in np.unique(target):
            cols = np.flatnonzero(target == value)
            out[:, cols] = shard._label_edit(Xe[cols], y[cols], float(value))
    return out


def merge_top(indices, values, k, largest):
    """Exact top-k of candidate lists: best value first, ties to the lower index.

    Parameters
    ----------
    indices : ndarray of shape (m, c), int64
        Global training indices of each query row's candidates (every
        partition's own top-k).
    values : ndarray of shape (m, c), float64
    k : int
    largest : bool

    Returns
    -------
    indices, values : ndarrays of shape (m, k)
    """
    by_index = np.argsort(indices, axis=1, kind="stable")
    indices = np.take_along_axis(indices, by_index, axis=1)
    values = np.take_along_axis(values, by_index, axis=1)
    order = np.argsort(-values if largest else values, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(indices, order, axis=1),
            np.take_along_axis(values, order, axis=1))


# ------------------------------------------------------------ the estimator
class DaskBoostIn(BaseEstimator):
    """BoostIn with the training rows partitioned over a Dask cluster.

    The influence is BoostIn's (see :class:`treeinf.BoostIn` for the
    formula, the sign convention and the parameters ``variant`` and
    ``dtype``), computed where the training rows live: each partition's
    leaf ids and training terms stay in its worker's memory, only per-leaf
    sums and query results travel. The results equal the in-memory
    ``BoostIn`` on the concatenated partitions to ~1e-15 relative (the
    per-leaf sums are added in another order) with the same row order:
    global training index = position in the concatenation of the
    partitions, i.e. the row order of the Dask collection.

    Parameters
    ----------
    variant : {'exact', 'paper'}, default='exact'
        As in :class:`treeinf.BoostIn`.
    dtype : {'float64', 'float32'}, default='float64'
        Storage type of the training terms on the workers, as in
        :class:`treeinf.BoostIn` (top-k, self, global and label-edit
        influence stay exact in float32).
    n_jobs : int or None, default=None
        Numba threads per task on each worker; None or -1 uses all cores of
        the worker's machine. With several Dask worker threads per machine,
        set it so that threads x n_jobs does not exceed the cores.
    retries : int, default=2
        How often Dask reruns a task of ``fit`` or of a query that raised
        (e.g. out of memory). Tasks on a worker that dies are rerun by the
        scheduler anyway (up to its ``allowed-failures``), and shards that
        were on it are recomputed from the training collections.

    Attributes
    ----------
    ensemble_ : FlatEnsemble
        The parsed, verified model.
    n_train_ : int
        Training rows over all partitions.
    partition_sizes_ : ndarray of shape (n_partitions,), int64
        Rows per partition; partition p holds global rows
        ``partition_offsets_[p]:partition_offsets_[p + 1]``.
    partition_offsets_ : ndarray of shape (n_partitions + 1,), int64
    fidelity_ : dict
        The data check's report on the reduced leaf sums (as ``BoostIn``).
    client_ : distributed.Client
        The client the shards live on.
    shards_ : list of distributed.Future
        One fitted in-memory ``BoostIn`` per partition, on the workers.

    Notes
    -----
    Sign convention: positive = helpful (removing the training row would
    increase the query row's loss), as for every treeinf method.

    Only BoostIn is distributed: its training terms are per row given the
    per-leaf sums, so one reduction suffices. LeafInfluence and LeafRefit
    propagate a removed row's effect through every other row's margin,
    round by round (an all-to-all exchange per removed row and round);
    TREX fits a global surrogate (an iterative solver with one reduction per
    iteration); the retraining methods retrain the model. They are not
    offered here.

    Models from ``lightgbm.dask`` (``DaskLGBMClassifier``/``Regressor``)
    and ``xgboost.dask`` (``DaskXGBClassifier``/``Regressor``) are taken with
    the collections they were trained on. scikit-learn models that hold out
    an early-stopping split of the rows passed to ``fit`` are refused (their
    split is a global shuffle; fit them in memory).

    A fitted ``DaskBoostIn`` holds futures: it cannot be pickled or saved;
    it lives as long as its client.

    Examples
    --------
    >>> import dask.array as da
    >>> from distributed import Client, LocalCluster
    >>> from treeinf import DaskBoostIn
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
    >>> Xd = da.from_array(X_train, chunks=(10_000, -1))                   # doctest: +SKIP
    >>> yd = da.from_array(y_train, chunks=10_000)                         # doctest: +SKIP
    >>> explainer = DaskBoostIn().fit(model, Xd, yd)                      # doctest: +SKIP
    >>> rows, values = explainer.get_top_influence(X_test, y_test, k=5)    # doctest: +SKIP
    """

    _parameter_constraints = {"variant": [StrOptions({"exact", "paper"})],
                              "dtype": [StrOptions({"float64", "float32"})],
                              "n_jobs": N_JOBS,
                              "retries": [Interval(numbers.Integral, 0, None, closed="left")]}

    def __init__(self, variant="exact", dtype="float64", n_jobs=None, retries=2):
        self.variant = variant
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.retries = retries

    # ------------------------------------------------------------ fitting
    def fit(self, model, X, y, sample_weight=None, *, client=None, learning_rate=None,
            reg_lambda=None, missing=None, check_data=True):
        """Map-reduce fit over the partitions of ``X``.

        Parameters
        ----------
        model : trained tree model
            A boosted model :class:`treeinf.BoostIn` supports, or one from
            ``lightgbm.dask`` / ``xgboost.dask``. Verified against the
            library on a sample of every partition.
        X : dask.array.Array or dask.dataframe.DataFrame of shape (n_train, n_features)
            The training rows, partitioned by rows (a Dask Array may be
            chunked along columns too; it is rechunked to whole rows).
        y : dask Array / Series of shape (n_train,), or array-like
            Training targets, partitioned like ``X`` (the same row count in
            every partition), or an in-memory array that is split like it.
        sample_weight : like y, default=None
        client : distributed.Client or str, default=None
            The client (or a scheduler address) to compute on; None uses
            the current default client (``distributed.get_client()``).
        learning_rate, reg_lambda, missing, check_data
            As in :meth:`treeinf.BoostIn.fit`. The data check runs on the
            per-leaf sums reduced over all partitions.

        Returns
        -------
        self

        Raises
        ------
        TrainingDataMismatchError
            If leaves recomputed from the data disagree with the model's.
        DataValidationError
            If X, y and sample_weight are not partitioned alike.
        """
        from .explainers._base import _estimate_xgboost, _set_training_params
        from ._fidelity import _judge
        from ._stats import effective_l2
        from ._trees import parse_model

        resolve_n_jobs(self.n_jobs)
        check_params(self)
        client = self._resolve_client(client)
        model = _local_model(model)
        ens = parse_model(model)   # verified per partition below
        if ens.kind != "boosting":
            raise UnsupportedModelError(
                f"DaskBoostIn supports boosting models; {ens.model_name} is a {ens.kind} "
                "model.")
        if ens.train_split:
            raise UnsupportedModelError(
                f"{ens.model_name} held out an early-stopping split of the rows passed to "
                "its fit (a global shuffle of them); DaskBoostIn cannot reproduce it "
                "partition by partition. Explain this model in memory with BoostIn, or "
                "train it without early stopping on a validation_fraction.")
        _set_training_params(ens, learning_rate, reg_lambda, missing)

        x_parts = _partitions(X, "X")
        futures = client.compute(x_parts)
        lengths = np.asarray(client.gather(
            [client.submit(_partition_length, f) for f in futures]), dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        y_f = self._aligned(client, y, "y", lengths, offsets)
        w_f = (self._aligned(client, sample_weight, "sample_weight", lengths, offsets)
               if sample_weight is not None else [None] * len(futures))

        ens_f = _const(client, ens)
        model_f = _const(client, model)
        tag = uuid.uuid4().hex[:12]
        parts = [client.submit(_fit_partition, ens_f, model_f, xf, yf, wf, self.n_jobs,
                               True, retries=self.retries,
                               key=f"treeinf-fit-sums-{tag}-{p}")
                 for p, (xf, yf, wf) in enumerate(zip(futures, y_f, w_f))]
        sums_f = [client.submit(operator.getitem, p, "sums", key=f"treeinf-sums-{tag}-{i}")
                  for i, p in enumerate(parts)]
        wsum_f = [client.submit(operator.getitem, p, "weight_sum",
                                key=f"treeinf-wsum-{tag}-{i}") for i, p in enumerate(parts)]
        sums_parts = client.gather(sums_f)
        weight_sum = float(np.sum(client.gather(wsum_f)))
        del sums_f, wsum_f, futures, y_f, w_f
        total = np.zeros_like(sums_parts[0])
        for s in sums_parts:      # in partition order: deterministic
            total += s
        sums = _sums_dict(total)
        n = int(offsets[-1])
        # effective_l2 reads the mean training weight (CatBoost); the other
        # statistics of w the check needs are in the sums
        w_mean = np.array([weight_sum / n])
        if check_data:
            report = _judge(ens, sums, w_mean, raise_error=False)
            if not report["passed"] and ens.library == "xgboost" and report["exact"] \
                    and (learning_rate, reg_lambda) == (None, None):
                report = _estimate_xgboost(ens, sums, w_mean, report)
            if not report["passed"]:
                _judge(ens, sums, w_mean, raise_error=True)
            report["checked"] = True
            report["held_out_rows"] = 0
        else:
            report = {"checked": False, "passed": None, "exact": bool(ens.exact_leaves),
                      "params_source": dict(ens.params_source)}
        report["n_partitions"] = int(lengths.size)
        denom = sums["H"] + effective_l2(ens, w_mean)

        ens_f = _const(client, ens)     # the check may have set eta / lambda
        denom_f = _const(client, denom)
        params = {"variant": self.variant, "dtype": self.dtype, "n_jobs": self.n_jobs}
        self.shards_ = [client.submit(_build_shard, params, ens_f, part, denom_f,
                                      retries=self.retries,
                                      key=f"treeinf-shard-{tag}-{i}")
                        for i, part in enumerate(parts)]
        del parts
        distributed_wait(self.shards_)
        for f in self.shards_:
            if f.status == "error":
                f.result()   # raises the worker's exception
        self.client_ = client
        self.ensemble_ = ens
        self.fidelity_ = report
        self.partition_sizes_ = lengths
        self.partition_offsets_ = offsets
        self.n_train_ = n
        self.n_features_in_ = ens.n_features if ens.encoder.preprocessor is None \
            else int(X.shape[1])
        names = ens.encoder.feature_names
        if names is not None and ens.encoder.preprocessor is None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    @staticmethod
    def _resolve_client(client):
        import distributed
        if client is None:
            try:
                return distributed.get_client()
            except ValueError as exc:
                raise DataValidationError(
                    "DaskBoostIn found no Dask client: create one first "
                    "(distributed.Client('tcp://scheduler:8786') or "
                    "Client(LocalCluster())) or pass fit(..., client=...).") from exc
        if isinstance(client, str):
            return distributed.Client(client)
        if isinstance(client, distributed.Client):
            return client
        raise DataValidationError(
            f"client must be a distributed.Client, a scheduler address or None, got "
            f"{type(client).__name__}.")

    def _aligned(self, client, data, name, lengths, offsets):
        """Futures of ``data`` split like X's partitions; checks their lengths."""
        if _is_dask(data):
            import dask.array as da
            if isinstance(data, da.Array) and data.ndim == 1 \
                    and not np.any(np.isnan(data.chunks[0])) \
                    and data.shape[0] == offsets[-1]:
                data = data.rechunk((tuple(int(v) for v in lengths),))
            futures = client.compute(_partitions(data, name))
            if len(futures) != lengths.size:
                raise DataValidationError(
                    f"{name} has {len(futures)} partitions but X has {lengths.size}; "
                    f"partition {name} like X (e.g. y = ddf['label'] of the same "
                    "DataFrame, or dask arrays with the same row chunks).")
            got = np.asarray(client.gather(
                [client.submit(_partition_length, f) for f in futures]))
            if not np.array_equal(got, lengths):
                p = int(np.flatnonzero(got != lengths)[0])
                raise DataValidationError(
                    f"Partition {p} of {name} has {int(got[p])} rows but X's has "
                    f"{int(lengths[p])}; {name} must be partitioned like X (row counts "
                    f"per partition of X: {lengths.tolist()[:10]}).")
            return futures
        if hasattr(data, "to_numpy"):
            data = data.to_numpy()
        arr = np.asarray(data)
        if arr.ndim != 1 or arr.shape[0] != offsets[-1]:
            raise DataValidationError(
                f"{name} has shape {arr.shape} but X has {int(offsets[-1])} rows; pass a "
                f"1-D array with one entry per training row.")
        return [_const(client, arr[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]

    # ------------------------------------------------------------ queries
    def _check_fitted(self):
        if not hasattr(self, "shards_"):
            raise NotFittedError(
                "This DaskBoostIn instance is not fitted yet; call "
                "fit(model, X_train, y_train) first.")

    def _query(self, X, y):
        """The encoded query as a future every shard reads (sent once per
        worker). ``y`` is encoded on the client; the tuple is what each
        shard's private hook takes."""
        self._check_fitted()
        Xe = self.ensemble_.encode(X)
        y_enc = encode_target(self.ensemble_, y, Xe.shape[0])
        return Xe, y_enc, _const(self.client_, (Xe, y_enc))

    def _map(self, func, *args, what):
        tag = uuid.uuid4().hex[:12]
        return [self.client_.submit(func, shard, *args, retries=self.retries,
                                    key=f"treeinf-{what}-{tag}-{i}")
                for i, shard in enumerate(self.shards_)]

    def _gather(self, futures):
        return self.client_.gather(futures)

    def _column_blocks(self, futures, n_cols, as_dask):
        """Stack per-partition (n_p, n_cols) blocks in partition order."""
        if as_dask:
            import dask.array as da
            return da.concatenate([
                da.from_delayed(f, shape=(int(n_p), n_cols), dtype=np.float64)
                for f, n_p in zip(futures, self.partition_sizes_)], axis=0)
        return np.concatenate(self._gather(futures), axis=0)

    def get_local_influence(self, X, y, *, as_dask=False):
        """Influence of every training row on the loss of every given row.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_test, n_features)
            In memory on the client (it is sent to every worker).
        y : array-like of shape (n_test,)
        as_dask : bool, default=False
            False: gather the result into a NumPy array on the client
            (n_train x n_test x 8 bytes must fit there). True: return a Dask
            array with one block per training partition; the blocks are
            computed now and stay on the workers until you compute them.

        Returns
        -------
        ndarray or dask.array.Array of shape (n_train, n_test), float64
            Rows in the global training order. Positive = helpful.
        """
        Xe, _, q = self._query(X, y)
        futs = self._map(_shard_local, q, what="local")
        return self._column_blocks(futs, Xe.shape[0], as_dask)

    def get_top_influence(self, X, y, k=10, kind="helpful"):
        """The k most helpful (or harmful) training rows for each given row.

        Each partition returns its own top-k (exact, with BoostIn's kernels);
        the client merges the ``n_partitions * k`` candidates per row. Ties
        go to the lower global training index, as in
        :meth:`treeinf.BoostIn.get_top_influence`.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_test, n_features)
        y : array-like of shape (n_test,)
        k : int, default=10
        kind : {'helpful', 'harmful'}, default='helpful'

        Returns
        -------
        indices : ndarray of shape (n_test, k), int64
            Global training row indices.
        values : ndarray of shape (n_test, k), float64
        """
        check_value(kind, "kind", [StrOptions({"helpful", "harmful"})])
        self._check_fitted()
        k = check_k(k, self.n_train_)
        largest = kind == "helpful"
        _, _, q = self._query(X, y)
        parts = self._gather(self._map(_shard_top, q, k, largest, what="top"))
        idx = np.concatenate([i + off for (i, _), off in
                              zip(parts, self.partition_offsets_[:-1])], axis=1)
        val = np.concatenate([v for _, v in parts], axis=1)
        return merge_top(idx.astype(np.int64), val, k, largest)

    def get_global_influence(self, X, y, *, as_dask=False):
        """Summed influence of each training row over the given rows.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_rows, n_features)
        y : array-like of shape (n_rows,)
        as_dask : bool, default=False
            Return a Dask array (one block per partition) instead of
            gathering.

        Returns
        -------
        ndarray or dask.array.Array of shape (n_train,), float64
        """
        _, _, q = self._query(X, y)
        futs = self._map(_shard_global, q, what="global")
        return self._vector(futs, as_dask)

    def get_self_influence(self, *, as_dask=False):
        """Influence of each training row on its own training loss.

        Returns
        -------
        ndarray or dask.array.Array of shape (n_train,), float64
        """
        self._check_fitted()
        return self._vector(self._map(_shard_self, what="self"), as_dask)

    def get_label_edit_influence(self, X, y, target, *, as_dask=False):
        """Influence of relabelling each training row on each given row.

        As :meth:`treeinf.BoostIn.get_label_edit_influence`, per partition.

        Returns
        -------
        ndarray or dask.array.Array of shape (n_train, n_test), float64
        """
        Xe, _, q = self._query(X, y)
        t_enc = encode_target(self.ensemble_, target, Xe.shape[0], name="target")
        futs = self._map(_shard_label_edit, q, t_enc, what="label-edit")
        return self._column_blocks(futs, Xe.shape[0], as_dask)

    def _vector(self, futures, as_dask):
        if as_dask:
            import dask.array as da
            return da.concatenate([da.from_delayed(f, shape=(int(n_p),), dtype=np.float64)
                                   for f, n_p in zip(futures, self.partition_sizes_)])
        return np.concatenate(self._gather(futures))

    # ------------------------------------------------------- persistence
    def __getstate__(self):
        if hasattr(self, "shards_"):
            raise PersistenceError(
                "A fitted DaskBoostIn holds futures on its Dask cluster and cannot be "
                "pickled or saved. Fit it again on the cluster, or fit an in-memory "
                "treeinf.BoostIn (which can be saved) if the data fits one machine.")
        return super().__getstate__()


def distributed_wait(futures):
    """Wait for futures (distributed.wait), without importing it at module load."""
    from distributed import wait
    wait(futures)
