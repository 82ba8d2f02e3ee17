"""Influence estimators. Each module is one method family; variants are parameters."""
from .boostin import BoostIn
from .leaf import LeafInfluence, LeafRefit

__all__ = ["BoostIn", "LeafInfluence", "LeafRefit"]
