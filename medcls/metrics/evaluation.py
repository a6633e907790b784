"""A classification task's results on a test set, every figure with a bootstrap confidence interval.

:func:`evaluate_task` computes what the field reports for one task from the class probabilities of a whole test set:
accuracy, balanced accuracy, AUC (binary, or macro one-vs-rest with one AUC per class), Cohen's kappa (quadratic
weighted for ordered classes), precision, recall and F1, and for binary tasks the sensitivity, specificity, PPV,
NPV and F1 at operating points chosen beforehand on the validation set (see :mod:`medcls.metrics.thresholds`); a
graded task's binary questions (:mod:`medcls.metrics.binary`) get the binary metrics and operating points.

The metrics are plain numpy: the bootstrap evaluates each of them about a thousand times.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np
import torch

from medcls.metrics.stats import bootstrap_ci
from medcls.metrics.thresholds import confusion_at

#: Rates reported at each operating point of a binary task, as named by :func:`~medcls.metrics.thresholds.confusion_at`.
OPERATING_POINT_RATES = ("sensitivity", "specificity", "ppv", "npv", "f1")


def evaluate_task(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    operating_points: Mapping[str, float] | None = None,
    ordinal: bool = True,
    groups: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Every metric of one classification task on a test set, each with a 95 % bootstrap confidence interval.

    Metrics computed from the predicted class (the argmax of the probabilities):

    - ``accuracy``; ``balanced_accuracy``, the mean recall over the classes present in ``labels``;
    - ``kappa``: Cohen's kappa; quadratic weighted for ordered classes (``ordinal``), the standard single number
      for grades such as DR; unweighted for unordered ones (digits, diagnoses). For two classes both are the same;
    - ``precision``, ``recall``, ``f1``: of class 1 for a binary task; for more classes the macro average over the
      classes present in the labels or the predictions. A class that is never predicted has precision 0 (and one
      that never occurs recall 0), as in scikit-learn.

    Metrics computed from the probabilities:

    - ``auc``: for a binary task the AUC of P(class 1); for more classes the macro mean of the one-vs-rest AUCs,
      each also reported as ``auc_class_<k>``.

    For a binary task, each entry ``name -> threshold`` of ``operating_points`` (an image is called positive when
    P(class 1) >= threshold) adds ``<name>/sensitivity``, ``<name>/specificity``, ``<name>/ppv``, ``<name>/npv`` and
    ``<name>/f1``, and ``<name>/threshold`` itself. Choose these thresholds on the validation set: choosing them on
    the test set would overstate the results.

    The intervals resample the test set's images, or whole groups when ``groups`` is given (see
    :func:`~medcls.metrics.stats.bootstrap_ci`); all metrics see the same resamples. A metric undefined on the whole
    test set (e.g. AUC with one class only) is NaN with a NaN interval; one undefined on more than half of the
    resamples (too few images of a class) keeps its value, gets a NaN interval and a warning.

    Example:
        Referable DR from a 5-grade DR head, with the Youden threshold chosen on validation::

            probabilities, labels = binary_view(dr_probabilities, dr_labels, positive_from=2)
            results = evaluate_task(probabilities, labels, operating_points={"youden": 0.43}, groups=patient_ids)
            results["auc"]  # {"value": 0.97, "ci_low": 0.95, "ci_high": 0.98}

    Args:
        probabilities: N x K class probabilities (K >= 2), e.g. softmax outputs.
        labels: N reference class indices in ``[0, K)``.
        operating_points: Optional thresholds on P(class 1) by name, for binary tasks only.
        ordinal: Whether the classes are ordered (grades); decides the kappa's weights.
        groups: Optional group (patient, exam, ...) per image; groups are resampled instead of images.
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the resampling; the same seed gives the same intervals.

    Returns:
        Metric name -> ``{"value", "ci_low", "ci_high"}``. ``n`` (the number of images) and the operating points'
        thresholds are exact: their bounds equal the value.

    Raises:
        ValueError: If the shapes or labels are invalid, ``groups`` does not match the images, or operating points
            are given for a task with more than two classes.
    """
    probabilities, labels = validated_predictions(probabilities, labels)
    num_classes = probabilities.shape[1]
    if operating_points and num_classes != 2:
        raise ValueError(
            f"operating points need a binary task, got {num_classes} classes; use binary_view() to make one"
        )
    if groups is not None and len(groups) != len(labels):
        raise ValueError(f"groups has {len(groups)} entries for {len(labels)} images")

    results: dict[str, dict[str, float]] = {"n": _exact(len(labels))}

    def add(name: str, metric: Callable[..., float], *arrays: np.ndarray) -> None:
        results[name] = _with_ci(name, metric, arrays, groups=groups, n_resamples=n_resamples, seed=seed)

    # The argmax once, not in each of the thousand resamples of each metric.
    predictions = probabilities.argmax(1)
    add("accuracy", _accuracy, labels, predictions)
    add("balanced_accuracy", partial(_balanced_accuracy, num_classes=num_classes), labels, predictions)
    if num_classes == 2:
        add("auc", _binary_auc, labels, probabilities[:, 1])
    else:
        add("auc", _macro_auc, labels, probabilities)
        for k in range(num_classes):
            add(f"auc_class_{k}", _binary_auc, labels == k, probabilities[:, k])
    add("kappa", partial(_kappa, num_classes=num_classes, ordinal=ordinal), labels, predictions)
    for name, index in (("precision", 0), ("recall", 1), ("f1", 2), ("specificity", 3), ("npv", 4)):
        add(name, partial(_averaged_rate, num_classes=num_classes, index=index), labels, predictions)

    for point, threshold in (operating_points or {}).items():
        for rate in OPERATING_POINT_RATES:
            rate_at = partial(_rate_at, threshold=float(threshold), rate=rate)
            add(f"{point}/{rate}", rate_at, labels, probabilities[:, 1])
        results[f"{point}/threshold"] = _exact(threshold)
    return results


def validated_predictions(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictions as float64 N x K probabilities and int64 labels in ``[0, K)``.

    Raises:
        ValueError: If the shapes disagree, a probability is NaN or a label is out of range.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must be N x K with K >= 2 classes, got shape {probabilities.shape}")
    if labels.shape != (len(probabilities),):
        raise ValueError(f"labels must be 1-D with one entry per row of probabilities, got shape {labels.shape}")
    if len(labels) == 0:
        raise ValueError("the test set is empty")
    if np.isnan(probabilities).any():
        raise ValueError("probabilities contain NaN")
    if not np.issubdtype(labels.dtype, np.integer) and not np.array_equal(labels, np.round(labels)):
        raise ValueError("labels must be class indices (whole numbers)")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
        raise ValueError(f"labels must lie in [0, {probabilities.shape[1]}), got values {np.unique(labels).tolist()}")
    return probabilities, labels


def confusion_matrix(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """K x K counts of the images of each true class (rows) predicted as each class (columns, the argmax).

    Images with a negative label (unlabelled for the task) are left out.
    """
    labelled = np.asarray(labels) >= 0
    probabilities, labels = validated_predictions(np.asarray(probabilities)[labelled], np.asarray(labels)[labelled])
    return _confusion_matrix(labels, probabilities.argmax(1), probabilities.shape[1])


def _exact(value: float) -> dict[str, float]:
    """A figure without sampling uncertainty: its bounds are the value itself."""
    value = float(value)
    return {"value": value, "ci_low": value, "ci_high": value}


def _with_ci(
    name: str,
    metric: Callable[..., float],
    arrays: tuple[np.ndarray, ...],
    *,
    groups: np.ndarray | None,
    n_resamples: int,
    seed: int,
) -> dict[str, float]:
    """The metric's value and bootstrap interval, NaN where undefined, with ``name`` in any warning."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(metric(*arrays))
    if not math.isfinite(value):
        return {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _, low, high = bootstrap_ci(metric, *arrays, groups=groups, n_resamples=n_resamples, seed=seed)
        except ValueError as error:
            # Inputs were validated and the value is defined, so this is "undefined on most resamples": the test
            # set is too small for an interval of this metric, which is worth a warning rather than losing the rest.
            warnings.warn(f"{name}: no confidence interval: {error}", stacklevel=1)
            low = high = math.nan
    for warning in caught:
        # Re-emitted with the metric's name (bootstrap_ci's own message cannot say which metric it was), pointing at
        # the caller of evaluate_task.
        message = str(warning.message)
        warnings.warn(message if message.startswith(f"{name}:") else f"{name}: {message}", warning.category, 4)
    return {"value": value, "ci_low": low, "ci_high": high}


# ---------------------------------------------------------------- metrics (numpy; NaN where undefined)


def _confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """K x K counts, rows the reference class and columns the predicted class."""
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    return np.count_nonzero(labels == predictions) / len(labels)


def _balanced_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    matrix = _confusion_matrix(labels, predictions, num_classes)
    support = matrix.sum(1)
    present = support > 0
    return float((np.diag(matrix)[present] / support[present]).mean())


def _averaged_rate(labels: np.ndarray, predictions: np.ndarray, num_classes: int, index: int) -> float:
    """One rate of the argmax predictions, of class 1 if binary, else macro over the classes seen (one vs rest).

    ``index``: 0 precision (PPV), 1 recall (sensitivity), 2 F1, 3 specificity, 4 NPV.
    """
    matrix = _confusion_matrix(labels, predictions, num_classes)
    true_positives = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(0), matrix.sum(1)
    true_negatives = matrix.sum() - predicted - actual + true_positives
    # Zero where the denominator is zero, as scikit-learn's default zero_division does.
    denominators = (predicted, actual, predicted + actual, matrix.sum() - actual, matrix.sum() - predicted)
    numerators = (true_positives, true_positives, 2 * true_positives, true_negatives, true_negatives)
    rates = np.divide(numerators[index], denominators[index], out=np.zeros(num_classes), where=denominators[index] > 0)
    if num_classes == 2:
        return float(rates[1])
    return float(rates[(predicted + actual) > 0].mean())


def _kappa(labels: np.ndarray, predictions: np.ndarray, num_classes: int, ordinal: bool) -> float:
    """Cohen's kappa, 1 - observed / chance-expected disagreement.

    Disagreement weights (i - j)^2 for ordered classes (quadratic weighted kappa), 1 for any disagreement otherwise.
    """
    observed = _confusion_matrix(labels, predictions, num_classes)
    expected = np.outer(observed.sum(1), observed.sum(0)) / len(labels)
    # Distances between the grades themselves, so a grade missing from a resample does not shift the weights.
    grades = np.arange(num_classes)
    weights = (grades[:, None] - grades[None, :]) ** 2 if ordinal else (grades[:, None] != grades[None, :])
    chance = (weights * expected).sum()
    return 1 - (weights * observed).sum() / chance if chance > 0 else math.nan


def _binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC of scores for 0/1 labels via midranks: the share of (positive, negative) pairs ranked right, ties half."""
    positive = labels == 1
    n_pos = np.count_nonzero(positive)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # The positives' midranks, as scipy.stats.rankdata gives them, read off the sorted scores: a score's midrank is
    # (number below) + (number equal + 1) / 2. rankdata's own per-call overhead dominated the bootstrap's run time.
    ordered = np.sort(scores)
    positives = scores[positive]
    below = np.searchsorted(ordered, positives, "left").sum()
    below_or_equal = np.searchsorted(ordered, positives, "right").sum()
    midrank_sum = (below + below_or_equal + n_pos) / 2
    return float((midrank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean one-vs-rest AUC over all classes; NaN if any class is missing (its AUC is undefined)."""
    return float(np.mean([_binary_auc(labels == k, probabilities[:, k]) for k in range(probabilities.shape[1])]))


def _rate_at(labels: np.ndarray, scores: np.ndarray, threshold: float, rate: str) -> float:
    """One rate of :func:`~medcls.metrics.thresholds.confusion_at` at a fixed threshold."""
    return confusion_at(torch.from_numpy(scores), torch.from_numpy(labels), threshold)[rate]
