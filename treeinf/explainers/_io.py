"""Saving and loading explainers: the registry of classes and the model checks.

:mod:`treeinf._persist` is the file format; each estimator's ``_get_state``
and ``_set_state`` say what it stores and how it validates and rebuilds it.
This module ties them together: which classes a file may name, which model
objects an explainer needs back, and the check that a model given to
:func:`load` is the one the explainer was fitted on (its parsed trees are
compared array by array with the loaded ones).
"""
import importlib

import numpy as np

from .. import _persist
from .._checks import ensemble_difference, model_fingerprint, unchecked_ensemble_fields
from .._numba import num_threads, resolve_n_jobs
from ..exceptions import (DataValidationError, ModelMismatchError, NotFittedError,
                          PersistenceError)

__all__ = ["save", "load", "ESTIMATORS"]

#: estimator classes that may be saved and instantiated on load
ESTIMATORS = ("BoostIn", "LeafInfluence", "LeafRefit", "TREX", "TreeSim", "InputSim",
              "Target", "Random", "Loss", "LOO", "SubSample", "DShap")

#: internal classes stored by their __dict__: tag -> (module, class name)
OBJECT_CLASSES = {
    "FlatEnsemble": ("treeinf._trees._flat", "FlatEnsemble"),
    "TabularEncoder": ("treeinf._trees._encode", "TabularEncoder"),
    "LightGBMEncoder": ("treeinf._trees._lightgbm", "LightGBMEncoder"),
    "XGBoostEncoder": ("treeinf._trees._xgboost", "_XGBoostEncoder"),
    "CatBoostEncoder": ("treeinf._trees._catboost", "CatBoostEncoder"),
    "SklearnEncoder": ("treeinf._trees._sklearn", "SklearnEncoder"),
}


def _full_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def estimator_classes():
    """{name: class} of the estimators a file may hold."""
    from .. import explainers
    return {name: getattr(explainers, name) for name in ESTIMATORS}


def object_classes():
    """{tag: class} of the internal classes a file may hold."""
    return {tag: getattr(importlib.import_module(module), name)
            for tag, (module, name) in OBJECT_CLASSES.items()}


def _preprocessor_hash(preprocessor):
    import joblib
    return joblib.hash(preprocessor, hash_name="sha1")


def _model_parts(est):
    """Model objects the explainer's state refers to: {id: (object, part name)}."""
    parts = {}
    pre = est.ensemble_.encoder.preprocessor
    if pre is not None:
        parts[id(pre)] = (pre, "preprocessor")
    model = est.__dict__.get("_model")
    if model is not None:
        parts[id(model)] = (model, "model")
    return parts


def save(estimator, file, compress=False):
    """Write a fitted explainer to ``file``; see :meth:`BaseInfluence.save`."""
    cls = type(estimator)
    registry = estimator_classes()
    if registry.get(cls.__name__) is not cls:
        raise PersistenceError(
            f"Only treeinf's estimators ({', '.join(ESTIMATORS)}) can be saved; got "
            f"{_full_name(cls)}. Pickle subclasses instead.")
    if not hasattr(estimator, "ensemble_"):
        raise NotFittedError(
            f"This {cls.__name__} instance is not fitted yet; call fit(model, X_train, "
            "y_train) before save().")
    unchecked = unchecked_ensemble_fields()
    if unchecked:  # a developer added a field: it must be validated on load
        raise PersistenceError(
            f"FlatEnsemble fields {unchecked} have no spec in treeinf._checks "
            "(ENSEMBLE_FIELDS or ENSEMBLE_SCALARS), so a loaded file could not be "
            "checked; add one line per field there.")
    parts = _model_parts(estimator)
    state = estimator._get_state()
    ens = estimator.ensemble_
    model_info = {
        "fingerprint": model_fingerprint(ens),
        "library": ens.library, "model_name": ens.model_name, "objective": ens.objective,
        "needs": sorted({p for _, p in parts.values()}),
        "preprocessor_hash": (None if ens.encoder.preprocessor is None
                              else _preprocessor_hash(ens.encoder.preprocessor)),
        "class": (None if "_model" not in estimator.__dict__
                  else _full_name(type(estimator.__dict__["_model"]))),
    }
    _persist.write(file, class_name=cls.__name__, params=estimator.get_params(deep=False),
                   state=state, parts=parts,
                   object_tags={c: t for t, c in object_classes().items()},
                   model_info=model_info, compress=compress)


def load(file, model=None, *, max_bytes=None):
    """Load an explainer written by :meth:`BaseInfluence.save`.

    Reading executes no code from the file and runs in bounded memory:
    arrays are read by treeinf's own ``.npy`` reader (never unpickled),
    everything else is JSON, sizes are checked before anything is inflated,
    only treeinf's own estimator classes are instantiated, and every
    invariant of the fitted state (dtypes, shapes, index ranges, that trees
    are trees, finite values, parameters) is checked before any kernel sees
    it. See :doc:`/persistence` for exactly what is guaranteed.

    Parameters
    ----------
    file : str, path-like or binary file object
        A file written by ``explainer.save(file)``.
    model : trained model or Pipeline, optional
        The model the explainer was fitted on. Required by the explainers
        that keep the model object: LOO, SubSample and DShap (they refit
        it), and any explainer fitted on a ``Pipeline`` with preprocessing
        steps (the fitted steps are taken from it). For the others it is
        optional; when given, it is parsed again and its trees, leaf values
        and settings must equal the loaded ones exactly, which also detects
        a file whose model arrays were edited consistently.
    max_bytes : int, optional
        Most bytes all arrays of the file may take once loaded; a file
        declaring more is refused before anything is inflated. Default:
        three quarters of the memory the process can still use.

    Returns
    -------
    BaseInfluence
        The fitted explainer; its influences equal the saved one's exactly.
        SubSample's refitted models are refitted from the stored subsets
        (as in its ``fit``) and checked against their saved fingerprints.

    Raises
    ------
    PersistenceError
        The file is not a treeinf file, is corrupted or truncated, breaks a
        size limit or an invariant of the explainer's state, or the
        explainer needs ``model`` and none was given.
    VersionMismatchError
        The file was written by another treeinf version (both are named).
    ModelMismatchError
        ``model`` is not the model the explainer was fitted on (its parsed
        trees, leaf values or preprocessing steps differ), or SubSample's
        refits do not reproduce the saved ones (an unseeded model).

    Examples
    --------
    >>> import lightgbm as lgb, treeinf
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    >>> explainer = treeinf.BoostIn().fit(model, X, y)
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "boostin.treeinf")
    >>> explainer.save(path)
    >>> again = treeinf.load(path)          # BoostIn needs no model object
    >>> (again.get_self_influence() == explainer.get_self_influence()).all()
    np.True_
    """
    if max_bytes is not None and (not isinstance(max_bytes, (int, np.integer))
                                  or isinstance(max_bytes, bool) or max_bytes < 0):
        raise PersistenceError(
            f"max_bytes must be a non-negative integer number of bytes or None, got "
            f"{max_bytes!r}.")
    meta, arrays = _persist.read(file, max_bytes)
    where = _persist.describe(file)
    name = meta["class"]
    registry = estimator_classes()
    if not isinstance(name, str) or name not in registry:
        raise PersistenceError(
            f"{where} holds a {name!r}, which is not a treeinf estimator "
            f"({', '.join(ESTIMATORS)}).")
    cls = registry[name]
    info = meta["model"]
    needs = info.get("needs")
    if not isinstance(needs, list) or not set(needs) <= {"model", "preprocessor"} \
            or ("model" in needs) != bool(getattr(cls, "_needs_model", False)):
        raise PersistenceError(f"{where} is corrupted or not a treeinf file: its "
                               "metadata lists the wrong model parts.")
    parts, parsed = _check_model(model, info, name, needs)
    params, state = _persist.decode(meta, arrays, parts, object_classes())
    try:
        est = cls(**params)
    except TypeError as exc:
        raise PersistenceError(f"The file is corrupted or not a treeinf file: parameters "
                               f"{sorted(params)} do not fit {name}: {exc}.") from exc
    n_jobs = getattr(est, "n_jobs", None)
    try:
        resolve_n_jobs(n_jobs)
    except DataValidationError:
        n_jobs = None  # _set_state refuses the parameter
    with num_threads(n_jobs):  # derived arrays are rebuilt with the saved n_jobs
        est._set_state(state)
    if est.ensemble_.encoder.preprocessor is not parts.get("preprocessor") \
            or est.__dict__.get("_model") is not parts.get("model"):
        raise PersistenceError(f"The file is corrupted or not a treeinf file: the model "
                               f"parts of the saved {name} are not where it lists them.")
    if parsed is not None:
        diff = ensemble_difference(est.ensemble_, parsed)
        if diff is not None:
            raise ModelMismatchError(
                f"The given model is not the one the saved {name} was fitted on: the "
                f"model's parsed {diff} differs from the file's (a "
                f"{info.get('model_name')} ({info.get('library')}, "
                f"{info.get('objective')})). Pass the exact trained model the explainer "
                "was fitted with; if it is that model, the file was altered.")
    return est


def _check_model(model, info, name, needs):
    """(model parts for the decoder, the re-parsed ensemble or None)."""
    if model is None:
        if needs:
            why = ("refits clones of the model" if "model" in needs else
                   "was fitted on a Pipeline whose preprocessing steps it uses")
            raise PersistenceError(
                f"{name} {why}, which the file does not store (storing a model object "
                f"would need pickle). Pass the model it was fitted on "
                f"({info.get('model_name')}): treeinf.load(file, model=model).")
        return {}, None
    from .._trees import parse_model
    ens = parse_model(model)
    got = model_fingerprint(ens)
    if got != info.get("fingerprint"):
        raise ModelMismatchError(
            f"The given model is not the one the saved {name} was fitted on: its "
            f"trees or leaf values differ (model fingerprint {got[:12]}..., saved "
            f"{str(info.get('fingerprint'))[:12]}..., a {info.get('model_name')} "
            f"({info.get('library')}, {info.get('objective')})). Pass the exact trained "
            "model the explainer was fitted with.")
    parts = {}
    pre_hash = info.get("preprocessor_hash")
    pre = ens.encoder.preprocessor
    got_pre = None if pre is None else _preprocessor_hash(pre)
    if got_pre != pre_hash:
        detail = ("the given model has none" if pre is None else
                  "the saved explainer was fitted without any" if pre_hash is None else
                  "their fitted state differs")
        raise ModelMismatchError(
            f"The given model's preprocessing steps differ from those the saved {name} "
            f"was fitted with ({detail}); pass the same fitted model or Pipeline.")
    if pre is not None:
        parts["preprocessor"] = pre
    if "model" in needs:
        expected = info.get("class")
        if _full_name(type(model)) != expected:
            raise ModelMismatchError(
                f"The saved {name} was fitted with a {expected}, but the given model is a "
                f"{_full_name(type(model))}; pass the same estimator object type (it is "
                "refitted).")
        parts["model"] = model
    return parts, ens
