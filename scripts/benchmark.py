"""Speed checks of medcls; the numbers the issues and the README report.

    python scripts/benchmark.py mnist [--root data] [--epochs 3] [--repeats 2]
    python scripts/benchmark.py loader [--images 48] [--workers 2] [--epochs 3]
    python scripts/benchmark.py train [--backbone resnet50] [--sizes 224 512] [--batches 64 32] \
        [--precisions bf16-mixed 16-mixed]

``mnist``: wall time of the lecture's tutorial (TutorialNet, batch 64, SGD 0.01/0.5, a validation pass per
epoch) through ``medcls fit`` against a plain PyTorch loop over the same data loaders and network. Without
MNIST under ``--root``, it writes 60,000 + 10,000 synthetic printed digits in IDX files first.

``loader``: images per second of the fundus training loader (random resized crop 224, flips, normalisation)
reading the 512 px preprocessing cache as JPEG and as a uint8 memmap, against decoding the full-size
4288 x 2848 originals with the same transforms; synthetic fundus images, ``--workers`` loader processes.

``train``: CANet training throughput (images/s) and peak GPU memory through ``medcls fit`` against a plain
PyTorch loop over the same network, batches, optimizer and precision (each of ``--precisions``: bf16 autocast,
fp16 autocast with a gradient scaler, or fp32; channels-last by default), on the GPU when there is one. Both
read the same pre-made batches, so the ratio is what the framework costs. The first (warm-up) steps are left
out of both timings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from medcls.cli import main as medcls
from medcls.data.base import CachedImageDataset, TaskDataModule
from medcls.data.fundus import CacheSettings, build_cache
from medcls.data.idrid import read_idrid
from medcls.data.mnist import MNIST_FILES, MNISTDataModule, write_synthetic_mnist
from medcls.data.records import Record
from medcls.data.synthetic import write_idrid_tree
from medcls.data.transforms import default_train_transforms
from medcls.nets import CANet, TutorialNet

CONFIG = Path(__file__).parents[1] / "configs/mnist/tutorial.yaml"


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
            write_synthetic_mnist(root)
            print(f"no MNIST under {args.root}: using synthetic printed digits in {root}")
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
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
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


class RandomFundusBatches(TaskDataModule):
    """Random batches (image, dr, dme) made once and served as they are: no collation, no decoding.

    One epoch is ``steps`` batches, cycling through ``count`` distinct ones, so that no epoch-end work
    (checkpoints, logging) falls inside the timed steps.

    Args:
        size: Image side in pixels.
        batch_size: Images per batch.
        steps: Batches in the (only) epoch.
        count: Distinct batches.
    """

    tasks = {"dr": 5, "dme": 3}

    def __init__(self, size: int = 224, batch_size: int = 64, steps: int = 100, count: int = 4) -> None:
        super().__init__(batch_size)
        generator = torch.Generator().manual_seed(0)
        distinct = [
            {
                "image": torch.randn(batch_size, 3, size, size, generator=generator),
                "dr": torch.randint(0, 5, (batch_size,), generator=generator),
                "dme": torch.randint(0, 3, (batch_size,), generator=generator),
            }
            for _ in range(count)
        ]
        self.batches = [distinct[i % count] for i in range(steps)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None, pin_memory=torch.cuda.is_available())


AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16, "32-true": None}
"""Lightning's precision settings and the autocast type a plain loop uses for each."""


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> float:
    """GiB of GPU memory allocated at the most since the last reset; 0 without a GPU."""
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def plain_training(data: RandomFundusBatches, backbone: str, warmup: int, precision: str, channels_last: bool):
    """Images/s of CANet training after ``warmup`` steps as a plain PyTorch loop over ``data``, and peak GPU GiB."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    reset_peak_memory()
    net = CANet(data.tasks, backbone=backbone).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    autocast = AUTOCAST[precision]
    scaler = torch.amp.GradScaler(device.type, enabled=autocast is torch.float16)
    weights = {"dr": 1.0, "dme": 1.0, "dr_aux": 0.25, "dme_aux": 0.25}
    start = 0.0
    for step, batch in enumerate(data.train_dataloader()):
        if step == warmup:
            synchronize()
            start = time.perf_counter()
        image = batch["image"].to(device, non_blocking=True)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        labels = {task: batch[task].to(device, non_blocking=True) for task in data.tasks}
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = net(image)
            loss = sum(w * F.cross_entropy(logits[h], labels[h.removesuffix("_aux")]) for h, w in weights.items())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize()
    return (len(data.batches) - warmup) * data.batch_size / (time.perf_counter() - start), peak_memory()


class StepTimer(Callback):
    """Times the training steps from ``warmup`` to ``max_steps``; the results land in the class attributes.

    Args:
        warmup: Steps left out of the timing (start-up, cuDNN autotuning).
    """

    images_per_second = 0.0
    peak_memory = 0.0

    def __init__(self, warmup: int = 10) -> None:
        self.warmup = warmup
        self.start = 0.0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            synchronize()
            self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == trainer.max_steps:  # stop before the end-of-training checkpoint is written
            synchronize()
            images = (trainer.global_step - self.warmup) * trainer.datamodule.batch_size
            StepTimer.images_per_second = images / (time.perf_counter() - self.start)
            StepTimer.peak_memory = peak_memory()


def medcls_training(
    size: int, batch: int, backbone: str, steps: int, warmup: int, precision: str, channels_last: bool
) -> tuple[float, float]:
    """Images/s of CANet training steps ``warmup`` to ``steps`` through ``medcls fit``, and peak GPU GiB."""
    reset_peak_memory()
    with tempfile.TemporaryDirectory() as runs:
        medcls(
            ["fit", "--seed_everything", "0", "--data", "__main__.RandomFundusBatches",
             "--data.size", str(size), "--data.batch_size", str(batch), "--data.steps", str(steps),
             "--model", "medcls.models.Classifier", "--model.init_args.net", "medcls.nets.CANet",
             "--model.init_args.net.init_args.backbone", backbone,
             "--model.init_args.loss_weights", '{"dr_aux": 0.25, "dme_aux": 0.25}',
             "--model.init_args.optimizer", "torch.optim.Adam", "--model.init_args.optimizer.init_args.lr", "1e-4",
             "--model.init_args.channels_last", str(channels_last).lower(),
             "--trainer.precision", precision, "--trainer.benchmark", "true",
             "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--trainer.callbacks+=__main__.StepTimer", "--trainer.callbacks.warmup", str(warmup),
             "--trainer.logger.init_args.save_dir", runs]
        )  # fmt: skip
    return StepTimer.images_per_second, StepTimer.peak_memory


def train(args: argparse.Namespace) -> None:
    channels_last = not args.no_channels_last
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"CANet-{args.backbone} training on {device}, channels_last {channels_last}")
    print(f"best of {args.repeats} alternating runs, steps {args.steps[0]}-{args.steps[1]} timed")
    warmup, steps = args.steps
    for precision in args.precisions:
        for size, batch in zip(args.sizes, args.batches, strict=True):
            data = RandomFundusBatches(size, batch, steps)
            # Alternate the two and keep each one's fastest run: the host's load then hits both alike.
            plain, framework, plain_memory, framework_memory = 0.0, 0.0, 0.0, 0.0
            for _ in range(args.repeats):
                rate, plain_memory = plain_training(data, args.backbone, warmup, precision, channels_last)
                plain = max(plain, rate)
                rate, framework_memory = medcls_training(
                    size, batch, args.backbone, steps, warmup, precision, channels_last
                )
                framework = max(framework, rate)
            print(
                f"  {precision:10s} {size} px, batch {batch}: plain {plain:7.1f} img/s, medcls fit "
                f"{framework:7.1f} img/s, ratio {framework / plain:.3f}; peak GPU memory plain {plain_memory:.1f} "
                f"GiB, medcls {framework_memory:.1f} GiB"
            )


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
    train_parser = commands.add_parser("train", help="CANet training: medcls fit vs a plain PyTorch loop")
    train_parser.add_argument("--backbone", default="resnet50")
    train_parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512])
    train_parser.add_argument("--batches", type=int, nargs="+", default=[64, 32], help="batch size per size")
    train_parser.add_argument("--steps", type=int, nargs=2, default=[20, 120], help="warm-up steps, total steps")
    train_parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the fastest counts")
    train_parser.add_argument(
        "--precisions", nargs="+", choices=list(AUTOCAST), default=["bf16-mixed", "16-mixed"], help="each in turn"
    )
    train_parser.add_argument("--no-channels-last", action="store_true")
    train_parser.set_defaults(run=train)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    args.run(args)


if __name__ == "__main__":
    cli()
