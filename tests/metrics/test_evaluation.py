import itertools
import math

import numpy as np
import pytest
from scipy.stats import rankdata

from medcls.metrics.evaluation import OPERATING_POINT_RATES, confusion_matrix, evaluate_task

ARGMAX_METRICS = ("accuracy", "balanced_accuracy", "kappa", "precision", "recall", "f1", "specificity", "npv")


def random_task(n: int, num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded probabilities that lean towards the true class, so every metric is informative but imperfect."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes  # every class present
    rng.shuffle(labels)
    probabilities = rng.dirichlet(np.ones(num_classes), n)
    probabilities[np.arange(n), labels] += rng.random(n)
    return probabilities / probabilities.sum(1, keepdims=True), labels


def values(probabilities: np.ndarray, labels: np.ndarray, **kwargs) -> dict[str, float]:
    results = evaluate_task(probabilities, labels, n_resamples=20, **kwargs)
    return {name: result["value"] for name, result in results.items()}


# ---------------------------------------------------------------- independent reference computations


def pairwise_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Share of (positive, negative) pairs ranked right, ties counting half."""
    diff = scores[positive][:, None] - scores[~positive][None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def reference_kappa(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """Quadratic weighted kappa written out from its definition with loops."""
    observed = np.zeros((num_classes, num_classes))
    for t, p in zip(labels, predictions, strict=True):
        observed[t, p] += 1
    n = len(labels)
    numerator = denominator = 0.0
    for i, j in itertools.product(range(num_classes), repeat=2):
        weight = (i - j) ** 2 / (num_classes - 1) ** 2
        numerator += weight * observed[i, j] / n
        denominator += weight * observed[i].sum() * observed[:, j].sum() / n**2
    return 1 - numerator / denominator


def reference_class_rates(labels: np.ndarray, predictions: np.ndarray, k: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of class k from counts."""
    tp = int(np.sum((predictions == k) & (labels == k)))
    fp = int(np.sum((predictions == k) & (labels != k)))
    fn = int(np.sum((predictions != k) & (labels == k)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@pytest.mark.parametrize("num_classes", [2, 3])
def test_metrics_match_independent_references(num_classes: int) -> None:
    probabilities, labels = random_task(90, num_classes, seed=num_classes)
    predictions = probabilities.argmax(1)
    got = values(probabilities, labels)

    rates = np.array([reference_class_rates(labels, predictions, k) for k in range(num_classes)])
    negatives = [(labels != k, predictions != k) for k in range(num_classes)]
    specificity = [np.sum(truly & called) / np.sum(truly) for truly, called in negatives]
    npv = [np.sum(truly & called) / np.sum(called) for truly, called in negatives]
    expected = {
        "n": 90,
        "accuracy": np.mean(predictions == labels),
        "balanced_accuracy": np.mean([np.mean(predictions[labels == k] == k) for k in range(num_classes)]),
        "kappa": reference_kappa(labels, predictions, num_classes),
    }
    if num_classes == 2:
        expected["auc"] = pairwise_auc(labels == 1, probabilities[:, 1])
        expected.update(precision=rates[1, 0], recall=rates[1, 1], f1=rates[1, 2])
        expected.update(specificity=specificity[1], npv=npv[1])
    else:
        class_aucs = [pairwise_auc(labels == k, probabilities[:, k]) for k in range(num_classes)]
        expected["auc"] = np.mean(class_aucs)
        expected.update({f"auc_class_{k}": auc for k, auc in enumerate(class_aucs)})
        expected.update(precision=rates[:, 0].mean(), recall=rates[:, 1].mean(), f1=rates[:, 2].mean())
        expected.update(specificity=np.mean(specificity), npv=np.mean(npv))
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_auc_handles_ties_like_scipy_midranks() -> None:
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    scores = np.array([0.2, 0.2, 0.5, 0.5, 0.9, 0.1, 0.5, 0.3])  # ties across classes
    probabilities = np.stack([1 - scores, scores], 1)
    positive = labels == 1
    m, n = positive.sum(), (~positive).sum()
    from_scipy_ranks = (rankdata(scores)[positive].sum() - m * (m + 1) / 2) / (m * n)
    assert values(probabilities, labels)["auc"] == pytest.approx(from_scipy_ranks)
    assert from_scipy_ranks == pytest.approx(pairwise_auc(positive, scores))


@pytest.mark.parametrize("num_classes", [2, 3])
def test_metrics_match_scikit_learn(num_classes: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    probabilities, labels = random_task(120, num_classes, seed=10 + num_classes)
    predictions = probabilities.argmax(1)
    got = values(probabilities, labels)
    average = "binary" if num_classes == 2 else "macro"
    if num_classes == 2:
        auc = metrics.roc_auc_score(labels, probabilities[:, 1])
    else:
        auc = metrics.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    expected = {
        "accuracy": metrics.accuracy_score(labels, predictions),
        "balanced_accuracy": metrics.balanced_accuracy_score(labels, predictions),
        "auc": auc,
        "kappa": metrics.cohen_kappa_score(labels, predictions, weights="quadratic"),
        "precision": metrics.precision_score(labels, predictions, average=average),
        "recall": metrics.recall_score(labels, predictions, average=average),
        "f1": metrics.f1_score(labels, predictions, average=average),
    }
    if num_classes > 2:
        per_class = metrics.roc_auc_score(labels, probabilities, multi_class="ovr", average=None)
        expected.update({f"auc_class_{k}": auc for k, auc in enumerate(per_class)})
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_nominal_kappa_is_cohens_unweighted_kappa() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    probabilities, labels = random_task(150, 4, seed=3)
    got = evaluate_task(probabilities, labels, ordinal=False, n_resamples=10)["kappa"]["value"]
    assert got == pytest.approx(metrics.cohen_kappa_score(labels, probabilities.argmax(1)), abs=1e-12)
    ordinal = evaluate_task(probabilities, labels, ordinal=True, n_resamples=10)["kappa"]["value"]
    assert ordinal == pytest.approx(metrics.cohen_kappa_score(labels, probabilities.argmax(1), weights="quadratic"))
    assert got != pytest.approx(ordinal)


def test_confusion_matrix_leaves_unlabelled_images_out() -> None:
    probabilities = np.eye(3)[[0, 1, 2, 2, 0]]
    matrix = confusion_matrix(probabilities, np.array([0, 1, 1, -1, 2]))
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]


def test_kappa_is_one_for_perfect_grading_and_penalises_distant_errors() -> None:
    labels = np.array([0, 1, 2, 3, 4] * 4)
    perfect = np.eye(5)[labels]
    assert values(perfect, labels)["kappa"] == pytest.approx(1.0)
    near, far = labels.copy(), labels.copy()
    near[0], far[0] = 1, 4  # one grade-0 image called 1 vs called 4
    assert values(np.eye(5)[near], labels)["kappa"] > values(np.eye(5)[far], labels)["kappa"]


# ---------------------------------------------------------------- operating points


def test_operating_point_sensitivity_and_specificity_are_not_swapped() -> None:
    # 3 positives all above 0.5, 7 negatives of which one (0.6) above: TP 3, FN 0, TN 6, FP 1.
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.4, 0.2, 0.1, 0.6])
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    results = evaluate_task(
        np.stack([1 - scores, scores], 1), labels, operating_points={"youden": 0.5}, n_resamples=200
    )
    assert results["youden/sensitivity"]["value"] == 1.0
    assert results["youden/specificity"]["value"] == pytest.approx(6 / 7)
    assert results["youden/ppv"]["value"] == pytest.approx(3 / 4)
    assert results["youden/npv"]["value"] == 1.0
    assert results["youden/f1"]["value"] == pytest.approx(6 / 7)
    assert results["youden/threshold"] == {"value": 0.5, "ci_low": 0.5, "ci_high": 0.5}


def test_each_operating_point_gets_every_rate() -> None:
    probabilities, labels = random_task(60, 2)
    results = evaluate_task(
        probabilities, labels, operating_points={"youden": 0.43, "high_sensitivity": 0.2}, n_resamples=50
    )
    for point in ("youden", "high_sensitivity"):
        for rate in (*OPERATING_POINT_RATES, "threshold"):
            assert f"{point}/{rate}" in results
    # A lower threshold calls more images positive.
    assert results["high_sensitivity/sensitivity"]["value"] >= results["youden/sensitivity"]["value"]
    assert results["high_sensitivity/specificity"]["value"] <= results["youden/specificity"]["value"]


def test_operating_points_need_a_binary_task() -> None:
    probabilities, labels = random_task(30, 3)
    with pytest.raises(ValueError, match="binary_view"):
        evaluate_task(probabilities, labels, operating_points={"youden": 0.5})


# ---------------------------------------------------------------- confidence intervals


def test_intervals_contain_the_value_and_are_seeded() -> None:
    probabilities, labels = random_task(150, 3)
    results = evaluate_task(probabilities, labels, n_resamples=200, seed=3)
    for name, result in results.items():
        assert result["ci_low"] <= result["value"] <= result["ci_high"], name
    assert evaluate_task(probabilities, labels, n_resamples=200, seed=3) == results
    other_seed = evaluate_task(probabilities, labels, n_resamples=200, seed=4)
    assert other_seed["accuracy"]["value"] == results["accuracy"]["value"]
    assert other_seed["auc"]["ci_low"] != results["auc"]["ci_low"]


def test_grouped_intervals_account_for_identical_images() -> None:
    # 40 distinct images, each present 5 times: resampling single images treats them as 200 independent ones
    # and gives too narrow an interval; resampling groups does not.
    probabilities, labels = random_task(40, 2, seed=1)
    probabilities, labels = np.repeat(probabilities, 5, axis=0), np.repeat(labels, 5)
    groups = np.repeat(np.arange(40), 5)
    plain = evaluate_task(probabilities, labels, n_resamples=300)
    grouped = evaluate_task(probabilities, labels, groups=groups, n_resamples=300)
    for name in ("accuracy", "auc", "kappa"):
        assert grouped[name]["value"] == plain[name]["value"]
        plain_width = plain[name]["ci_high"] - plain[name]["ci_low"]
        grouped_width = grouped[name]["ci_high"] - grouped[name]["ci_low"]
        assert grouped_width > 1.5 * plain_width, name


def test_undefined_metric_is_nan_not_an_error() -> None:
    # A test set with one class only: AUC is undefined, accuracy is not.
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    results = evaluate_task(probabilities, np.zeros(3, dtype=int), n_resamples=20)
    assert all(math.isnan(results["auc"][key]) for key in ("value", "ci_low", "ci_high"))
    assert results["accuracy"]["value"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- inputs and binary view


@pytest.mark.parametrize(
    ("probabilities", "labels"),
    [
        (np.full((4, 1), 1.0), np.zeros(4, dtype=int)),  # one class
        (np.full((4, 2), 0.5), np.zeros(3, dtype=int)),  # length mismatch
        (np.full((4, 2), 0.5), np.array([0, 1, 2, 0])),  # label out of range
        (np.full((4, 2), 0.5), np.array([0, 1, 0.5, 0])),  # not a class index
        (np.full((4, 2), np.nan), np.zeros(4, dtype=int)),  # NaN
    ],
)
def test_invalid_inputs_are_rejected(probabilities: np.ndarray, labels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        evaluate_task(probabilities, labels, n_resamples=10)


def test_groups_must_match_the_images() -> None:
    probabilities, labels = random_task(10, 2)
    with pytest.raises(ValueError, match="groups"):
        evaluate_task(probabilities, labels, groups=np.arange(9), n_resamples=10)


def test_specificity_and_npv_of_the_argmax_predictions() -> None:
    # Binary: TP 3, FN 0, FP 1, TN 6 -> sensitivity 1, specificity 6/7, NPV 1.
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    positive = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.1, 0.2, 0.4])
    result = evaluate_task(np.stack([1 - positive, positive], 1), labels, n_resamples=20)
    assert result["recall"]["value"] == 1.0 and result["specificity"]["value"] == pytest.approx(6 / 7)
    assert result["npv"]["value"] == 1.0 and result["precision"]["value"] == pytest.approx(3 / 4)
    # Three classes: macro one-vs-rest, computed here from the confusion matrix by hand.
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0, 2])
    result = evaluate_task(np.eye(3)[predicted] * 0.8 + 0.2 / 3, labels, n_resamples=20)
    specificity, npv = [], []
    for k in range(3):
        tn = np.sum((labels != k) & (predicted != k))
        specificity.append(tn / np.sum(labels != k))
        npv.append(tn / np.sum(predicted != k))
    assert result["specificity"]["value"] == pytest.approx(np.mean(specificity))
    assert result["npv"]["value"] == pytest.approx(np.mean(npv))
