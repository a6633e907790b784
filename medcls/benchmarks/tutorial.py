"""The lecture's MNIST tutorial through ``medcls fit`` against a plain PyTorch loop over the same loaders and net."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

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
    """

    plain: float
    framework: float
    steps: int

    @property
    def overhead_ms_per_step(self) -> float:
        """What medcls costs per training step beyond the plain loop, in milliseconds."""
        return 1000 * (self.framework - self.plain) / self.steps


def time_tutorial(config: Path, root: Path, epochs: int, repeats: int) -> TutorialTimes:
    """Time ``epochs`` of the tutorial both ways, alternating ``repeats`` times and keeping each one's fastest run.

    Alternating makes background load hit both alike.

    Args:
        config: The tutorial's config (``configs/mnist/tutorial.yaml``), whose net and optimizer the plain loop copies.
        root: Folder holding ``MNIST/raw``.
        epochs: Epochs of each run (each with a validation pass).
        repeats: Runs of each.
    """
    plain, framework = float("inf"), float("inf")
    with tempfile.TemporaryDirectory() as runs:
        for _ in range(repeats):
            seconds, steps = plain_loop(root, epochs)
            plain = min(plain, seconds)
            framework = min(framework, through_medcls(config, root, epochs, Path(runs)))
    return TutorialTimes(plain, framework, steps)


def plain_loop(root: Path, epochs: int) -> tuple[float, int]:
    """The tutorial as plain PyTorch over medcls' loaders: train, then evaluate, each epoch; seconds and steps."""
    start = time.perf_counter()
    torch.manual_seed(1)
    data = MNISTDataModule(root)
    data.prepare_data()
    data.setup("fit")
    net = TutorialNet(data.tasks)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
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
