"""The lecture's random search of the learning rate (and weight decay) over short fits.

The lecture samples the learning rate log-uniformly, ``lr = e^x`` with ``x ~ U[-5, 0]``: each decade of
learning rates gets as many trials as any other, where a uniform draw would spend nearly all of them near
the top of the range.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from medcls.errors import TrainingError, TuningError
from medcls.io import atomic_write

if TYPE_CHECKING:
    from medcls.cli import MedclsCLI

log = logging.getLogger(__name__)

LECTURE_LR_RANGE = (math.exp(-5), 1.0)
"""The lecture's learning rates: ``e^x`` with ``x ~ U[-5, 0]``."""

LR_OPTION = "--model.init_args.optimizer.init_args.lr"
WEIGHT_DECAY_OPTION = "--model.init_args.optimizer.init_args.weight_decay"
TRIAL_FIELDS = ("trial", "lr", "weight_decay", "monitor", "mode", "score", "status", "run")


@dataclass(frozen=True)
class LogUniform:
    """Values whose logarithm is uniform between ``log(low)`` and ``log(high)``.

    Args:
        low: The smallest value, > 0.
        high: The largest value, > ``low``.
        name: How the user set the range (e.g. ``--lr-range``), for error messages.
    """

    low: float
    high: float
    name: str = "range"

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high < math.inf:
            raise TuningError(
                f"{self.name} needs 0 < low < high, both finite; got low={self.low:g}, high={self.high:g}."
            )

    def sample(self, rng: np.random.Generator) -> float:
        """One value drawn with ``rng``."""
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))


@dataclass(frozen=True)
class Trial:
    """One point of a search: the optimizer's learning rate and, when searched, its weight decay."""

    index: int
    lr: float
    weight_decay: float | None = None

    @property
    def name(self) -> str:
        """The trial's experiment folder under the search's output folder."""
        return f"trial{self.index:03d}"

    def options(self) -> list[str]:
        """The ``medcls fit`` options that set this trial's hyper-parameters."""
        options = [LR_OPTION, repr(self.lr)]
        if self.weight_decay is not None:
            options += [WEIGHT_DECAY_OPTION, repr(self.weight_decay)]
        return options


@dataclass(frozen=True)
class TrialResult:
    """A finished trial and its best validation score.

    Args:
        trial: The trial.
        monitor: The validation metric the checkpoint callback monitored (e.g. ``val/loss``).
        mode: ``min`` or ``max``: which way is better.
        score: The best value of ``monitor``; ``None`` when the trial failed.
        run: The trial's run folder, relative to the search's output folder.
        status: ``ok``, or why the trial failed (e.g. ``diverged: val/loss nan``).
    """

    trial: Trial
    monitor: str
    mode: str
    score: float | None
    run: str
    status: str = "ok"

    @property
    def failed(self) -> bool:
        """Whether the trial produced no finite score."""
        return self.score is None


def sample_trials(
    num_trials: int, lr: LogUniform, weight_decay: LogUniform | None = None, seed: int = 0
) -> list[Trial]:
    """Draw a search's trials: per trial the learning rate, then the weight decay if a range is given.

    The draws come from one generator seeded with ``seed``, trial after trial, so a search with more trials
    extends a shorter one with the same seed and ranges rather than replacing it.

    Args:
        num_trials: Number of trials.
        lr: Range of the learning rate (the lecture's: ``LogUniform(*LECTURE_LR_RANGE)``).
        weight_decay: Range of the weight decay; ``None`` leaves the config's weight decay alone.
        seed: Seed of the generator.
    """
    if num_trials < 1:
        raise TuningError(f"a search needs at least one trial; got {num_trials}.")
    rng = np.random.default_rng(seed)
    trials = []
    for index in range(num_trials):
        trial_lr = lr.sample(rng)
        trials.append(Trial(index, trial_lr, None if weight_decay is None else weight_decay.sample(rng)))
    return trials


def run_search(
    medcls: Callable[[list[str]], MedclsCLI], config_args: Sequence[str], trials: Sequence[Trial], out: Path
) -> list[TrialResult]:
    """Fit every trial not yet recorded in ``out/trials.csv``, recording each as soon as it ends.

    Each trial trains into its own experiment ``out/trial<NNN>``; its score is the best value of the checkpoint
    callback's monitor (``--checkpoint.monitor``, ``--checkpoint.mode``). A trial that diverges (a loss that
    ends NaN or infinite) or has no finite score is recorded as failed. ``trials.csv`` is rewritten atomically
    after every trial, so an interrupted search resumes at the first unrecorded trial; the recorded trials must
    be the ones ``trials`` draws.

    Args:
        medcls: The command, ``medcls.cli.main``; it returns the CLI with its trainer.
        config_args: The config and options of every fit, e.g. ``["--config", "configs/demo.yaml"]``.
        trials: The trials, from ``sample_trials``.
        out: Folder of the trials' runs and of ``trials.csv``.

    Returns:
        The results of ``trials``, in trial order.
    """
    path = out / "trials.csv"
    recorded = {result.trial.index: result for result in read_results(path)}
    for trial in trials:
        previous = recorded.get(trial.index)
        if previous is not None:
            _check_same_trial(previous.trial, trial, path)
            log.info("%s already done: %s = %s", trial.name, previous.monitor, previous.score)
            continue
        recorded[trial.index] = run_trial(medcls, config_args, trial, out)
        write_results(path, [recorded[index] for index in sorted(recorded)])
    return [recorded[trial.index] for trial in trials]


def run_trial(
    medcls: Callable[[list[str]], MedclsCLI], config_args: Sequence[str], trial: Trial, out: Path
) -> TrialResult:
    """Fit one trial into ``out/<trial name>`` and read its best validation score; a diverged fit is a failed trial."""
    try:
        cli = medcls(["fit", *config_args, *trial.options(),
                      "--trainer.logger.init_args.save_dir", str(out),
                      "--trainer.logger.init_args.name", trial.name])  # fmt: skip
    except TrainingError as diverged:
        log.warning("%s (lr %.3g) diverged: %s", trial.name, trial.lr, diverged)
        return TrialResult(trial, *_monitor(config_args), None, trial.name, f"diverged: {diverged}")
    checkpoint = cli.trainer.checkpoint_callback
    best = checkpoint.best_model_score
    score, status = None, "ok"
    if best is None or not math.isfinite(float(best)):
        status = f"no finite {checkpoint.monitor}"
        log.warning("%s (lr %.3g) failed: %s", trial.name, trial.lr, status)
    else:
        score = float(best)
    run = os.path.relpath(cli.trainer.log_dir, out)
    return TrialResult(trial, checkpoint.monitor, checkpoint.mode, score, run, status)


def _monitor(config_args: Sequence[str]) -> tuple[str, str]:
    """The checkpoint's monitor and mode as the options set them (a diverged fit leaves no trainer to ask)."""
    options = dict(zip(config_args, [*config_args[1:], ""], strict=True))
    return options.get("--checkpoint.monitor", "val/loss"), options.get("--checkpoint.mode", "min")


def _check_same_trial(recorded: Trial, drawn: Trial, path: Path) -> None:
    if recorded != drawn:
        raise TuningError(
            f"{path} records {recorded.name} with lr {recorded.lr:.6g} and weight decay {recorded.weight_decay}, "
            f"but this search draws lr {drawn.lr:.6g} and weight decay {drawn.weight_decay}: the seed or a range "
            "changed. Resume with the search's original settings, or choose another --out."
        )


def read_results(path: Path) -> list[TrialResult]:
    """The results recorded in a ``trials.csv``; none if the file does not exist."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [
        TrialResult(
            Trial(int(row["trial"]), float(row["lr"]), float(row["weight_decay"]) if row["weight_decay"] else None),
            row["monitor"],
            row["mode"],
            float(row["score"]) if row["score"] else None,
            row["run"],
            row["status"],
        )
        for row in rows
    ]


def write_results(path: Path, results: Sequence[TrialResult]) -> None:
    """Write ``trials.csv`` atomically: one row per trial, floats written exactly (``repr``)."""

    def write(file: IO[str]) -> None:
        writer = csv.writer(file)
        writer.writerow(TRIAL_FIELDS)
        for result in results:
            trial = result.trial
            writer.writerow([trial.index, repr(trial.lr), _exact(trial.weight_decay), result.monitor, result.mode,
                             _exact(result.score), result.status, result.run])  # fmt: skip

    atomic_write(path, write)


def _exact(value: float | None) -> str:
    return "" if value is None else repr(value)


def rank(results: Sequence[TrialResult]) -> list[TrialResult]:
    """The trials from best to worst score in the direction of their monitor; failed trials last, in order.

    Raises:
        TuningError: if the trials monitored different metrics, whose scores cannot be compared.
    """
    finished = [result for result in results if not result.failed]  # a failed trial has no score to compare
    monitors = {(result.monitor, result.mode) for result in finished}
    if len(monitors) > 1:
        raise TuningError(
            f"the trials monitored different metrics {sorted(monitors)}; their scores cannot be ranked together. "
            "Keep --checkpoint.monitor and --checkpoint.mode as they were, or choose another --out."
        )
    sign = -1 if finished and finished[0].mode == "max" else 1
    ranked = sorted(finished, key=lambda r: (sign * r.score, r.trial.index))
    return ranked + [result for result in results if result.failed]


def markdown_table(ranked: Sequence[TrialResult]) -> str:
    """The ranked trials as markdown: rank, trial, learning rate, weight decay, score, run folder."""
    score = f"{ranked[0].monitor} ({ranked[0].mode})" if ranked else "score"
    lines = [f"| rank | trial | lr | weight decay | {score} | run |", "| --- | --- | --- | --- | --- | --- |"]
    for position, result in enumerate(ranked, start=1):
        trial = result.trial
        weight_decay = "-" if trial.weight_decay is None else f"{trial.weight_decay:.3g}"
        value = f"failed ({result.status})" if result.failed else f"{result.score:.4f}"
        place = "-" if result.failed else str(position)
        lines.append(f"| {place} | {trial.index} | {trial.lr:.3g} | {weight_decay} | {value} | {result.run} |")
    return "\n".join(lines) + "\n"


def plot_search(results: Sequence[TrialResult]) -> Figure:
    """Validation score against learning rate (log axis): the best trial ringed, failed trials crossed.

    With a searched weight decay, the points are coloured by it (log scale).
    """
    figure, ax = plt.subplots(figsize=(6, 4))
    ax.set_xscale("log")
    finished = [result for result in results if not result.failed]
    lrs = [result.trial.lr for result in finished]
    scores = [result.score for result in finished]
    decays = [result.trial.weight_decay for result in finished]
    if finished and None not in decays:
        points = ax.scatter(lrs, scores, c=decays, norm=LogNorm(), cmap="viridis", zorder=2)
        figure.colorbar(points, ax=ax, label="weight decay")
    else:
        ax.scatter(lrs, scores, color="tab:blue", zorder=2)
    if finished:
        best = rank(finished)[0]
        ax.scatter([best.trial.lr], [best.score], s=250, facecolors="none", edgecolors="tab:orange", linewidths=2,
                   zorder=3, label="best")  # fmt: skip
    failed = [result.trial.lr for result in results if result.failed]
    if failed:  # no score to place them by: drawn on the bottom edge
        ax.scatter(failed, [0.02] * len(failed), marker="x", color="tab:red", transform=ax.get_xaxis_transform(),
                   label="failed")  # fmt: skip
    if results:
        every_lr = [result.trial.lr for result in results]  # points on the axis edge do not widen the limits
        ax.set_xlim(min(every_lr) / 1.5, max(every_lr) * 1.5)
        ax.legend(loc="best")
    monitor = f"{results[0].monitor} ({results[0].mode})" if results else "validation score"
    ax.set_xlabel("learning rate")
    ax.set_ylabel(monitor)
    ax.set_title(f"Random search: {monitor} of each trial")
    ax.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return figure
