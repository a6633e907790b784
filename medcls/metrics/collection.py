"""Per-task metric collections and joint accuracy, computed from class probabilities over a whole epoch."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassCohenKappa


def task_metrics(num_classes: int) -> MetricCollection:
    """The scalar metrics reported for one classification task.

    Accuracy; macro one-vs-rest AUC (the field's multi-class AUC; for two classes the binary AUC); quadratic
    weighted Cohen's kappa, the standard single number for ordinal grades such as DR.

    Args:
        num_classes: Number of classes of the task.
    """
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes, average="micro"),
            "auc": MulticlassAUROC(num_classes, average="macro"),
            "kappa": MulticlassCohenKappa(num_classes, weights="quadratic"),
        }
    )


class JointAccuracy(Metric):
    """Share of images whose every task is predicted right (the IDRiD challenge's joint DR + DME accuracy)."""

    higher_is_better = True
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, probabilities: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> None:
        """Count the images of a batch predicted right on all tasks."""
        right = torch.stack([probabilities[task].argmax(1) == targets[task] for task in probabilities]).all(0)
        self.correct += right.sum()
        self.total += right.numel()

    def compute(self) -> Tensor:
        """Joint accuracy over all images seen."""
        return self.correct.float() / self.total
