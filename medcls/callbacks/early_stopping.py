"""Early stopping that every run has, switched on by giving it a patience."""

from __future__ import annotations

from typing import Literal

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping

from medcls.callbacks.state_key import StateKeyOnce


class EarlyStopping(StateKeyOnce, LightningEarlyStopping):
    """Stops training when the monitored validation metric has not improved for ``patience`` validations.

    The metric and its direction are the checkpoint's (``--checkpoint.monitor``, ``--checkpoint.mode``), so
    that the run stops on the metric that also picks ``best.ckpt``.

    Args:
        patience: Validations without an improvement of more than ``min_delta`` before stopping;
            ``null`` (the default) never stops early.
        min_delta: The smallest change of the metric that counts as an improvement.
        monitor: The monitored metric (linked from ``checkpoint.monitor``).
        mode: ``min`` if lower is better, ``max`` if higher is better (linked from ``checkpoint.mode``).
    """

    def __init__(
        self,
        patience: int | None = None,
        min_delta: float = 0.0,
        monitor: str | None = "val/loss",
        mode: Literal["min", "max"] = "min",
    ) -> None:
        super().__init__(monitor=monitor or "", patience=patience or 0, min_delta=min_delta, mode=mode)
        self.enabled = patience is not None and monitor is not None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the metric after each validation, if enabled."""
        if self.enabled:
            super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Check the metric at the end of each epoch (for runs without validation), if enabled."""
        if self.enabled:
            super().on_train_epoch_end(trainer, pl_module)
