"""The checkpoints every run has: Lightning's, with its state key formatted once."""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from medcls.callbacks.state_key import StateKeyOnce


class ModelCheckpoint(StateKeyOnce, LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same options, same state in the checkpoints), a little cheaper per step."""
