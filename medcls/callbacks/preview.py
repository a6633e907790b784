"""What the net sees during ``fit``, in TensorBoard: the first training batch and the validation confusion matrices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.functional.classification import multiclass_confusion_matrix

from medcls.data.base import TaskDataModule
from medcls.data.readers.records import MISSING_LABEL
from medcls.distributed import gather_unique
from medcls.errors import ConfigError
from medcls.metrics.figures import confusion_figure, image_grid, stretched
from medcls.models.classifier import Classifier


class TrainingPreview(Callback):
    """During ``fit``, shows in TensorBoard what the net is fed and what it makes of the validation images.

    - ``train/first_batch``: the run's first training batch as the net receives it (augmented), shown as a person
      sees it (the data module's ``denormalise``), each image titled with its classes by name (``?`` where it is
      unlabelled for a task);
    - ``val/confusion/<task>``: the confusion matrix of every task after each validation epoch (counts; rows true,
      columns predicted; images unlabelled for the task left out), over the images of every process, each once.

    A look at both tells whether the pipeline serves what it should (labels, augmentation, normalisation) before a
    long run is spent on it. It does nothing without a TensorBoard logger; a model whose ``validation_step`` returns
    no ``probabilities`` gets no confusion matrices.

    Args:
        images: How many images of the first training batch to show (0: none).
        confusion_every_n_epochs: Draw the confusion matrices after every this many epochs (0: never).
    """

    def __init__(self, images: int = 16, confusion_every_n_epochs: int = 1) -> None:
        for option, value in (("images", images), ("confusion_every_n_epochs", confusion_every_n_epochs)):
            if value < 0:
                raise ConfigError(f"--preview.{option} is {value}; it must be 0 (off) or more.")
        self.images = images
        self.confusion_every_n_epochs = confusion_every_n_epochs
        self._reset()

    def _reset(self) -> None:
        self.ids: list[str] = []
        self.probabilities: dict[str, list[Tensor]] = {}
        self.labels: dict[str, list[Tensor]] = {}

    def on_train_batch_start(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx or not self.images:  # the cheapest tests first: this runs before every training step
            return
        loggers = _tensorboards(trainer)
        if not (loggers and trainer.is_global_zero and trainer.current_epoch == 0):
            return
        images = batch["image"][: self.images].detach().cpu()
        data = trainer.datamodule
        shown = data.denormalise(images) if isinstance(data, TaskDataModule) else stretched(images)
        tasks = [key for key in batch if key not in ("image", "id")]  # the batch's other entries: one per task
        labels = {task: batch[task][: len(images)].tolist() for task in tasks}
        titles = [
            "\n".join(f"{task} {_label_name(pl_module, task, labels[task][i])}" for task in tasks)
            for i in range(len(images))
        ]
        _log_figure(loggers, "train/first_batch", image_grid(shown, titles), trainer.global_step)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        self._reset()

    def on_validation_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: int
    ) -> None:
        if not self._draws_confusion(trainer) or not isinstance(outputs, Mapping) or "probabilities" not in outputs:
            return
        self.ids.extend(batch["id"])
        for task, probabilities in outputs["probabilities"].items():
            # Kept on the device until the epoch ends: moving them now would wait for the GPU on every batch.
            self.probabilities.setdefault(task, []).append(probabilities.detach())
            self.labels.setdefault(task, []).append(batch[task].detach())

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        if not self.ids:  # the same on every process: the collective gathers below run on all or none
            return
        _, probabilities = gather_unique(self.ids, _joined(self.probabilities))
        _, labels = gather_unique(self.ids, _joined(self.labels))
        self._reset()
        if not trainer.is_global_zero:
            return
        loggers = _tensorboards(trainer)
        for task, task_probabilities in probabilities.items():
            classes = task_probabilities.shape[1]
            matrix = multiclass_confusion_matrix(task_probabilities, labels[task], classes, ignore_index=MISSING_LABEL)
            names = pl_module.class_names[task] if isinstance(pl_module, Classifier) else [*map(str, range(classes))]
            title = f"{task}: validation confusion matrix, epoch {trainer.current_epoch}"
            _log_figure(loggers, f"val/confusion/{task}", confusion_figure(matrix, names, title), trainer.global_step)

    def _draws_confusion(self, trainer: Trainer) -> bool:
        """Whether this validation's confusion matrices are drawn (the same answer on every process)."""
        return (
            bool(_tensorboards(trainer))
            and self.confusion_every_n_epochs > 0
            and trainer.state.fn == TrainerFn.FITTING
            and not trainer.sanity_checking
            and (trainer.current_epoch + 1) % self.confusion_every_n_epochs == 0
        )


def _tensorboards(trainer: Trainer) -> list[TensorBoardLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def _label_name(pl_module: LightningModule, task: str, label: int) -> str:
    """A class by name (by index where the module names none); ``?`` for an image unlabelled for the task."""
    if label == MISSING_LABEL:
        return "?"
    return pl_module.class_names[task][label] if isinstance(pl_module, Classifier) else str(label)


def _joined(parts: Mapping[str, list[Tensor]]) -> dict[str, Tensor]:
    return {name: torch.cat(chunks).cpu() for name, chunks in parts.items()}


def _log_figure(loggers: list[TensorBoardLogger], tag: str, figure: Figure, step: int) -> None:
    """Add the figure to each TensorBoard, then close it (``add_figure`` does)."""
    for logger in loggers:
        logger.experiment.add_figure(tag, figure, global_step=step, close=True)
