"""The single compile policy for every numba kernel, and thread control.

All kernels are compiled with ``cache=True`` (compiled once per machine),
``nogil=True`` and without fastmath, so results are bit-for-bit repeatable.
"""
import contextlib
import numbers
import os

import numba

__all__ = ["njit", "pnjit", "prange", "num_threads"]


def njit(func=None, **kw):
    """Serial kernel decorator with the project's compile policy."""
    opts = dict(cache=True, nogil=True, fastmath=False)
    opts.update(kw)
    if func is None:
        return numba.njit(**opts)
    return numba.njit(**opts)(func)


def pnjit(func=None, **kw):
    """Parallel kernel decorator (``parallel=True``) with the compile policy."""
    return njit(func, parallel=True, **kw)


prange = numba.prange


def resolve_n_jobs(n_jobs):
    """Translate a scikit-learn style ``n_jobs`` into a positive thread count."""
    max_threads = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return max_threads
    if (not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool)
            or n_jobs == 0):
        from .exceptions import DataValidationError
        raise DataValidationError(
            f"n_jobs must be a non-zero integer or None, got {n_jobs!r}; "
            "use None or -1 for all cores, or a positive number of threads.")
    if n_jobs < 0:
        return max(1, max_threads + 1 + int(n_jobs))
    return min(int(n_jobs), max_threads)


@contextlib.contextmanager
def num_threads(n_jobs):
    """Run the enclosed kernels with ``n_jobs`` threads; restores the old count."""
    old = numba.get_num_threads()
    numba.set_num_threads(resolve_n_jobs(n_jobs))
    try:
        yield
    finally:
        numba.set_num_threads(old)
