"""Speed checks of medcls against plain PyTorch; the numbers the issues and the README report.

    python scripts/benchmark.py mnist [--root data] [--epochs 3]

``mnist``: wall time of the lecture's tutorial (TutorialNet, batch 64, SGD 0.01/0.5, a validation pass per
epoch) through ``medcls fit`` against a plain PyTorch loop over the same data loaders and network. Without
MNIST under ``--root``, it writes 60,000 + 10,000 random digits of the real size in IDX files first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medcls.cli import main as medcls
from medcls.data.mnist import MNIST_FILES, MNISTDataModule, write_idx
from medcls.nets import TutorialNet

CONFIG = Path(__file__).parents[1] / "configs/mnist/tutorial.yaml"


def write_random_mnist(root: Path) -> None:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    for split, count in (("train", 60_000), ("t10k", 10_000)):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, count, dtype=np.uint8))


def plain_loop(root: Path, epochs: int) -> float:
    """The tutorial as plain PyTorch over the same loaders: train, then evaluate, each epoch."""
    start = time.perf_counter()
    torch.manual_seed(1)
    data = MNISTDataModule(root)
    data.prepare_data()
    data.setup("fit")
    net = TutorialNet(data.tasks)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
    for _ in range(epochs):
        net.train()
        for batch in data.train_dataloader():
            optimizer.zero_grad()
            F.nll_loss(net(batch["image"]), batch["digit"]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            for batch in data.val_dataloader():
                F.nll_loss(net(batch["image"]), batch["digit"])
    return time.perf_counter() - start


def through_medcls(root: Path, epochs: int, runs: Path) -> float:
    start = time.perf_counter()
    medcls(
        ["fit", "--config", str(CONFIG), "--data.root", str(root), "--data.download", "false",
         "--trainer.max_epochs", str(epochs), "--trainer.enable_progress_bar", "false",
         "--trainer.logger.init_args.save_dir", str(runs)]
    )  # fmt: skip
    return time.perf_counter() - start


def mnist(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root
        if not all((root / "MNIST" / "raw" / name).exists() for name in MNIST_FILES):
            root = Path(scratch) / "mnist"
            write_random_mnist(root)
            print(f"no MNIST under {args.root}: using random digits of the real size in {root}")
        plain = plain_loop(root, args.epochs)
        framework = through_medcls(root, args.epochs, Path(scratch) / "runs")
    print(f"{args.epochs} tutorial epochs on {torch.get_num_threads()} threads:")
    print(f"  plain PyTorch loop  {plain:7.1f} s")
    print(f"  medcls fit          {framework:7.1f} s")
    print(f"  ratio plain/medcls  {plain / framework:7.3f}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    mnist_parser = commands.add_parser("mnist", help="the tutorial through medcls fit vs a plain loop")
    mnist_parser.add_argument("--root", type=Path, default=Path("data"), help="folder holding MNIST/raw")
    mnist_parser.add_argument("--epochs", type=int, default=3)
    mnist_parser.set_defaults(run=mnist)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    cli()
