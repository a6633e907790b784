"""The MNIST tutorial network of the lecture (nextjournal "pytorch-mnist")."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medcls.errors import ConfigError
from medcls.nets.checks import check_probability


class TutorialNet(nn.Module):
    """Two convolutions and two linear layers for 28x28 grey images (21,840 parameters for 10 classes).

    Conv(1->10, k5) -> max-pool 2 -> ReLU; Conv(10->20, k5) -> Dropout2d -> max-pool 2 -> ReLU;
    flatten 320 -> Linear(320->50) -> ReLU -> dropout -> Linear(50->classes) -> log-softmax.

    The output is log-probabilities, exactly as in the tutorial. The classifier's cross-entropy on them
    equals the tutorial's NLL loss, because log-softmax leaves log-probabilities unchanged.

    Args:
        tasks: Task name -> number of classes; exactly one task (e.g. ``{"digit": 10}``).
        dropout: Drop probability of both dropout layers.

    Raises:
        ConfigError: The data has several tasks, or ``dropout`` is no probability.
    """

    def __init__(self, tasks: Mapping[str, int], dropout: float = 0.5) -> None:
        super().__init__()
        if len(tasks) != 1:
            raise ConfigError(
                f"TutorialNet has one head, but the data has tasks {dict(tasks)}; use a net with a head per task, "
                "e.g. --model.net medcls.nets.TimmNet."
            )
        check_probability(dropout, "--model.net.dropout")
        (num_classes,) = tasks.values()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(dropout)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, num_classes)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        """Map a batch of 1x28x28 images to log-probabilities over the classes."""
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, self.dropout, training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)
