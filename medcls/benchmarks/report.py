"""How long the test report takes on a large test set: every metric of every question with its bootstrap interval.

The test set is synthetic and seeded: IDRiD-like DR (5 grades) and DME (3 grades) labels, two images per patient
(both eyes, resampled together), softmax probabilities that lean towards the true grade, the binary views referable
DR and DME present, and three operating points for each chosen on a synthetic validation set of the same kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from medcls.metrics.binary import BinaryViews, binary_questions, operating_points_of
from medcls.metrics.evaluation import evaluate_task
from medcls.metrics.report import evaluate_predictions

TASKS = {"dr": (0.33, 0.05, 0.33, 0.17, 0.12), "dme": (0.45, 0.1, 0.45)}
"""Task -> frequency of each grade, roughly IDRiD's."""

VIEWS: BinaryViews = {"referable_dr": ("dr", 2), "dme_present": ("dme", 1)}
"""The binary questions of the report: moderate DR or worse, any DME."""

_IMAGES_PER_PATIENT = 2


@dataclass(frozen=True)
class ReportInputs:
    """What :func:`~medcls.metrics.report.evaluate_predictions` is given for a test set.

    Attributes:
        probabilities: Task -> N x K float32 probabilities.
        labels: Task -> N true grades.
        groups: Patient of each image.
        operating_points: Binary question -> point name -> threshold.
    """

    probabilities: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    groups: np.ndarray
    operating_points: dict[str, dict[str, float]]


@dataclass(frozen=True)
class ReportTimes:
    """Seconds of one timed report.

    Attributes:
        questions: Task or binary question -> seconds of its :func:`~medcls.metrics.evaluation.evaluate_task` alone.
        report: Seconds of the whole report, :func:`~medcls.metrics.report.evaluate_predictions`, end to end.
    """

    questions: dict[str, float]
    report: float


def synthetic_predictions(n_images: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Probabilities and true grades of a synthetic test set, a model that is good but far from perfect.

    Each image's logits fall off quadratically with the distance from its true grade, plus Gaussian noise, so
    errors are mostly into neighbouring grades, as a grading model's are.

    Args:
        n_images: Images.
        seed: Chooses the grades and the noise.

    Returns:
        ``(probabilities, labels)``: task -> N x K float32 softmax probabilities, task -> N grades.
    """
    rng = np.random.default_rng(seed)
    probabilities, labels = {}, {}
    for task, frequencies in TASKS.items():
        grades = np.arange(len(frequencies))
        truth = rng.choice(grades, n_images, p=frequencies)
        logits = -0.8 * (grades[None, :] - truth[:, None]) ** 2 + rng.normal(0, 1.2, (n_images, len(grades)))
        exponentials = np.exp(logits - logits.max(1, keepdims=True))
        probabilities[task] = (exponentials / exponentials.sum(1, keepdims=True)).astype(np.float32)
        labels[task] = truth
    return probabilities, labels


def report_inputs(n_images: int, seed: int = 0) -> ReportInputs:
    """The test set of the benchmark, with operating points chosen on a validation set a tenth its size.

    Args:
        n_images: Test images, two per patient.
        seed: Chooses the test set; the validation set uses the next seed.
    """
    probabilities, labels = synthetic_predictions(n_images, seed)
    validation = synthetic_predictions(max(n_images // 10, 100), seed + 1)
    return ReportInputs(
        probabilities=probabilities,
        labels=labels,
        groups=np.arange(n_images) // _IMAGES_PER_PATIENT,
        operating_points=operating_points_of(*validation, VIEWS),
    )


def time_report(n_images: int, n_resamples: int, seed: int = 0) -> ReportTimes:
    """Time each question's evaluation alone, then the whole report, on :func:`report_inputs`.

    Args:
        n_images: Test images.
        n_resamples: Bootstrap resamples behind each interval.
        seed: Chooses the test set and the resampling.
    """
    inputs = report_inputs(n_images, seed)
    options = {"groups": inputs.groups, "n_resamples": n_resamples, "seed": seed}
    questions = {task: (p, inputs.labels[task]) for task, p in inputs.probabilities.items()}
    questions |= binary_questions(inputs.probabilities, inputs.labels, VIEWS)
    seconds = {
        name: _seconds(
            partial(evaluate_task, probabilities, labels, operating_points=inputs.operating_points.get(name), **options)
        )
        for name, (probabilities, labels) in questions.items()
    }
    report = partial(
        evaluate_predictions,
        inputs.probabilities,
        inputs.labels,
        binary_views=VIEWS,
        operating_points=inputs.operating_points,
        ordinal_tasks=list(TASKS),
        **options,
    )
    return ReportTimes(questions=seconds, report=_seconds(report))


def _seconds(work: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start
