"""Speed checks of medcls; the numbers the issues and the README report.

    python scripts/benchmark.py mnist [--root data] [--epochs 3] [--repeats 2]
    python scripts/benchmark.py loader [--images 48] [--workers 2] [--epochs 3] [--cache-sizes 256 512] [--batch 64]
    python scripts/benchmark.py cache [--images 32] [--workers 2]
    python scripts/benchmark.py report [--images 50000] [--resamples 1000]
    python scripts/benchmark.py train [--nets canet timm] [--backbone resnet50] [--sizes 224 512] \
        [--batches 64 32] [--cache-sizes 256 576] [--precisions bf16-mixed 16-mixed] [--modes eager compiled]

``mnist``: wall time of the lecture's tutorial (TutorialNet, batch 64, SGD 0.01/0.5, a validation pass per
epoch) through ``medcls fit`` against a plain PyTorch loop over the same data loaders and network, and against the
same steps run by Lightning's Trainer with everything it adds switched off (its loop alone: the floor of any fit on
it). Without MNIST under ``--root``, it writes 60,000 + 10,000 synthetic printed digits in IDX files first.

``loader``: images per second of the fundus training loader (random resized crop 224, flips, normalisation)
from the preprocessing cache at each of ``--cache-sizes``, as JPEG and as a uint8 memmap: with the pipeline in
the ``--workers`` loader processes (``--data.transforms_on workers``), the reading side alone (cache read,
collate, and pinning where there is a GPU: what ``--data.transforms_on device`` leaves to the workers), and the
pipeline on whole batches on the device (the GPU if there is one, else the CPU); the first line decodes the
full-size 4288 x 2848 originals with the pipeline in the workers. Synthetic fundus images.

``cache``: images per second of building the preprocessing cache (``XRayPreprocessing``, 512 px, grey JPEG) from
2048 x 2048 12-bit radiographs in each file format: DICOM, RLE-compressed DICOM, 16-bit PNG, 16-bit TIFF;
synthetic radiographs, ``--workers`` build processes.

``train``: training throughput (images/s) and peak GPU memory of CANet on the ``--backbone`` trunk and of the
backbone itself (``--nets``) through ``medcls fit`` against a plain PyTorch loop over the same network, batches,
optimizer and precision (each of ``--precisions``: bf16 autocast, fp16 autocast with a gradient scaler, or fp32;
channels-last by default), eager and ``torch.compile``-d (``--modes``), on the GPU when there is one. The batches
are uint8 images of ``--cache-sizes`` as a cache serves them, augmented on the device in both loops (random
resized crop to the size, flips, normalisation), as ``--data.transforms_on device`` does.

The measuring lives in ``medcls.benchmarks``; this script only parses and prints.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import warnings
from pathlib import Path

import torch

from medcls.benchmarks.cache import cache_build_rates
from medcls.benchmarks.loader import loader_rates
from medcls.benchmarks.report import time_report
from medcls.benchmarks.training import AUTOCAST, RandomFundusBatches, TrainingCase, medcls_training, plain_training
from medcls.benchmarks.tutorial import time_tutorial
from medcls.console import console
from medcls.data.readers.mnist import MNIST_FILES
from medcls.synthetic.digits import write_synthetic_mnist

TUTORIAL = Path(__file__).parents[1] / "configs/mnist/tutorial.yaml"


def mnist(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root
        if not all((root / "MNIST" / "raw" / name).exists() for name in MNIST_FILES):
            root = Path(scratch) / "mnist"
            write_synthetic_mnist(root)
            print(f"no MNIST under {args.root}: using synthetic printed digits in {root}")
        times = time_tutorial(TUTORIAL, root, args.epochs, args.repeats)
    print(f"{args.epochs} tutorial epochs ({times.steps} steps) on {torch.get_num_threads()} threads, "
          f"best of {args.repeats}:")  # fmt: skip
    print(f"  plain PyTorch loop  {times.plain:7.1f} s")
    print(f"  Lightning alone     {times.lightning:7.1f} s   {times.lightning_ms_per_step:5.2f} ms per step over plain")
    print(f"  medcls fit          {times.framework:7.1f} s   {times.overhead_ms_per_step:5.2f} ms per step over plain")
    print(f"  ratio plain/medcls  {times.plain / times.framework:7.3f}")


def loader(args: argparse.Namespace) -> None:
    print(f"writing {args.images} synthetic 4288x2848 fundus JPEGs ...")
    originals, rates = loader_rates(args.images, args.workers, args.epochs, tuple(args.cache_sizes), args.batch)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "the CPU"
    pinned = "pinned" if torch.cuda.is_available() else "not pinned: no GPU"
    print(f"training loader, batch {args.batch}, {args.workers} workers, {torch.get_num_threads()} threads, img/s:")
    print(f"  full-size originals, pipeline in workers {originals:8.1f}")
    print(f"  {'cache':15s} {'pipeline in workers':>20s} {'reading only':>14s} {'pipeline on device':>19s}")
    for name, rate in rates.items():
        print(f"  {name:15s} {rate.workers_transform:20.1f} {rate.reading:14.1f} {rate.device_transform:19.1f}")
    print(f"reading only: cache read and collate ({pinned}); pipeline on device: on {device}")


def cache(args: argparse.Namespace) -> None:
    print(f"writing {args.images} synthetic 2048x2048 radiographs of each file kind ...")
    with tempfile.TemporaryDirectory() as scratch:
        builds = cache_build_rates(Path(scratch), args.images, args.workers)
    print(f"x-ray cache (512 px) built by {args.workers} workers:")
    for kind, build in builds.items():
        print(f"  {kind:10s} {build.images_per_second:8.1f} img/s")


def train(args: argparse.Namespace) -> None:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    warmup, steps = args.steps
    print(f"training on {device}, images augmented on the device from uint8 caches, channels_last "
          f"{not args.no_channels_last}")  # fmt: skip
    print(f"best of {args.repeats} alternating runs, steps {warmup}-{steps} timed")
    for net, precision, mode in itertools.product(args.nets, args.precisions, args.modes):
        case = TrainingCase(net, args.backbone, precision, not args.no_channels_last, compile=mode == "compiled")
        name = f"CANet-{args.backbone}" if net == "canet" else args.backbone
        for size, batch, cache_size in zip(args.sizes, args.batches, args.cache_sizes, strict=True):
            data = RandomFundusBatches(size, batch, steps, cache_size=cache_size)
            # Alternate the two and keep each one's fastest run: the host's load then hits both alike.
            plains, frameworks = [], []
            for _ in range(args.repeats):
                plains.append(plain_training(data, case, warmup))
                frameworks.append(medcls_training(size, batch, case, steps, warmup, cache_size))
            plain = max(plains, key=lambda result: result.images_per_second)
            framework = max(frameworks, key=lambda result: result.images_per_second)
            print(
                f"  {name} {precision} {mode}, {cache_size} -> {size} px, batch {batch}: plain "
                f"{plain.images_per_second:7.1f} img/s, medcls fit {framework.images_per_second:7.1f} img/s, ratio "
                f"{framework.images_per_second / plain.images_per_second:.3f}; peak GPU memory plain "
                f"{plain.peak_memory_gib:.1f} GiB, medcls {framework.peak_memory_gib:.1f} GiB"
            )


def report(args: argparse.Namespace) -> None:
    times = time_report(args.images, args.resamples)
    print(f"test report of {args.images} images (2 per patient), {args.resamples} bootstrap resamples:")
    for question, seconds in times.questions.items():
        print(f"  evaluate_task {question:14s} {seconds:7.2f} s")
    print(f"  evaluate_predictions, all    {times.report:7.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    mnist_parser = commands.add_parser("mnist", help="the tutorial through medcls fit vs a plain loop")
    mnist_parser.add_argument("--root", type=Path, default=Path("data"), help="folder holding MNIST/raw")
    mnist_parser.add_argument("--epochs", type=int, default=3)
    mnist_parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    mnist_parser.set_defaults(run=mnist)
    loader_parser = commands.add_parser("loader", help="fundus loader: pipeline in workers or on the device")
    loader_parser.add_argument("--images", type=int, default=48, help="full-size synthetic images to write")
    loader_parser.add_argument("--workers", type=int, default=2, help="loader (and cache build) processes")
    loader_parser.add_argument("--epochs", type=int, default=3, help="timed passes of 2048 images over each cache")
    loader_parser.add_argument("--cache-sizes", type=int, nargs="+", default=[256, 512], help="cached image sides")
    loader_parser.add_argument("--batch", type=int, default=64, help="images per batch")
    loader_parser.set_defaults(run=loader)
    cache_parser = commands.add_parser("cache", help="x-ray cache builds from DICOM, RLE DICOM, 16-bit PNG and TIFF")
    cache_parser.add_argument("--images", type=int, default=32, help="synthetic radiographs of each file kind")
    cache_parser.add_argument("--workers", type=int, default=2, help="cache build processes")
    cache_parser.set_defaults(run=cache)
    train_parser = commands.add_parser("train", help="training with device augmentation: medcls fit vs a plain loop")
    train_parser.add_argument("--nets", nargs="+", choices=["canet", "timm"], default=["canet", "timm"],
                              help="CANet on the backbone, or the backbone itself")  # fmt: skip
    train_parser.add_argument("--backbone", default="resnet50")
    train_parser.add_argument("--sizes", type=int, nargs="+", default=[224, 512], help="input sides")
    train_parser.add_argument("--batches", type=int, nargs="+", default=[64, 32], help="batch size per size")
    train_parser.add_argument("--cache-sizes", type=int, nargs="+", default=[256, 576], help="cached side per size")
    train_parser.add_argument("--modes", nargs="+", choices=["eager", "compiled"], default=["eager", "compiled"])
    train_parser.add_argument("--steps", type=int, nargs=2, default=[20, 120], help="warm-up steps, total steps")
    train_parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    train_parser.add_argument(
        "--precisions", nargs="+", choices=list(AUTOCAST), default=["bf16-mixed", "16-mixed"], help="each in turn"
    )
    train_parser.add_argument("--no-channels-last", action="store_true")
    train_parser.set_defaults(run=train)
    report_parser = commands.add_parser("report", help="the test report's metrics and bootstrap intervals")
    report_parser.add_argument("--images", type=int, default=50000, help="synthetic test images, 2 per patient")
    report_parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    report_parser.set_defaults(run=report)
    args = parser.parse_args()
    # The benchmarks give medcls its options themselves, not through sys.argv, as LightningCLI's warning fears.
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    args.run(args)


if __name__ == "__main__":
    with console("benchmark.py"):
        main()
