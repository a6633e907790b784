"""Several models' test predictions side by side: metrics with confidence intervals, DeLong p-values for AUCs."""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np

from medcls.errors import DataError
from medcls.io import atomic_write
from medcls.metrics.binary import BinaryViews, binary_questions
from medcls.metrics.bootstrap import DEFAULT_RESAMPLES
from medcls.metrics.evaluation import evaluate_task
from medcls.metrics.report import read_predictions
from medcls.metrics.stats import delong_test

METRICS = ("auc", "accuracy", "kappa")
"""The metrics of the comparison table, each with its 95 % confidence interval."""


def compare(
    predictions: Mapping[str, Path],
    reference: str,
    views: BinaryViews,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    ordinal_tasks: Collection[str] | None = None,
) -> list[dict[str, object]]:
    """One row per model and question: metrics with CIs; for binary questions, DeLong's test against the reference.

    Args:
        predictions: Model name -> its test ``predictions.csv``; all on the same images in the same order.
        reference: The model the others' AUCs are compared with.
        views: Binary views of graded tasks to add, e.g. ``{"referable_dr": ("dr", 2)}``.
        n_resamples: Bootstrap resamples of each confidence interval.
        seed: Seed of the resampling.
        ordinal_tasks: The tasks of ordered classes (quadratic weighted kappa; the others' kappa is unweighted).
            None: as the ``metrics.json`` beside the reference's predictions records them (every task, for a
            report that does not).

    Raises:
        DataError: If the files cover other images, or another order, than the reference's.
    """
    read = {name: read_predictions(Path(path)) for name, path in predictions.items()}
    ids, _, _ = read[reference]
    for name, (other_ids, _, _) in read.items():
        if other_ids != ids:
            raise DataError(f"{predictions[name]} holds other images (or another order) than {predictions[reference]}.")
    if ordinal_tasks is None:
        ordinal_tasks = _recorded_ordinal_tasks(Path(predictions[reference]), read[reference][1])
    questions = {name: _questions(probabilities, labels, views) for name, (_, probabilities, labels) in read.items()}
    rows = []
    for name, model_questions in questions.items():
        for question, (probabilities, labels) in model_questions.items():
            ordinal = question in ordinal_tasks or question not in read[name][1]  # a binary view: one order only
            result = evaluate_task(probabilities, labels, ordinal=ordinal, n_resamples=n_resamples, seed=seed)
            row: dict[str, object] = {"model": name, "question": question, "n": len(labels)}
            for metric in METRICS:
                row[metric] = result[metric]["value"]
                row[f"{metric}_ci"] = (result[metric]["ci_low"], result[metric]["ci_high"])
            if probabilities.shape[1] == 2 and name != reference:
                test = delong_test(labels, questions[reference][question][0][:, 1], probabilities[:, 1])
                row["auc_difference"], row["delong_p"] = -test.difference, test.p_value
            rows.append(row)
    return rows


def _questions(
    probabilities: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], views: BinaryViews
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every task and binary question, on the images labelled for its task."""
    tasks = {task: (p[labels[task] >= 0], labels[task][labels[task] >= 0]) for task, p in probabilities.items()}
    return tasks | binary_questions(probabilities, labels, views)


def _recorded_ordinal_tasks(predictions: Path, probabilities: Mapping[str, np.ndarray]) -> list[str]:
    """The ordinal tasks the ``metrics.json`` beside ``predictions`` records; every task where it records none."""
    try:
        recorded = json.loads((predictions.parent / "metrics.json").read_text(encoding="utf-8")).get("ordinal_tasks")
    except (OSError, ValueError, AttributeError):
        recorded = None
    return list(probabilities) if recorded is None else list(recorded)


def markdown_table(rows: Sequence[Mapping[str, object]], reference: str) -> str:
    """The comparison as a markdown table; p-values are DeLong's test of the AUC against ``reference``."""
    header = ["model", "question", "n", "AUC [95% CI]", "accuracy [95% CI]", "kappa [95% CI]"]
    header += [f"AUC - {reference}", "p (DeLong)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [str(row["model"]), str(row["question"]), str(row["n"])]
        cells += [f"{row[m]:.3f} [{row[f'{m}_ci'][0]:.3f}, {row[f'{m}_ci'][1]:.3f}]" for m in METRICS]
        cells += [f"{row['auc_difference']:+.3f}", f"{row['delong_p']:.3g}"] if "delong_p" in row else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    """The comparison as CSV: one row per model and question, CIs as low/high columns."""
    columns = ["model", "question", "n"]
    for metric in METRICS:
        columns += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
    columns += ["auc_difference", "delong_p"]

    def write(file: object) -> None:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        for row in rows:
            flat = {key: value for key, value in row.items() if not key.endswith("_ci")}
            for metric in METRICS:
                flat[f"{metric}_ci_low"], flat[f"{metric}_ci_high"] = row[f"{metric}_ci"]
            writer.writerow(flat)

    atomic_write(path, write)
