import math
import warnings

import numpy as np
import pytest
import torch

from medcls.metrics import bootstrap
from medcls.metrics.bootstrap import Resampling, bootstrap_intervals, percentile_interval
from medcls.metrics.evaluation import TaskMetrics, evaluate_task
from medcls.metrics.report import evaluate_predictions
from medcls.metrics.thresholds import confusion_at


def leaning_task(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities leaning towards the true class, rounded to two decimals so that scores tie across classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    probabilities = rng.dirichlet(np.ones(num_classes), n)
    probabilities[np.arange(n), labels] += rng.random(n)
    return np.round(probabilities / probabilities.sum(1, keepdims=True), 2), labels


# ---------------------------------------------------------------- a straightforward loop, one resample at a time


def pairwise_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    if positive.all() or not positive.any():
        return math.nan
    diff = scores[positive][:, None] - scores[~positive][None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def loop_metrics(
    probabilities: np.ndarray, labels: np.ndarray, ordinal: bool, points: dict[str, float]
) -> dict[str, float]:
    """Every metric of evaluate_task on the drawn rows, written out per class with plain loops."""
    k = probabilities.shape[1]
    predictions = probabilities.argmax(1)
    values = {"accuracy": float(np.mean(predictions == labels))}
    present = [c for c in range(k) if (labels == c).any()]
    values["balanced_accuracy"] = np.mean([np.mean(predictions[labels == c] == c) for c in present])
    aucs = [pairwise_auc(labels == c, probabilities[:, c]) for c in range(k)]
    values["auc"] = aucs[1] if k == 2 else float(np.mean(aucs))
    if k > 2:
        values |= {f"auc_class_{c}": aucs[c] for c in range(k)}
    observed = np.array([[np.sum((labels == i) & (predictions == j)) for j in range(k)] for i in range(k)])
    weights = np.array([[(i - j) ** 2 if ordinal else float(i != j) for j in range(k)] for i in range(k)])
    expected = np.outer(observed.sum(1), observed.sum(0)) / len(labels)
    chance = (weights * expected).sum()
    values["kappa"] = 1 - (weights * observed).sum() / chance if chance > 0 else math.nan
    rates = {name: [] for name in ("precision", "recall", "f1", "specificity", "npv")}
    seen = []
    for c in range(k):
        tp = np.sum((predictions == c) & (labels == c))
        fp = np.sum((predictions == c) & (labels != c))
        fn = np.sum((predictions != c) & (labels == c))
        tn = len(labels) - tp - fp - fn
        for name, (numerator, denominator) in {
            "precision": (tp, tp + fp),
            "recall": (tp, tp + fn),
            "f1": (2 * tp, 2 * tp + fp + fn),
            "specificity": (tn, tn + fp),
            "npv": (tn, tn + fn),
        }.items():
            rates[name].append(numerator / denominator if denominator else 0.0)
        seen.append(tp + fp + fn > 0)
    for name, per_class in rates.items():
        values[name] = per_class[1] if k == 2 else float(np.mean(np.array(per_class)[seen]))
    for point, threshold in points.items():
        confusion = confusion_at(torch.from_numpy(probabilities[:, 1]), torch.from_numpy(labels), threshold)
        values |= {f"{point}/{rate}": confusion[rate] for rate in ("sensitivity", "specificity", "ppv", "npv", "f1")}
    return values


@pytest.mark.parametrize(
    ("num_classes", "ordinal", "points", "grouped"),
    [(5, True, {}, True), (4, False, {}, False), (2, True, {"youden": 0.5, "high_sensitivity": 0.2}, True)],
)
def test_every_resample_and_interval_is_that_of_a_loop_over_the_drawn_rows(
    num_classes: int, ordinal: bool, points: dict[str, float], grouped: bool
) -> None:
    probabilities, labels = leaning_task(40, num_classes, seed=num_classes)
    groups = np.arange(40) // 2 if grouped else None
    resampling = Resampling(40, groups, n_resamples=150, seed=7)
    metrics = TaskMetrics(probabilities, labels, operating_points=points, ordinal=ordinal)

    looped = [loop_metrics(probabilities[rows], labels[rows], ordinal, points) for rows in resampling.rows()]
    vectorised = {name: np.concatenate(list(chunks)) for name, chunks in _by_metric(metrics, resampling).items()}
    assert list(vectorised) == list(looped[0])
    for name, values in vectorised.items():
        expected = np.array([resample[name] for resample in looped], dtype=float)
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12, err_msg=name)  # NaN where NaN

    intervals = bootstrap_intervals({"task": metrics}, resampling)["task"]
    whole = loop_metrics(probabilities, labels, ordinal, points)
    for name, interval in intervals.items():
        expected = np.array([resample[name] for resample in looped], dtype=float)
        defined = expected[np.isfinite(expected)]
        assert interval.value == pytest.approx(whole[name], abs=1e-12), name
        assert interval.undefined == len(expected) - len(defined), name
        if interval.undefined <= 75:
            low, high = np.quantile(defined, [0.025, 0.975])
            assert (interval.ci_low, interval.ci_high) == pytest.approx((low, high), abs=1e-12), name


@pytest.mark.parametrize("num_classes", [2, 10])
def test_a_resample_gets_the_same_floats_alone_as_with_others(num_classes: int) -> None:
    # Bit for bit, so that the intervals do not depend on the chunking; 10 classes, one absent, for the macro means.
    probabilities, labels = leaning_task(300, num_classes, seed=3)
    labels[labels == num_classes - 1] = 0
    points = {"youden": 0.5} if num_classes == 2 else None
    metrics = TaskMetrics(probabilities, labels, operating_points=points, ordinal=False)
    counts = next(Resampling(300, n_resamples=64, seed=1).counts())
    together = metrics(counts)
    for r in range(0, 64, 9):
        alone = metrics(np.ascontiguousarray(counts[:, [r]]))
        for name, values in together.items():
            assert np.array_equal(alone[name], values[[r]], equal_nan=True), (name, r)


def _by_metric(metrics: TaskMetrics, resampling: Resampling) -> dict[str, list[np.ndarray]]:
    chunks: dict[str, list[np.ndarray]] = {}
    for counts in resampling.counts(chunk=40):  # several chunks, the last one shorter
        for name, values in metrics(counts).items():
            chunks.setdefault(name, []).append(values)
    return chunks


# ---------------------------------------------------------------- the resamples


def test_counts_are_the_rows_drawn_and_do_not_depend_on_the_chunks() -> None:
    groups = np.repeat(np.array(["p3", "p1", "p4", "p0", "p2"]), [2, 5, 1, 3, 4])
    np.random.default_rng(0).shuffle(groups)
    resampling = Resampling(15, groups, n_resamples=30, seed=2)
    rows = list(resampling.rows())
    counts = np.concatenate(list(resampling.counts()), axis=1)
    assert counts.shape == (15, 30) and counts.dtype == np.float64
    for r, drawn in enumerate(rows):
        assert np.array_equal(counts[:, r], np.bincount(drawn, minlength=15))
    for chunk in (1, 7, 30):
        assert np.array_equal(np.concatenate(list(resampling.counts(chunk)), axis=1), counts)


def test_grouped_resamples_draw_whole_groups() -> None:
    groups = np.repeat(np.arange(6), [1, 2, 3, 4, 2, 1])
    resampling = Resampling(13, groups, n_resamples=200, seed=0)
    counts = np.concatenate(list(resampling.counts()), axis=1)
    for g in range(6):
        # All images of a group are drawn equally often in each resample: the group was drawn whole.
        assert (counts[groups == g] == counts[groups == g][0]).all()
    drawn_groups = np.stack([counts[np.flatnonzero(groups == g)[0]] for g in range(6)])
    assert (drawn_groups.sum(0) == 6).all()  # as many groups as there are, with replacement
    assert len(np.unique(counts.sum(0))) > 1  # so the resamples' sizes vary


def test_resamples_are_the_seeded_draws_of_one_group_per_call() -> None:
    # The seeding of the per-resample loop that preceded the vectorised bootstrap: each resample is one call.
    rng = np.random.default_rng(11)
    expected = np.stack([rng.integers(0, 9, 9) for _ in range(25)])
    resampling = Resampling(9, n_resamples=25, seed=11)
    assert np.array_equal(np.concatenate(list(resampling.drawn(chunk=4))), expected)


def test_resampling_input_errors() -> None:
    with pytest.raises(ValueError, match="groups has 4 entries for 5 images"):
        Resampling(5, np.arange(4))
    with pytest.raises(ValueError, match="n_resamples must be positive"):
        Resampling(5, n_resamples=0)
    with pytest.raises(ValueError, match="empty"):
        Resampling(0)


# ---------------------------------------------------------------- intervals


def test_percentile_interval_skips_undefined_resamples_up_to_half() -> None:
    resampled = np.array([1.0, 2.0, np.nan, 3.0, np.inf, 4.0])
    interval = percentile_interval(2.5, resampled)
    assert interval.undefined == 2 and interval.n_resamples == 6 and not interval.mostly_undefined
    alpha = (1 - 0.95) / 2
    assert (interval.ci_low, interval.ci_high) == tuple(np.quantile([1.0, 2.0, 3.0, 4.0], [alpha, 1 - alpha]))
    assert interval.problem == "skipped 2 of 6 bootstrap resamples on which the metric is undefined"
    half = percentile_interval(1.0, np.array([1.0, np.nan]))
    assert half.ci_low == 1.0 and not half.mostly_undefined
    most = percentile_interval(1.0, np.array([1.0, np.nan, np.nan]))
    assert math.isnan(most.ci_low) and math.isnan(most.ci_high) and most.value == 1.0
    assert most.problem.startswith("no confidence interval: the metric is undefined on 2 of 3 bootstrap resamples")
    undefined = percentile_interval(math.nan, np.array([1.0, np.nan]))
    assert math.isnan(undefined.ci_low) and undefined.problem is None


def test_undefined_resamples_are_skipped_with_a_warning_naming_the_metric() -> None:
    # One positive in 12 images: about a third of the resamples miss it, where AUC and sensitivity are undefined.
    scores = np.linspace(0.9, 0.05, 12)
    labels = np.zeros(12, dtype=int)
    labels[0] = 1
    missing = sum(0 not in rows for rows in Resampling(12, n_resamples=200, seed=0).rows())
    assert 0 < missing < 100
    with pytest.warns(UserWarning) as caught:
        results = evaluate_task(np.stack([1 - scores, scores], 1), labels, operating_points={"p": 0.5}, n_resamples=200)
    messages = [str(warning.message) for warning in caught]
    skipped = f"skipped {missing} of 200 bootstrap resamples on which the metric is undefined"
    assert f"auc: {skipped}" in messages and f"p/sensitivity: {skipped}" in messages
    assert not any(message.startswith(("accuracy:", "p/specificity:")) for message in messages)
    assert results["auc"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}


def test_a_mostly_undefined_metric_keeps_its_value_without_an_interval() -> None:
    # Classes 1-3 once each among 33 images: the macro AUC needs all three drawn, which about a quarter of the
    # resamples do; each class alone is missing from about a third of them.
    labels = np.array([0] * 30 + [1, 2, 3])
    probabilities = np.eye(4)[labels] * 0.5 + np.random.default_rng(0).dirichlet(np.ones(4), 33) * 0.5
    with pytest.warns(UserWarning) as caught:
        results = evaluate_task(probabilities, labels, n_resamples=100)
    messages = [str(warning.message) for warning in caught]
    assert any(message.startswith("auc: no confidence interval: the metric is undefined on") for message in messages)
    assert any(message.startswith("auc_class_1: skipped") for message in messages)
    assert results["auc"]["value"] == 1.0 and math.isnan(results["auc"]["ci_low"])
    assert math.isnan(results["auc"]["ci_high"]) and not math.isnan(results["auc_class_1"]["ci_low"])


# ---------------------------------------------------------------- seeding


def report(seed: int) -> dict:
    dr, dr_labels = leaning_task(120, 5, seed=1)
    dme, dme_labels = leaning_task(120, 3, seed=2)
    return evaluate_predictions(
        {"dr": dr.astype(np.float32), "dme": dme.astype(np.float32)},
        {"dr": dr_labels, "dme": dme_labels},
        binary_views={"referable_dr": ("dr", 2)},
        operating_points={"referable_dr": {"youden": 0.45}},
        ordinal_tasks=["dr", "dme"],
        groups=np.arange(120) // 2,
        n_resamples=100,
        seed=seed,
    )


def test_the_same_seed_gives_the_same_report_and_another_seed_another() -> None:
    first = report(seed=5)
    assert report(seed=5) == first
    other = report(seed=6)
    assert other["dr"]["kappa"]["value"] == first["dr"]["kappa"]["value"]
    assert other["dr"]["kappa"]["ci_low"] != first["dr"]["kappa"]["ci_low"]
    assert other["joint_accuracy"]["ci_high"] != first["joint_accuracy"]["ci_high"] or (
        other["joint_accuracy"]["ci_low"] != first["joint_accuracy"]["ci_low"]
    )


def test_the_report_does_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = report(seed=3)
    monkeypatch.setattr(bootstrap, "_CHUNK_COUNTS", 120 * 7)  # chunks of 7 resamples, the last one of 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert report(seed=3) == whole


def test_the_report_is_each_question_evaluated_alone() -> None:
    full = report(seed=4)
    dr, dr_labels = leaning_task(120, 5, seed=1)
    alone = evaluate_task(dr.astype(np.float32), dr_labels, groups=np.arange(120) // 2, n_resamples=100, seed=4)
    assert full["dr"] == alone
