"""Run folders ``<save_dir>/<experiment>/version_<N>``: named, claimed atomically, found again, released when empty.

Every ``medcls`` command writes into a run folder of its own. Two commands started at once in the same experiment
must not share one, so a command claims its folder by creating it (``mkdir`` fails for the second comer, which takes
the next number) before anything is written; a command that fails before saving a checkpoint removes the folder it
claimed, so that a refused or failed command leaves nothing behind.

The experiment is the TensorBoard logger's ``save_dir`` / ``name``; a command's config (as LightningCLI parsed it)
names it, and ``--ckpt_path best`` or ``last`` and a resumed fit are resolved against it here.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from medcls.errors import CheckpointError
from medcls.io import load_checkpoint

log = logging.getLogger(__name__)

_VERSION = re.compile(r"version_(\d+)")


def version_of(folder: str | Path) -> int | None:
    """The number N of a run folder named ``version_N``, else ``None``."""
    match = _VERSION.fullmatch(Path(folder).name)
    return int(match[1]) if match else None


@dataclass(frozen=True)
class RunFolder:
    """A run folder this command claimed.

    Attributes:
        path: The folder, ``<experiment>/version_<N>``.
        first_created: The outermost folder the claim created (the run's own, or the experiment's or ``runs/``
            where they were new): what releasing it may remove.
    """

    path: Path
    first_created: Path

    @property
    def version(self) -> int:
        """The run's number N."""
        return int(self.path.name.removeprefix("version_"))

    @classmethod
    def claim(cls, experiment: Path) -> RunFolder:
        """Create the next free ``version_<N>`` folder of ``experiment``.

        Safe against concurrent commands, also on a shared file system: creating a folder either succeeds or fails
        because it exists, for exactly one of the racers.
        """
        first_created = next((p for p in [experiment, *experiment.parents][::-1] if not p.exists()), None)
        experiment.mkdir(parents=True, exist_ok=True)
        while True:
            taken = [version_of(path) for path in experiment.iterdir() if path.is_dir()]
            folder = experiment / f"version_{max((n for n in taken if n is not None), default=-1) + 1}"
            try:
                folder.mkdir()
            except FileExistsError:  # another command claimed it since we listed the folder: take the next one
                continue
            return cls(folder, first_created or folder)

    def release(self) -> None:
        """Remove the folder (and the empty folders the claim created) unless it holds a checkpoint worth keeping."""
        if any(self.path.rglob("*.ckpt")):
            return
        shutil.rmtree(self.path, ignore_errors=True)
        for parent in self.path.parents:
            if not parent.is_relative_to(self.first_created):
                break
            with contextlib.suppress(OSError):  # not empty: another run is in it
                parent.rmdir()
        log.debug("Removed %s: the command failed before saving anything worth keeping.", self.path)


RUN_CHECKPOINTS = ("best", "last")
"""What ``--ckpt_path`` may say instead of a path: that checkpoint of the experiment's newest run."""


def newest_run_checkpoint(experiment: Path, which: str) -> Path:
    """The best or last checkpoint of the newest run of ``experiment`` (``which``: ``best`` or ``last``).

    The best is ``best.ckpt``, or with top-k checkpoints under other names, the best one ``last.ckpt`` records.

    Raises:
        CheckpointError: If no run of the experiment has checkpoints, or the newest lacks the one asked for.
    """
    found = max(experiment.glob("version_*/checkpoints/*.ckpt"), key=lambda path: path.stat().st_mtime, default=None)
    if found is None:
        raise CheckpointError(
            f"--ckpt_path {which}: experiment {experiment} has no run with checkpoints; "
            "train one with 'medcls fit' first, or pass the path of a checkpoint."
        )
    checkpoints = found.parent
    path = checkpoints / f"{which}.ckpt"
    if which == "best" and not path.exists() and (checkpoints / "last.ckpt").exists():
        path = Path(recorded_best(load_checkpoint(checkpoints / "last.ckpt")) or path)
    if not path.exists():
        raise CheckpointError(
            f"--ckpt_path {which}: the newest run of {experiment} has no {path}; pass a checkpoint's path."
        )
    return path


def recorded_best(checkpoint: dict[str, Any]) -> str | None:
    """The path of the best checkpoint, as the checkpoint callback with a monitored metric recorded it."""
    for key, state in checkpoint.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("monitor") and state.get("best_model_path"):
            return state["best_model_path"]
    return None


def run_folder_of(checkpoint: Path, experiment: Path) -> Path | None:
    """The run folder of ``experiment`` that holds ``checkpoint`` in its ``checkpoints/``, if any."""
    checkpoints = checkpoint.resolve().parent
    if checkpoints.name == "checkpoints" and checkpoints.parent.parent == experiment.resolve():
        return checkpoints.parent
    return None


def name_experiment(config: Namespace) -> None:
    """Name the experiment ``<data>-<net>`` (e.g. ``idrid-canet``) where the config names none."""
    logger = _tensorboard_logger(config)
    if logger is not None and logger.init_args.name is None:
        data = config.data.class_path.rsplit(".", 1)[-1].removesuffix("DataModule")
        net = config.model.init_args.get("net")
        parts = [data] + ([net.class_path.rsplit(".", 1)[-1].removesuffix("Net")] if isinstance(net, Namespace) else [])
        logger.init_args.name = "-".join(parts).lower()


def experiment_of(config: Namespace) -> Path | None:
    """The folder of the configured experiment's runs; None without the TensorBoard logger."""
    logger = _tensorboard_logger(config)
    return None if logger is None else Path(logger.init_args.save_dir) / logger.init_args.name


def resolve_run_checkpoint(config: Namespace) -> None:
    """Replace ``--ckpt_path best`` or ``last`` by that checkpoint's path in the experiment's newest run."""
    which = config.get("ckpt_path")
    if which not in RUN_CHECKPOINTS:
        return
    experiment = experiment_of(config)
    if experiment is None:
        raise CheckpointError(f"--ckpt_path {which} needs the TensorBoard logger to find the runs; pass a path.")
    config.ckpt_path = str(newest_run_checkpoint(experiment, which))


def continue_run(config: Namespace) -> None:
    """Resume a fit in the run folder of its checkpoint, so that its logs and checkpoints continue there."""
    experiment = experiment_of(config)
    if experiment is None or config.trainer.logger.init_args.get("version") is not None:
        return
    run = run_folder_of(Path(config.ckpt_path), experiment)
    if run is not None:  # as a number where it is one, as Lightning names versions (the progress bar shows it)
        number = version_of(run)
        config.trainer.logger.init_args.version = run.name if number is None else number


def _tensorboard_logger(config: Namespace) -> Namespace | None:
    logger = config.trainer.logger
    if isinstance(logger, Namespace) and logger.class_path.endswith("TensorBoardLogger"):
        return logger
    return None
