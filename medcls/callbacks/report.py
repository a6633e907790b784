"""Writes what an evaluation produced into the run's log dir and TensorBoard."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from medcls.data.base import TaskDataModule
from medcls.distributed import gather_unique
from medcls.errors import MedclsError
from medcls.io import save_figure
from medcls.metrics.binary import binary_questions
from medcls.metrics.figures import prediction_grid, roc_figure
from medcls.metrics.report import evaluate_predictions, metric_values, write_metrics, write_predictions
from medcls.models.classifier import Classifier

log = logging.getLogger(__name__)


class EvaluationReport(Callback):
    """At the end of ``test`` and ``predict``, writes the predictions, metrics and figures of the run.

    ``test`` writes into the run's log dir:

    - ``predictions.csv``: id, true class, predicted class and probabilities per task;
    - ``metrics.json``: per task and per binary question (binary tasks and the data's binary views such as
      referable DR), every metric with its 95 % bootstrap confidence interval (over images, or over groups
      when the data groups images), the metrics at the operating points chosen on validation, the joint
      accuracy, ``n``, and the operating points' thresholds;
    - ``confusion_<task>.png`` and ``confusion_<task>_normalised.png`` (counts and row-normalised);
    - ``roc_<question>.png``: the ROC curve with the validation-chosen operating points marked;
    - ``predictions.png``: test images titled with predicted and true classes and the top probability.

    The figures also go to TensorBoard. ``predict`` writes ``predictions.csv`` without the true classes.

    Args:
        grid_images: Number of test images shown in ``predictions.png``.
        bootstrap_resamples: Resamples of the test set behind each 95 % confidence interval.
        seed: Seed of the resampling.
    """

    def __init__(self, grid_images: int = 24, bootstrap_resamples: int = 1000, seed: int = 0) -> None:
        self.grid_images = grid_images
        self.bootstrap_resamples = bootstrap_resamples
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self.collected_ids: list[str] = []
        self.ids: list[str] = []
        self.labels: dict[str, list[Tensor]] = {}
        self.probabilities: dict[str, list[Tensor]] = {}
        self.images: list[Tensor] = []

    def _collect(self, batch: Mapping[str, Any], probabilities: Mapping[str, Tensor], labelled: bool) -> None:
        self.collected_ids.extend(batch["id"])
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
        probabilities, labels = self._gathered(self.probabilities), self._gathered(self.labels)
        out = Path(trainer.log_dir or trainer.default_root_dir)  # a collective call under DDP: on every process
        probabilities = self._finite(probabilities)
        if not trainer.is_global_zero:
            return
        scores = {task: p.numpy() for task, p in probabilities.items()}
        truths = {task: y.numpy() for task, y in labels.items()}
        points, views = (
            (pl_module.operating_points, pl_module.binary_views) if isinstance(pl_module, Classifier) else ({}, {})
        )
        metrics = evaluate_predictions(
            scores, truths, binary_views=views, operating_points=points, groups=self._groups(trainer),
            n_resamples=self.bootstrap_resamples, seed=self.seed,
        )  # fmt: skip
        if "test/loss" in trainer.callback_metrics:
            metrics["loss"] = trainer.callback_metrics["test/loss"].item()
        write_predictions(out / "predictions.csv", self.ids, scores, truths)
        write_metrics(out / "metrics.json", metrics)
        for task, task_probabilities in probabilities.items():
            for normalize, name in ((None, "counts"), ("true", "row-normalised")):
                classes = task_probabilities.shape[1]  # gathered already: no sync with the other processes
                matrix = MulticlassConfusionMatrix(classes, normalize=normalize, sync_on_compute=False)
                matrix.update(task_probabilities, labels[task])
                figure, ax = matrix.plot()
                ax.set_title(f"{task}: confusion matrix, {name} (rows: true, columns: predicted)", fontsize=9)
                suffix = "" if normalize is None else "_normalised"
                _publish(trainer, figure, out / f"confusion_{task}{suffix}.png", f"test/confusion{suffix}/{task}")
        for name, (question, truth) in binary_questions(scores, truths, views).items():
            marked = {
                point: (metrics[name][f"{point}/sensitivity"]["value"], metrics[name][f"{point}/specificity"]["value"])
                for point in points.get(name, {})
            }
            figure = roc_figure(question[:, 1], truth, marked, f"{name}: ROC on test", metrics[name]["auc"]["value"])
            _publish(trainer, figure, out / f"roc_{name}.png", f"test/roc/{name}")
        self._publish_grid(trainer, out, probabilities, labels)
        final = {f"hp/{q}/{m}".rstrip("/"): v for (q, m), v in metric_values(metrics).items() if np.isfinite(v)}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):  # TensorBoard's HPARAMS view: the run's settings and results
                logger.log_hyperparams(pl_module.hparams, final)
        log.info("Test report written to %s", out)

    def _gathered(self, parts: Mapping[str, list[Tensor]]) -> dict[str, Tensor]:
        """This epoch's rows of every process, each image once, ordered by id (``self.ids`` follows)."""
        ids, rows = gather_unique(self.collected_ids, {name: torch.cat(chunks) for name, chunks in parts.items()})
        self.ids = ids
        return rows

    def _finite(self, probabilities: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The probabilities, refused where the net's outputs were NaN or infinite (nothing is written then)."""
        broken = torch.zeros(len(self.ids), dtype=torch.bool)
        for task_probabilities in probabilities.values():
            broken |= ~task_probabilities.isfinite().all(dim=1)
        if broken.any():
            first = self.ids[int(broken.nonzero()[0])]
            raise MedclsError(
                f"the network's outputs are NaN or infinite for {int(broken.sum())} of {len(self.ids)} images (e.g. "
                f"{first}); no report was written. Check the checkpoint's training run, and for mixed precision "
                "try --trainer.precision 32-true."
            )
        return dict(probabilities)

    def _groups(self, trainer: Trainer) -> np.ndarray | None:
        """The group of each image as the data module defines it; ``None`` where every image is its own group."""
        if not isinstance(trainer.datamodule, TaskDataModule):
            return None
        groups = np.array([trainer.datamodule.group_of(i) for i in self.ids])
        return None if (groups == np.array(self.ids)).all() else groups

    def _publish_grid(
        self, trainer: Trainer, out: Path, probabilities: Mapping[str, Tensor], labels: Mapping[str, Tensor]
    ) -> None:
        shown = torch.cat(self.images)
        predicted = {task: p[: len(shown)].argmax(1) for task, p in probabilities.items()}
        titles = [
            "\n".join(
                f"{task} {predicted[task][i]} ({labels[task][i]}) p={probabilities[task][i].max():.2f}"
                for task in probabilities
            )
            for i in range(len(shown))
        ]
        correct = [all(predicted[task][i] == labels[task][i] for task in probabilities) for i in range(len(shown))]
        _publish(trainer, prediction_grid(shown, titles, correct), out / "predictions.png", "test/predictions")

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        probabilities = self._finite(self._gathered(self.probabilities))
        path = Path(trainer.log_dir or trainer.default_root_dir) / "predictions.csv"  # collective under DDP
        if not trainer.is_global_zero:
            return
        write_predictions(path, self.ids, probabilities)
        log.info("Predictions written to %s", path)


def _publish(trainer: Trainer, figure: Figure, path: Path, tag: str) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    save_figure(figure, path)  # and closed: torchmetrics draws the confusion matrices with pyplot
