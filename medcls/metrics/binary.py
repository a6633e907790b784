"""The binary questions a set of graded tasks answers, and their operating points chosen on validation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from medcls.metrics.evaluation import binary_view
from medcls.metrics.thresholds import threshold_for_sensitivity, threshold_for_specificity, youden_threshold

BinaryViews = Mapping[str, tuple[str, int]]
"""Name -> (task, lowest positive grade), e.g. ``{"referable_dr": ("dr", 2), "dme_present": ("dme", 1)}``."""


def binary_questions(
    probabilities: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], views: BinaryViews
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every binary task as it is, and every binary view of a graded task.

    Args:
        probabilities: Task -> N x K class probabilities.
        labels: Task -> N class indices.
        views: The binary views to derive (their tasks must be among ``probabilities``).

    Returns:
        Name -> (N x 2 probabilities, N 0/1 labels); binary tasks keep their name.
    """
    questions = {task: (p, labels[task]) for task, p in probabilities.items() if p.shape[1] == 2}
    for name, (task, positive_from) in views.items():
        questions[name] = binary_view(probabilities[task], labels[task], positive_from)
    return questions


def choose_operating_points(
    probabilities: np.ndarray, labels: np.ndarray, sensitivity: float = 0.95, specificity: float = 0.95
) -> dict[str, float]:
    """The Youden, high-sensitivity and high-specificity thresholds on P(positive) of a binary question.

    Args:
        probabilities: N x 2 probabilities of a binary question on the validation set.
        labels: N 0/1 labels.
        sensitivity: Sensitivity the high-sensitivity point must reach.
        specificity: Specificity the high-specificity point must reach.
    """
    scores, target = torch.from_numpy(probabilities[:, 1]).double(), torch.from_numpy(labels)
    return {
        "youden": youden_threshold(scores, target).threshold,
        "high_sensitivity": threshold_for_sensitivity(scores, target, sensitivity).threshold,
        "high_specificity": threshold_for_specificity(scores, target, specificity).threshold,
    }
