"""Lightning's learning-rate range test on a medcls config: where does the training loss fall fastest?"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from lightning.pytorch.tuner import Tuner
from matplotlib.figure import Figure

from medcls.errors import TuningError
from medcls.io import atomic_write, save_figure
from medcls.tuning.search import LogUniform

if TYPE_CHECKING:
    from medcls.cli import MedclsCLI


@dataclass(frozen=True)
class RangeTest:
    """The result of Lightning's learning-rate range test.

    Args:
        lrs: The learning rate of each step, rising exponentially from ``min_lr``.
        losses: The smoothed training loss after each step.
        suggestion: The learning rate of the steepest descent of the loss; ``None`` with too few finite losses.
        figure: Lightning's plot of the loss against the learning rate, the suggestion marked.
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float | None
    figure: Figure


def lr_range_test(
    medcls: Callable[..., MedclsCLI],
    config_args: Sequence[str],
    out: Path,
    min_lr: float,
    max_lr: float,
    num_training: int,
) -> RangeTest:
    """Run Lightning's learning-rate finder on a medcls config: ``num_training`` steps from ``min_lr`` to ``max_lr``.

    The model is left as it was built (the finder restores it from a temporary checkpoint, which it writes to
    and deletes from ``out``); ``out`` also gets the run's ``config.yaml``. No run folder is created.

    Args:
        medcls: The command that builds the CLI, ``medcls.cli.main`` (called with ``run=False``).
        config_args: The config and options, as ``medcls fit`` takes them but without the subcommand.
        out: Folder of the temporary checkpoint and ``config.yaml``.
        min_lr: The first learning rate.
        max_lr: The last learning rate.
        num_training: Number of training steps (one learning rate each).
    """
    LogUniform(min_lr, max_lr, "--min-lr/--max-lr")  # the same validation as a search range
    if num_training < 1:
        raise TuningError(f"--num-training needs at least one step; got {num_training}.")
    # No run folder (nothing is trained for keeps); enough epochs for num_training steps, and a finite run length
    # for schedules that need one (CosineToZero); no validation, which the range test does not read.
    steps = str(num_training)
    cli = medcls([*config_args, "--trainer.logger", "false", "--trainer.default_root_dir", str(out),
                "--trainer.max_epochs", steps, "--trainer.max_steps", steps, "--trainer.num_sanity_val_steps", "0",
                "--trainer.check_val_every_n_epoch", str(num_training + 1)], run=False)  # fmt: skip
    # update_attr=False: the Classifier's learning rate lives in its injected optimizer, not in an attribute.
    finder = Tuner(cli.trainer).lr_find(
        cli.model, datamodule=cli.datamodule, min_lr=min_lr, max_lr=max_lr, num_training=num_training,
        update_attr=False,
    )  # fmt: skip
    if finder is None:
        raise TuningError("the learning-rate finder does not run with --trainer.fast_dev_run; leave it out.")
    suggestion = finder.suggestion()
    return RangeTest(list(finder.results["lr"]), list(finder.results["loss"]), suggestion, finder.plot(suggest=True))


def save_range_test(result: RangeTest, out: Path) -> None:
    """Write ``out/lr_find.csv`` (lr, loss per step) and ``out/lr_find.png``."""

    def write(file: IO[str]) -> None:
        writer = csv.writer(file)
        writer.writerow(["lr", "loss"])
        writer.writerows(zip(map(repr, result.lrs), map(repr, result.losses), strict=True))

    atomic_write(out / "lr_find.csv", write)
    result.figure.axes[0].set_title(
        "Learning-rate range test" + ("" if result.suggestion is None else f": suggestion {result.suggestion:.3g}")
    )
    save_figure(result.figure, out / "lr_find.png", dpi=120)
