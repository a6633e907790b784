"""Speed checks of medcls; the numbers the issues and the README report.

    python scripts/benchmark.py mnist [--root data] [--epochs 3] [--repeats 2]
    python scripts/benchmark.py loader [--images 48] [--workers 2] [--epochs 3]

``mnist``: wall time of the lecture's tutorial (TutorialNet, batch 64, SGD 0.01/0.5, a validation pass per
epoch) through ``medcls fit`` against a plain PyTorch loop over the same data loaders and network. Without
MNIST under ``--root``, it writes 60,000 + 10,000 random digits of the real size in IDX files first.

``loader``: images per second of the fundus training loader (random resized crop 224, flips, normalisation)
reading the 512 px preprocessing cache as JPEG and as a uint8 memmap, against decoding the full-size
4288 x 2848 originals with the same transforms; synthetic fundus images, ``--workers`` loader processes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from medcls.cli import main as medcls
from medcls.data.base import CachedImageDataset
from medcls.data.fundus import CacheSettings, build_cache
from medcls.data.idrid import read_idrid
from medcls.data.mnist import MNIST_FILES, MNISTDataModule, write_idx
from medcls.data.records import Record
from medcls.data.synthetic import write_idrid_tree
from medcls.data.transforms import default_train_transforms
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
        # Alternate the two and keep each one's fastest run: background load then hits both alike.
        plain, framework = float("inf"), float("inf")
        for _ in range(args.repeats):
            plain = min(plain, plain_loop(root, args.epochs))
            framework = min(framework, through_medcls(root, args.epochs, Path(scratch) / "runs"))
    print(f"{args.epochs} tutorial epochs on {torch.get_num_threads()} threads, best of {args.repeats}:")
    print(f"  plain PyTorch loop  {plain:7.1f} s")
    print(f"  medcls fit          {framework:7.1f} s")
    print(f"  ratio plain/medcls  {plain / framework:7.3f}")


class Originals(Dataset):
    """The uncached baseline: decode each full-size original, then the same transforms."""

    def __init__(self, records: list[Record], transform: v2.Compose) -> None:
        self.records, self.transform = records, transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        with Image.open(self.records[index].path) as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
        return {"image": self.transform(pixels), **self.records[index].labels}


def images_per_second(dataset: Dataset, workers: int, epochs: int) -> float:
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    next(iter(loader))  # start the workers outside the clock
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    return epochs * len(dataset) / (time.perf_counter() - start)


def loader(args: argparse.Namespace) -> None:
    transform = v2.Compose(default_train_transforms(224))
    with tempfile.TemporaryDirectory() as scratch:
        print(f"writing {args.images} synthetic 4288x2848 fundus JPEGs ...")
        tree = write_idrid_tree(Path(scratch), train=args.images, test=1, size=(4288, 2848), seed=0)
        records = read_idrid(tree)["train"]
        rates = {"full-size originals": images_per_second(Originals(records, transform), args.workers, 1)}
        for cache_format in ("jpeg", "memmap"):
            settings = CacheSettings(size=512, format=cache_format)
            start = time.perf_counter()
            cache = build_cache([r.path for r in records], Path(scratch) / "cache", settings, workers=args.workers)
            print(f"{cache_format} cache built at {len(records) / (time.perf_counter() - start):.1f} img/s")
            dataset = CachedImageDataset(records, cache, transform, ["dr", "dme"])
            rates[f"512 px {cache_format} cache"] = images_per_second(dataset, args.workers, args.epochs)
    baseline = rates["full-size originals"]
    print(f"training loader, {args.workers} workers, {torch.get_num_threads()} threads:")
    for name, rate in rates.items():
        print(f"  {name:22s} {rate:8.1f} img/s  {rate / baseline:6.1f}x")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    mnist_parser = commands.add_parser("mnist", help="the tutorial through medcls fit vs a plain loop")
    mnist_parser.add_argument("--root", type=Path, default=Path("data"), help="folder holding MNIST/raw")
    mnist_parser.add_argument("--epochs", type=int, default=3)
    mnist_parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    mnist_parser.set_defaults(run=mnist)
    loader_parser = commands.add_parser("loader", help="fundus loader over each cache format vs full-size decode")
    loader_parser.add_argument("--images", type=int, default=48, help="full-size synthetic images to write")
    loader_parser.add_argument("--workers", type=int, default=2, help="loader (and cache build) processes")
    loader_parser.add_argument("--epochs", type=int, default=3, help="passes over the cached images")
    loader_parser.set_defaults(run=loader)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    cli()
