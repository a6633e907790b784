"""The Classifier: one LightningModule for single- and multi-task image classification."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from medcls.errors import CheckpointError
from medcls.metrics.collection import task_metrics

NetFactory = Callable[[dict[str, int]], nn.Module]
"""Builds a net for the given tasks: a net class whose first argument is the task mapping."""

Stage = Literal["train", "val", "test"]


class Classifier(LightningModule):
    """Trains and evaluates a net with one classification head per task.

    A batch is a dict with ``"image"`` (B x C x H x W), one class-index tensor per task and ``"id"``.
    The net returns a dict of logits, one entry per head; heads are named after the tasks, and
    auxiliary heads ``<task>_aux`` are trained on the same labels. The loss is the weighted sum of
    the heads' cross-entropies; predictions and metrics use the task heads only.

    Args:
        net: The network, built from the tasks (e.g. ``class_path: medcls.nets.TutorialNet``).
        tasks: Task name -> number of classes. Linked from the data module's ``tasks``.
        loss_weights: Weight of each head's loss, by head name; heads not listed weigh 1
            (e.g. ``{dr_aux: 0.25, dme_aux: 0.25}`` for CANet).
        optimizer: The optimizer, given the parameters (e.g. ``class_path: torch.optim.SGD``).
        lr_scheduler: An optional learning-rate scheduler, given the optimizer.
        lr_scheduler_interval: Step the scheduler every ``epoch`` or every optimizer ``step``.
        class_weighted_loss: Weight each class's cross-entropy by its inverse frequency in the training split,
            as the data module's ``class_weights(task)`` computes it.
    """

    def __init__(
        self,
        net: NetFactory,
        tasks: dict[str, int],
        loss_weights: dict[str, float] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["epoch", "step"] = "epoch",
        class_weighted_loss: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tasks = dict(tasks)
        heads = {*self.tasks, *(f"{task}_aux" for task in self.tasks)}
        unknown = set(loss_weights or {}) - heads
        if unknown:
            raise ValueError(f"loss_weights names unknown heads {sorted(unknown)}; heads can be {sorted(heads)}.")
        self.loss_weights = {head: 1.0 for head in heads} | dict(loss_weights or {})
        self.net = net(self.tasks)
        # hparams hold the config of the factories (so checkpoints rebuild them); keep the callables here.
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.class_weights: dict[str, Tensor | None] = dict.fromkeys(self.tasks)
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {task: task_metrics(n).clone(prefix=f"{stage}/{task}/") for task, n in self.tasks.items()}
                )
                for stage in ("val", "test")
            }
        )

    def setup(self, stage: str) -> None:
        """Fetch the class weights of the training split, if the loss uses them."""
        if self.hparams.class_weighted_loss and stage == "fit":
            self.class_weights = {task: self.trainer.datamodule.class_weights(task) for task in self.tasks}

    def loss(self, logits: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of the cross-entropies of all heads."""
        total = torch.zeros((), device=next(iter(logits.values())).device)
        for head, head_logits in logits.items():
            task = head.removesuffix("_aux")
            weight = self.class_weights[task]
            weight = None if weight is None else weight.to(head_logits.device)
            total = total + self.loss_weights[head] * F.cross_entropy(head_logits, batch[task], weight=weight)
        return total

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Logits of every head of the net, by head name."""
        logits = self.net(image)
        if isinstance(logits, Tensor):
            (task,) = self.tasks
            return {task: logits}
        return logits

    def probabilities(self, logits: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Class probabilities of the task heads (auxiliary heads left out)."""
        return {task: logits[task].float().softmax(dim=1) for task in self.tasks}

    def _step(self, batch: dict[str, Any], stage: Stage) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self(batch["image"])
        loss = self.loss(logits, batch)
        batch_size = len(batch["image"])
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True, batch_size=batch_size)
        if stage == "train":
            return loss, {}
        probabilities = self.probabilities(logits)
        for task, metrics in self.metrics[stage].items():
            metrics.update(probabilities[task], batch[task])
            self.log_dict(metrics, on_epoch=True, batch_size=batch_size)
        return loss, probabilities

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Weighted loss of all heads on a training batch."""
        return self._step(batch, "train")[0]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and metric updates on a validation batch."""
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, dict[str, Tensor]]:
        """Loss and metric updates on a test batch; returns the probabilities for the report."""
        return {"probabilities": self._step(batch, "test")[1]}

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """The ids and class probabilities of a batch."""
        return {"id": batch["id"], "probabilities": self.probabilities(self(batch["image"]))}

    def configure_optimizers(self) -> Any:
        """The injected optimizer and, if given, scheduler."""
        optimizer = self.optimizer_factory(self.parameters())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.hparams.lr_scheduler_interval,
                "monitor": getattr(scheduler, "monitor", None),
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of other tasks or another network, with one clear message."""
        saved_tasks = checkpoint.get("hyper_parameters", {}).get("tasks")
        if saved_tasks is not None and dict(saved_tasks) != self.tasks:
            raise CheckpointError(
                f"the checkpoint was trained for tasks {dict(saved_tasks)}, but the data has tasks {self.tasks}; "
                "use a checkpoint trained on this data set (or a data set with the same tasks)."
            )
        saved = {name: tuple(tensor.shape) for name, tensor in checkpoint.get("state_dict", {}).items()}
        expected = {name: tuple(tensor.shape) for name, tensor in self.state_dict().items()}
        if saved != expected:
            missing = sorted(expected.keys() - saved.keys())
            unexpected = sorted(saved.keys() - expected.keys())
            reshaped = sorted(k for k in expected.keys() & saved.keys() if expected[k] != saved[k])
            raise CheckpointError(
                "the checkpoint holds a different network than the configured model "
                f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} differently shaped "
                f"weights, e.g. {(missing + unexpected + reshaped)[:3]}); "
                "pass a checkpoint of this model, or the model the checkpoint was trained with."
            )
