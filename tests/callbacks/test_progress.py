import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from medcls.callbacks import LineProgress
from medcls.callbacks.progress import BarProgress
from medcls.cli import main

TUTORIAL = Path(__file__).parents[2] / "configs/mnist/tutorial.yaml"


class Regression(LightningModule):
    """A linear regression on random numbers: batches to count, nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(12, 2)), batch_size=2)

    val_dataloader = train_dataloader


class Shown(Callback):
    """The count each bar shows after every batch (the callback runs after the bar's own)."""

    def __init__(self, bar: BarProgress) -> None:
        self.bar = bar
        self.train: list[int] = []
        self.validation: list[int] = []

    def on_train_batch_end(self, *_: object) -> None:
        self.train.append(self.bar.train_progress_bar.n)

    def on_validation_batch_end(self, trainer: Trainer, *_: object) -> None:
        if not trainer.sanity_checking:
            self.validation.append(self.bar.val_progress_bar.n)


@pytest.mark.parametrize(("interval", "train", "validation"), [
    (3600.0, [1, 1, 1, 1, 1, 6], [1, 1, 1, 1, 1, 6]),  # the first batch, then the last: each ends on its count
    (0.0, [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]),  # as Lightning's bar
])  # fmt: skip
def test_the_bar_redraws_at_most_every_interval_and_always_after_the_last_batch(
    tmp_path: Path, interval: float, train: list[int], validation: list[int]
) -> None:
    bar = BarProgress(interval=interval)
    shown = Shown(bar)
    Trainer(
        max_epochs=1, default_root_dir=tmp_path, logger=False, enable_checkpointing=False, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=[bar, shown],
    ).fit(Regression())  # fmt: skip
    assert shown.train == train and shown.validation == validation


@pytest.mark.parametrize(("terminal", "progress"), [(True, BarProgress), (False, LineProgress)])
def test_the_command_shows_bars_on_a_terminal_and_lines_elsewhere(
    terminal: bool, progress: type, mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
    cli = main(["--config", str(TUTORIAL), "--data.root", str(mnist_root), "--data.val_size", "100"], run=False)
    bars = [type(callback) for callback in cli.trainer.callbacks if isinstance(callback, (BarProgress, LineProgress))]
    assert bars == [progress] and cli.trainer.progress_bar_callback is not None
