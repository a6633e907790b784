from datetime import timedelta

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from medcls.callbacks import ModelCheckpoint


@pytest.mark.parametrize(
    "options",
    [{}, {"monitor": "val/loss", "mode": "min"}, {"monitor": "val/dr/kappa", "mode": "max", "every_n_epochs": 2},
     {"every_n_train_steps": 100}, {"train_time_interval": timedelta(minutes=30)}],
)  # fmt: skip
def test_the_state_key_is_lightnings_so_that_checkpoints_of_either_resume_with_the_other(options: dict) -> None:
    ours = ModelCheckpoint(**options)
    assert ours.state_key == LightningModelCheckpoint(**options).state_key
    assert ours.state_key is ours.state_key  # formatted once
