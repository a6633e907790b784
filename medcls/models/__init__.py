"""LightningModules: what ``--model`` takes."""

from medcls.models.classifier import Classifier
from medcls.models.ensemble import Ensemble
from medcls.models.schedules import CosineToZero

__all__ = ["Classifier", "CosineToZero", "Ensemble"]
