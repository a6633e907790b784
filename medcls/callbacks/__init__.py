"""Callbacks: what ``--trainer.callbacks`` takes, and the report every evaluation writes."""

from medcls.callbacks.report import EvaluationReport

__all__ = ["EvaluationReport"]
