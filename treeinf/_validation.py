"""Checks of targets, weights and parameters at the public boundary."""
import numbers

import numpy as np

from .exceptions import DataValidationError


def _to_1d(v, name, n=None):
    if v is None:
        raise DataValidationError(f"{name} is None; pass a 1-D array of length {n}.")
    if hasattr(v, "to_numpy"):
        v = v.to_numpy()
    arr = np.asarray(v)
    if arr.ndim != 1:
        hint = " (use y.ravel() for a single column)" if arr.ndim == 2 and arr.shape[1] == 1 else ""
        raise DataValidationError(
            f"{name} must be 1-D of shape (n_samples,), got shape {arr.shape}{hint}.")
    if n is not None and arr.shape[0] != n:
        raise DataValidationError(
            f"{name} has {arr.shape[0]} entries but X has {n} rows; they must match.")
    return arr


def encode_target(ens, y, n, name="y"):
    """Targets as float64 (n,): values for regression, class indices otherwise.

    Raises DataValidationError for wrong length, NaN/inf, or unknown classes.
    """
    arr = _to_1d(y, name, n)
    if ens.objective == "regression":
        try:
            out = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise DataValidationError(
                f"{name} must be numeric for a regression model, got dtype {arr.dtype}.") from None
        if not np.all(np.isfinite(out)):
            bad = int(np.flatnonzero(~np.isfinite(out))[0])
            raise DataValidationError(
                f"{name} contains NaN or inf (first at position {bad}); remove or "
                "impute those rows.")
        return out
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataValidationError(
            f"{name} contains NaN or inf (first at position {bad}); class labels "
            "must be finite.")
    n_classes = 2 if ens.objective == "binary" else ens.n_outputs
    if ens.classes is not None:
        import pandas as pd
        codes = pd.Index(ens.classes).get_indexer(arr)
        if np.any(codes < 0):
            unseen = list(dict.fromkeys(arr[codes < 0].tolist()))[:5]
            raise DataValidationError(
                f"{name} contains labels the model never saw: {unseen}; the "
                f"model's classes are {list(ens.classes)[:20]}.")
        return codes.astype(np.float64)
    try:
        out = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise DataValidationError(
            f"{name} must hold class indices 0..{n_classes - 1} for a raw Booster, "
            f"got dtype {arr.dtype}.") from None
    ok = (out == np.round(out)) & (out >= 0) & (out < n_classes)
    if not np.all(ok):
        bad = out[~ok][:5].tolist()
        raise DataValidationError(
            f"{name} contains labels the model never saw: {bad}; this model "
            f"predicts class indices 0..{n_classes - 1}.")
    return out


def check_sample_weight(sample_weight, n):
    """Non-negative finite weights (n,) float64, ones if None."""
    if sample_weight is None:
        return np.ones(n)
    w = _to_1d(sample_weight, "sample_weight", n)
    try:
        w = w.astype(np.float64)
    except (TypeError, ValueError):
        raise DataValidationError("sample_weight must be numeric.") from None
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataValidationError(
            "sample_weight must be finite and non-negative; got "
            f"min {np.nanmin(w) if w.size else 'n/a'} and "
            f"{int(np.sum(~np.isfinite(w)))} non-finite values.")
    if not np.any(w > 0):
        raise DataValidationError("sample_weight is zero for every row.")
    return w


def check_k(k, n_train):
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise DataValidationError(f"k must be a positive integer, got {k!r}.")
    if k > n_train:
        raise DataValidationError(
            f"k={k} is larger than the number of training rows ({n_train}).")
    return int(k)
