"""Check a parsed ensemble against the library's own predictions."""
import numpy as np

from ..exceptions import ParseMismatchError

MAX_VERIFY_ROWS = 10_000


def _sample_rows(X, n_max, seed=0):
    n = X.shape[0] if hasattr(X, "shape") else len(X)
    if n <= n_max:
        return X
    idx = np.sort(np.random.default_rng(seed).choice(n, n_max, replace=False))
    if hasattr(X, "iloc"):
        return X.iloc[idx]
    if hasattr(X, "nnz"):  # scipy sparse: row selection in CSR
        return X.tocsr()[idx]
    return np.asarray(X)[idx]


def verify_ensemble(ens, model, X, reference, max_rows=MAX_VERIFY_ROWS):
    """Raise :class:`ParseMismatchError` unless ``ens`` reproduces ``model`` on X.

    ``reference(model, X_model)`` returns a dict with ``margin`` of shape
    (n, K) and either ``leaves`` (library leaf ids, (n, n_rounds, K)) or
    ``tree_values`` (each tree's output, (n, n_rounds, K)). ``X_model`` is X
    after any pipeline preprocessing.
    """
    X = _sample_rows(X, max_rows)
    Xe = ens.encode(X)
    X_model = X
    if ens.encoder.preprocessor is not None:
        X_model = ens.encoder.preprocessor.transform(X)
    ref = reference(model, X_model)
    leaves = ens.apply_encoded(Xe)
    margin = ens.margins_from_leaves(leaves)
    rtol = 1e-5 if ens.encoder.input_dtype == np.float32 else 1e-6
    lib_margin = np.asarray(ref["margin"], dtype=np.float64).reshape(margin.shape)
    err = np.abs(margin - lib_margin) / (1.0 + np.abs(lib_margin))
    if not np.all(err <= rtol):
        i, c = np.unravel_index(np.nanargmax(np.where(np.isnan(err), np.inf, err)), err.shape)
        raise ParseMismatchError(
            f"Parsed {ens.library} {ens.model_name} does not reproduce the "
            f"library's raw margins: largest relative difference {err[i, c]:.3g} "
            f"(tolerance {rtol:g}) at row {i}, output {c}: treeinf "
            f"{margin[i, c]!r}, {ens.library} {lib_margin[i, c]!r}; "
            f"{int(np.sum(~(err <= rtol)))} of {err.size} values differ. "
            "Please report this with the model.")
    shape = (leaves.shape[0], ens.n_rounds, ens.n_outputs)
    if ref.get("leaves") is not None:
        ours = ens.leaf_library_id[ens.leaf_offset[:-1][None, :] + leaves].reshape(shape)
        theirs = np.asarray(ref["leaves"]).reshape(shape)
        bad = ours != theirs
        if bad.any():
            i, t, c = np.argwhere(bad)[0]
            raise ParseMismatchError(
                f"Parsed {ens.library} {ens.model_name} routes rows to other leaves "
                f"than the library: {int(bad.sum())} of {bad.size} leaf ids differ; "
                f"first at row {i}, round {t}, output {c}: treeinf leaf {ours[i, t, c]}, "
                f"{ens.library} leaf {theirs[i, t, c]}. Please report this with the model.")
    elif ref.get("tree_values") is not None:
        ours = ens.leaf_value[ens.leaf_offset[:-1][None, :] + leaves].reshape(shape)
        theirs = np.asarray(ref["tree_values"], dtype=np.float64).reshape(shape)
        err = np.abs(ours - theirs) / (1.0 + np.abs(theirs))
        if not np.all(err <= rtol):
            i, t, c = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape)
            raise ParseMismatchError(
                f"Parsed {ens.library} {ens.model_name} gives other per-tree outputs "
                f"than the library: largest relative difference {err[i, t, c]:.3g} at "
                f"row {i}, round {t}, output {c}. Please report this with the model.")
    else:
        raise ParseMismatchError("The library reference gave no leaf information.")
    ens.params["verified_rows"] = int(leaves.shape[0])
    return ens
