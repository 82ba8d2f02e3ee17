"""Parsing of tree models into one verified :class:`FlatEnsemble`.

Dispatch is by full class name through a registry, so no tree library is
imported until a model of that library is parsed.
"""
import importlib
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike

from ..exceptions import NotFittedError, UnsupportedModelError
from ._flat import FlatEnsemble, RawTree, build_ensemble
from ._verify import verify_ensemble

__all__ = ["parse_model", "FlatEnsemble", "RawTree", "build_ensemble",
           "SUPPORTED_MODELS"]

# full class name -> parser module (relative to this package)
_REGISTRY = {
    "lightgbm.sklearn.LGBMRegressor": "_lightgbm",
    "lightgbm.sklearn.LGBMClassifier": "_lightgbm",
    "lightgbm.sklearn.LGBMModel": "_lightgbm",
    "lightgbm.basic.Booster": "_lightgbm",
    "xgboost.sklearn.XGBRegressor": "_xgboost",
    "xgboost.sklearn.XGBClassifier": "_xgboost",
    "xgboost.sklearn.XGBModel": "_xgboost",
    "xgboost.sklearn.XGBRFRegressor": "_xgboost",
    "xgboost.sklearn.XGBRFClassifier": "_xgboost",
    "xgboost.core.Booster": "_xgboost",
    "catboost.core.CatBoostRegressor": "_catboost",
    "catboost.core.CatBoostClassifier": "_catboost",
    "catboost.core.CatBoost": "_catboost",
    "sklearn.ensemble._gb.GradientBoostingRegressor": "_sklearn",
    "sklearn.ensemble._gb.GradientBoostingClassifier": "_sklearn",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor": "_sklearn",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier": "_sklearn",
    "sklearn.ensemble._forest.RandomForestRegressor": "_sklearn",
    "sklearn.ensemble._forest.RandomForestClassifier": "_sklearn",
    "sklearn.ensemble._forest.ExtraTreesRegressor": "_sklearn",
    "sklearn.ensemble._forest.ExtraTreesClassifier": "_sklearn",
}
_PIPELINE = "sklearn.pipeline.Pipeline"

SUPPORTED_MODELS = (
    "LGBMRegressor, LGBMClassifier, lightgbm.Booster; XGBRegressor, "
    "XGBClassifier, xgboost.Booster; CatBoostRegressor, CatBoostClassifier, "
    "catboost.CatBoost; sklearn GradientBoosting*, HistGradientBoosting*, "
    "RandomForest*, ExtraTrees* (Regressor/Classifier); a sklearn Pipeline "
    "ending in one of these")


def _full_names(model):
    for cls in type(model).__mro__:
        yield f"{cls.__module__}.{cls.__qualname__}"


def _lookup(model):
    for name in _full_names(model):
        if name in _REGISTRY:
            return importlib.import_module(f"{__name__}.{_REGISTRY[name]}")
    raise UnsupportedModelError(
        f"Models of type {type(model).__module__}.{type(model).__qualname__} are "
        f"not supported. Supported: {SUPPORTED_MODELS}.")


def _is_pipeline(model):
    return any(name == _PIPELINE for name in _full_names(model))


def parse_model(model: Any, X: Optional[ArrayLike] = None) -> FlatEnsemble:
    """Parse a trained tree model into a :class:`FlatEnsemble`.

    Parameters
    ----------
    model : estimator or Booster
        A trained model of a supported type (see ``SUPPORTED_MODELS``), or a
        scikit-learn ``Pipeline`` whose last step is one.
    X : array-like or DataFrame of shape (n_samples, n_features), optional
        Data to verify the parse on. When given, the ensemble's margins and
        leaf indices are compared with the library's own on (a sample of up to
        10,000 rows of) ``X`` and :class:`~treeinf.exceptions.ParseMismatchError`
        is raised on any difference beyond floating-point tolerance. Every
        explainer passes its training data here.

    Returns
    -------
    FlatEnsemble

    Raises
    ------
    UnsupportedModelError
        If the model type, its objective or one of its settings is not
        supported; the message names it.
    NotFittedError
        If the model has not been trained.
    ParseMismatchError
        If verification on ``X`` fails.
    """
    preprocessor = None
    final = model
    if _is_pipeline(model):
        steps = getattr(model, "steps", None)
        if not steps:
            raise UnsupportedModelError("The Pipeline has no steps.")
        final = steps[-1][1]
        if len(steps) > 1:
            preprocessor = model[:-1]
            try:
                from sklearn.utils.validation import check_is_fitted
                for _, step in steps[:-1]:
                    if step not in (None, "passthrough"):
                        check_is_fitted(step)
            except Exception as exc:
                raise NotFittedError(
                    f"A preprocessing step of the Pipeline is not fitted ({exc}); "
                    "fit the pipeline first.") from exc
    module = _lookup(final)
    ens = module.parse(final)
    if preprocessor is not None:
        ens.encoder.preprocessor = preprocessor
    if X is not None:
        verify_ensemble(ens, final, X, module.reference)
    return ens
