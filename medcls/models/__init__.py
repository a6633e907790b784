"""LightningModules: what ``--model`` takes."""

from medcls.models.classifier import Classifier

__all__ = ["Classifier"]
