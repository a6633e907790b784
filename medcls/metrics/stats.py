"""Confidence intervals and significance tests for a model's results on a test set.

Two tools the field reports alongside every figure:

- :func:`bootstrap_ci`: a percentile bootstrap confidence interval for any metric, resampling the test set's
  images, or whole patients/exams when the images are grouped. It calls the metric once per resample; the test
  report's metrics evaluate all resamples at once instead (:mod:`medcls.metrics.bootstrap`), on the same resamples.
- :func:`delong_test`: DeLong's test of two correlated binary AUCs measured on the same images (e.g. two models,
  or a model with and without pretraining).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from medcls.metrics.bootstrap import DEFAULT_RESAMPLES, Resampling, percentile_interval


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: np.ndarray,
    groups: np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap confidence interval of a metric.

    Each resample draws, with replacement, as many images as the test set has (or as many groups as it has, when
    ``groups`` is given) and evaluates ``metric`` on the drawn rows of every array together, so targets and
    predictions stay paired. Give ``groups`` whenever images are not independent (several images per patient, both
    eyes of a person, duplicates): all images of a drawn group then enter the resample together, which keeps the
    interval from being too narrow.

    A resample on which the metric is undefined (e.g. AUC when the resample holds one class only) is skipped with a
    warning: ``metric`` signals this by returning NaN/inf or by raising ``ValueError`` or ``ZeroDivisionError``.

    Example:
        Accuracy with a 95 % interval, resampling patients::

            def accuracy(targets, probabilities):
                return float((probabilities.argmax(1) == targets).mean())

            estimate, low, high = bootstrap_ci(accuracy, targets, probabilities, groups=patient_ids)

    Args:
        metric: Function of the arrays, in the order given, returning a float.
        *arrays: One or more arrays with one row per image (targets, probabilities, ...), all of the same length.
        groups: Optional group label per image (patient, exam, ...); groups are resampled instead of images.
        n_resamples: Number of bootstrap resamples.
        confidence: Confidence level of the two-sided interval.
        seed: Seed of the resampling; the same seed gives the same interval.

    Returns:
        ``(estimate, low, high)``: the metric on the full data and the interval's bounds.

    Raises:
        ValueError: If the inputs are inconsistent, the metric is undefined on the full data, or more than half of
            the resamples are undefined (the interval would then describe a very different population).
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"arrays must be non-empty and of equal length, got lengths {[len(a) for a in arrays]}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    resampling = Resampling(n, groups, n_resamples, seed)

    estimate = _evaluate(metric, arrays)
    if math.isnan(estimate):
        raise ValueError("the metric is undefined on the full data")
    # Own resampling rather than scipy.stats.bootstrap: that one draws single observations and turns the whole
    # interval into NaN as soon as one resample is undefined, while we draw whole groups and skip undefined ones.
    resampled = np.array([_evaluate(metric, tuple(a[rows] for a in arrays)) for rows in resampling.rows()])
    interval = percentile_interval(estimate, resampled, confidence)
    if interval.mostly_undefined:
        raise ValueError(interval.undefined_reason)
    if interval.undefined:
        warnings.warn(interval.problem, stacklevel=2)
    return estimate, interval.ci_low, interval.ci_high


def _evaluate(metric: Callable[..., float], arrays: tuple[np.ndarray, ...]) -> float:
    """The metric's value, or NaN where it is undefined (non-finite, or it refuses the data)."""
    try:
        # numpy divisions by zero are the usual way an undefined metric shows up; they give NaN, not a warning.
        with np.errstate(divide="ignore", invalid="ignore"):
            value = float(metric(*arrays))
    except (ValueError, ZeroDivisionError):
        return math.nan
    return value if math.isfinite(value) else math.nan


@dataclass(frozen=True)
class DeLongResult:
    """Outcome of :func:`delong_test`.

    Attributes:
        auc_a: AUC of the first classifier.
        auc_b: AUC of the second classifier.
        difference: ``auc_a - auc_b``.
        z: Test statistic, the difference over its standard error.
        p_value: Two-sided p-value of the hypothesis that both AUCs are equal.
        ci_low: Lower bound of the 95 % confidence interval of the difference.
        ci_high: Upper bound of the 95 % confidence interval of the difference.
    """

    auc_a: float
    auc_b: float
    difference: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float


def delong_test(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> DeLongResult:
    """DeLong's test of two correlated binary AUCs measured on the same images.

    DeLong, DeLong & Clarke-Pearson (1988), computed with the fast midrank algorithm of Sun & Xu (2014) in
    O(n log n). The test accounts for both classifiers being scored on the same images, which makes their AUCs
    correlated; comparing two independent bootstrap intervals instead would be far too conservative.

    If the difference has zero variance (e.g. identical scores), the p-value is 1 when the AUCs are equal and 0
    otherwise.

    Args:
        y_true: Binary reference labels, 0 or 1, one per image.
        scores_a: Scores of the first classifier (e.g. probability of the positive class), higher meaning positive.
        scores_b: Scores of the second classifier on the same images.

    Returns:
        Both AUCs, their difference, the z statistic, the two-sided p-value and a 95 % confidence interval of the
        difference.

    Raises:
        ValueError: If the arrays are not 1-D of equal length, labels are not 0/1, or only one class is present.
    """
    y_true, scores_a, scores_b = (np.asarray(a) for a in (y_true, scores_a, scores_b))
    if not (y_true.ndim == scores_a.ndim == scores_b.ndim == 1) or not (len(y_true) == len(scores_a) == len(scores_b)):
        raise ValueError(
            f"y_true, scores_a and scores_b must be 1-D of equal length, got shapes "
            f"{y_true.shape}, {scores_a.shape}, {scores_b.shape}"
        )
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("delong_test is for binary labels: y_true must contain only 0 and 1")
    positive = y_true == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        raise ValueError("delong_test needs both classes in y_true: the AUC is undefined with one class only")
    if m < 2 or n < 2:
        raise ValueError("delong_test needs at least two positive and two negative images to estimate a variance")

    # One row per classifier: positives' scores x, negatives' scores y.
    scores = np.stack([scores_a, scores_b]).astype(np.float64)
    x, y = scores[:, positive], scores[:, ~positive]
    # Midranks (ties share the mean rank) within the positives, the negatives and all images together.
    rank_x = rankdata(x, axis=1)
    rank_y = rankdata(y, axis=1)
    rank_all = rankdata(np.concatenate([x, y], axis=1), axis=1)

    aucs = (rank_all[:, :m].sum(1) - m * (m + 1) / 2) / (m * n)
    # Placement values: for each positive the share of negatives it outranks (ties count half), and for each
    # negative the share of positives that outrank it.
    v10 = (rank_all[:, :m] - rank_x) / n
    v01 = 1 - (rank_all[:, m:] - rank_y) / m
    covariance = np.cov(v10) / m + np.cov(v01) / n

    difference = float(aucs[0] - aucs[1])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    # Rounding can leave a tiny negative variance where the exact one is 0 (e.g. identical scores).
    standard_error = math.sqrt(max(variance, 0.0))
    if standard_error > 0:
        z = difference / standard_error
        p_value = float(2 * norm.sf(abs(z)))
    elif difference == 0:
        z, p_value = 0.0, 1.0
    else:
        z, p_value = math.copysign(math.inf, difference), 0.0
    half_width = float(norm.ppf(0.975)) * standard_error
    return DeLongResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=difference,
        z=z,
        p_value=p_value,
        ci_low=difference - half_width,
        ci_high=difference + half_width,
    )
