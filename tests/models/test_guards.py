import pytest
import torch
from torch import nn

from medcls.errors import CheckpointError, ConfigError
from medcls.models import Classifier
from medcls.models.guards import check_checkpoint, check_input_shape, non_finite_weights
from medcls.nets import TutorialNet
from tests.models.test_classifier import TwoHeadNet


def test_non_finite_weights_are_named_and_integer_tensors_ignored() -> None:
    state = {"a": torch.ones(3), "b": torch.tensor([1.0, float("nan")]), "c": torch.tensor([-float("inf")]),
             "steps": torch.tensor([2**62])}  # fmt: skip
    assert non_finite_weights(state) == ["b", "c"]


def test_a_checkpoint_must_have_the_tasks_and_weights_of_the_model() -> None:
    net = nn.Linear(4, 2)
    weights = net.state_dict()
    check_checkpoint(
        {"hyper_parameters": {"tasks": {"dr": 2}}, "state_dict": weights}, {"dr": 2}, {"dr": ["0", "1"]}, weights
    )
    with pytest.raises(CheckpointError, match=r"trained for tasks \{'dr': 2\}, but the data has tasks \{'dme': 2\}"):
        check_checkpoint(
            {"hyper_parameters": {"tasks": {"dr": 2}}, "state_dict": weights}, {"dme": 2}, {"dme": ["0", "1"]}, weights
        )
    reshaped = {"weight": torch.zeros(3, 4), "bias": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"0 missing, 0 unexpected, 2 differently shaped"):
        check_checkpoint({"state_dict": reshaped}, {"dr": 2}, {"dr": ["0", "1"]}, weights)
    broken = {**weights, "bias": torch.tensor([0.0, float("nan")])}
    with pytest.raises(CheckpointError, match=r"NaN or infinite weights \(1 tensors, e.g. bias\)"):
        check_checkpoint({"state_dict": broken}, {"dr": 2}, {"dr": ["0", "1"]}, weights)


def test_a_net_that_cannot_take_the_images_is_refused_and_left_in_its_mode() -> None:
    net = TutorialNet({"digit": 10}).train()
    check_input_shape(net, (1, 28, 28))
    with pytest.raises(ConfigError, match=r"TutorialNet cannot take the data's 3 x 28 x 28 .*--model.net.in_chans"):
        check_input_shape(net, (3, 28, 28))
    assert net.training


def test_checkpoint_with_another_network_is_refused() -> None:
    model = Classifier(TutorialNet, {"digit": 10})
    other = Classifier(TwoHeadNet, {"digit": 10, "parity": 2})
    with pytest.raises(CheckpointError, match="trained for tasks"):
        model.on_load_checkpoint({"hyper_parameters": {"tasks": other.tasks}, "state_dict": other.state_dict()})
    with pytest.raises(CheckpointError, match=r"different network .*\(8 missing, 6 unexpected"):
        model.on_load_checkpoint({"hyper_parameters": {"tasks": model.tasks}, "state_dict": other.state_dict()})
    model.on_load_checkpoint({"hyper_parameters": {"tasks": model.tasks}, "state_dict": model.state_dict()})


def test_a_checkpoint_of_other_class_names_is_refused_naming_both() -> None:
    weights = {"w": torch.zeros(2)}
    saved = {"hyper_parameters": {"tasks": {"tb": 2}, "class_names": {"tb": ["normal", "tuberculosis"]}}}
    check_checkpoint(saved | {"state_dict": weights}, {"tb": 2}, {"tb": ["normal", "tuberculosis"]}, weights)
    with pytest.raises(
        CheckpointError, match=r"classes \{'tb': \['normal', 'tuberculosis'\]\}.*\['tuberculosis', 'normal'\]"
    ):
        check_checkpoint(saved | {"state_dict": weights}, {"tb": 2}, {"tb": ["tuberculosis", "normal"]}, weights)
    older = {"hyper_parameters": {"tasks": {"tb": 2}}, "state_dict": weights}  # saved before class names were kept
    check_checkpoint(older, {"tb": 2}, {"tb": ["normal", "tuberculosis"]}, weights)
