"""The binary questions a set of graded tasks answers (e.g. referable DR), and their operating points on validation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from medcls.metrics.evaluation import validated_predictions
from medcls.metrics.thresholds import threshold_for_sensitivity, threshold_for_specificity, youden_threshold

BinaryViews = Mapping[str, tuple[str, int]]
"""Name -> (task, lowest positive grade), e.g. ``{"referable_dr": ("dr", 2), "dme_present": ("dme", 1)}``."""


def binary_view(probabilities: np.ndarray, labels: np.ndarray, positive_from: int) -> tuple[np.ndarray, np.ndarray]:
    """The binary question behind a graded task: is the grade at least ``positive_from``?

    P(positive) is the sum of the probabilities of the grades ``>= positive_from``, e.g. referable DR
    (``positive_from=2``, moderate or worse) from the 5 DR grades, or DME present (``positive_from=1``).

    Args:
        probabilities: N x K grade probabilities.
        labels: N reference grades in ``[0, K)``.
        positive_from: Lowest grade counted as positive, in ``[1, K)``.

    Returns:
        ``(probabilities, labels)``: N x 2 probabilities [P(negative), P(positive)] and 0/1 labels, ready for
        :func:`evaluate_task`.

    Raises:
        ValueError: If the inputs are invalid or ``positive_from`` leaves one side empty.
    """
    probabilities, labels = validated_predictions(probabilities, labels)
    num_classes = probabilities.shape[1]
    if not 1 <= positive_from < num_classes:
        raise ValueError(f"positive_from must lie in [1, {num_classes}) for {num_classes} classes, got {positive_from}")
    # Both columns summed from their own grades rather than 1 - P(positive), so rows that do not sum to exactly 1
    # (float32 softmax) are not distorted.
    binary = np.stack([probabilities[:, :positive_from].sum(1), probabilities[:, positive_from:].sum(1)], axis=1)
    # float32 sums can land a rounding error above 1; they are probabilities.
    binary = np.clip(binary, 0.0, 1.0)
    return binary, (labels >= positive_from).astype(np.int64)


def binary_questions(
    probabilities: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], views: BinaryViews
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every binary task as it is, and every binary view of a graded task, on the images labelled for its task.

    Args:
        probabilities: Task -> N x K class probabilities.
        labels: Task -> N class indices; a negative one (an image unlabelled for the task) leaves the image out.
        views: The binary views to derive (their tasks must be among ``probabilities``).

    Returns:
        Name -> (n x 2 probabilities, n 0/1 labels) of the n labelled images; binary tasks keep their name.
    """
    labelled = {task: labels[task] >= 0 for task in probabilities}
    questions = {
        task: (p[labelled[task]], labels[task][labelled[task]]) for task, p in probabilities.items() if p.shape[1] == 2
    }
    for name, (task, positive_from) in views.items():
        chosen = labelled[task]
        questions[name] = binary_view(probabilities[task][chosen], labels[task][chosen], positive_from)
    return questions


def positive_probabilities(probabilities: Mapping[str, np.ndarray], views: BinaryViews) -> dict[str, np.ndarray]:
    """P(positive) of every binary question (binary tasks and binary views), per image: what its thresholds apply to.

    Args:
        probabilities: Task -> N x K class probabilities.
        views: The binary views of graded tasks.

    Returns:
        Question name -> N float64 probabilities of the positive class (class 1; for a view, its grades and above).
    """
    # In float64, as binary_view() sums them for the test metrics and the thresholds were chosen: in float32 the
    # sums and the comparison with a threshold would round differently and could flip an image at the threshold.
    probabilities = {task: np.asarray(p, dtype=np.float64) for task, p in probabilities.items()}
    positive = {task: p[:, 1] for task, p in probabilities.items() if p.shape[1] == 2}
    for name, (task, positive_from) in views.items():
        positive[name] = np.clip(probabilities[task][:, positive_from:].sum(1), 0.0, 1.0)
    return positive


def decisions(
    probabilities: Mapping[str, np.ndarray], views: BinaryViews, operating_points: Mapping[str, Mapping[str, float]]
) -> dict[str, np.ndarray]:
    """The 0/1 decision of every image at every operating point chosen on validation.

    An image is called positive where P(positive) reaches the point's threshold (an infinite threshold calls none).

    Args:
        probabilities: Task -> N x K class probabilities.
        views: The binary views of graded tasks.
        operating_points: Question -> point name -> threshold, as the checkpoint holds them.

    Returns:
        ``"<question>@<point>"`` (e.g. ``"referable_dr@youden"``) -> N decisions (int 0/1).
    """
    positive = positive_probabilities(probabilities, views)
    return {
        f"{question}@{point}": (positive[question] >= threshold).astype(np.int64)
        for question, points in operating_points.items()
        if question in positive
        for point, threshold in points.items()
    }


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


def operating_points_of(
    probabilities: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    views: BinaryViews,
    sensitivity: float = 0.95,
    specificity: float = 0.95,
) -> dict[str, dict[str, float]]:
    """The operating points (:func:`choose_operating_points`) of every binary question of a validation set.

    A question whose validation labels are all of one class has no ROC curve, hence no operating points.
    """
    return {
        name: choose_operating_points(question, truth, sensitivity, specificity)
        for name, (question, truth) in binary_questions(probabilities, labels, views).items()
        if len(np.unique(truth)) == 2
    }
