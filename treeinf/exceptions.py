"""Exceptions raised by treeinf.

Every error a user can trigger is one of these classes, so callers can catch
``treeinf.exceptions.TreeInfError`` for anything the library refuses. Each
class also derives from the built-in exception a scikit-learn user would
expect (``ValueError``, ``AttributeError`` ...), and from scikit-learn's
own class where it has one (:class:`NotFittedError` is a
``sklearn.exceptions.NotFittedError``, :class:`InvalidParameterError` is
what scikit-learn raises for a bad constructor parameter), so generic
handlers keep working.
"""
import sklearn.exceptions

try:  # the class scikit-learn raises for invalid estimator parameters
    from sklearn.utils._param_validation import InvalidParameterError as _SklearnParamError
except ImportError:  # pragma: no cover - scikit-learn moved it
    class _SklearnParamError(ValueError, TypeError):
        pass


class TreeInfError(Exception):
    """Base class of every treeinf error."""


class NotFittedError(TreeInfError, sklearn.exceptions.NotFittedError):
    """An explainer (or a model) was used before it was fitted.

    Also a ``sklearn.exceptions.NotFittedError`` (hence a ``ValueError`` and
    an ``AttributeError``), so code written for scikit-learn catches it.
    """


class UnsupportedModelError(TreeInfError, TypeError, ValueError):
    """The model type, objective or a setting of it is not supported.

    The message names the model or setting that was seen and what is
    supported instead.
    """


class ParseMismatchError(TreeInfError, RuntimeError):
    """The parsed ensemble does not reproduce the library's own output.

    Raised when margins or leaf indices of the flat ensemble differ from those
    the library computes on the same data; the message gives the largest
    difference. This is a bug in treeinf or an unsupported setting, never
    something to ignore.
    """


class DataValidationError(TreeInfError, ValueError):
    """X, y or sample weights are malformed or do not match the model."""


class InvalidParameterError(DataValidationError, _SklearnParamError):
    """A constructor or method parameter has the wrong type or value.

    The message names the parameter, what was passed and what is accepted.
    It is a :class:`DataValidationError` and scikit-learn's
    ``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``).
    """


class LeafValueMismatchError(TreeInfError, ValueError):
    """Recomputed leaf values do not match the model's (fixed-structure methods)."""


class InfluenceNotDefinedError(TreeInfError, NotImplementedError):
    """The method does not define the requested kind of influence.

    For example the ``Loss`` baseline defines only self-influence (a training
    row's own loss), so its local, global and top-k influence raise this. The
    message names what the method does provide.
    """


class DatasetError(TreeInfError, ValueError):
    """A benchmark data set is unknown, fails its checksum or is malformed.

    Raised by :mod:`treeinf.datasets`; the message names the data set, the
    file and what was expected.
    """


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A benchmark data set's file is not in any data directory.

    The message lists the directories that were searched, the expected file
    name and how to make the file available.
    """


class PersistenceError(TreeInfError, ValueError):
    """A saved explainer cannot be written or read.

    Raised for files that are not treeinf files, are corrupted or truncated,
    or would need code execution (pickled objects) to read; for state that
    cannot be stored without pickle; and when loading an explainer that
    needs its model without passing it.
    """


class VersionMismatchError(PersistenceError):
    """The file was written by another treeinf version (both are named)."""


class ModelMismatchError(PersistenceError):
    """The model passed to ``treeinf.load`` is not the one the explainer was fitted on."""


class TrainingDataMismatchError(DataValidationError):
    """The data passed to ``fit`` is not the data the model was trained on.

    Raised when leaf values recomputed from ``(X, y, sample_weight)`` with the
    model's training rule disagree with the model's own leaves. The message
    names the first disagreeing leaf and the likely causes.
    """


class UnverifiedInfluenceWarning(UserWarning):
    """Influence computed without the training-data check (``check_data=False``)
    and relying on training parameters the model may not record."""
