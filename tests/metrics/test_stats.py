import math

import numpy as np
import pytest
from scipy.stats import norm

from medcls.metrics.stats import DeLongResult, bootstrap_ci, delong_test


def accuracy(correct: np.ndarray) -> float:
    return float(correct.mean())


def pairwise_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """AUC as the share of (positive, negative) pairs ranked right, ties counting half."""
    positives, negatives = scores[y_true == 1], scores[y_true == 0]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("one class only")
    diff = positives[:, None] - negatives[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def fixed_rate_correct(n: int, rate: float = 0.8, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < rate).astype(float)


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_interval_contains_point_estimate() -> None:
    correct = fixed_rate_correct(300)
    estimate, low, high = bootstrap_ci(accuracy, correct, n_resamples=500)
    assert estimate == pytest.approx(correct.mean())
    assert low < estimate < high


def test_bootstrap_interval_shrinks_with_more_images() -> None:
    _, low_small, high_small = bootstrap_ci(accuracy, fixed_rate_correct(100), n_resamples=500)
    _, low_large, high_large = bootstrap_ci(accuracy, fixed_rate_correct(2000), n_resamples=500)
    assert high_large - low_large < 0.5 * (high_small - low_small)
    # about 2 * 1.96 * sqrt(0.8 * 0.2 / n)
    assert high_small - low_small == pytest.approx(2 * 1.96 * math.sqrt(0.16 / 100), rel=0.3)


def test_bootstrap_resamples_rows_of_all_arrays_together() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, 200)
    scores = y_true + rng.normal(0, 1, 200)
    estimate, low, high = bootstrap_ci(pairwise_auc, y_true, scores, n_resamples=300)
    assert estimate == pytest.approx(pairwise_auc(y_true, scores))
    assert 0.5 < low < estimate < high <= 1
    # pairing kept: scoring the targets themselves stays perfect on every resample
    assert bootstrap_ci(pairwise_auc, y_true, y_true.astype(float), n_resamples=100) == (1.0, 1.0, 1.0)


def test_bootstrap_is_seeded() -> None:
    correct = fixed_rate_correct(200)
    first = bootstrap_ci(accuracy, correct, n_resamples=300, seed=3)
    assert bootstrap_ci(accuracy, correct, n_resamples=300, seed=3) == first
    assert bootstrap_ci(accuracy, correct, n_resamples=300, seed=4) != first


def test_grouped_bootstrap_draws_whole_groups() -> None:
    groups = np.repeat(np.array([3, 1, 4, 0, 2]), [2, 5, 1, 3, 4])  # unsorted labels, unequal sizes
    np.random.default_rng(0).shuffle(groups)
    sizes = {g: int((groups == g).sum()) for g in np.unique(groups)}

    def whole_groups_only(drawn: np.ndarray) -> float:
        # every group's image count in the resample is a multiple of its size when groups are drawn whole
        return float(all(int((drawn == g).sum()) % size == 0 for g, size in sizes.items()))

    assert bootstrap_ci(whole_groups_only, groups, groups=groups, n_resamples=200) == (1.0, 1.0, 1.0)
    _, low, _ = bootstrap_ci(whole_groups_only, groups, n_resamples=200)
    assert low == 0.0


def test_grouped_bootstrap_is_wider_for_correlated_images() -> None:
    # 40 patients with 10 identical images each: the effective sample size is 40, not 400
    per_patient = fixed_rate_correct(40, seed=5)
    correct, patients = np.repeat(per_patient, 10), np.repeat(np.arange(40), 10)
    est_images, low_images, high_images = bootstrap_ci(accuracy, correct, n_resamples=500)
    est_groups, low_groups, high_groups = bootstrap_ci(accuracy, correct, groups=patients, n_resamples=500)
    assert est_images == est_groups
    assert high_groups - low_groups > 2 * (high_images - low_images)


def test_bootstrap_skips_undefined_resamples() -> None:
    # one positive in 10 images: about a third of the resamples miss it and the AUC is undefined there
    y_true = np.zeros(10, dtype=int)
    y_true[0] = 1
    scores = np.linspace(1, 0, 10)

    with pytest.warns(UserWarning, match="skipped"):
        estimate, low, high = bootstrap_ci(pairwise_auc, y_true, scores, n_resamples=200)
    assert (estimate, low, high) == (1.0, 1.0, 1.0)


def test_bootstrap_rejects_mostly_undefined_metric() -> None:
    def distinct_images_only(x: np.ndarray) -> float:
        # undefined (NaN) as soon as an image is drawn twice, i.e. on nearly every resample
        return 1.0 if len(np.unique(x)) == len(x) else math.nan

    with pytest.raises(ValueError, match="undefined on .* of 100"):
        bootstrap_ci(distinct_images_only, np.arange(20), n_resamples=100)


def test_bootstrap_input_errors() -> None:
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_ci(pairwise_auc, np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci(accuracy, np.zeros(5), groups=np.zeros(4))
    with pytest.raises(ValueError, match="full data"):
        bootstrap_ci(pairwise_auc, np.zeros(5), np.zeros(5))


# ---------------------------------------------------------------- DeLong


def slow_delong(y_true: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> tuple[float, float, float, float]:
    """DeLong et al. 1988 from structural components, O(n_pos * n_neg): AUC a, AUC b, z, p."""
    v10, v01, aucs = [], [], []
    for scores in (scores_a, scores_b):
        positives, negatives = scores[y_true == 1], scores[y_true == 0]
        psi = np.array([[1.0 if x > y else 0.5 if x == y else 0.0 for y in negatives] for x in positives])
        aucs.append(psi.mean())
        v10.append(psi.mean(1))  # one placement value per positive
        v01.append(psi.mean(0))  # one per negative
    m, n = len(v10[0]), len(v01[0])

    def covariance(v: list[np.ndarray]) -> np.ndarray:
        centred = np.stack(v) - np.array(aucs)[:, None]
        return centred @ centred.T / (centred.shape[1] - 1)

    s10, s01 = covariance(v10), covariance(v01)
    contrast = np.array([1.0, -1.0])
    variance = contrast @ s10 @ contrast / m + contrast @ s01 @ contrast / n
    z = (aucs[0] - aucs[1]) / math.sqrt(variance)
    return aucs[0], aucs[1], z, 2 * norm.sf(abs(z))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, 120)
    scores_a = y_true * 1.0 + rng.normal(0, 1, 120)
    # rounded so that ties occur within and across classes
    scores_b = np.round(y_true * 0.6 + rng.normal(0, 1, 120), 1)

    result = delong_test(y_true, scores_a, scores_b)
    auc_a, auc_b, z, p = slow_delong(y_true, scores_a, scores_b)
    assert result.auc_a == pytest.approx(auc_a, abs=1e-9)
    assert result.auc_b == pytest.approx(auc_b, abs=1e-9)
    assert result.auc_a == pytest.approx(pairwise_auc(y_true, scores_a), abs=1e-9)
    assert result.auc_b == pytest.approx(pairwise_auc(y_true, scores_b), abs=1e-9)
    assert result.difference == pytest.approx(auc_a - auc_b, abs=1e-9)
    assert result.z == pytest.approx(z, abs=1e-9)
    assert result.p_value == pytest.approx(p, abs=1e-9)
    half_width = 1.959963984540054 * result.difference / result.z
    assert result.ci_low == pytest.approx(result.difference - half_width, abs=1e-9)
    assert result.ci_high == pytest.approx(result.difference + half_width, abs=1e-9)


def test_delong_identical_scores_give_p_one() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 50)
    scores = rng.random(50)
    result = delong_test(y_true, scores, scores.copy())
    assert result == DeLongResult(
        auc_a=result.auc_a, auc_b=result.auc_a, difference=0.0, z=0.0, p_value=1.0, ci_low=0.0, ci_high=0.0
    )


def test_delong_clearly_different_classifiers() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 300)
    good = y_true * 2.0 + rng.normal(0, 1, 300)
    random = rng.normal(0, 1, 300)
    result = delong_test(y_true, good, random)
    assert result.difference > 0.3
    assert result.p_value < 1e-6
    assert result.ci_low > 0
    # swapping the classifiers flips the sign only
    swapped = delong_test(y_true, random, good)
    assert swapped.z == pytest.approx(-result.z)
    assert swapped.p_value == pytest.approx(result.p_value)


def test_delong_zero_variance_with_different_aucs() -> None:
    # a perfect and a constant classifier: no spread in either, yet AUCs 1 and 0.5
    y_true = np.array([0, 0, 0, 1, 1, 1])
    result = delong_test(y_true, y_true.astype(float), np.zeros(6))
    assert (result.auc_a, result.auc_b, result.z, result.p_value) == (1.0, 0.5, math.inf, 0.0)


def test_delong_input_errors() -> None:
    with pytest.raises(ValueError, match="one class"):
        delong_test(np.ones(5), np.random.rand(5), np.random.rand(5))
    with pytest.raises(ValueError, match="equal length"):
        delong_test(np.array([0, 1, 0, 1]), np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="binary"):
        delong_test(np.array([0, 1, 2, 1]), np.zeros(4), np.zeros(4))
