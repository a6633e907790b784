"""Speed checks of medcls; the numbers the issues and the README report.

    python scripts/benchmark.py mnist [--root data] [--epochs 3] [--repeats 2]
    python scripts/benchmark.py loader [--images 48] [--workers 2] [--epochs 3]
    python scripts/benchmark.py cache [--images 32] [--workers 2]
    python scripts/benchmark.py train [--backbone resnet50] [--sizes 224 512] [--batches 64 32] \
        [--precisions bf16-mixed 16-mixed]

``mnist``: wall time of the lecture's tutorial (TutorialNet, batch 64, SGD 0.01/0.5, a validation pass per
epoch) through ``medcls fit`` against a plain PyTorch loop over the same data loaders and network. Without
MNIST under ``--root``, it writes 60,000 + 10,000 synthetic printed digits in IDX files first.

``loader``: images per second of the fundus training loader (random resized crop 224, flips, normalisation)
reading the 512 px preprocessing cache as JPEG and as a uint8 memmap, against decoding the full-size
4288 x 2848 originals with the same transforms; synthetic fundus images, ``--workers`` loader processes.

``cache``: images per second of building the preprocessing cache (``XRayPreprocessing``, 512 px, grey JPEG) from
2048 x 2048 12-bit radiographs in each file format: DICOM, RLE-compressed DICOM, 16-bit PNG, 16-bit TIFF;
synthetic radiographs, ``--workers`` build processes.

``train``: CANet training throughput (images/s) and peak GPU memory through ``medcls fit`` against a plain
PyTorch loop over the same network, batches, optimizer and precision (each of ``--precisions``: bf16 autocast,
fp16 autocast with a gradient scaler, or fp32; channels-last by default), on the GPU when there is one.

The measuring lives in ``medcls.benchmarks``; this script only parses and prints.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch

from medcls.benchmarks.cache import cache_build_rates
from medcls.benchmarks.loader import loader_rates
from medcls.benchmarks.training import AUTOCAST, RandomFundusBatches, medcls_training, plain_training
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
    print(f"  medcls fit          {times.framework:7.1f} s")
    print(f"  ratio plain/medcls  {times.plain / times.framework:7.3f}")
    print(f"  framework per step  {times.overhead_ms_per_step:7.2f} ms")


def loader(args: argparse.Namespace) -> None:
    print(f"writing {args.images} synthetic 4288x2848 fundus JPEGs ...")
    rates, builds = loader_rates(args.images, args.workers, args.epochs)
    for cache_format, rate in builds.items():
        print(f"{cache_format} cache built at {rate:.1f} img/s")
    baseline = rates["full-size originals"]
    print(f"training loader, {args.workers} workers, {torch.get_num_threads()} threads:")
    for name, rate in rates.items():
        print(f"  {name:22s} {rate:8.1f} img/s  {rate / baseline:6.1f}x")


def cache(args: argparse.Namespace) -> None:
    print(f"writing {args.images} synthetic 2048x2048 radiographs of each file kind ...")
    with tempfile.TemporaryDirectory() as scratch:
        builds = cache_build_rates(Path(scratch), args.images, args.workers)
    print(f"x-ray cache (512 px) built by {args.workers} workers:")
    for kind, build in builds.items():
        print(f"  {kind:10s} {build.images_per_second:8.1f} img/s")


def train(args: argparse.Namespace) -> None:
    channels_last = not args.no_channels_last
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    warmup, steps = args.steps
    print(f"CANet-{args.backbone} training on {device}, channels_last {channels_last}")
    print(f"best of {args.repeats} alternating runs, steps {warmup}-{steps} timed")
    for precision in args.precisions:
        for size, batch in zip(args.sizes, args.batches, strict=True):
            data = RandomFundusBatches(size, batch, steps)
            # Alternate the two and keep each one's fastest run: the host's load then hits both alike.
            plains, frameworks = [], []
            for _ in range(args.repeats):
                plains.append(plain_training(data, args.backbone, warmup, precision, channels_last))
                frameworks.append(medcls_training(size, batch, args.backbone, steps, warmup, precision, channels_last))
            plain = max(plains, key=lambda result: result.images_per_second)
            framework = max(frameworks, key=lambda result: result.images_per_second)
            print(
                f"  {precision:10s} {size} px, batch {batch}: plain {plain.images_per_second:7.1f} img/s, medcls fit "
                f"{framework.images_per_second:7.1f} img/s, ratio "
                f"{framework.images_per_second / plain.images_per_second:.3f}; peak GPU memory plain "
                f"{plain.peak_memory_gib:.1f} GiB, medcls {framework.peak_memory_gib:.1f} GiB"
            )


def main() -> None:
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
    cache_parser = commands.add_parser("cache", help="x-ray cache builds from DICOM, RLE DICOM, 16-bit PNG and TIFF")
    cache_parser.add_argument("--images", type=int, default=32, help="synthetic radiographs of each file kind")
    cache_parser.add_argument("--workers", type=int, default=2, help="cache build processes")
    cache_parser.set_defaults(run=cache)
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
    # The benchmarks give medcls its options themselves, not through sys.argv, as LightningCLI's warning fears.
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    args.run(args)


if __name__ == "__main__":
    with console("benchmark.py"):
        main()
