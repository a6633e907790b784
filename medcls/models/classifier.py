"""The Classifier: one LightningModule for single- and multi-task image classification."""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable, Mapping
from functools import reduce
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torchmetrics import MeanMetric

from medcls.data.base import TaskDataModule
from medcls.data.readers.records import MISSING_LABEL
from medcls.distributed import gather_unique
from medcls.errors import ConfigError, TrainingError
from medcls.metrics.binary import operating_points_of
from medcls.metrics.collection import JointAccuracy, task_metrics
from medcls.models.guards import check_checkpoint, check_input_shape, non_finite_weights, remedy, stop_if_diverged
from medcls.models.losses import focal_loss
from medcls.models.schedules import CosineToZero

NetFactory = Callable[[dict[str, int]], nn.Module]
"""Builds a net for the given tasks: a net class whose first argument is the task mapping."""

Stage = Literal["val", "test"]


class Classifier(LightningModule):
    """Trains and evaluates a net with one head per task, for single- and multi-task classification.

    A batch is a dict with ``"image"`` (B x C x H x W), one class-index tensor per task and ``"id"``.
    The net returns a dict of logits, one entry per head; heads are named after the tasks, and
    auxiliary heads ``<task>_aux`` are trained on the same labels. The loss is the weighted sum of
    the heads' losses; predictions and metrics use the task heads only.

    Transfer learning (nets that keep their backbone in ``net.trunk``): ``freeze_trunk_epochs: -1`` is a
    linear probe (trunk frozen throughout), ``0`` full fine-tuning, ``N`` trains the heads alone for N epochs
    and then everything; ``trunk_lr_factor`` scales the trunk's learning rate against the heads'.

    Args:
        net: The network, built from the tasks (e.g. ``class_path: medcls.nets.TutorialNet``).
        tasks: Task name -> number of classes. Linked from the data module's ``tasks``.
        loss_weights: Weight of each head's loss, by head name; heads not listed weigh 1
            (e.g. ``{dr_aux: 0.25, dme_aux: 0.25}`` for CANet).
        loss: ``cross_entropy``, or ``focal`` (cross-entropy down-weighting easy images, see ``focal_gamma``).
        label_smoothing: Label smoothing of the classification losses.
        focal_gamma: Focusing parameter of the focal loss.
        class_weighted_loss: Weight each class by its inverse frequency in the training split, as the data
            module's ``class_weights(task)`` computes it.
        regression_tasks: Ordinal tasks learnt as regression of the grade: their head has one output, trained
            with the mean squared error; the prediction is the output rounded and clipped to the grades.
        optimizer: The optimizer, given the parameters (e.g. ``class_path: torch.optim.SGD``).
        lr_scheduler: An optional learning-rate scheduler, given the optimizer.
        lr_scheduler_interval: Step the scheduler every ``epoch`` or every optimizer ``step``.
        trunk_lr_factor: The trunk's learning rate relative to the heads' (e.g. 0.1 when fine-tuning).
        freeze_trunk_epochs: Epochs with the trunk frozen (weights and batch-norm statistics); -1: always.
        channels_last: Run the net in channels-last memory format (faster convolutions on GPUs).
        compile: Compile the net with ``torch.compile`` (faster steps after a slow first one; the checkpoints
            are those of the plain net).
        ema_decay: Keep an exponential moving average of the weights, updated after every optimizer step with this
            decay (e.g. 0.999): validation, the checkpoints and the final weights are the average's.
        binary_views: Binary questions of graded tasks, name -> (task, lowest positive grade). Linked from the data
            module (e.g. referable DR: ``[dr, 2]``).
        class_names: Task -> the names of its classes (index = class index). Linked from the data module; kept in the
            checkpoint, so that its predictions are named and a checkpoint is refused on data of other classes.
        ordinal_tasks: The tasks whose classes are ordered (grades), which get a quadratic weighted kappa (the others
            an unweighted one). Linked from the data module.
        target_sensitivity: Sensitivity of the high-sensitivity operating point chosen on validation.
        target_specificity: Specificity of the high-specificity operating point chosen on validation.

    Images unlabelled for a task (label ``-1``, kept where the data asks for it) count in neither that task's loss nor
    its metrics.

    For every binary task and binary view, the Youden, high-sensitivity and high-specificity thresholds are
    chosen on the validation set at the end of each validation epoch, stored in the checkpoint and applied
    unchanged to the test set: the test set never tunes anything.
    """

    def __init__(
        self,
        net: NetFactory,
        tasks: dict[str, int],
        loss_weights: dict[str, float] | None = None,
        loss: Literal["cross_entropy", "focal"] = "cross_entropy",
        label_smoothing: float = 0.0,
        focal_gamma: float = 2.0,
        class_weighted_loss: bool = False,
        regression_tasks: list[str] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["epoch", "step"] = "epoch",
        trunk_lr_factor: float = 1.0,
        freeze_trunk_epochs: int = 0,
        channels_last: bool = False,
        compile: bool = False,
        ema_decay: float | None = None,
        binary_views: dict[str, tuple[str, int]] | None = None,
        class_names: dict[str, list[str]] | None = None,
        ordinal_tasks: list[str] | None = None,
        target_sensitivity: float = 0.95,
        target_specificity: float = 0.95,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tasks = dict(tasks)
        heads = {*self.tasks, *(f"{task}_aux" for task in self.tasks)}
        unknown = set(loss_weights or {}) - heads
        if unknown:
            raise ConfigError(
                f"--model.loss_weights names unknown heads {sorted(unknown)}; with the data's tasks {self.tasks} the "
                f"heads can be {sorted(heads)}."
            )
        self.loss_weights = dict.fromkeys(heads, 1.0) | dict(loss_weights or {})
        self.regression_tasks = set(regression_tasks or [])
        if not self.regression_tasks <= self.tasks.keys():
            raise ConfigError(
                f"--model.regression_tasks {sorted(self.regression_tasks)} must be among the data's tasks {self.tasks}."
            )
        self.class_names = _class_names(self.tasks, class_names)
        self.ordinal_tasks = list(ordinal_tasks or [])
        if not set(self.ordinal_tasks) <= self.tasks.keys():
            raise ConfigError(f"ordinal_tasks {self.ordinal_tasks} must be among the data's tasks {self.tasks}.")
        self.net = net({task: 1 if task in self.regression_tasks else n for task, n in self.tasks.items()})
        if (trunk_lr_factor != 1 or freeze_trunk_epochs) and not isinstance(
            getattr(self.net, "trunk", None), nn.Module
        ):
            raise ConfigError(
                f"--model.trunk_lr_factor and --model.freeze_trunk_epochs need a net with a trunk (a backbone); "
                f"{type(self.net).__name__} has none."
            )
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()  # in place: the state dict keeps its keys
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ConfigError(f"--model.ema_decay must be between 0 and 1 (e.g. 0.999), got {ema_decay}.")
        # hparams hold the config of the factories (so checkpoints rebuild them); keep the callables here.
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.class_weights: dict[str, Tensor | None] = dict.fromkeys(self.tasks)
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {
                        task: task_metrics(n, task in self.ordinal_tasks, MISSING_LABEL).clone(
                            prefix=f"{stage}/{task}/"
                        )
                        for task, n in self.tasks.items()
                    }
                )
                for stage in ("val", "test")
            }
        )
        self.joint_accuracy = nn.ModuleDict({stage: JointAccuracy() for stage in ("val", "test")})
        self.train_loss = MeanMetric(nan_strategy="disable")  # its NaN check would synchronise every step
        # The epoch's training losses, summed on the device: one addition per step, where the metric's update costs
        # several operations; the metric gets the epoch's mean once, at its end, and averages it over the processes.
        self.train_loss_sum = torch.zeros(())
        self.train_steps = 0
        self.binary_views = dict(binary_views or {})
        self.operating_points: dict[str, dict[str, float]] = {}
        self.validation_outputs: list[tuple[list[str], dict[str, Tensor]]] = []
        self.validation_finite = torch.ones((), dtype=torch.bool)

    def setup(self, stage: str) -> None:
        """Fetch the class weights of the training split, if the loss uses them."""
        # Lightning warns whenever a module with its own batch transfer runs with a data module: medcls's design.
        warnings.filterwarnings("ignore", message="You have overridden `transfer_batch_to_device` in `LightningModule`")
        if self.hparams.class_weighted_loss and stage == "fit":
            data = self.trainer.datamodule
            try:
                if not isinstance(data, TaskDataModule):
                    raise NotImplementedError(f"{type(data).__name__} is no medcls data module")
                self.class_weights = {task: data.class_weights(task) for task in self.tasks}
            except NotImplementedError as error:
                raise ConfigError(
                    f"--model.class_weighted_loss needs a data module that counts the classes of its training split; "
                    f"{error}."
                ) from error

    def configure_callbacks(self) -> list[Callback]:
        """The moving average of the weights, if ``ema_decay`` is set."""
        if self.hparams.ema_decay is None:
            return []
        return [WeightAveraging(multi_avg_fn=get_ema_multi_avg_fn(self.hparams.ema_decay))]

    def on_train_epoch_start(self) -> None:
        """Start summing this epoch's training losses; freeze or unfreeze the trunk for this epoch."""
        self.train_loss_sum = torch.zeros((), device=self.device)
        self.train_steps = 0
        epochs = self.hparams.freeze_trunk_epochs
        if epochs:
            frozen = epochs < 0 or self.current_epoch < epochs
            self.net.trunk.requires_grad_(not frozen)
            self.net.trunk.train(not frozen)

    def loss(self, logits: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> Tensor:
        """The weighted sum of the losses of all heads."""
        terms = []
        for head, head_logits in logits.items():
            task = head.removesuffix("_aux")
            weight, head_loss = self.loss_weights[head], self._head_loss(head_logits, batch[task], task)
            # Every tensor operation costs microseconds on every step: none for a weight of 1, none to start the sum.
            terms.append(head_loss if weight == 1 else weight * head_loss)
        return reduce(operator.add, terms)

    def _head_loss(self, logits: Tensor, target: Tensor, task: str) -> Tensor:
        """The mean loss over the images labelled for ``task`` (0 where none is), computed without a host sync."""
        labelled = target != MISSING_LABEL
        if task in self.regression_tasks:
            squared_errors = (logits.squeeze(1).float() - target.float()) ** 2
            return (squared_errors * labelled).sum() / labelled.sum().clamp(min=1)
        weight = self.class_weights[task]
        weight = None if weight is None else weight.to(logits.device)
        smoothing = self.hparams.label_smoothing
        if self.hparams.loss == "focal":
            return focal_loss(logits, target, self.hparams.focal_gamma, weight, smoothing, ignore_index=MISSING_LABEL)
        total = F.cross_entropy(
            logits, target, weight=weight, label_smoothing=smoothing, ignore_index=MISSING_LABEL, reduction="sum"
        )
        # The mean cross_entropy takes, divided by the labelled images' weights, but 0 rather than NaN without any.
        if weight is None:
            return total / labelled.sum().clamp(min=1)
        return total / (weight[target.clamp(min=0)] * labelled).sum().clamp(min=torch.finfo(total.dtype).tiny)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move a batch's tensors to ``device``; a medcls batch (a dict of tensors and names) directly.

        Lightning's own transfer walks every element of every collection, the image names included: up to a tenth of a
        millisecond per step. Other batches take Lightning's way.
        """
        if not isinstance(batch, dict) or not all(_transferable(value) for value in batch.values()):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        # As Lightning does: asynchronous copies, except to the CPU and to Apple's GPUs (which misorder them).
        non_blocking = device.type not in ("cpu", "mps")
        return {
            key: value.to(device, non_blocking=non_blocking) if isinstance(value, Tensor) else value
            for key, value in batch.items()
        }

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Logits of every head of the net, by head name."""
        if self.hparams.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        logits = self.net(image)
        if isinstance(logits, Tensor):
            (task,) = self.tasks
            return {task: logits}
        return logits

    def probabilities(self, logits: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Class probabilities of the task heads (auxiliary heads left out).

        A regression head's prediction, rounded and clipped to the grades, gets probability one.
        """
        probabilities = {}
        for task, n in self.tasks.items():
            if task in self.regression_tasks:
                grade = logits[task].squeeze(1).round().clamp(0, n - 1).long()
                probabilities[task] = F.one_hot(grade, n).float()
            else:
                probabilities[task] = logits[task].float().softmax(dim=1)
        return probabilities

    def _evaluation_step(self, batch: dict[str, Any], stage: Stage) -> dict[str, Tensor]:
        """Loss and metric updates of a validation or test batch; returns the probabilities."""
        logits = self(batch["image"])
        batch_size = len(batch["image"])
        loss = self.loss(logits, batch)
        # Averaged over processes under DDP, so that every process picks the same best checkpoint.
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=batch_size, sync_dist=True)
        if stage == "val":
            self.validation_finite &= torch.isfinite(loss.detach())  # on the device: no synchronisation here
        probabilities = self.probabilities(logits)
        for task, metrics in self.metrics[stage].items():
            metrics.update(probabilities[task], batch[task])
            self.log_dict(metrics, batch_size=batch_size)
        if len(self.tasks) > 1:
            self.joint_accuracy[stage].update(probabilities, batch)
            self.log(f"{stage}/joint_accuracy", self.joint_accuracy[stage], batch_size=batch_size)
        if stage == "val" and (self.binary_views or 2 in self.tasks.values()):
            rows = {f"p_{t}": p.detach().cpu() for t, p in probabilities.items()}
            self.validation_outputs.append((list(batch["id"]), rows | {f"y_{t}": batch[t].cpu() for t in self.tasks}))
        return probabilities

    def on_validation_epoch_start(self) -> None:
        """Start checking this validation's losses."""
        self.validation_finite = torch.ones((), dtype=torch.bool, device=self.device)

    def on_validation_epoch_end(self) -> None:
        """Stop if the validation loss is not finite; else choose the operating points on the predictions."""
        outputs, self.validation_outputs = self.validation_outputs, []
        if self.trainer.sanity_checking:
            return
        if self.trainer.state.fn == TrainerFn.FITTING:
            stop_if_diverged(self.trainer, self.validation_finite, "the validation loss")
        if not outputs:
            return
        ids = [image_id for batch_ids, _ in outputs for image_id in batch_ids]
        _, rows = gather_unique(ids, {name: torch.cat([r[name] for _, r in outputs]) for name in outputs[0][1]})
        probabilities = {t: rows[f"p_{t}"].numpy() for t in self.tasks}
        labels = {t: rows[f"y_{t}"].numpy() for t in self.tasks}
        targets = (self.hparams.target_sensitivity, self.hparams.target_specificity)
        self.operating_points |= operating_points_of(probabilities, labels, self.binary_views, *targets)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the operating points chosen on validation; refuse to save weights that are not finite."""
        if non_finite_weights(checkpoint["state_dict"]):
            raise TrainingError(
                f"the weights became NaN or infinite at epoch {self.current_epoch}, step {self.global_step}: training "
                f"diverged and was stopped without saving them. {remedy(self.trainer)}"
            )
        checkpoint["operating_points"] = self.operating_points

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Weighted loss of all heads on a training batch."""
        loss = self.loss(self(batch["image"]), batch)
        self.train_loss_sum = self.train_loss_sum + loss.detach()  # not in place: a float64 loss promotes the sum
        self.train_steps += 1
        # self.log costs about half a millisecond per call: log the step loss only on the steps the logger writes,
        # and not to the progress bar, which would turn it into a number (a GPU synchronisation) on every step.
        if self._logger_writes_this_step():
            self.log("train/loss_step", loss, batch_size=len(batch["image"]))
            # The logger turns the loss into a number on these steps anyway: checking it here adds no wait.
            stop_if_diverged(
                self.trainer, torch.isfinite(loss.detach()), f"the training loss of step {self.global_step}"
            )
        return loss

    def _logger_writes_this_step(self) -> bool:
        """Whether Lightning hands the logged values to the loggers after this training step.

        It writes after the steps whose count (the optimizer steps taken, this one included) is a multiple of
        ``log_every_n_steps``: a value logged on any other step would be written steps later, under a later step.
        """
        every = self.trainer.log_every_n_steps
        return every > 0 and (self.global_step + 1) % every == 0

    def on_train_epoch_end(self) -> None:
        """Log the mean training loss of the epoch; stop if it is not finite, before the epoch's checkpoints."""
        if self.train_steps:
            # Every process runs as many steps (the distributed sampler pads): the mean of their means is the mean.
            self.train_loss.update(self.train_loss_sum / self.train_steps)
        mean = self.train_loss.compute()
        self.train_loss.reset()
        stop_if_diverged(self.trainer, torch.isfinite(mean), f"the mean training loss of epoch {self.current_epoch}")
        # The metric's compute() averaged over the processes already; sync_dist only keeps Lightning from asking.
        self.log("train/loss_epoch", mean, prog_bar=True, sync_dist=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, dict[str, Tensor]]:
        """Loss and metric updates on a validation batch; returns the probabilities (for the preview callback)."""
        return {"probabilities": self._evaluation_step(batch, "val")}

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, dict[str, Tensor]]:
        """Loss and metric updates on a test batch; returns the probabilities for the report."""
        return {"probabilities": self._evaluation_step(batch, "test")}

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """The ids and class probabilities of a batch."""
        return {"id": batch["id"], "probabilities": self.probabilities(self(batch["image"]))}

    def configure_optimizers(self) -> Any:
        """The injected optimizer and, if given, scheduler."""
        trunk = getattr(self.net, "trunk", None)
        if isinstance(trunk, nn.Module) and self.hparams.trunk_lr_factor != 1:
            in_trunk = {id(p) for p in trunk.parameters()}
            heads = [p for p in self.parameters() if id(p) not in in_trunk]
            optimizer = self.optimizer_factory(
                [{"params": heads, "name": "heads"}, {"params": trunk.parameters(), "name": "trunk"}]
            )
            optimizer.param_groups[1]["lr"] *= self.hparams.trunk_lr_factor
        else:
            optimizer = self.optimizer_factory(self.parameters())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        if isinstance(scheduler, CosineToZero) and scheduler.total_steps is None:
            step = self.hparams.lr_scheduler_interval == "step"
            scheduler.total_steps = int(self.trainer.estimated_stepping_batches if step else self.trainer.max_epochs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": self.hparams.lr_scheduler_interval,
                "monitor": getattr(scheduler, "monitor", None),
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the operating points; refuse a checkpoint this model cannot use (see :meth:`check_checkpoint`)."""
        self.check_checkpoint(checkpoint)
        self.operating_points = checkpoint.get("operating_points", {})

    def check_checkpoint(self, checkpoint: Mapping[str, Any]) -> None:
        """Refuse, with one message, a checkpoint of other tasks, of another network, or with non-finite weights.

        Raises:
            CheckpointError: Naming what the checkpoint holds and what this model and its data expect.
        """
        check_checkpoint(checkpoint, self.tasks, self.class_names, self.state_dict())

    def check_input_shape(self, shape: tuple[int, ...]) -> None:
        """Refuse, before anything runs, a net that cannot take images of ``shape`` (C x H x W).

        Raises:
            ConfigError: Naming the net, the shape and the library's reason.
        """
        check_input_shape(self.net, shape)


def _transferable(value: Any) -> bool:
    """Whether :meth:`Classifier.transfer_batch_to_device` moves ``value`` itself: a tensor, or names that stay."""
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, str) for item in value)
    return isinstance(value, (Tensor, str))


def _class_names(tasks: Mapping[str, int], class_names: Mapping[str, list[str]] | None) -> dict[str, list[str]]:
    """The class names of every task: those given, else the class indices ``"0"``, ``"1"``, ...

    Raises:
        ConfigError: A task's names are not one per class, or name a task the model does not have.
    """
    given = dict(class_names or {})
    if not given.keys() <= tasks.keys():
        raise ConfigError(f"class_names names tasks {sorted(given.keys() - tasks.keys())} not among {dict(tasks)}.")
    names = {task: [str(k) for k in range(n)] for task, n in tasks.items()} | {t: list(v) for t, v in given.items()}
    for task, n in tasks.items():
        if len(names[task]) != n:
            raise ConfigError(f"class_names gives {len(names[task])} names for task {task!r} of {n} classes.")
    return names
