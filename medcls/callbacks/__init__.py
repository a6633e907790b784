"""Callbacks: what ``--trainer.callbacks`` takes, and those every run has: checkpoints, early stopping, preview."""

from medcls.callbacks.checkpoint import ModelCheckpoint
from medcls.callbacks.early_stopping import EarlyStopping
from medcls.callbacks.preview import TrainingPreview
from medcls.callbacks.progress import LineProgress
from medcls.callbacks.report import EvaluationReport

__all__ = ["EarlyStopping", "EvaluationReport", "LineProgress", "ModelCheckpoint", "TrainingPreview"]
