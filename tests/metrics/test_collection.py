import pytest
import torch

from medcls.metrics.collection import JointAccuracy, task_metrics


def test_joint_accuracy_needs_every_task_right() -> None:
    metric = JointAccuracy()
    dr = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    dme = torch.tensor([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]])
    metric.update({"dr": dr, "dme": dme}, {"dr": torch.tensor([0, 1, 1, 1]), "dme": torch.tensor([1, 1, 2, 2])})
    # image 0: both right; 1: DME wrong; 2: DR wrong; 3: both right
    assert metric.compute() == pytest.approx(0.5)


def test_task_metrics_against_hand_computed_values() -> None:
    metrics = task_metrics(3, ordinal=True)
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    target = torch.tensor([0, 1, 2, 2])
    values = metrics(probabilities, target)
    assert values["accuracy"] == pytest.approx(0.75)
    # one-vs-rest AUCs: class 0 = 5/6 (its positive 0.8 ties one negative 0.8), class 1 = 1, class 2 = 3/4
    assert values["auc"] == pytest.approx((5 / 6 + 1 + 0.75) / 3, abs=1e-4)
    # quadratic kappa: predicted 0,1,2,0 vs true 0,1,2,2; one error of distance 2
    observed = torch.zeros(3, 3)
    for p, t in zip([0, 1, 2, 0], [0, 1, 2, 2], strict=True):
        observed[t, p] += 1
    weights = torch.tensor([[(i - j) ** 2 / 4 for j in range(3)] for i in range(3)])
    expected = torch.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    kappa = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert values["kappa"] == pytest.approx(kappa.item(), abs=1e-5)


def test_nominal_tasks_get_unweighted_kappa_and_unlabelled_images_are_left_out() -> None:
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    target = torch.tensor([0, 1, 2, 2, -1])  # the last image is unlabelled for this task
    values = task_metrics(3, ordinal=False, ignore_index=-1)(probabilities, target)
    # unweighted kappa of predicted 0,1,2,0 vs true 0,1,2,2: observed agreement 3/4, chance (1*2 + 1*1 + 2*1) / 16
    chance = 5 / 16
    assert values["kappa"] == pytest.approx((0.75 - chance) / (1 - chance), abs=1e-5)
    assert values["accuracy"] == pytest.approx(0.75)
    ordinal = task_metrics(3, ordinal=True, ignore_index=-1)(probabilities, target)
    assert abs(ordinal["kappa"].item() - values["kappa"].item()) > 1e-3


def test_joint_accuracy_counts_only_images_labelled_for_every_task() -> None:
    joint = JointAccuracy()
    probabilities = {"a": torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]]), "b": torch.eye(2)[[0, 1, 1]]}
    joint.update(probabilities, {"a": torch.tensor([0, -1, 0]), "b": torch.tensor([0, 1, 1])})
    assert joint.compute() == pytest.approx(0.5)  # of the two labelled images, the first is right on both
