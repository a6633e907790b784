"""Learning-rate schedules not in ``torch.optim.lr_scheduler`` in the form the recipes need."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class CosineToZero(LambdaLR):
    """Cosine decay from the initial learning rate to zero, without warm-up (CANet's per-iteration schedule).

    Use it with ``lr_scheduler_interval: step`` for a per-iteration decay.

    Args:
        optimizer: The optimizer whose learning rates decay.
        total_steps: Scheduler steps to reach zero; left empty, the Classifier sets the run's number of
            optimizer steps (or epochs, with ``lr_scheduler_interval: epoch``).
    """

    def __init__(self, optimizer: Optimizer, total_steps: int | None = None) -> None:
        self.total_steps = total_steps
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        """The learning rate at ``step`` relative to the initial one."""
        if self.total_steps is None:  # not known yet: before the first step
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
