"""Ensembles: the averaged class probabilities of several trained classifiers (Lakhani & Sundaram; Gulshan et al.)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from medcls.errors import CheckpointError, ConfigError
from medcls.io import load_checkpoint
from medcls.models.classifier import Classifier
from medcls.nets.weights import without_weights_files


class AveragedNet(nn.Module):
    """The members' class probabilities, averaged (over flips too, with test-time augmentation), as log-probabilities.

    Returning log-probabilities lets the Classifier's softmax give back exactly the averaged probabilities.
    The members are loaded by the first of :meth:`load` and :meth:`forward`.

    Args:
        tasks: The tasks every member must have been trained on.
        checkpoints: Checkpoints of Classifiers.
        flip_tta: Also average over the horizontally and vertically flipped images.

    Raises:
        ConfigError: No checkpoint is given.
        CheckpointError: A checkpoint is missing.
    """

    def __init__(self, tasks: Mapping[str, int], checkpoints: Sequence[str | Path], flip_tta: bool = False) -> None:
        super().__init__()
        if not checkpoints:
            raise ConfigError("--model.checkpoints is empty; give the checkpoints to average, e.g. [a.ckpt, b.ckpt].")
        self.tasks = dict(tasks)
        self.checkpoints = [Path(path) for path in checkpoints]
        for path in self.checkpoints:
            if not path.is_file():
                raise CheckpointError(f"ensemble member {path} not found; check --model.checkpoints.")
        self.members = nn.ModuleList()
        self.views = [(), (-1,), (-2,)] if flip_tta else [()]

    def load(self) -> None:
        """Load the members (once), on the CPU.

        Not in ``__init__``: there, LightningCLI's record of the ensemble's own hyper-parameters would also be
        taken as every member's.

        Raises:
            CheckpointError: A member is not a readable checkpoint of a Classifier of the tasks, naming it.
        """
        if self.members:
            return
        # A first forward pass may run under inference mode; weights created there could not be used outside it.
        with torch.inference_mode(False):
            self.members.extend(_load_member(path, self.tasks) for path in self.checkpoints)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Log of the averaged probabilities, per task."""
        if not self.members:  # called before Ensemble.setup, e.g. to try the data's input size
            self.load()
            self.members.to(x.device)
        runs = [
            member.probabilities(member(x.flip(dims) if dims else x)) for member in self.members for dims in self.views
        ]
        return {task: torch.stack([run[task] for run in runs]).mean(0).clamp_min(1e-12).log() for task in runs[0]}


class Ensemble(Classifier):
    """Averages the class probabilities of several checkpoints, for ``test`` and ``predict``.

    ``medcls test --model medcls.models.Ensemble --model.checkpoints [a.ckpt, b.ckpt]`` needs no ``--ckpt_path``:
    the members bring their weights. The test report then covers the ensemble like any single model. Operating
    points are not carried over from the members (they were chosen for each member's own scores), so the report
    gives no operating-point metrics.

    Args:
        checkpoints: Checkpoints of Classifiers trained on the data's tasks.
        tasks: Task name -> number of classes. Linked from the data module.
        binary_views: Binary questions of graded tasks. Linked from the data module.
        class_names: Task -> class names. Linked from the data module.
        ordinal_tasks: The tasks whose classes are ordered. Linked from the data module.
        flip_tta: Test-time augmentation: also average over horizontally and vertically flipped images.
    """

    needs_checkpoint = False

    def __init__(
        self,
        checkpoints: list[str],
        tasks: dict[str, int],
        binary_views: dict[str, tuple[str, int]] | None = None,
        class_names: dict[str, list[str]] | None = None,
        ordinal_tasks: list[str] | None = None,
        flip_tta: bool = False,
    ) -> None:
        super().__init__(
            net=partial(AveragedNet, checkpoints=checkpoints, flip_tta=flip_tta),
            tasks=tasks,
            binary_views=binary_views,
            class_names=class_names,
            ordinal_tasks=ordinal_tasks,
        )
        # The Classifier reads its options from hparams, which hold the ensemble's own arguments: add its defaults.
        for name, parameter in inspect.signature(Classifier.__init__).parameters.items():
            if parameter.default is None or isinstance(parameter.default, (bool, int, float, str)):
                self.hparams.setdefault(name, parameter.default)

    def setup(self, stage: str) -> None:
        """Load the members' weights, before the trainer moves the model to its device and precision.

        Raises:
            CheckpointError: A member was trained on other classes than the data's, naming it.
        """
        self.net.load()
        for path, member in zip(self.net.checkpoints, self.net.members, strict=True):
            if member.class_names != self.class_names:
                raise CheckpointError(
                    f"ensemble member {path} was trained on the classes {member.class_names}, but the data has the "
                    f"classes {self.class_names}; an ensemble averages models of the same classes: check "
                    "--model.checkpoints."
                )
        super().setup(stage)


def _load_member(path: Path, tasks: dict[str, int]) -> Classifier:
    """The Classifier of a checkpoint, its net rebuilt without the weights files it was first built from.

    Raises:
        CheckpointError: The file is not a readable checkpoint, not one of a medcls Classifier, not of ``tasks``,
            or its weights do not fit its net; the message names the file and ``--model.checkpoints``.
    """
    checkpoint = load_checkpoint(path, role="ensemble member", option="--model.checkpoints")
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or not {"net", "tasks"} <= hparams.keys():
        raise CheckpointError(
            f"ensemble member {path} is not a checkpoint of a medcls Classifier (no net or tasks); "
            "check --model.checkpoints: they are the best.ckpt or last.ckpt files 'medcls fit' writes."
        )
    if hparams["tasks"] != tasks:
        raise CheckpointError(
            f"ensemble member {path} was trained for tasks {hparams['tasks']}, but the data has tasks {tasks}; "
            "an ensemble averages models of the same tasks: check --model.checkpoints."
        )
    try:
        member = Classifier.load_from_checkpoint(path, map_location="cpu", net=without_weights_files(hparams["net"]))
    except Exception as error:
        reason = " ".join(str(error).split())  # on one line; torch's state-dict mismatch lists every key
        reason = reason if len(reason) <= 500 else reason[:500] + "..."
        raise CheckpointError(
            f"ensemble member {path} does not load ({type(error).__name__}: {reason}); check --model.checkpoints."
        ) from error
    return member.eval()
