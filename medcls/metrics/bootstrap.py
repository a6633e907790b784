"""Percentile bootstrap intervals of many metrics at once, every resample evaluated together.

A bootstrap resample of a test set is described by how often it draws each image: a column of counts. All resamples
together are an N x R matrix of counts, and a metric written as a function of that matrix (a *statistic*: weighted
sums instead of sums over the drawn rows) evaluates every resample in a few array operations instead of a Python call
per resample. :class:`Resampling` draws the resamples, in chunks of columns so that memory stays bounded whatever
the test set's size; :func:`bootstrap_intervals` evaluates statistics on the whole test set and on every resample,
and turns the resampled values into percentile intervals (:func:`percentile_interval`).

The counts are whole numbers held in float64, and the statistics of :mod:`medcls.metrics.evaluation` sum them exactly
(every partial sum is an integer below 2**53) until a final division: the intervals do not depend on the chunk size,
the order of the sums or the number of BLAS threads, and the same seed gives bit-identical results on any machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

Statistics = Callable[[np.ndarray], Mapping[str, np.ndarray]]
"""Metrics as functions of resampling counts: N x C counts (one column per resample) -> metric name -> C values.

A value is NaN (or infinite) on a resample where the metric is undefined, e.g. an AUC on a resample without positives.
"""

DEFAULT_RESAMPLES = 1000
"""Resamples behind a confidence interval unless told otherwise: the test report's, the comparison's and
:func:`~medcls.metrics.stats.bootstrap_ci`'s."""

_CHUNK_COUNTS = 1 << 21
"""Counts per chunk of resamples (16 MiB of float64); a statistic holds a few arrays of this size at a time.

Larger chunks save little Python overhead and lose more in cache misses: 16 MiB was the fastest of 8 to 128 MiB.
"""


@dataclass(frozen=True)
class Interval:
    """A metric's value on the whole test set and its percentile bootstrap confidence interval.

    Attributes:
        value: The metric on the whole test set; NaN where it is undefined there.
        ci_low: Lower bound of the interval; NaN where the value is undefined or most resamples are.
        ci_high: Upper bound of the interval; NaN likewise.
        undefined: Resamples on which the metric is undefined, left out of the interval.
        n_resamples: Resamples drawn.
    """

    value: float
    ci_low: float
    ci_high: float
    undefined: int = 0
    n_resamples: int = 0

    @property
    def mostly_undefined(self) -> bool:
        """Whether the metric is undefined on more than half of the resamples, hence has no interval."""
        return self.undefined > self.n_resamples / 2

    @property
    def undefined_reason(self) -> str:
        """Why a mostly undefined metric has no interval, in a sentence."""
        return (
            f"the metric is undefined on {self.undefined} of {self.n_resamples} bootstrap resamples (e.g. AUC with "
            "too few positives or negatives): the test set is too small for a bootstrap interval of this metric"
        )

    @property
    def problem(self) -> str | None:
        """What is worth a warning: resamples skipped, or no interval at all; ``None`` where every one was defined."""
        if self.mostly_undefined:
            return f"no confidence interval: {self.undefined_reason}"
        if self.undefined:
            skipped = f"{self.undefined} of {self.n_resamples} bootstrap resamples"
            return f"skipped {skipped} on which the metric is undefined"
        return None

    def as_dict(self) -> dict[str, float]:
        """``{"value", "ci_low", "ci_high"}``, as the test report records a metric."""
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


def percentile_interval(value: float, resampled: np.ndarray, confidence: float = 0.95) -> Interval:
    """The percentile interval of a metric from its values on the bootstrap resamples.

    Resamples on which the metric is undefined (NaN or infinite values) are left out; where they are more than half,
    the interval is NaN (it would describe a very different population). A metric undefined on the whole test set has
    NaN bounds and no undefined resamples to report.

    Args:
        value: The metric on the whole test set.
        resampled: The metric on each resample.
        confidence: Confidence level of the two-sided interval.
    """
    if not math.isfinite(value):
        return Interval(math.nan, math.nan, math.nan)
    defined = resampled[np.isfinite(resampled)]
    interval = Interval(value, math.nan, math.nan, len(resampled) - len(defined), len(resampled))
    if interval.mostly_undefined:
        return interval
    alpha = (1 - confidence) / 2
    low, high = np.quantile(defined, [alpha, 1 - alpha])
    return Interval(value, float(low), float(high), interval.undefined, interval.n_resamples)


class Resampling:
    """The bootstrap resamples of a test set: seeded draws, with replacement, of its images or of whole groups.

    Each resample draws as many images as the test set has, or as many groups as it has when ``groups`` is given, in
    which case all images of a drawn group enter the resample together. Resample ``r`` draws what the ``r``-th call
    of ``numpy.random.default_rng(seed).integers(0, G, G)`` gives (G images or groups), however the resamples are
    chunked: a Generator fills an array one value after the other.

    Example:
        The counts of every image in every resample, 1,000 resamples of patients, chunk by chunk::

            for counts in Resampling(len(labels), groups=patient_ids, n_resamples=1000, seed=0).counts():
                ...  # N x C float64 counts, one column per resample

    Args:
        n_images: Images in the test set.
        groups: Optional group (patient, exam, ...) of each image; groups are drawn instead of images.
        n_resamples: Number of resamples.
        seed: Seed of the draws; the same seed gives the same resamples.

    Raises:
        ValueError: If there are no images or resamples, or ``groups`` does not match the images.
    """

    def __init__(
        self, n_images: int, groups: np.ndarray | None = None, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
    ) -> None:
        if n_images < 1:
            raise ValueError("the test set is empty: there is nothing to resample")
        if n_resamples < 1:
            raise ValueError(f"n_resamples must be positive, got {n_resamples}")
        if groups is None:
            self._group_of = None
            self._sizes = np.ones(n_images, dtype=np.int64)
        else:
            groups = np.asarray(groups)
            if len(groups) != n_images:
                raise ValueError(f"groups has {len(groups)} entries for {n_images} images")
            _, group_of, self._sizes = np.unique(groups, return_inverse=True, return_counts=True)
            self._group_of = group_of.ravel()
        self.n_images, self.n_resamples, self.seed = n_images, n_resamples, seed
        self._chunk = max(1, min(n_resamples, _CHUNK_COUNTS // n_images))

    @property
    def n_groups(self) -> int:
        """Groups drawn per resample: the images themselves when there are no groups."""
        return len(self._sizes)

    def drawn(self, chunk: int | None = None) -> Iterator[np.ndarray]:
        """The groups each resample draws (indices into the sorted distinct groups, or images): C x G per chunk.

        Args:
            chunk: Resamples per chunk; by default as many as keep a chunk of counts near 16 MiB.
        """
        rng = np.random.default_rng(self.seed)
        chunk = chunk or self._chunk
        for start in range(0, self.n_resamples, chunk):
            yield rng.integers(0, self.n_groups, (min(chunk, self.n_resamples - start), self.n_groups))

    def counts(self, chunk: int | None = None) -> Iterator[np.ndarray]:
        """How often each image is drawn by each resample: N x C float64 whole numbers per chunk of C resamples.

        Args:
            chunk: Resamples per chunk; by default as many as keep a chunk near 16 MiB.
        """
        for drawn in self.drawn(chunk):
            resamples, groups = drawn.shape
            # One bincount for the whole chunk: resample r's draws are offset into their own run of G bins.
            offsets = (np.arange(resamples) * groups)[:, None]
            counts = np.bincount((drawn + offsets).ravel(), minlength=resamples * groups).reshape(resamples, groups)
            # Images as rows, so that the statistics gather and sum whole contiguous rows.
            counts = np.ascontiguousarray(counts.T, dtype=np.float64)
            yield counts if self._group_of is None else counts[self._group_of]

    def rows(self) -> Iterator[np.ndarray]:
        """The images of each resample in turn, as row indices: a drawn group's images together, groups in draw order.

        For metrics that are plain functions of the drawn rows (see :func:`~medcls.metrics.stats.bootstrap_ci`).
        """
        # Images sorted by group make each group one contiguous run of `order`.
        order = np.arange(self.n_images) if self._group_of is None else np.argsort(self._group_of, kind="stable")
        starts = np.cumsum(self._sizes) - self._sizes
        for drawn in self.drawn():
            for groups in drawn:
                yield order[_expand_runs(starts[groups], self._sizes[groups])]


def bootstrap_intervals(
    statistics: Mapping[str, Statistics], resampling: Resampling, confidence: float = 0.95
) -> dict[str, dict[str, Interval]]:
    """Several sets of statistics on the whole test set and on the same bootstrap resamples, with their intervals.

    Example:
        Two questions on the same images, resampled together::

            intervals = bootstrap_intervals({"dr": dr_metrics, "referable_dr": referable_metrics}, resampling)
            intervals["dr"]["kappa"].ci_low

    Args:
        statistics: Name -> statistics (see :data:`Statistics`), all of the images ``resampling`` draws from.
        resampling: The resamples.
        confidence: Confidence level of the two-sided intervals.

    Returns:
        Name -> metric -> :class:`Interval`, the metrics in the order the statistics return them.
    """
    whole = {name: statistic(np.ones((resampling.n_images, 1))) for name, statistic in statistics.items()}
    chunks: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in statistics}
    for counts in resampling.counts():
        for name, statistic in statistics.items():
            for metric, values in statistic(counts).items():
                chunks[name].setdefault(metric, []).append(values)
    return {
        name: {
            metric: percentile_interval(float(value[0]), np.concatenate(chunks[name][metric]), confidence)
            for metric, value in whole[name].items()
        }
        for name in statistics
    }


def _expand_runs(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``range(start, start + length)`` for each pair, without a Python loop over groups."""
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return offsets + np.arange(lengths.sum())
