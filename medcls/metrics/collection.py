"""Per-task metric collections, computed from class probabilities over a whole epoch."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy


def task_metrics(num_classes: int) -> MetricCollection:
    """The scalar metrics reported for one classification task.

    Args:
        num_classes: Number of classes of the task.
    """
    return MetricCollection({"accuracy": MulticlassAccuracy(num_classes, average="micro")})
