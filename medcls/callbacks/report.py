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

from medcls.data.base import TaskDataModule
from medcls.distributed import gather_unique
from medcls.errors import MedclsError
from medcls.io import save_figure
from medcls.metrics.binary import binary_questions, decisions
from medcls.metrics.bootstrap import DEFAULT_RESAMPLES
from medcls.metrics.evaluation import confusion_matrix
from medcls.metrics.figures import confusion_figure, prediction_grid, roc_figure
from medcls.metrics.report import evaluate_predictions, metric_values, write_metrics, write_predictions
from medcls.models.classifier import Classifier

log = logging.getLogger(__name__)


class EvaluationReport(Callback):
    """At the end of ``test`` and ``predict``, writes the predictions, metrics and figures of the run.

    ``test`` writes into the run's log dir:

    - ``predictions.csv``: id, true class, predicted class (index and name) and probabilities per task, and the
      decision at each operating point chosen on validation (e.g. ``referable_dr@youden``: 0/1);
    - ``metrics.json``: per task and per binary question (binary tasks and the data's binary views such as
      referable DR), every metric with its 95 % bootstrap confidence interval (over images, or over groups
      when the data groups images), the metrics at the operating points chosen on validation, the joint
      accuracy, ``n``, and the operating points' thresholds;
    - ``confusion_<task>.png`` and ``confusion_<task>_normalised.png`` (counts and row-normalised);
    - ``roc_<question>.png``: the ROC curve with the validation-chosen operating points marked;
    - ``predictions.png``: test images titled with predicted and true classes and the top probability.

    The figures also go to TensorBoard. ``predict`` writes ``predictions.csv`` without the true classes.
    Classes are named as the model's ``class_names`` name them (those of the data it was trained on).

    Args:
        grid_images: Number of test images shown in ``predictions.png``.
        bootstrap_resamples: Resamples of the test set behind each 95 % confidence interval.
        seed: Seed of the resampling.
    """

    def __init__(self, grid_images: int = 24, bootstrap_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> None:
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
        points, views, names, ordinal = _model_facts(pl_module, scores)
        metrics = evaluate_predictions(
            scores, truths, binary_views=views, operating_points=points, class_names=names, ordinal_tasks=ordinal,
            groups=self._groups(trainer), n_resamples=self.bootstrap_resamples, seed=self.seed,
        )  # fmt: skip
        if "test/loss" in trainer.callback_metrics:
            metrics["loss"] = trainer.callback_metrics["test/loss"].item()
        write_predictions(
            out / "predictions.csv", self.ids, scores, truths, class_names=names,
            decisions=decisions(scores, views, points),
        )  # fmt: skip
        write_metrics(out / "metrics.json", metrics)
        for task, task_scores in scores.items():
            matrix = confusion_matrix(task_scores, truths[task])
            for normalised, suffix, name in ((False, "", "counts"), (True, "_normalised", "row-normalised")):
                title = f"{task}: confusion matrix on test, {name}"  # the axes say which is true, which predicted
                figure = confusion_figure(matrix, names[task], title, normalised=normalised)
                _publish(trainer, figure, out / f"confusion_{task}{suffix}.png", f"test/confusion{suffix}/{task}")
        for name, (question, truth) in binary_questions(scores, truths, views).items():
            marked = {
                point: (metrics[name][f"{point}/sensitivity"]["value"], metrics[name][f"{point}/specificity"]["value"])
                for point in points.get(name, {})
            }
            figure = roc_figure(question[:, 1], truth, marked, f"{name}: ROC on test", metrics[name]["auc"]["value"])
            _publish(trainer, figure, out / f"roc_{name}.png", f"test/roc/{name}")
        self._publish_grid(trainer, out, scores, truths, names)
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
        self,
        trainer: Trainer,
        out: Path,
        scores: Mapping[str, np.ndarray],
        labels: Mapping[str, np.ndarray],
        names: Mapping[str, list[str]],
    ) -> None:
        """The first test images shown, titled "task predicted (true) p=top probability", classes by name."""
        shown = torch.cat(self.images)
        row_of = {image_id: row for row, image_id in enumerate(self.ids)}  # the gathered rows are ordered by id
        rows = [row_of[image_id] for image_id in self.collected_ids[: len(shown)]]
        titles, correct = [], []
        for row in rows:
            lines, right = [], True
            for task, task_scores in scores.items():
                predicted, truth = int(task_scores[row].argmax()), int(labels[task][row])
                true_name = names[task][truth] if truth >= 0 else "?"
                lines.append(f"{task} {names[task][predicted]} ({true_name}) p={task_scores[row].max():.2f}")
                right &= truth < 0 or predicted == truth
            titles.append("\n".join(lines))
            correct.append(right)
        _publish(trainer, prediction_grid(shown, titles, correct), out / "predictions.png", "test/predictions")

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        probabilities = self._finite(self._gathered(self.probabilities))
        path = Path(trainer.log_dir or trainer.default_root_dir) / "predictions.csv"  # collective under DDP
        if not trainer.is_global_zero:
            return
        scores = {task: p.numpy() for task, p in probabilities.items()}
        points, views, names, _ = _model_facts(pl_module, scores)
        write_predictions(path, self.ids, scores, class_names=names, decisions=decisions(scores, views, points))
        log.info("Predictions written to %s", path)


def _model_facts(
    pl_module: LightningModule, scores: Mapping[str, np.ndarray]
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[str, int]], dict[str, list[str]], list[str]]:
    """The operating points, binary views, class names and ordinal tasks of the model (none for a foreign module)."""
    if isinstance(pl_module, Classifier):
        return pl_module.operating_points, pl_module.binary_views, pl_module.class_names, pl_module.ordinal_tasks
    return {}, {}, {task: [str(k) for k in range(p.shape[1])] for task, p in scores.items()}, []


def _publish(trainer: Trainer, figure: Figure, path: Path, tag: str) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    save_figure(figure, path)  # and closed: torchmetrics draws the confusion matrices with pyplot
