"""Checks of targets, weights and parameters at the public boundary.

Parameters are validated the way scikit-learn validates its estimators'
(``_parameter_constraints`` checked with :mod:`sklearn.utils._param_validation`),
with messages in treeinf's form (what was seen, what is expected) and
treeinf's error types.
"""
import numbers

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, make_constraint

from .exceptions import DataValidationError, InvalidParameterError

__all__ = ["Interval", "StrOptions", "check_params", "check_sample_weight", "check_k",
           "encode_target", "POSITIVE_INT", "NON_NEGATIVE_REAL", "POSITIVE_REAL",
           "N_JOBS", "VERBOSE", "RANDOM_STATE"]

#: an integer >= 1 (numpy integers accepted; floats and bools refused)
POSITIVE_INT = Interval(numbers.Integral, 1, None, closed="left")
#: a finite number >= 0
NON_NEGATIVE_REAL = Interval(numbers.Real, 0, np.inf, closed="left")
#: a finite number > 0
POSITIVE_REAL = Interval(numbers.Real, 0, np.inf, closed="neither")
#: scikit-learn's n_jobs: None or a non-zero integer (-1: all cores)
N_JOBS = [Interval(numbers.Integral, None, -1, closed="right"), POSITIVE_INT, None]
VERBOSE = ["boolean"]
#: None, an integer seed in [0, 2**32) or a numpy.random.RandomState
RANDOM_STATE = ["random_state"]


def _describe(constraint):
    """A constraint in words, e.g. 'an integer in [1, inf)'."""
    if isinstance(constraint, str) and constraint == "boolean":
        return "True or False"
    if isinstance(constraint, str) and constraint == "random_state":
        return "None, an integer in [0, 2**32) or a numpy.random.RandomState"
    if isinstance(constraint, StrOptions):
        return "one of " + ", ".join(repr(o) for o in sorted(constraint.options))
    if isinstance(constraint, Interval):
        lo = "-inf" if constraint.left is None else f"{constraint.left:g}"
        hi = "inf" if constraint.right is None else f"{constraint.right:g}"
        left = "[" if constraint.closed in ("left", "both") else "("
        right = "]" if constraint.closed in ("right", "both") else ")"
        kind = "an integer" if constraint.type is numbers.Integral else "a number"
        return f"{kind} in {left}{lo}, {hi}{right}"
    if constraint is None:
        return "None"
    return str(make_constraint(constraint))


def _satisfied(value, constraints):
    is_bool = isinstance(value, (bool, np.bool_))
    for c in constraints:
        if is_bool and not (isinstance(c, str) and c == "boolean"):
            continue  # True is not an integer here (sklearn's Interval would take it)
        if make_constraint(c).is_satisfied_by(value):
            return True
    return False


def check_value(value, name, constraints, owner=None):
    """Raise InvalidParameterError unless ``value`` satisfies one of ``constraints``.

    ``constraints`` is a list in the format of scikit-learn's
    ``_parameter_constraints`` entries (``Interval``, ``StrOptions``,
    ``"boolean"``, ``"random_state"``, ``None``, a type ...).
    """
    if _satisfied(value, constraints):
        return value
    parts = [_describe(c) for c in constraints]
    expected = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]
    hint = ""
    if (isinstance(value, (float, np.floating)) and np.isfinite(value)
            and float(value).is_integer()
            and any(isinstance(c, Interval) and c.type is numbers.Integral
                    for c in constraints)):
        hint = f" (a float); pass the integer {int(value)}"
    who = f"{owner}: " if owner else ""
    raise InvalidParameterError(f"{who}{name} must be {expected}, got {value!r}{hint}.")


def check_params(estimator):
    """Validate ``estimator.get_params(deep=False)`` against its
    ``_parameter_constraints`` (parameters without an entry are not checked).

    ``estimator._parameter_hints`` (optional) maps a parameter to a sentence
    appended to its error message (what the values mean).
    """
    params = estimator.get_params(deep=False)
    owner = type(estimator).__name__
    hints = getattr(estimator, "_parameter_hints", {})
    for name, constraints in getattr(estimator, "_parameter_constraints", {}).items():
        if name not in params or constraints == "no_validation":
            continue
        try:
            check_value(params[name], name, constraints, owner)
        except InvalidParameterError as exc:
            if name not in hints:
                raise
            raise InvalidParameterError(f"{exc} {hints[name]}") from None


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
    """Non-negative finite weights (n,) float64 (a new array), ones if None.

    The conversion and the checks are scikit-learn's ``_check_sample_weight``
    (numeric, finite, non-negative, not all zero); its errors are re-raised
    as :class:`DataValidationError` that say what to pass instead.
    """
    from sklearn.utils.validation import _check_sample_weight
    if sample_weight is None:
        return np.ones(n)
    w = _to_1d(sample_weight, "sample_weight", n)
    if w.dtype.kind not in "biuf":
        raise DataValidationError(
            f"sample_weight must be numeric, got dtype {w.dtype}; pass one non-negative "
            "number per training row.")
    try:
        return _check_sample_weight(w, np.empty((n, 0)), dtype=np.float64,
                                    ensure_non_negative=True, copy=True)
    except (TypeError, ValueError) as exc:
        bad = w.astype(np.float64)
        raise DataValidationError(
            f"sample_weight must be finite, non-negative and not all zero, one number per "
            f"training row; got min {np.nanmin(bad) if np.any(~np.isnan(bad)) else 'nan'}, "
            f"{int(np.sum(~np.isfinite(bad)))} non-finite and {int(np.sum(bad > 0))} "
            f"positive values ({exc}).") from None


def check_k(k, n_train):
    """``k`` of ``get_top_influence`` as an int: an integer in [1, n_train].

    Like scikit-learn's integer parameters, numpy integers are accepted and
    floats are refused (also integral ones such as 2.0).
    """
    if not _satisfied(k, [POSITIVE_INT]):
        hint = (f" (a float); pass the integer {int(k)}"
                if isinstance(k, (float, np.floating)) and np.isfinite(k)
                and float(k).is_integer() else "")
        raise InvalidParameterError(
            f"k must be a positive integer (the number of training rows returned per "
            f"test row), got {k!r}{hint}.")
    if k > n_train:
        raise DataValidationError(
            f"k={k} is larger than the number of training rows ({n_train}).")
    return int(k)
