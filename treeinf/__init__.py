"""treeinf: which training rows made a tree model predict what it predicts.

Importing treeinf imports no tree library; each is imported when a model of it
is first parsed.
"""
__version__ = "0.1.0"

from . import exceptions
from ._trees import FlatEnsemble, parse_model, SUPPORTED_MODELS
from .explainers import (LOO, TREX, BoostIn, DShap, InputSim, LeafInfluence, LeafRefit, Loss,
                         Random, SubSample, Target, TreeSim)
from .explainers._io import load

__all__ = ["__version__", "exceptions", "FlatEnsemble", "parse_model", "SUPPORTED_MODELS", "load",
           "BoostIn", "LeafInfluence", "LeafRefit", "TREX", "TreeSim", "InputSim", "Target",
           "Random", "Loss", "LOO", "SubSample", "DShap"]


def __getattr__(name):
    # DaskBoostIn imports dask.distributed: only when asked for
    if name == "DaskBoostIn":
        from .distributed import DaskBoostIn
        return DaskBoostIn
    raise AttributeError(f"module 'treeinf' has no attribute {name!r}")
