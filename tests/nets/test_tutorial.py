import re

import pytest
import torch

from medcls.errors import ConfigError
from medcls.nets import TutorialNet


def test_has_the_tutorial_parameter_count() -> None:
    net = TutorialNet({"digit": 10})
    assert sum(p.numel() for p in net.parameters()) == 21_840
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters() if name.endswith("weight")}
    assert shapes == {"conv1.weight": (10, 1, 5, 5), "conv2.weight": (20, 10, 5, 5), "fc1.weight": (50, 320),
                      "fc2.weight": (10, 50)}  # fmt: skip


def test_outputs_log_probabilities_per_class() -> None:
    net = TutorialNet({"digit": 10}).eval()
    out = net(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))
    assert TutorialNet({"parity": 2})(torch.randn(3, 1, 28, 28)).shape == (3, 2)


def test_refuses_several_tasks() -> None:
    with pytest.raises(ConfigError, match=re.escape("one head, but the data has tasks {'dr': 5, 'dme': 3}; use a")):
        TutorialNet({"dr": 5, "dme": 3})


def test_refuses_a_dropout_that_is_no_probability() -> None:
    with pytest.raises(ConfigError, match=re.escape("--model.net.dropout must be a probability between 0 and 1")):
        TutorialNet({"digit": 10}, dropout=1.5)
