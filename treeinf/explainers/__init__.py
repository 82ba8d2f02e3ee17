"""Influence estimators. Each module is one method family; variants are parameters."""
from .baselines import InputSim, Loss, Random, Target, TreeSim
from .boostin import BoostIn
from .leaf import LeafInfluence, LeafRefit
from .retrain import LOO, DShap, SubSample
from .trex import TREX

__all__ = ["BoostIn", "LeafInfluence", "LeafRefit", "TREX", "TreeSim", "InputSim",
           "Target", "Random", "Loss", "LOO", "SubSample", "DShap"]
