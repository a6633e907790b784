"""Operating points of a binary classifier: choose a score threshold on validation, apply it unchanged to test.

A binary classifier outputs a score per image, P(positive); an image is called positive when
``score >= threshold``. Moving the threshold trades sensitivity against specificity along the ROC curve. The
functions here pick the threshold the way the literature does:

- :func:`youden_threshold`: the maximum of the Youden index J = sensitivity + specificity - 1 (Lakhani &
  Sundaram 2017);
- :func:`threshold_for_sensitivity` / :func:`threshold_for_specificity`: the high-sensitivity and
  high-specificity operating points of Gulshan et al. 2016.

Choose the threshold on the validation (development) set, then report :func:`confusion_at` on the test set with
that same threshold; choosing it on the test set would overstate the results.

Every threshold returned is one of the scores it was chosen on, or ``math.inf`` for the point where no image is
called positive (sensitivity 0, specificity 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_roc


@dataclass(frozen=True)
class OperatingPoint:
    """One point of the ROC curve: a threshold and the sensitivity and specificity it gives.

    Attributes:
        threshold: Score threshold; an image is called positive when ``score >= threshold``.
        sensitivity: TP / (TP + FN), the share of positive images called positive.
        specificity: TN / (TN + FP), the share of negative images called negative.
    """

    threshold: float
    sensitivity: float
    specificity: float

    @property
    def youden(self) -> float:
        """Youden index J = sensitivity + specificity - 1, the height of the point above the ROC chance line."""
        return self.sensitivity + self.specificity - 1


def youden_threshold(scores: Tensor, target: Tensor) -> OperatingPoint:
    """The operating point that maximises the Youden index J = sensitivity + specificity - 1.

    Ties are broken towards the highest threshold among the maxima, i.e. the most specific of the equally good
    points. J is compared exactly (on counts, not on rounded rates), so this choice is deterministic.

    Args:
        scores: P(positive) per image, in [0, 1], any shape.
        target: 0/1 label per image, same shape as ``scores``; both classes must occur.

    Returns:
        The chosen threshold with its sensitivity and specificity on these scores.

    Raises:
        ValueError: If the shapes differ, ``target`` is not 0/1 or has only one class, or ``scores`` are not
            probabilities.
    """
    thresholds, tp, fp, n_pos, n_neg = _roc_counts(scores, target)
    # J = tp / n_pos - fp / n_neg has the sign and order of tp * n_neg - fp * n_pos, an exact integer, so equal
    # J values really compare equal; argmax returns the first maximum, and thresholds run from high to low.
    best = int(torch.argmax(tp * n_neg - fp * n_pos))
    return _point(thresholds, tp, fp, n_pos, n_neg, best)


def threshold_for_sensitivity(scores: Tensor, target: Tensor, sensitivity: float) -> OperatingPoint:
    """The highest threshold whose sensitivity is at least ``sensitivity``: the high-sensitivity operating point.

    The highest such threshold is the one that keeps the most specificity while meeting the target.

    Args:
        scores: P(positive) per image, in [0, 1], any shape.
        target: 0/1 label per image, same shape as ``scores``; both classes must occur.
        sensitivity: Required sensitivity, in [0, 1] (e.g. 0.975).

    Returns:
        The chosen threshold with its sensitivity (>= the target) and specificity on these scores.

    Raises:
        ValueError: If ``sensitivity`` is outside [0, 1], or for the same reasons as :func:`youden_threshold`.
    """
    _check_rate("sensitivity", sensitivity)
    thresholds, tp, fp, n_pos, n_neg = _roc_counts(scores, target)
    # Sensitivity never decreases as the threshold goes down, and the lowest threshold reaches 1, so the first
    # index (highest threshold) meeting the target exists.
    meets = (tp.double() / n_pos >= sensitivity).nonzero()
    return _point(thresholds, tp, fp, n_pos, n_neg, int(meets[0]))


def threshold_for_specificity(scores: Tensor, target: Tensor, specificity: float) -> OperatingPoint:
    """The lowest threshold whose specificity is at least ``specificity``: the high-specificity operating point.

    The lowest such threshold is the one that keeps the most sensitivity while meeting the target.

    Args:
        scores: P(positive) per image, in [0, 1], any shape.
        target: 0/1 label per image, same shape as ``scores``; both classes must occur.
        specificity: Required specificity, in [0, 1] (e.g. 0.98).

    Returns:
        The chosen threshold with its sensitivity and specificity (>= the target) on these scores.

    Raises:
        ValueError: If ``specificity`` is outside [0, 1], or for the same reasons as :func:`youden_threshold`.
    """
    _check_rate("specificity", specificity)
    thresholds, tp, fp, n_pos, n_neg = _roc_counts(scores, target)
    # Specificity never increases as the threshold goes down, and the first point (threshold inf) has 1, so the
    # last index (lowest threshold) meeting the target exists.
    meets = ((n_neg - fp).double() / n_neg >= specificity).nonzero()
    return _point(thresholds, tp, fp, n_pos, n_neg, int(meets[-1]))


def confusion_at(scores: Tensor, target: Tensor, threshold: float) -> dict[str, float]:
    """Confusion matrix and the rates derived from it when images with ``score >= threshold`` are called positive.

    Use it to apply a threshold chosen on validation unchanged to the test set. A set with only one class is
    accepted (e.g. the specificity on normal images alone); a rate whose denominator is zero is ``nan``.

    Args:
        scores: Score per image, any shape.
        target: 0/1 label per image, same shape as ``scores``.
        threshold: Score threshold, e.g. ``OperatingPoint.threshold``.

    Returns:
        ``tp``, ``fp``, ``tn``, ``fn`` (counts, ints); ``sensitivity`` = TP / (TP + FN); ``specificity`` =
        TN / (TN + FP); ``ppv`` = TP / (TP + FP); ``npv`` = TN / (TN + FN); ``f1`` = 2 TP / (2 TP + FP + FN).

    Raises:
        ValueError: If the shapes differ, ``target`` is not 0/1, or ``scores`` contain NaN.
    """
    scores, target = _validated(scores, target)
    predicted = scores >= threshold
    positive = target == 1
    tp = int((predicted & positive).sum())
    fp = int((predicted & ~positive).sum())
    tn = int((~predicted & ~positive).sum())
    fn = int((~predicted & positive).sum())
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def _validated(scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Flattened float64 scores and int64 targets, after checking shapes, labels and NaN."""
    if scores.shape != target.shape:
        raise ValueError(
            f"scores and target must have the same shape, got {tuple(scores.shape)} and {tuple(target.shape)}"
        )
    # float64 holds every float16/32 score exactly, so thresholds taken from these scores apply exactly to the
    # caller's own tensors.
    scores = scores.detach().flatten().to(torch.float64)
    target = target.detach().flatten()
    if not bool(((target == 0) | (target == 1)).all()):
        raise ValueError(f"target must hold only 0 and 1, got values {target.unique().tolist()}")
    if bool(scores.isnan().any()):
        raise ValueError("scores contain NaN")
    return scores, target.long()


def _roc_counts(scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """ROC thresholds from high to low with TP and FP counts, and the numbers of positives and negatives."""
    scores, target = _validated(scores, target)
    n_pos = int(target.sum())
    n_neg = target.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"target needs both classes to choose a threshold, got {n_pos} positives and {n_neg} negatives"
        )
    # torchmetrics silently applies a sigmoid to scores outside [0, 1], which would return thresholds on a
    # different scale from the scores passed in.
    if bool((scores < 0).any() | (scores > 1).any()):
        raise ValueError("scores must be probabilities in [0, 1]; apply torch.sigmoid or softmax to logits first")
    fpr, tpr, thresholds = binary_roc(scores, target)
    # Back to exact counts, so that ties and rates are computed without rounding error.
    tp = torch.round(tpr * n_pos).long()
    fp = torch.round(fpr * n_neg).long()
    # torchmetrics starts the curve at (0, 0) with a threshold of 1.0, but a score of exactly 1.0 is called
    # positive at 1.0; inf is the threshold that really calls nothing positive.
    thresholds = thresholds.clone()
    thresholds[0] = math.inf
    return thresholds, tp, fp, n_pos, n_neg


def _point(thresholds: Tensor, tp: Tensor, fp: Tensor, n_pos: int, n_neg: int, index: int) -> OperatingPoint:
    """The operating point at ``index`` of the ROC, with rates computed as :func:`confusion_at` computes them."""
    tp_i, fp_i = int(tp[index]), int(fp[index])
    return OperatingPoint(float(thresholds[index]), tp_i / n_pos, (n_neg - fp_i) / n_neg)


def _check_rate(name: str, value: float) -> None:
    """Raise if a target rate is not in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _ratio(numerator: int, denominator: int) -> float:
    """The rate numerator / denominator, or nan where it is undefined."""
    return numerator / denominator if denominator else math.nan
