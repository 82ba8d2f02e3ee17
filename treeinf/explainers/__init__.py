"""Influence estimators. Each module is one method family; variants are parameters."""
from .boostin import BoostIn

__all__ = ["BoostIn"]
