"""The test report: its metrics computed from the predictions alone, and its files, written and read here only.

``predictions.csv`` holds every probability exactly (the shortest decimal that reads back as the same float32), so
:func:`evaluate_predictions` on the file gives exactly the ``metrics.json`` written beside it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from medcls.errors import DataError
from medcls.io import atomic_write
from medcls.metrics.binary import BinaryViews, binary_questions
from medcls.metrics.bootstrap import DEFAULT_RESAMPLES, Interval, Resampling, Statistics, bootstrap_intervals
from medcls.metrics.evaluation import TaskMetrics

log = logging.getLogger(__name__)


def evaluate_predictions(
    probabilities: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    *,
    binary_views: BinaryViews | None = None,
    operating_points: Mapping[str, Mapping[str, float]] | None = None,
    class_names: Mapping[str, list[str]] | None = None,
    ordinal_tasks: Collection[str] = (),
    groups: np.ndarray | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of every task and binary question of a test set, with its bootstrap confidence interval.

    All metrics of a task and its binary questions are computed on the same resamples, all resamples at once (see
    :mod:`medcls.metrics.bootstrap`), as :func:`~medcls.metrics.evaluation.evaluate_task` computes them for each
    alone. Bootstrap resamples on which a metric is undefined (an AUC on a resample without positives) are summarised
    in one logged line for the whole report. Each task and its binary questions are evaluated on the images labelled for
    the task (a label of -1 marks an image unlabelled for it); the joint accuracy on the images labelled for all.

    Args:
        probabilities: Task -> N x K class probabilities.
        labels: Task -> N true classes (-1: unlabelled for the task).
        binary_views: Binary questions of graded tasks (e.g. referable DR), name -> (task, lowest positive grade).
        operating_points: Question -> point name -> threshold, chosen on validation.
        class_names: Task -> class names, recorded in the report (default: the class indices).
        ordinal_tasks: Tasks whose classes are ordered: their kappa is quadratic weighted, the others' unweighted.
        groups: Group of each image (patient, exam); groups are resampled together. ``None``: images.
        n_resamples: Resamples behind each 95 % interval.
        seed: Seed of the resampling.

    Returns:
        What ``metrics.json`` holds: ``n``, ``resampled`` (``images`` or ``groups``), ``class_names``,
        ``ordinal_tasks``, one entry per task and binary question (metric -> value and interval), ``joint_accuracy``
        with several tasks, and ``operating_points``.
    """
    points = operating_points or {}
    views = binary_views or {}
    first = next(iter(labels.values()))
    metrics: dict[str, Any] = {
        "n": len(first),
        "resampled": "groups" if groups is not None else "images",
        "class_names": {task: list((class_names or {}).get(task, map(str, range(p.shape[1])))) for task, p in
                        probabilities.items()},
        "ordinal_tasks": [task for task in probabilities if task in ordinal_tasks],
    }  # fmt: skip
    labelled = {task: labels[task] >= 0 for task in probabilities}
    task_of = {task: task for task in probabilities} | {name: task for name, (task, _) in views.items()}
    questions = {task: (p[labelled[task]], labels[task][labelled[task]]) for task, p in probabilities.items()}
    questions |= binary_questions(probabilities, labels, views)
    task_metrics = {
        name: TaskMetrics(question, truth, operating_points=points.get(name), ordinal=task_of[name] in ordinal_tasks)
        for name, (question, truth) in questions.items()
    }
    statistics: dict[str, Statistics] = dict(task_metrics)
    images = {name: labelled[task_of[name]] for name in questions}
    if len(probabilities) > 1:
        every = np.all(list(labelled.values()), axis=0)
        correct = np.all([p.argmax(1) == labels[task] for task, p in probabilities.items()], axis=0)[every]
        statistics["joint_accuracy"] = _accuracy_of(correct)
        images["joint_accuracy"] = every
    intervals = _intervals(statistics, images, groups, n_resamples, seed)
    for name, metric in task_metrics.items():
        metrics[name] = metric.results(intervals[name])
    if "joint_accuracy" in intervals:
        metrics["joint_accuracy"] = intervals["joint_accuracy"]["accuracy"].as_dict()
    undefined = [f"{name}/{metric}" for name, by_metric in intervals.items() for metric, interval in by_metric.items()
                 if interval.problem]  # fmt: skip
    if undefined:
        examples = ", ".join(undefined[:3]) + (f" and {len(undefined) - 3} more" if len(undefined) > 3 else "")
        log.warning(
            "%d metric(s) are undefined on some bootstrap resamples of this test set (%s): their intervals use the "
            "other resamples, or are left out where most resamples are undefined.",
            len(undefined),
            examples,
        )
    metrics["operating_points"] = {name: dict(chosen) for name, chosen in points.items()}
    return metrics


def _intervals(
    statistics: Mapping[str, Statistics],
    images: Mapping[str, np.ndarray],
    groups: np.ndarray | None,
    n_resamples: int,
    seed: int,
) -> dict[str, dict[str, Interval]]:
    """Each statistic's intervals on the images selected for it, one resampling for each distinct selection.

    A task and its binary questions are on the same images, and so is the joint accuracy where every image is
    labelled for every task: drawn once, their resamples serve them all, as the same seed would draw them again.
    """
    selections: dict[bytes, list[str]] = {}
    for name, selected in images.items():
        selections.setdefault(selected.tobytes(), []).append(name)
    intervals = {}
    for names in selections.values():
        selected = images[names[0]]
        resampling = Resampling(int(selected.sum()), None if groups is None else groups[selected], n_resamples, seed)
        intervals |= bootstrap_intervals({name: statistics[name] for name in names}, resampling)
    return {name: intervals[name] for name in statistics}


def _accuracy_of(correct: np.ndarray) -> Statistics:
    """The share of correct images as a statistic of bootstrap counts, from N booleans."""
    correct = np.flatnonzero(correct)

    def accuracy(counts: np.ndarray) -> dict[str, np.ndarray]:
        return {"accuracy": counts[correct].sum(0) / counts.sum(0)}

    return accuracy


def write_predictions(
    path: Path,
    ids: list[str],
    probabilities: Mapping[str, Any],
    labels: Mapping[str, Any] | None = None,
    *,
    class_names: Mapping[str, list[str]] | None = None,
    decisions: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write ``predictions.csv``: an image per row, its id, then per task its classes and probabilities.

    Per task: the true class index ``<task>`` where known (empty for an image unlabelled for the task), the predicted
    class index ``<task>_pred`` and name ``<task>_pred_class``, and each probability ``<task>_prob_<k>`` as the
    shortest decimal that reads back as the same float32. Then the decision (0/1) at each operating point,
    ``<question>@<point>`` (e.g. ``referable_dr@youden``).

    Args:
        path: The file (written atomically).
        ids: The image ids, one per row.
        probabilities: Task -> N x K probabilities (arrays or CPU tensors).
        labels: Task -> N true classes (-1: unlabelled); ``None`` for predictions without references.
        class_names: Task -> class names; default: the class indices.
        decisions: ``"<question>@<point>"`` -> N decisions, as :func:`~medcls.metrics.binary.decisions` gives them.
    """
    probabilities = {task: np.asarray(p, dtype=np.float32) for task, p in probabilities.items()}
    labels = {task: np.asarray(y) for task, y in (labels or {}).items()}
    names = {
        task: list((class_names or {}).get(task, map(str, range(p.shape[1])))) for task, p in probabilities.items()
    }
    decisions = dict(decisions or {})
    columns = ["id"]
    for task, task_probabilities in probabilities.items():
        columns += [task] if task in labels else []
        columns += [f"{task}_pred", f"{task}_pred_class"] + [
            f"{task}_prob_{k}" for k in range(task_probabilities.shape[1])
        ]
    columns += list(decisions)

    def write(file: IO[str]) -> None:
        writer = csv.writer(file)
        writer.writerow(columns)
        for i, image_id in enumerate(ids):
            row: list[Any] = [image_id]
            for task, task_probabilities in probabilities.items():
                if task in labels:
                    row.append(int(labels[task][i]) if labels[task][i] >= 0 else "")
                predicted = int(task_probabilities[i].argmax())
                row += [predicted, names[task][predicted], *map(str, task_probabilities[i])]
            row += [int(decided[i]) for decided in decisions.values()]
            writer.writerow(row)

    atomic_write(path, write)


def read_predictions(
    path: Path, *, labelled: bool = True
) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Read a ``predictions.csv`` of medcls: the ids, and per task the float32 probabilities and the true classes.

    A true class left empty (an image unlabelled for the task) reads as -1.

    Args:
        path: The file.
        labelled: Require the true classes (a ``test`` output); ``False`` also reads ``predict`` outputs, whose
            true classes come back empty.

    Raises:
        DataError: If the file is missing, holds no predictions or no task columns, or (``labelled``) no true classes.
    """
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except OSError as error:
        raise DataError(f"cannot read predictions file {path} ({error.strerror}); pass a predictions.csv.") from None
    if not rows:
        raise DataError(f"{path} has no predictions.")
    tasks = [column.removesuffix("_pred") for column in rows[0] if column.endswith("_pred")]
    if not tasks:
        raise DataError(f"{path} has no '<task>_pred' columns: pass a predictions.csv written by medcls.")
    if labelled and any(task not in rows[0] for task in tasks):
        raise DataError(f"{path} has no true classes: compare the predictions.csv of 'medcls test' runs.")
    probabilities, labels = {}, {}
    for task in tasks:
        columns = sorted((c for c in rows[0] if c.startswith(f"{task}_prob_")), key=lambda c: int(c.rsplit("_", 1)[1]))
        probabilities[task] = np.array([[row[c] for c in columns] for row in rows], dtype=np.float32)
        if task in rows[0]:
            labels[task] = np.array([int(row[task]) if row[task] else -1 for row in rows])  # empty: unlabelled
    return [row["id"] for row in rows], probabilities, labels


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> None:
    """Write ``metrics.json`` as standard JSON.

    An undefined metric (NaN) is ``null``; an infinite threshold (no image called positive) the string ``"inf"``.
    """
    atomic_write(path, lambda file: json.dump(_json_safe(metrics), file, indent=2, allow_nan=False))


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def metric_values(report: Mapping[str, object]) -> dict[tuple[str, str], float]:
    """The values of a test report (``metrics.json``), by (question, metric); undefined ones are NaN.

    A metric of its own, such as the joint accuracy, has the metric name ``""``. Entries that are no metric
    results (``n``, ``loss``, the operating points' thresholds table) are left out.
    """
    values = {}
    for question, results in report.items():
        if not isinstance(results, Mapping) or question in ("operating_points", "class_names"):
            continue
        for metric, result in ({"": results} if "value" in results else results).items():
            value = result.get("value")
            values[question, metric] = math.nan if value is None or isinstance(value, str) else float(value)
    return values
