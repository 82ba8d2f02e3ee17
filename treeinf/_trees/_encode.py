"""From user input (numpy, pandas, lists, scipy sparse) to the float64 matrix
kernels use.

One encoder per parsed model. It checks shape and feature names, runs the
earlier steps of a Pipeline, maps categorical values to the codes the model's
splits use and rounds values to the precision the library compares in
(float32 for XGBoost, CatBoost and scikit-learn trees). The user's object is
never modified.

Sparse matrices (passed by the user, or produced by a Pipeline's own steps,
e.g. a ``OneHotEncoder``) are made dense with the meaning the library gives
their implicit entries: 0.0 for LightGBM, CatBoost and scikit-learn trees,
missing (NaN) for XGBoost, whose DMatrix treats entries a CSR/CSC matrix does
not store as missing. Encoders of models whose library refuses sparse input
(HistGradientBoosting; CatBoost with categorical columns) refuse it too.
"""
import numpy as np

from ..exceptions import DataValidationError

__all__ = ["TabularEncoder", "is_dataframe", "is_sparse"]


def is_dataframe(X):
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def is_sparse(X):
    """Whether X is a scipy sparse matrix or array."""
    if not hasattr(X, "nnz"):
        return False
    import scipy.sparse as sp
    return sp.issparse(X)


def _describe(X):
    return type(X).__module__.split(".")[0] + "." + type(X).__name__


class TabularEncoder:
    """Encode user input for one parsed model.

    Class attributes: ``sparse_implicit`` is the value of the entries a sparse
    matrix does not store (0.0, or NaN where the library treats them as
    missing); ``accept_sparse`` (class or instance attribute) whether the
    library accepts sparse input at all.

    Parameters
    ----------
    n_features : int
        Number of columns the model was trained on (after any preprocessing).
    feature_names : sequence of str or None
        Column names the model was trained with, if it recorded them.
    input_dtype : numpy dtype
        Precision in which the library compares feature values.
    categories : dict {column: sequence} or None
        For categorical columns whose codes are positions in a list of
        category values (pandas categories at training time). Non-numeric
        input values of such a column are looked up; unseen values become NaN.
    categorical_columns : sequence of int or None
        Columns the model splits on categorically. Numeric input there is
        taken to be the category code already.
    preprocessor : object with ``transform`` or None
        Earlier steps of a scikit-learn Pipeline.
    """

    sparse_implicit = 0.0
    accept_sparse = True

    def __init__(self, n_features, feature_names=None, input_dtype=np.float64,
                 categories=None, categorical_columns=None, preprocessor=None,
                 model_name="model"):
        self.n_features = int(n_features)
        self.feature_names = None if feature_names is None else [str(f) for f in feature_names]
        self.input_dtype = np.dtype(input_dtype)
        self.categories = {int(k): list(v) for k, v in (categories or {}).items()}
        cat_cols = set(int(c) for c in (categorical_columns or ()))
        self.categorical_columns = sorted(cat_cols | set(self.categories))
        self.preprocessor = preprocessor
        self.model_name = model_name

    # -------------------------------------------------------------- checking
    def _check_shape(self, X, n_cols):
        if n_cols != self.n_features:
            raise DataValidationError(
                f"X has {n_cols} features, but {self.model_name} was trained with "
                f"{self.n_features}; pass the same columns as at training time.")

    def _check_names(self, columns):
        if self.feature_names is None:
            return
        columns = [str(c) for c in columns]
        if columns != self.feature_names:
            missing = [c for c in self.feature_names if c not in columns]
            extra = [c for c in columns if c not in self.feature_names]
            if not missing and not extra:
                detail = "the same columns in another order"
            else:
                detail = f"missing {missing[:5]}, unexpected {extra[:5]}"
            raise DataValidationError(
                f"The feature names of X do not match those {self.model_name} was "
                f"trained with: {detail}. Expected columns in this order: "
                f"{self.feature_names[:10]}{' ...' if len(self.feature_names) > 10 else ''}.")

    # ---------------------------------------------------------- categoricals
    def _encode_categorical(self, values, col):
        """Codes (float64, NaN for missing/unseen) of one categorical column."""
        cats = self.categories.get(col)
        values = np.asarray(values, dtype=object)
        out = np.full(values.shape[0], np.nan)
        if cats is None:
            try:
                return np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                raise DataValidationError(
                    f"Column {self._name(col)} holds non-numeric values "
                    f"(e.g. {values[0]!r}), but {self.model_name} recorded no "
                    "category names for it; pass the integer category codes "
                    "it was trained on.") from None
        lookup = {v: i for i, v in enumerate(cats)}
        for i, v in enumerate(values):
            code = lookup.get(v)
            if code is None and isinstance(v, (int, float, np.integer, np.floating)) \
                    and not isinstance(v, bool) and v == v:
                code = lookup.get(type(cats[0])(v)) if cats else None
            if code is not None:
                out[i] = code
        return out

    def _name(self, col):
        if self.feature_names is not None:
            return f"{self.feature_names[col]!r}"
        return f"{col}"

    # ------------------------------------------------------------- transform
    def _from_frame(self, X):
        self._check_names(X.columns)
        self._check_shape(X, X.shape[1])
        out = np.empty(X.shape, dtype=np.float64)
        cat_cols = set(self.categorical_columns)
        for j in range(X.shape[1]):
            col = X.iloc[:, j]
            dtype = col.dtype
            is_cat = str(dtype) == "category"
            if j in cat_cols and (is_cat or dtype == object or str(dtype).startswith(("string", "str"))):
                if is_cat and self.categories.get(j) is None:
                    raise DataValidationError(
                        f"Column {self._name(j)} is a pandas categorical, but "
                        f"{self.model_name} was not trained on pandas categories; "
                        "pass the integer codes it was trained on.")
                out[:, j] = self._encode_categorical(col.to_numpy(dtype=object), j)
                continue
            if is_cat:
                raise DataValidationError(
                    f"Column {self._name(j)} is a pandas categorical, but "
                    f"{self.model_name} treats it as numeric; convert it to numbers.")
            try:
                out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                raise DataValidationError(
                    f"Column {self._name(j)} has dtype {dtype} that cannot be "
                    f"converted to numbers, and {self.model_name} treats it as "
                    "numeric.") from None
        return out

    def _refuse_sparse(self, X, why):
        raise DataValidationError(
            f"Sparse input ({_describe(X)}) is not supported for {self.model_name}: "
            f"{why}. Pass a dense array (X.toarray()) or a DataFrame.")

    def _from_sparse(self, X):
        """Dense float64 copy of a scipy sparse matrix (implicit entries filled)."""
        if not self.accept_sparse:
            self._refuse_sparse(X, "the library does not accept sparse matrices")
        if X.ndim != 2:
            raise DataValidationError(
                f"X must be 2-D of shape (n_samples, n_features), got a sparse "
                f"matrix of shape {X.shape}.")
        self._check_shape(X, X.shape[1])
        if X.dtype.kind not in "biuf":
            raise DataValidationError(
                f"Sparse X has dtype {X.dtype}; a sparse matrix must hold numbers.")
        out = np.asarray(X.toarray(), dtype=np.float64)  # a new array; X is untouched
        fill = float(self.sparse_implicit)
        if fill != 0.0:
            coo = X.tocoo()
            stored = np.zeros(X.shape, dtype=bool)
            stored[coo.row, coo.col] = True
            out[~stored] = fill
        return out

    def _from_array(self, X):
        if is_sparse(X):
            return self._from_sparse(X)
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise DataValidationError(
                f"X must be 2-D of shape (n_samples, n_features), got an array of "
                f"shape {arr.shape}; reshape a single row with X.reshape(1, -1).")
        self._check_shape(arr, arr.shape[1])
        if arr.dtype.kind in "biuf":
            return np.array(arr, dtype=np.float64)
        return self._columns_from_array(arr)

    def _columns_from_array(self, arr):
        """Column by column: categorical columns encoded, the rest as numbers."""
        out = np.empty(arr.shape, dtype=np.float64)
        cat_cols = set(self.categorical_columns)
        for j in range(arr.shape[1]):
            if j in cat_cols:
                out[:, j] = self._encode_categorical(arr[:, j], j)
                continue
            try:
                out[:, j] = np.asarray(
                    [np.nan if v is None else v for v in arr[:, j]], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataValidationError(
                    f"Column {self._name(j)} holds non-numeric values "
                    f"(e.g. {arr[0, j]!r}), and {self.model_name} treats it as "
                    "numeric.") from None
        return out

    def transform(self, X):
        """Validated float64 C-contiguous matrix of shape (n_samples, n_features)."""
        if X is None:
            raise DataValidationError("X is None; pass a 2-D array or a DataFrame.")
        if self.preprocessor is not None:
            shape = X.shape if is_sparse(X) or is_dataframe(X) else np.shape(X)
            if len(shape) != 2:
                raise DataValidationError(
                    f"X must be 2-D of shape (n_samples, n_features), got shape "
                    f"{shape}.")
            if shape[0] == 0:
                raise DataValidationError("X has 0 rows; pass at least one row.")
            try:
                X = self.preprocessor.transform(X)
            except Exception as exc:  # the pipeline's own check failed
                raise DataValidationError(
                    f"The pipeline's preprocessing steps rejected X: {exc}") from exc
        if is_dataframe(X):
            if len(X.shape) != 2:
                raise DataValidationError("X must be 2-D.")
            out = self._from_frame(X)
        else:
            out = self._from_array(X)
        if out.shape[0] == 0:
            raise DataValidationError("X has 0 rows; pass at least one row.")
        if self.input_dtype != np.float64:
            out = out.astype(self.input_dtype).astype(np.float64)
        return np.ascontiguousarray(out)
