"""Ensembles: the averaged class probabilities of several trained classifiers (Lakhani & Sundaram; Gulshan et al.)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from medcls.errors import CheckpointError
from medcls.models.classifier import Classifier


class AveragedNet(nn.Module):
    """The members' class probabilities, averaged (over flips too, with test-time augmentation), as log-probabilities.

    Returning log-probabilities lets the Classifier's softmax give back exactly the averaged probabilities.

    Args:
        tasks: The tasks every member must have been trained on.
        checkpoints: Checkpoints of Classifiers.
        flip_tta: Also average over the horizontally and vertically flipped images.
    """

    def __init__(self, tasks: Mapping[str, int], checkpoints: Sequence[str | Path], flip_tta: bool = False) -> None:
        super().__init__()
        self.tasks = dict(tasks)
        self.checkpoints = [Path(path) for path in checkpoints]
        for path in self.checkpoints:
            if not path.is_file():
                raise CheckpointError(f"ensemble member {path} not found; check --model.checkpoints.")
        self.members = nn.ModuleList()
        self.views = [(), (-1,), (-2,)] if flip_tta else [()]

    def load(self) -> None:
        """Load the members (once).

        Not in ``__init__``: there, LightningCLI's record of the ensemble's own hyper-parameters would also be
        taken as every member's.
        """
        if not self.members:
            self.members.extend(_load_member(path, self.tasks) for path in self.checkpoints)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Log of the averaged probabilities, per task."""
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
        flip_tta: Test-time augmentation: also average over horizontally and vertically flipped images.
    """

    needs_checkpoint = False

    def __init__(
        self,
        checkpoints: list[str],
        tasks: dict[str, int],
        binary_views: dict[str, tuple[str, int]] | None = None,
        flip_tta: bool = False,
    ) -> None:
        super().__init__(
            net=partial(AveragedNet, checkpoints=checkpoints, flip_tta=flip_tta),
            tasks=tasks,
            binary_views=binary_views,
        )
        # The Classifier reads its options from hparams, which hold the ensemble's own arguments: add its defaults.
        for name, parameter in inspect.signature(Classifier.__init__).parameters.items():
            if parameter.default is None or isinstance(parameter.default, (bool, int, float, str)):
                self.hparams.setdefault(name, parameter.default)

    def setup(self, stage: str) -> None:
        """Load the members' weights."""
        self.net.load()
        super().setup(stage)


def _load_member(path: Path, tasks: dict[str, int]) -> Classifier:
    member = Classifier.load_from_checkpoint(path, map_location="cpu")
    if member.tasks != tasks:
        raise CheckpointError(
            f"ensemble member {path} was trained for tasks {member.tasks}, but the data has tasks {tasks}; "
            "an ensemble averages models of the same tasks."
        )
    return member.eval()
