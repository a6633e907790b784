"""Per-task metric collections and joint accuracy, computed from class probabilities over a whole epoch."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassCohenKappa


def task_metrics(num_classes: int, ordinal: bool, ignore_index: int | None = None) -> MetricCollection:
    """The scalar metrics reported for one classification task.

    Accuracy; macro one-vs-rest AUC (the field's multi-class AUC; for two classes the binary AUC); Cohen's kappa,
    quadratic weighted for ordered classes (the standard single number for grades such as DR), unweighted for
    unordered ones.

    Args:
        num_classes: Number of classes of the task.
        ordinal: Whether the classes are ordered (grades).
        ignore_index: A label value to leave out (images unlabelled for the task).
    """
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index),
            "auc": MulticlassAUROC(num_classes, average="macro", ignore_index=ignore_index),
            "kappa": MulticlassCohenKappa(
                num_classes, weights="quadratic" if ordinal else None, ignore_index=ignore_index
            ),
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
        """Count the images of a batch predicted right on all tasks (images unlabelled for a task, < 0, left out)."""
        right = torch.stack([probabilities[task].argmax(1) == targets[task] for task in probabilities]).all(0)
        labelled = torch.stack([targets[task] >= 0 for task in probabilities]).all(0)
        self.correct += (right & labelled).sum()
        self.total += labelled.sum()

    def compute(self) -> Tensor:
        """Joint accuracy over all images seen."""
        return self.correct.float() / self.total
