"""Shared fixtures: tiny synthetic data with NaNs and categorical columns."""
import os

import numpy as np
import pandas as pd
import pytest

# Tests run single-process but kernels are parallel: keep the thread pool small
os.environ.setdefault("OMP_NUM_THREADS", "2")

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")


def make_data(task="binary", n=300, n_num=5, n_cat=0, n_classes=3, nan_frac=0.0,
              n_levels=6, seed=0):
    """Synthetic data for tests.

    Returns ``(X, y)`` where X is a DataFrame with ``n_num`` float columns
    ``f0..`` and ``n_cat`` pandas-categorical columns ``c0..`` (levels
    ``'a', 'b', ...``), with a fraction ``nan_frac`` of every column missing.
    y holds 0/1 (binary), 0..n_classes-1 (multiclass) or floats (regression).
    """
    rng = np.random.default_rng(seed)
    Xn = rng.normal(size=(n, n_num))
    signal = Xn[:, 0] - 0.7 * Xn[:, 1] + 0.3 * Xn[:, 2] ** 2
    cols = {f"f{j}": Xn[:, j] for j in range(n_num)}
    levels = [chr(ord("a") + k) for k in range(n_levels)]
    for j in range(n_cat):
        codes = rng.integers(0, n_levels, size=n)
        signal = signal + (codes % 3 - 1) * 0.8
        cols[f"c{j}"] = pd.Categorical(np.asarray(levels, dtype=object)[codes],
                                       categories=levels)
    X = pd.DataFrame(cols)
    if nan_frac > 0:
        for name in X.columns:
            mask = rng.random(n) < nan_frac
            X.loc[mask, name] = np.nan
    noise = rng.normal(scale=0.5, size=n)
    if task == "regression":
        y = 3.0 * signal + noise + 10.0
    elif task == "binary":
        y = (signal + noise > 0).astype(np.int64)
    elif task == "multiclass":
        q = np.quantile(signal + noise, np.linspace(0, 1, n_classes + 1)[1:-1])
        y = np.searchsorted(q, signal + noise).astype(np.int64)
    else:
        raise ValueError(task)
    return X, y


@pytest.fixture
def data_factory():
    return make_data
