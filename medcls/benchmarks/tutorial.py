"""The MNIST tutorial through ``medcls fit``, against a plain PyTorch loop and Lightning's bare loop, same data."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor

from medcls.cli import main as medcls
from medcls.data.mnist import MNISTDataModule
from medcls.nets import TutorialNet


@dataclass(frozen=True)
class TutorialTimes:
    """Wall times of the tutorial, the fastest of each.

    Attributes:
        plain: Seconds of the plain PyTorch loop.
        framework: Seconds of ``medcls fit``.
        steps: Training steps of each run.
        lightning: Seconds of Lightning's own loop with nothing of medcls (:func:`bare_lightning`): the floor of any
            ``fit`` on Lightning's Trainer.
    """

    plain: float
    framework: float
    steps: int
    lightning: float = float("nan")

    @property
    def overhead_ms_per_step(self) -> float:
        """What ``medcls fit`` costs per training step beyond the plain loop, in milliseconds."""
        return 1000 * (self.framework - self.plain) / self.steps

    @property
    def lightning_ms_per_step(self) -> float:
        """What Lightning's own loop costs per training step beyond the plain loop, in milliseconds."""
        return 1000 * (self.lightning - self.plain) / self.steps


def time_tutorial(config: Path, root: Path, epochs: int, repeats: int) -> TutorialTimes:
    """Time ``epochs`` of the tutorial three ways, alternating ``repeats`` times and keeping each one's fastest run.

    The plain loop, Lightning's bare loop and ``medcls fit``; alternating makes background load hit all alike.

    Args:
        config: The tutorial's config (``configs/mnist/tutorial.yaml``), whose net and optimizer the plain loop copies.
        root: Folder holding ``MNIST/raw``.
        epochs: Epochs of each run (each with a validation pass).
        repeats: Runs of each.
    """
    plain = lightning = framework = float("inf")
    with tempfile.TemporaryDirectory() as runs:
        for _ in range(repeats):
            seconds, steps = plain_loop(root, epochs)
            plain = min(plain, seconds)
            lightning = min(lightning, bare_lightning(root, epochs))
            framework = min(framework, through_medcls(config, root, epochs, Path(runs)))
    return TutorialTimes(plain, framework, steps, lightning)


def plain_loop(root: Path, epochs: int) -> tuple[float, int]:
    """The tutorial as plain PyTorch over medcls' loaders: train, then evaluate, each epoch; seconds and steps."""
    start = time.perf_counter()
    data = _seeded_tutorial_data(root)
    net = TutorialNet(data.tasks)
    optimizer = _tutorial_optimizer(net)
    steps = 0
    for _ in range(epochs):
        net.train()
        for batch in data.train_dataloader():
            optimizer.zero_grad()
            F.nll_loss(net(batch["image"]), batch["digit"]).backward()
            optimizer.step()
            steps += 1
        net.eval()
        with torch.no_grad():
            for batch in data.val_dataloader():
                F.nll_loss(net(batch["image"]), batch["digit"])
    return time.perf_counter() - start, steps


def _seeded_tutorial_data(root: Path) -> MNISTDataModule:
    """The tutorial's data, set up for fitting, after seeding torch as the tutorial's config does."""
    torch.manual_seed(1)
    data = MNISTDataModule(root)
    data.prepare_data()
    data.setup("fit")
    return data


def _tutorial_optimizer(net: torch.nn.Module) -> torch.optim.Optimizer:
    """The tutorial config's optimizer: SGD, learning rate 0.01, momentum 0.5."""
    return torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)


class _BareTutorial(LightningModule):
    """The plain loop's steps as a LightningModule: nothing but the net, its loss and its optimizer."""

    def __init__(self, tasks: dict[str, int]) -> None:
        super().__init__()
        self.net = TutorialNet(tasks)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return F.nll_loss(self.net(batch["image"]), batch["digit"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        F.nll_loss(self.net(batch["image"]), batch["digit"])

    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        return batch  # on the CPU already, as in the plain loop

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return _tutorial_optimizer(self.net)


def bare_lightning(root: Path, epochs: int) -> float:
    """Seconds of the plain loop's steps run by Lightning's Trainer with all it adds switched off.

    No logger, checkpoints, progress output, model summary or sanity check: Lightning's own loop, hooks and optimizer
    closure alone, which any ``fit`` on its Trainer pays.
    """
    start = time.perf_counter()
    data = _seeded_tutorial_data(root)
    trainer = Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(_BareTutorial(data.tasks), data.train_dataloader(), data.val_dataloader())
    return time.perf_counter() - start


def through_medcls(config: Path, root: Path, epochs: int, runs: Path) -> float:
    """Seconds of ``medcls fit`` of the tutorial's config, its runs written under ``runs``.

    The fit runs as a user's does, progress included: tqdm's bars where the output is a terminal, lines where not.
    """
    start = time.perf_counter()
    medcls(
        ["fit", "--config", str(config), "--data.root", str(root), "--data.download", "false",
         "--trainer.max_epochs", str(epochs), "--trainer.logger.init_args.save_dir", str(runs)]
    )  # fmt: skip
    return time.perf_counter() - start
