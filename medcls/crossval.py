"""k-fold cross-validation: every fold of a config trained and tested in turn, and one table of the results."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from medcls.io import atomic_write
from medcls.metrics.report import metric_values

if TYPE_CHECKING:
    from medcls.cli import MedclsCLI

log = logging.getLogger(__name__)


def run_folds(
    medcls: Callable[[list[str]], MedclsCLI], config_args: Sequence[str], num_folds: int, out: Path
) -> list[dict]:
    """Fit and test each fold (``--data.fold k``), skipping folds whose results are already in ``out``.

    Each fold trains into its own experiment ``<out name>-fold<k>`` under ``out``; its test ``metrics.json``
    is copied to ``out/fold<k>.json`` last, so an interrupted run resumes at the first unfinished fold.

    Args:
        medcls: The command to run, ``medcls.cli.main`` (which returns the CLI it ran, its trainer included).
        config_args: The config and options of every fold, e.g. ``["--config", "configs/messidor/canet.yaml"]``.
        num_folds: Number of folds (the data module's ``num_folds``).
        out: Folder of the runs and results.

    Returns:
        The test metrics of every fold, in fold order.
    """
    results = []
    for fold in range(num_folds):
        done = out / f"fold{fold}.json"
        if done.exists():
            log.info("fold %d already done: %s", fold, done)
        else:
            run = [*config_args, "--data.fold", str(fold), "--data.num_folds", str(num_folds),
                   "--trainer.logger.init_args.save_dir", str(out),
                   "--trainer.logger.init_args.name", f"{out.name}-fold{fold}"]  # fmt: skip
            medcls(["fit", *run])
            tested = medcls(["test", *run, "--ckpt_path", "best"])
            metrics = (Path(tested.trainer.log_dir) / "metrics.json").read_text()
            atomic_write(done, lambda file, text=metrics: file.write(text))
        results.append(json.loads(done.read_text()))
    return results


def summarise(results: Sequence[dict]) -> list[dict[str, object]]:
    """Mean, standard deviation and 95 % t-interval of the mean over folds, per question and metric.

    Args:
        results: The test ``metrics.json`` of each fold.
    """
    per_fold = [metric_values(fold) for fold in results]
    rows = []
    for question, metric in per_fold[0]:
        values = np.array([fold.get((question, metric), np.nan) for fold in per_fold])
        values = values[np.isfinite(values)]
        if len(values) == 0:
            continue
        mean, sd = values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0
        half = stats.t.ppf(0.975, len(values) - 1) * sd / np.sqrt(len(values)) if len(values) > 1 else 0.0
        rows.append({"question": question, "metric": metric or question, "folds": len(values), "mean": mean,
                     "sd": sd, "ci_low": mean - half, "ci_high": mean + half})  # fmt: skip
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """The cross-validation summary as markdown: mean +- SD and the 95 % CI of the mean, per metric."""
    lines = ["| question | metric | folds | mean +- SD | 95% CI of the mean |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(
            f"| {row['question']} | {row['metric']} | {row['folds']} | {row['mean']:.3f} +- {row['sd']:.3f} "
            f"| [{row['ci_low']:.3f}, {row['ci_high']:.3f}] |"
        )
    return "\n".join(lines) + "\n"
