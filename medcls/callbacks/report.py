"""Writes what an evaluation produced into the run's log dir and TensorBoard."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from medcls.io import atomic_write
from medcls.metrics.figures import prediction_grid

log = logging.getLogger(__name__)


class EvaluationReport(Callback):
    """At the end of ``test`` and ``predict``, writes the predictions and figures of the run.

    ``test`` writes into the run's log dir: ``predictions.csv`` (id, true class, predicted class and
    probabilities per task), ``metrics.json`` (the final test metrics), ``confusion_<task>.png`` and
    ``predictions.png`` (a grid of test images titled with predicted and true classes); the figures
    also go to TensorBoard. ``predict`` writes ``predictions.csv`` without the true classes.

    Args:
        grid_images: Number of test images shown in ``predictions.png``.
    """

    def __init__(self, grid_images: int = 24) -> None:
        self.grid_images = grid_images
        self._reset()

    def _reset(self) -> None:
        self.ids: list[str] = []
        self.labels: dict[str, list[Tensor]] = {}
        self.probabilities: dict[str, list[Tensor]] = {}
        self.images: list[Tensor] = []

    def _collect(self, batch: Mapping[str, Any], probabilities: Mapping[str, Tensor], labelled: bool) -> None:
        self.ids.extend(batch["id"])
        for task, task_probabilities in probabilities.items():
            self.probabilities.setdefault(task, []).append(task_probabilities.detach().cpu())
            if labelled:
                self.labels.setdefault(task, []).append(batch[task].detach().cpu())
        shown = sum(len(images) for images in self.images)
        if shown < self.grid_images:
            self.images.append(batch["image"][: self.grid_images - shown].detach().cpu())

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        self._reset()

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        self._reset()

    def on_test_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: int
    ) -> None:
        self._collect(batch, outputs["probabilities"], labelled=True)

    def on_predict_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: int
    ) -> None:
        self._collect(batch, outputs["probabilities"], labelled=False)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        if not trainer.is_global_zero:
            return
        out = Path(trainer.log_dir or trainer.default_root_dir)
        probabilities = {task: torch.cat(p) for task, p in self.probabilities.items()}
        labels = {task: torch.cat(y) for task, y in self.labels.items()}
        write_predictions(out / "predictions.csv", self.ids, probabilities, labels)
        metrics = {name: value.item() for name, value in trainer.callback_metrics.items() if name.startswith("test/")}
        atomic_write(out / "metrics.json", lambda file: json.dump(metrics, file, indent=2))
        for task, task_probabilities in probabilities.items():
            matrix = MulticlassConfusionMatrix(task_probabilities.shape[1])
            matrix.update(task_probabilities, labels[task])
            figure, ax = matrix.plot()
            ax.set_title(f"{task}: confusion matrix (rows: true, columns: predicted)")
            _publish(trainer, figure, out / f"confusion_{task}.png", f"test/confusion_matrix/{task}")
        shown = torch.cat(self.images)
        predicted = {task: p[: len(shown)].argmax(1) for task, p in probabilities.items()}
        titles = [
            " ".join(f"{task}:{predicted[task][i]} ({labels[task][i]})" for task in probabilities)
            for i in range(len(shown))
        ]
        correct = [all(predicted[task][i] == labels[task][i] for task in probabilities) for i in range(len(shown))]
        _publish(trainer, prediction_grid(shown, titles, correct), out / "predictions.png", "test/predictions")
        log.info("Test report written to %s", out)

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        if not trainer.is_global_zero:
            return
        path = Path(trainer.log_dir or trainer.default_root_dir) / "predictions.csv"
        write_predictions(path, self.ids, {task: torch.cat(p) for task, p in self.probabilities.items()})
        log.info("Predictions written to %s", path)


def write_predictions(
    path: Path, ids: list[str], probabilities: Mapping[str, Tensor], labels: Mapping[str, Tensor] | None = None
) -> None:
    """Write one row per image: id, then per task the true class (if known), predicted class, probabilities."""
    columns = ["id"]
    for task, task_probabilities in probabilities.items():
        columns += [task] if labels else []
        columns += [f"{task}_pred"] + [f"{task}_prob_{k}" for k in range(task_probabilities.shape[1])]

    def write(file: Any) -> None:
        writer = csv.writer(file)
        writer.writerow(columns)
        for i, image_id in enumerate(ids):
            row: list[Any] = [image_id]
            for task, task_probabilities in probabilities.items():
                row += [int(labels[task][i])] if labels else []
                row += [int(task_probabilities[i].argmax())] + [f"{p:.6f}" for p in task_probabilities[i].tolist()]
            writer.writerow(row)

    atomic_write(path, write)


def _publish(trainer: Trainer, figure: Figure, path: Path, tag: str) -> None:
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100), mode="wb")
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    plt.close(figure)
