import math
from functools import partial

import pytest
import torch
from lightning.pytorch import Trainer

from medcls.models import Classifier
from medcls.models.schedules import CosineToZero
from tests.models.test_classifier import RandomImages, TrunkNet


def test_decays_along_a_cosine_to_zero() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = CosineToZero(optimizer, total_steps=4)
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.5 * 0.5 * (1 + math.cos(math.pi * min(s, 4) / 4)) for s in range(6)])


def test_classifier_sets_the_runs_optimizer_steps() -> None:
    model = Classifier(
        TrunkNet, {"dr": 5, "dme": 3}, optimizer=partial(torch.optim.SGD, lr=0.1),
        lr_scheduler=CosineToZero, lr_scheduler_interval="step",
    )  # fmt: skip
    trainer = Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(model, datamodule=RandomImages(batch_size=8))
    (config,) = trainer.lr_scheduler_configs
    assert config.scheduler.total_steps == 6 and config.interval == "step"
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0)
