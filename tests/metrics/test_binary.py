import numpy as np
import pytest

from medcls.metrics.binary import binary_questions, binary_view, decisions
from medcls.metrics.evaluation import evaluate_task


def test_binary_view_of_referable_dr() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(5), 8)
    labels = np.array([0, 1, 2, 3, 4, 1, 2, 0])
    binary, binary_labels = binary_view(probabilities, labels, positive_from=2)
    assert binary.shape == (8, 2)
    np.testing.assert_allclose(binary[:, 1], probabilities[:, 2] + probabilities[:, 3] + probabilities[:, 4])
    np.testing.assert_allclose(binary[:, 0], probabilities[:, 0] + probabilities[:, 1])
    np.testing.assert_array_equal(binary_labels, [0, 0, 1, 1, 1, 0, 1, 0])
    # The view is a binary task: evaluate_task gives it the binary metrics and operating points.
    results = evaluate_task(binary, binary_labels, operating_points={"youden": 0.5}, n_resamples=10)
    assert "youden/sensitivity" in results and "auc_class_0" not in results


@pytest.mark.parametrize("positive_from", [0, 5])
def test_binary_view_needs_both_sides(positive_from: int) -> None:
    with pytest.raises(ValueError, match="positive_from"):
        binary_view(np.full((2, 5), 0.2), np.array([0, 4]), positive_from=positive_from)


def test_binary_view_stays_a_probability_despite_float32_rounding() -> None:
    # A float32 softmax output (seen in training) whose grades 1-4 sum to just above 1.
    probabilities = np.array([[3.2554012e-11, 1.0344551e-02, 9.8965538e-01, 1.3994926e-07, 1.2254961e-09]], np.float32)
    assert probabilities[:, 1:].sum(1)[0] > 1.0  # the rounding the view must absorb
    view, _ = binary_view(probabilities, np.array([2]), positive_from=1)
    assert view.min() >= 0.0 and view.max() <= 1.0


def test_decisions_at_the_operating_points_of_tasks_and_views() -> None:
    dr = np.array([[0.7, 0.2, 0.1, 0.0, 0.0], [0.1, 0.2, 0.3, 0.2, 0.2], [0.2, 0.3, 0.2, 0.2, 0.1]])
    tb = np.array([[0.8, 0.2], [0.4, 0.6], [0.5, 0.5]])
    points = {"referable_dr": {"youden": 0.5, "high_specificity": float("inf")}, "tb": {"youden": 0.5}, "gone": {}}
    got = decisions({"dr": dr, "tb": tb}, {"referable_dr": ("dr", 2)}, points)
    assert set(got) == {"referable_dr@youden", "referable_dr@high_specificity", "tb@youden"}
    assert got["referable_dr@youden"].tolist() == [0, 1, 1]  # P(grade >= 2) = 0.1, 0.7, 0.5
    assert got["referable_dr@high_specificity"].tolist() == [0, 0, 0]  # an infinite threshold calls none
    assert got["tb@youden"].tolist() == [0, 1, 1]


def test_binary_questions_leave_unlabelled_images_out() -> None:
    dr = np.eye(5)[[0, 2, 4, 1]]
    questions = binary_questions({"dr": dr}, {"dr": np.array([0, -1, 4, 1])}, {"referable_dr": ("dr", 2)})
    probabilities, labels = questions["referable_dr"]
    assert labels.tolist() == [0, 1, 0] and probabilities[:, 1].tolist() == [0, 1, 0]
