"""A classification task's results on a test set, every figure with a bootstrap confidence interval.

:func:`evaluate_task` computes what the field reports for one task from the class probabilities of a whole test set:
accuracy, balanced accuracy, AUC (binary, or macro one-vs-rest with one AUC per class), Cohen's kappa (quadratic
weighted for ordered classes), precision, recall and F1, and for binary tasks the sensitivity, specificity, PPV,
NPV and F1 at operating points chosen beforehand on the validation set (see :mod:`medcls.metrics.thresholds`); a
graded task's binary questions (:mod:`medcls.metrics.binary`) get the binary metrics and operating points.

The metrics are written as functions of how often each image is drawn (:class:`TaskMetrics`, a statistic in the sense
of :mod:`medcls.metrics.bootstrap`), so that one call evaluates the whole test set or a thousand bootstrap resamples
at once: confusion matrices are sums of the counts over the images of each cell, AUCs cumulative sums over images
sorted once by score. Every sum is of whole numbers until each metric's final divisions, which are those of the
metric computed on the drawn images themselves: the values on the whole test set are the same floats.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np

from medcls.metrics.bootstrap import DEFAULT_RESAMPLES, Interval, Resampling, bootstrap_intervals

#: Rates reported at each operating point of a binary task, as named by :func:`~medcls.metrics.thresholds.confusion_at`.
OPERATING_POINT_RATES = ("sensitivity", "specificity", "ppv", "npv", "f1")


def evaluate_task(
    probabilities: np.ndarray,
    labels: np.ndarray,
    *,
    operating_points: Mapping[str, float] | None = None,
    ordinal: bool = True,
    groups: np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
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

    The intervals are percentile bootstrap intervals that resample the test set's images, or whole groups when
    ``groups`` is given (see :class:`~medcls.metrics.bootstrap.Resampling`); all metrics see the same resamples, and
    all resamples are evaluated together (:class:`TaskMetrics`). A metric undefined on the whole
    test set (e.g. AUC with one class only) is NaN with a NaN interval; one undefined on more than half of the
    resamples (too few images of a class) keeps its value, gets a NaN interval and a warning; one undefined on fewer
    resamples gets its interval from the others, with a warning saying how many were skipped.

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
    metrics = TaskMetrics(probabilities, labels, operating_points=operating_points, ordinal=ordinal)
    resampling = Resampling(metrics.n_images, groups, n_resamples, seed)
    intervals = bootstrap_intervals({"task": metrics}, resampling)["task"]
    for name, interval in intervals.items():
        if interval.problem:
            warnings.warn(f"{name}: {interval.problem}", stacklevel=2)
    return metrics.results(intervals)


class TaskMetrics:
    """Every metric of one task (see :func:`evaluate_task`) as a statistic of bootstrap counts.

    Called with N x C counts, how often each image is drawn by each of C resamples (a column of ones for the test
    set itself), it returns metric name -> C values, NaN where the metric is undefined. Each value is the metric of
    the images drawn, computed as :func:`evaluate_task` documents.

    Example:
        The intervals of a task and of its binary view on the same resamples of patients::

            resampling = Resampling(len(labels), groups=patient_ids, n_resamples=1000)
            metrics = {"dr": TaskMetrics(dr, labels), "referable_dr": TaskMetrics(*binary_view(dr, labels, 2))}
            intervals = bootstrap_intervals(metrics, resampling)
            metrics["dr"].results(intervals["dr"])  # as evaluate_task returns them

    Args:
        probabilities: N x K class probabilities (K >= 2).
        labels: N reference class indices in ``[0, K)``.
        operating_points: Optional thresholds on P(class 1) by name, for binary tasks only.
        ordinal: Whether the classes are ordered (grades); decides the kappa's weights.

    Raises:
        ValueError: If the shapes or labels are invalid, or operating points are given for more than two classes.
    """

    def __init__(
        self,
        probabilities: np.ndarray,
        labels: np.ndarray,
        *,
        operating_points: Mapping[str, float] | None = None,
        ordinal: bool = True,
    ) -> None:
        probabilities, labels = validated_predictions(probabilities, labels)
        self.num_classes = num_classes = probabilities.shape[1]
        if operating_points and num_classes != 2:
            raise ValueError(
                f"operating points need a binary task, got {num_classes} classes; use binary_view() to make one"
            )
        self.n_images = len(labels)
        self.operating_points = {name: float(threshold) for name, threshold in (operating_points or {}).items()}
        self.ordinal = ordinal
        # The images of a cell of the argmax confusion matrix are one run in the images sorted by cell; those of
        # the four cells (true class, called positive) of every operating point are runs in the images sorted by
        # class, then score.
        cells = labels * num_classes + probabilities.argmax(1)
        by_cell = np.argsort(cells, kind="stable")
        bounds = np.searchsorted(cells[by_cell], np.arange(num_classes**2 + 1))
        self._confusion = _RunCounts(by_cell, np.stack([bounds[:-1], bounds[1:]], 1))
        self._points = None
        if self.operating_points:
            by_score = np.lexsort((probabilities[:, 1], labels))
            thresholds = list(self.operating_points.values())
            runs = _operating_point_runs(labels[by_score], probabilities[by_score, 1], thresholds)
            self._points = _RunCounts(by_score, runs)
        scored = [1] if num_classes == 2 else range(num_classes)
        self._aucs = [_WeightedAuc(labels == k, probabilities[:, k]) for k in scored]

    def __call__(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric on each resample.

        Args:
            counts: N x C float64 counts of each image in each of C resamples.

        Returns:
            Metric name -> C values (NaN where undefined), in the order :func:`evaluate_task` reports them.
        """
        k = self.num_classes
        confusion = self._confusion(counts).reshape(-1, k, k)
        values = {
            "accuracy": np.trace(confusion, axis1=1, axis2=2) / confusion.sum((1, 2)),
            "balanced_accuracy": _balanced_accuracy(confusion),
        }
        aucs = np.stack([auc(counts) for auc in self._aucs], axis=1)
        if k == 2:
            values["auc"] = aucs[:, 0]
        else:
            values["auc"] = aucs.mean(1)  # NaN where any class is missing: its AUC is undefined
            values |= {f"auc_class_{c}": aucs[:, c] for c in range(k)}
        values["kappa"] = _kappa(confusion, self.ordinal)
        values |= _averaged_rates(confusion)
        if self._points is not None:
            cells = self._points(counts)
            for index, point in enumerate(self.operating_points):
                rates = _rates_at(cells[:, 4 * index : 4 * index + 4])
                values |= {f"{point}/{rate}": rates[rate] for rate in OPERATING_POINT_RATES}
        return values

    def results(self, intervals: Mapping[str, Interval]) -> dict[str, dict[str, float]]:
        """The task's entries of the report from its metrics' intervals, as :func:`evaluate_task` returns them.

        Args:
            intervals: Metric name -> interval, as :func:`~medcls.metrics.bootstrap.bootstrap_intervals` gives them.
        """
        results = {"n": _exact(self.n_images)}
        for name, interval in intervals.items():
            results[name] = interval.as_dict()
            point, _, rate = name.rpartition("/")
            if point in self.operating_points and rate == OPERATING_POINT_RATES[-1]:
                results[f"{point}/threshold"] = _exact(self.operating_points[point])
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


# ---------------------------------------------------------------- metrics of C confusion matrices (NaN where undefined)


def _confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """K x K counts, rows the reference class and columns the predicted class."""
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _balanced_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present, of C x K x K confusion matrices."""
    support = confusion.sum(2)
    recalls = _ratio(np.diagonal(confusion, axis1=1, axis2=2), support, otherwise=0.0)
    return _mean_where(recalls, support > 0)


def _averaged_rates(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1, specificity and NPV of C x K x K confusion matrices: of class 1 if binary, else macro.

    Macro averages are over the classes seen, those that occur or are predicted; a rate with a zero denominator is 0,
    as scikit-learn's default ``zero_division`` gives it.
    """
    true_positives = np.diagonal(confusion, axis1=1, axis2=2)
    predicted, actual = confusion.sum(1), confusion.sum(2)
    total = actual.sum(1, keepdims=True)
    true_negatives = total - predicted - actual + true_positives
    fractions = {
        "precision": (true_positives, predicted),
        "recall": (true_positives, actual),
        "f1": (2 * true_positives, predicted + actual),
        "specificity": (true_negatives, total - actual),
        "npv": (true_negatives, total - predicted),
    }
    rates = {name: _ratio(*fraction, otherwise=0.0) for name, fraction in fractions.items()}
    if confusion.shape[1] == 2:
        return {name: rate[:, 1] for name, rate in rates.items()}
    seen = (predicted + actual) > 0
    return {name: _mean_where(rate, seen) for name, rate in rates.items()}


def _kappa(confusion: np.ndarray, ordinal: bool) -> np.ndarray:
    """Cohen's kappa of C x K x K confusion matrices, 1 - observed / chance-expected disagreement.

    Disagreement weights (i - j)^2 for ordered classes (quadratic weighted kappa), 1 for any disagreement otherwise.
    """
    resamples, num_classes, _ = confusion.shape
    actual, predicted = confusion.sum(2), confusion.sum(1)
    expected = actual[:, :, None] * predicted[:, None, :] / actual.sum(1)[:, None, None]
    # Distances between the grades themselves, so a grade missing from a resample does not shift the weights.
    grades = np.arange(num_classes)
    weights = (grades[:, None] - grades[None, :]) ** 2 if ordinal else (grades[:, None] != grades[None, :])
    # Row-major, so that each resample's sum is taken in the order of a 1-D array whatever the layout of the input
    # (numpy sums the rows of a column-major array column after column, which rounds differently).
    chance = np.ascontiguousarray(weights * expected).reshape(resamples, -1).sum(1)
    disagreement = (weights * confusion).reshape(resamples, -1).sum(1)  # whole numbers: any order is exact
    return 1 - _ratio(disagreement, chance, otherwise=math.nan)


def _rates_at(cells: np.ndarray) -> dict[str, np.ndarray]:
    """:data:`OPERATING_POINT_RATES` from C x 4 counts of (negative, positive) x (not called, called) images.

    As :func:`~medcls.metrics.thresholds.confusion_at` computes them, NaN where the denominator is zero.
    """
    tn, fp, fn, tp = cells.T
    fractions = {
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
        "f1": (2 * tp, 2 * tp + fp + fn),
    }
    return {name: _ratio(*fraction, otherwise=math.nan) for name, fraction in fractions.items()}


def _ratio(numerator: np.ndarray, denominator: np.ndarray, otherwise: float) -> np.ndarray:
    """The ratio of two arrays, ``otherwise`` where the denominator is zero."""
    out = np.full(np.broadcast(numerator, denominator).shape, otherwise)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _mean_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each row's mean over its entries where ``mask`` holds, C x K -> C.

    Rows that select the same entries are averaged together, each as numpy averages the 1-D array of its selected
    entries: a resample's mean is then the same float whether computed alone or with others.
    """
    means = np.empty(len(values))
    patterns, which = np.unique(mask, axis=0, return_inverse=True)
    for index, pattern in enumerate(patterns):
        rows = which.ravel() == index
        # Row-major, so that each row is summed in the order of a 1-D array (the selection can come out
        # column-major, and numpy would then sum column after column, rounding differently).
        means[rows] = np.ascontiguousarray(values[rows][:, pattern]).mean(1)
    return means


def _operating_point_runs(labels: np.ndarray, scores: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """The runs of the (negative, positive) x (not called, called) cells of each threshold, 4 per threshold.

    Args:
        labels: 0/1 labels, sorted.
        scores: Scores, sorted within each class.
        thresholds: Images are called positive where ``score >= threshold``.

    Returns:
        4T x 2 (start, stop) positions: TN, FP, FN, TP for each threshold in turn.
    """
    negatives = int(np.searchsorted(labels, 1))
    runs = []
    for threshold in thresholds:
        # The images of a class scored below the threshold come first in it.
        negative_below = int(np.searchsorted(scores[:negatives], threshold, "left"))
        positive_below = negatives + int(np.searchsorted(scores[negatives:], threshold, "left"))
        cells = (0, negative_below), (negative_below, negatives), (negatives, positive_below)
        runs += [*cells, (positive_below, len(labels))]
    return np.array(runs)


class _RunCounts:
    """How often the images of runs of a fixed order are drawn, as a statistic: N x C counts -> C x runs.

    The images in that order are cut into segments at every run's ends, each segment's counts summed once
    (``reduceat``), and a run's count is a difference of the cumulative sums of the segments: whole numbers, exact.
    This is cheaper than a matrix product with each image's cell and needs no BLAS, whose threads would compete with
    the rest on a busy machine.

    Args:
        order: The images, in the order of the runs.
        runs: R x 2 (start, stop) positions in ``order``; ``start == stop`` is an empty run.
    """

    def __init__(self, order: np.ndarray, runs: np.ndarray) -> None:
        self._order = order
        edges = np.unique(np.concatenate([runs.ravel(), [0, len(order)]]))
        self._segments = edges[:-1]  # each starts a segment that ends at the next edge, none empty
        self._starts, self._stops = np.searchsorted(edges, runs[:, 0]), np.searchsorted(edges, runs[:, 1])

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """C x R counts of the runs' images in each of the C resamples of N x C ``counts``."""
        cumulative = np.zeros((len(self._segments) + 1, counts.shape[1]))
        np.cumsum(np.add.reduceat(counts[self._order], self._segments, axis=0), axis=0, out=cumulative[1:])
        return np.ascontiguousarray((cumulative[self._stops] - cumulative[self._starts]).T)


class _WeightedAuc:
    """The AUC of scores for a 0/1 reference, as a statistic of bootstrap counts (N x C -> C, NaN with one class).

    The AUC is the share of (positive, negative) pairs ranked right, ties counting half. Weighted by the counts, the
    pairs that one class's image ranks below itself (ties counting half) are its count times the cumulative count of
    the other class up to its score: one cumulative sum over the other class in score order, sorted once, read off at
    each image's place. The cumulative sum is the costly part, so it runs over the smaller class: for a rare class,
    its positives.

    Args:
        positive: N booleans, the reference.
        scores: N scores, higher meaning positive.
    """

    def __init__(self, positive: np.ndarray, scores: np.ndarray) -> None:
        positives, negatives = np.flatnonzero(positive), np.flatnonzero(~positive)
        self._accumulate_positives = len(positives) < len(negatives)
        accumulated, looked_up = (positives, negatives) if self._accumulate_positives else (negatives, positives)
        self._accumulated = accumulated[np.argsort(scores[accumulated], kind="stable")]
        self._looked_up = looked_up
        ordered, scores_looked_up = scores[self._accumulated], scores[looked_up]
        self._below = np.searchsorted(ordered, scores_looked_up, "left")
        below_or_tied = np.searchsorted(ordered, scores_looked_up, "right")
        # Ties across the classes are few: their second look-up is done for them alone.
        self._tied = np.flatnonzero(below_or_tied != self._below)
        self._below_or_tied = below_or_tied[self._tied]

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """The AUC on each resample of N x C ``counts``."""
        cumulative = np.zeros((len(self._accumulated) + 1, counts.shape[1]))
        np.cumsum(counts[self._accumulated], axis=0, out=cumulative[1:])
        # Per looked-up image, twice the other class's images below it plus those tied with it: whole numbers.
        below = cumulative[self._below]
        doubled = below + below
        doubled[self._tied] += cumulative[self._below_or_tied] - below[self._tied]
        looked_up = counts[self._looked_up]
        twice_ranked_below = np.einsum("ij,ij->j", looked_up, doubled)
        pairs = looked_up.sum(0) * cumulative[-1]
        # The pairs ranked right are those with the negative below; with the positives accumulated, the others.
        twice_u = 2 * pairs - twice_ranked_below if self._accumulate_positives else twice_ranked_below
        return _ratio(twice_u / 2, pairs, otherwise=math.nan)
