import math
from fractions import Fraction

import pytest
import torch

from medcls.metrics.thresholds import (
    OperatingPoint,
    confusion_at,
    threshold_for_sensitivity,
    threshold_for_specificity,
    youden_threshold,
)

# float64, so that the thresholds typed below are exactly these scores.
SCORES_8 = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], dtype=torch.float64)


def _random_scores(seed: int, n: int = 200, decimals: int | None = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded scores with class overlap; rounding creates tied scores."""
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, generator=generator) < 0.3).long()
    scores = torch.sigmoid(torch.randn(n, generator=generator) + 1.5 * target)
    if decimals is not None:
        scores = scores.round(decimals=decimals)
    return scores, target


def _brute_force(scores: torch.Tensor, target: torch.Tensor) -> list[tuple[float, Fraction, Fraction]]:
    """(threshold, sensitivity, specificity) for every unique score and inf, from highest threshold to lowest."""
    labels = target.tolist()
    values = scores.tolist()
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    points = []
    for t in [math.inf, *sorted(set(values), reverse=True)]:
        tp = sum(1 for s, y in zip(values, labels, strict=True) if s >= t and y == 1)
        tn = sum(1 for s, y in zip(values, labels, strict=True) if s < t and y == 0)
        points.append((t, Fraction(tp, n_pos), Fraction(tn, n_neg)))
    return points


def test_youden_on_hand_built_roc():
    # P = 4, N = 4. For each threshold t (predict score >= t): (TP, FP) and J = TP/4 - FP/4, by hand.
    target = torch.tensor([1, 0, 1, 1, 0, 0, 0, 1])
    hand = {
        0.9: (1, 0, 0.25),
        0.8: (1, 1, 0.0),
        0.7: (2, 1, 0.25),
        0.6: (3, 1, 0.5),  # the unique maximum
        0.5: (3, 2, 0.25),
        0.4: (3, 3, 0.0),
        0.3: (3, 4, -0.25),
        0.2: (4, 4, 0.0),
    }
    for t, (tp, fp, j) in hand.items():
        counts = confusion_at(SCORES_8, target, t)
        assert (counts["tp"], counts["fp"]) == (tp, fp)
        assert counts["sensitivity"] + counts["specificity"] - 1 == j

    point = youden_threshold(SCORES_8, target)
    assert point.threshold == 0.6
    assert point.sensitivity == 0.75
    assert point.specificity == 0.75
    assert point.youden == 0.5

    # The point lies on the ROC curve of these scores.
    assert (point.threshold, point.sensitivity, point.specificity) in [
        (t, float(sens), float(spec)) for t, sens, spec in _brute_force(SCORES_8, target)
    ]
    # Applying the returned threshold reproduces its sensitivity and specificity exactly.
    counts = confusion_at(SCORES_8, target, point.threshold)
    assert counts["sensitivity"] == point.sensitivity
    assert counts["specificity"] == point.specificity


def test_youden_tie_goes_to_highest_threshold():
    # J = 0.5 at thresholds 0.8 (TP 2, FP 0), 0.6 (TP 3, FP 1) and 0.4 (TP 4, FP 2): the most specific wins.
    target = torch.tensor([1, 1, 0, 1, 0, 1, 0, 0])
    point = youden_threshold(SCORES_8, target)
    assert point.threshold == 0.8
    assert (point.sensitivity, point.specificity) == (0.5, 1.0)


def test_sensitivity_and_specificity_are_not_swapped():
    # 3 positives, 7 negatives; at threshold 0.6 TP = 3, FP = 1: sensitivity 3/3, specificity 6/7.
    scores = torch.tensor([0.9, 0.8, 0.6, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    target = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    counts = confusion_at(scores, target, 0.6)
    assert (counts["tp"], counts["fp"], counts["tn"], counts["fn"]) == (3, 1, 6, 0)
    assert counts["sensitivity"] == 1.0
    assert counts["specificity"] == 6 / 7
    assert counts["ppv"] == 3 / 4
    assert counts["npv"] == 1.0
    assert counts["f1"] == 6 / 7

    for point in (youden_threshold(scores, target), threshold_for_sensitivity(scores, target, 1.0)):
        assert point.threshold == pytest.approx(0.6)
        assert point.sensitivity == 1.0
        assert point.specificity == 6 / 7


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("wanted", [0.8, 0.9, 0.95, 0.975])
def test_threshold_for_sensitivity_hits_target(seed, wanted):
    scores, target = _random_scores(seed)
    point = threshold_for_sensitivity(scores, target, wanted)
    counts = confusion_at(scores, target, point.threshold)
    assert point.sensitivity >= wanted
    assert (counts["sensitivity"], counts["specificity"]) == (point.sensitivity, point.specificity)
    # The next higher threshold (the next larger score) misses the target.
    higher = scores[scores > point.threshold]
    assert higher.numel() > 0
    assert confusion_at(scores, target, float(higher.min()))["sensitivity"] < wanted


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("wanted", [0.8, 0.9, 0.95, 0.98])
def test_threshold_for_specificity_hits_target(seed, wanted):
    scores, target = _random_scores(seed)
    point = threshold_for_specificity(scores, target, wanted)
    counts = confusion_at(scores, target, point.threshold)
    assert point.specificity >= wanted
    assert (counts["sensitivity"], counts["specificity"]) == (point.sensitivity, point.specificity)
    # The next lower threshold (the next smaller score) misses the target.
    lower = scores[scores < point.threshold]
    assert lower.numel() > 0
    assert confusion_at(scores, target, float(lower.max()))["specificity"] < wanted


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
@pytest.mark.parametrize("decimals", [1, 2, None])
def test_against_brute_force(seed, decimals):
    scores, target = _random_scores(seed, n=60, decimals=decimals)
    points = _brute_force(scores, target)

    best_j = max(sens + spec - 1 for _, sens, spec in points)
    # The highest threshold among the maxima: the first in the list, which runs from high to low.
    t, sens, spec = next(p for p in points if p[1] + p[2] - 1 == best_j)
    assert youden_threshold(scores, target) == OperatingPoint(t, float(sens), float(spec))

    for wanted in (0.0, 0.5, 0.9, 1.0):
        t, sens, spec = next(p for p in points if p[1] >= Fraction(wanted))
        assert threshold_for_sensitivity(scores, target, wanted) == OperatingPoint(t, float(sens), float(spec))
        t, sens, spec = [p for p in points if p[2] >= Fraction(wanted)][-1]
        assert threshold_for_specificity(scores, target, wanted) == OperatingPoint(t, float(sens), float(spec))


def test_against_sklearn_roc_curve():
    metrics = pytest.importorskip("sklearn.metrics")
    scores, target = _random_scores(7, n=300, decimals=None)
    fpr, tpr, thresholds = metrics.roc_curve(target.numpy(), scores.double().numpy(), drop_intermediate=False)
    j = tpr - fpr
    # sklearn compares rounded rates, so take its maxima with a tolerance; the highest threshold among them wins.
    best = min(i for i in range(len(j)) if j[i] >= j.max() - 1e-12)
    point = youden_threshold(scores, target)
    assert point.youden == pytest.approx(j.max())
    assert point.threshold == pytest.approx(float(thresholds[best]))
    assert point.sensitivity == pytest.approx(tpr[best])
    assert point.specificity == pytest.approx(1 - fpr[best])


def test_threshold_above_every_score_calls_nothing_positive():
    # The top score is a negative, so specificity 1 needs a threshold above every score: inf.
    target = torch.tensor([0, 1, 0, 1, 0, 1, 0, 0])
    point = threshold_for_specificity(SCORES_8, target, 1.0)
    assert point == OperatingPoint(math.inf, 0.0, 1.0)
    counts = confusion_at(SCORES_8, target, point.threshold)
    assert (counts["tp"], counts["fp"]) == (0, 0)
    assert math.isnan(counts["ppv"])


def test_score_of_exactly_one_is_a_real_threshold():
    scores = torch.tensor([1.0, 0.9, 0.5, 0.1])
    target = torch.tensor([1, 0, 1, 0])
    point = threshold_for_specificity(scores, target, 1.0)
    assert point == OperatingPoint(1.0, 0.5, 1.0)
    assert confusion_at(scores, target, point.threshold)["tp"] == 1


def test_confusion_at_accepts_one_class():
    counts = confusion_at(torch.tensor([0.2, 0.7]), torch.tensor([0, 0]), 0.5)
    assert counts["specificity"] == 0.5
    assert math.isnan(counts["sensitivity"])


@pytest.mark.parametrize(
    ("scores", "target", "message"),
    [
        (torch.tensor([0.2, 0.7]), torch.tensor([1, 1]), "both classes"),
        (torch.tensor([0.2, 0.7]), torch.tensor([0, 0]), "both classes"),
        (torch.tensor([0.2, 0.7, 0.1]), torch.tensor([0, 1]), "same shape"),
        (torch.tensor([0.2, 0.7]), torch.tensor([0, 2]), "only 0 and 1"),
        (torch.tensor([-1.0, 3.0]), torch.tensor([0, 1]), r"\[0, 1\]"),
        (torch.tensor([0.2, float("nan")]), torch.tensor([0, 1]), "NaN"),
    ],
)
def test_invalid_inputs_raise(scores, target, message):
    for choose in (
        youden_threshold,
        lambda s, t: threshold_for_sensitivity(s, t, 0.9),
        lambda s, t: threshold_for_specificity(s, t, 0.9),
    ):
        with pytest.raises(ValueError, match=message):
            choose(scores, target)


@pytest.mark.parametrize("wanted", [-0.1, 1.5])
def test_target_rate_outside_unit_interval_raises(wanted):
    scores, target = SCORES_8, torch.tensor([1, 0, 1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="sensitivity"):
        threshold_for_sensitivity(scores, target, wanted)
    with pytest.raises(ValueError, match="specificity"):
        threshold_for_specificity(scores, target, wanted)


def test_confusion_at_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        confusion_at(torch.tensor([0.2, 0.7]), torch.tensor([[0, 1]]), 0.5)
