"""Training throughput and peak GPU memory through ``medcls fit`` against a plain PyTorch loop.

Both read the same pre-made batches with the same network, optimizer and precision, so the ratio is what the
framework costs. The first (warm-up) steps are left out of both timings. The batches are either ready network
input or, as ``--data.transforms_on device`` serves them, cached uint8 images that both loops augment on the device
with the same :class:`~medcls.data.batch_transforms.BatchPipeline`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader

from medcls.cli import main as medcls
from medcls.data.base import TaskDataModule
from medcls.data.batch_transforms import BatchPipeline
from medcls.data.transforms import default_train_transforms
from medcls.nets import CANet, TimmNet

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16, "32-true": None}
"""Lightning's precision settings and the autocast type a plain loop uses for each."""

LOSS_WEIGHTS = {"dr": 1.0, "dme": 1.0, "dr_aux": 0.25, "dme_aux": 0.25}
"""The heads (CANet's; a timm net has the first two) and their loss weights, in both loops."""

NETS = {"canet": CANet, "timm": TimmNet}
"""The nets benchmarked: CANet on a timm trunk, or the timm model itself with a linear head per task."""


@dataclass(frozen=True)
class TrainingCase:
    """What is trained, and how.

    Attributes:
        net: ``canet`` (CANet on the ``backbone`` trunk) or ``timm`` (the ``backbone`` with a head per task).
        backbone: A timm model name.
        precision: A Lightning precision (``bf16-mixed``, ``16-mixed``, ``32-true``).
        channels_last: Channels-last memory format for the net and its input.
        compile: ``torch.compile`` the net.
    """

    net: Literal["canet", "timm"] = "canet"
    backbone: str = "resnet50"
    precision: str = "bf16-mixed"
    channels_last: bool = True
    compile: bool = False

    def build(self, tasks: dict[str, int]) -> nn.Module:
        """The net, as the plain loop trains it."""
        return CANet(tasks, backbone=self.backbone) if self.net == "canet" else TimmNet(tasks, name=self.backbone)

    def net_options(self) -> list[str]:
        """The same net, as options of ``medcls fit``."""
        option = "backbone" if self.net == "canet" else "name"
        return ["--model.init_args.net", f"medcls.nets.{NETS[self.net].__name__}",
                f"--model.init_args.net.init_args.{option}", self.backbone]  # fmt: skip


@dataclass(frozen=True)
class Throughput:
    """Training speed of one loop.

    Attributes:
        images_per_second: Images trained on per second, warm-up steps left out.
        peak_memory_gib: GiB of GPU memory allocated at the most; 0 without a GPU.
    """

    images_per_second: float
    peak_memory_gib: float


class RandomFundusBatches(TaskDataModule):
    """Random batches (image, dr, dme) made once and served as they are: no collation, no decoding.

    One epoch is ``steps`` batches, cycling through ``count`` distinct ones, so that no epoch-end work
    (checkpoints, logging) falls inside the timed steps.

    Args:
        size: Side in pixels of the images the net gets.
        batch_size: Images per batch.
        steps: Batches in the (only) epoch.
        count: Distinct batches.
        cache_size: Serve uint8 images of this side, batch x height x width x channels as a cache stores them,
            and augment them on the device after the transfer (random resized crop to ``size``, flips,
            normalisation), as ``--data.transforms_on device`` does; default: ready float images of ``size``.
    """

    tasks = {"dr": 5, "dme": 3}

    def __init__(
        self, size: int = 224, batch_size: int = 64, steps: int = 100, count: int = 4, cache_size: int | None = None
    ) -> None:
        super().__init__(batch_size)
        generator = torch.Generator().manual_seed(0)

        def image() -> torch.Tensor:
            if cache_size is None:
                return torch.randn(batch_size, 3, size, size, generator=generator)
            return torch.randint(0, 256, (batch_size, cache_size, cache_size, 3), generator=generator,
                                 dtype=torch.uint8)  # fmt: skip

        distinct = [
            {
                "image": image(),
                "dr": torch.randint(0, 5, (batch_size,), generator=generator),
                "dme": torch.randint(0, 3, (batch_size,), generator=generator),
            }
            for _ in range(count)
        ]
        self.size = size
        self.batches = [distinct[i % count] for i in range(steps)]
        self.augmentation = None if cache_size is None else BatchPipeline(default_train_transforms(size), "size")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Three channels of ``size`` x ``size``."""
        return (3, self.size, self.size)

    def class_counts(self, task: str) -> torch.Tensor:
        """Images per class of ``task`` in the batches of an epoch."""
        labels = torch.cat([batch[task] for batch in self.batches])
        return torch.bincount(labels, minlength=self.tasks[task]).float()

    def train_dataloader(self) -> DataLoader:
        """The batches as they are, in order."""
        return DataLoader(self.batches, batch_size=None, pin_memory=torch.cuda.is_available())

    def to_net_input(self, images: torch.Tensor) -> torch.Tensor:
        """Cached uint8 images (B x H x W x C) on the device -> the net's input; ready input as it is."""
        return images if self.augmentation is None else self.augmentation(images.permute(0, 3, 1, 2))

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:  # noqa: D102
        return {**batch, "image": self.to_net_input(batch["image"])}


class StepTimer(Callback):
    """Times the training steps from ``warmup`` to the trainer's ``max_steps``; the result is in :attr:`throughput`.

    Args:
        warmup: Steps left out of the timing (start-up, cuDNN autotuning).
    """

    def __init__(self, warmup: int = 10) -> None:
        self.warmup = warmup
        self.start = 0.0
        self.throughput: Throughput | None = None

    def on_train_batch_start(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.warmup:
            synchronize()
            self.start = time.perf_counter()

    def on_train_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == trainer.max_steps:  # stop before the end-of-training checkpoint is written
            synchronize()
            images = (trainer.global_step - self.warmup) * trainer.datamodule.batch_size
            self.throughput = Throughput(images / (time.perf_counter() - self.start), peak_memory())


def synchronize() -> None:
    """Wait for the GPU's queued work, if there is a GPU."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak_memory() -> None:
    """Start a new peak of GPU memory, if there is a GPU."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> float:
    """GiB of GPU memory allocated at the most since the last reset; 0 without a GPU."""
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def plain_training(data: RandomFundusBatches, case: TrainingCase, warmup: int) -> Throughput:
    """The case's training as a plain PyTorch loop over ``data``, timed after ``warmup`` steps."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    reset_peak_memory()
    net = case.build(data.tasks).to(device)
    if case.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if case.compile:
        net.compile()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    autocast = AUTOCAST[case.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=autocast is torch.float16)
    start = 0.0
    for step, batch in enumerate(data.train_dataloader()):
        if step == warmup:
            synchronize()
            start = time.perf_counter()
        image = data.to_net_input(batch["image"].to(device, non_blocking=True))
        if case.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        labels = {task: batch[task].to(device, non_blocking=True) for task in data.tasks}
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = net(image)
            loss = sum(
                LOSS_WEIGHTS[h] * F.cross_entropy(out, labels[h.removesuffix("_aux")]) for h, out in logits.items()
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronize()
    return Throughput((len(data.batches) - warmup) * data.batch_size / (time.perf_counter() - start), peak_memory())


def medcls_training(
    size: int, batch: int, case: TrainingCase, steps: int, warmup: int, cache_size: int | None = None
) -> Throughput:
    """The case's training steps ``warmup`` to ``steps`` through ``medcls fit`` on :class:`RandomFundusBatches`."""
    reset_peak_memory()
    aux_weights = ["--model.init_args.loss_weights", '{"dr_aux": 0.25, "dme_aux": 0.25}'] if case.net == "canet" else []
    cached = [] if cache_size is None else ["--data.cache_size", str(cache_size)]
    with tempfile.TemporaryDirectory() as runs:
        cli = medcls(
            ["fit", "--seed_everything", "0", "--data", f"{__name__}.RandomFundusBatches",
             "--data.size", str(size), "--data.batch_size", str(batch), "--data.steps", str(steps), *cached,
             "--model", "medcls.models.Classifier", *case.net_options(), *aux_weights,
             "--model.init_args.optimizer", "torch.optim.Adam", "--model.init_args.optimizer.init_args.lr", "1e-4",
             "--model.init_args.channels_last", str(case.channels_last).lower(),
             "--model.init_args.compile", str(case.compile).lower(),
             "--trainer.precision", case.precision, "--trainer.benchmark", "true",
             "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--trainer.callbacks+=medcls.benchmarks.training.StepTimer", "--trainer.callbacks.warmup", str(warmup),
             "--trainer.logger.init_args.save_dir", runs]
        )  # fmt: skip
    (timer,) = (callback for callback in cli.trainer.callbacks if isinstance(callback, StepTimer))
    return timer.throughput
