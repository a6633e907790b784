"""An input too small for a net fails its forward pass: the command line tries the data's size once, before a run."""

from collections.abc import Callable

import pytest
import torch
from torch import nn

from medcls.nets import CANet, TimmNet, TorchvisionNet, TutorialNet

# What a net raises for an input it cannot take: torch's shape errors, and timm's size assertions (ViTs).
INPUT_ERRORS = (RuntimeError, ValueError, AssertionError)


@pytest.mark.parametrize(
    ("build", "channels", "smallest", "error"),
    [(lambda: TutorialNet({"digit": 10}), 1, 28, RuntimeError),
     (lambda: TorchvisionNet({"dr": 5}, name="alexnet"), 3, 63, RuntimeError),
     (lambda: TorchvisionNet({"dr": 5}, name="vgg16"), 3, 32, RuntimeError),
     (lambda: TorchvisionNet({"dr": 5}, name="googlenet"), 3, 15, RuntimeError),
     (lambda: TorchvisionNet({"dr": 5}, name="inception_v3"), 3, 75, RuntimeError),
     (lambda: TimmNet({"dr": 5}, name="test_vit"), 3, 16, AssertionError)],
)  # fmt: skip
def test_an_input_below_the_smallest_size_fails_in_eval_mode(
    build: Callable[[], nn.Module], channels: int, smallest: int, error: type[Exception]
) -> None:
    with torch.device("meta"):  # shapes only: the errors are those of real tensors, without computing
        net = build().eval()
        assert error in INPUT_ERRORS
        with pytest.raises(error):
            net(torch.zeros(2, channels, smallest - 1, smallest - 1))
        out = net(torch.zeros(2, channels, smallest, smallest))
    logits = out if isinstance(out, torch.Tensor) else next(iter(out.values()))
    assert logits.shape[0] == 2


@pytest.mark.parametrize(
    "build",
    [lambda: TorchvisionNet({"dr": 5}, name="resnet18"), lambda: TimmNet({"dr": 5}, name="test_resnet"),
     lambda: CANet({"dr": 5, "dme": 3}, backbone="test_resnet", feature_dim=64)],
)  # fmt: skip
def test_nets_with_adaptive_pooling_take_any_size(build: Callable[[], nn.Module]) -> None:
    with torch.no_grad():
        assert build().eval()(torch.zeros(2, 3, 1, 1))["dr"].shape == (2, 5)


def test_a_wrong_number_of_channels_fails() -> None:
    with pytest.raises(RuntimeError, match="expected input.* to have 1 channels, but got 3"):
        TutorialNet({"digit": 10}).eval()(torch.zeros(2, 3, 28, 28))
