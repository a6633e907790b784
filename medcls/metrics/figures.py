"""Figures of a data set and an evaluation, drawn with matplotlib.

They are plain ``Figure`` objects, not pyplot's: drawing them needs no display and changes no backend (a
notebook keeps its own), and nothing has to close them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.functional.classification import binary_roc


def stretched(images: Tensor) -> Tensor:
    """Images (N x C x H x W) of any range for display: each one stretched from its minimum to its maximum to [0, 1]."""
    flat = images.detach().float().flatten(1)
    low, high = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    return (images.float() - low) / (high - low).clamp(min=1e-8)


def image_grid(
    images: Tensor, titles: Sequence[str], columns: int = 8, title_colours: Sequence[str] | None = None
) -> Figure:
    """A grid of images as a person sees them, each with its title.

    Args:
        images: N x C x H x W images with values in [0, 1] (values outside are clipped); one channel is shown grey,
            three as RGB.
        titles: One title per image; it may have several lines.
        columns: Images per row (at most N).
        title_colours: The colour of each title (default black).
    """
    count = len(images)
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    lines = max(title.count("\n") + 1 for title in titles) if titles else 1
    band = 0.12 * lines  # the height of a title above its image, in image widths
    figure = Figure(figsize=(1.6 * columns, 1.6 * (1 + band) * rows))
    # One axes for all images, each placed by its extent: an axes per image costs several times more to draw.
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, columns), ylim=(rows * (1 + band), 0))
    ax.axis("off")
    colours = title_colours or ["black"] * count
    for index, (image, title, colour) in enumerate(zip(images, titles, colours, strict=True)):
        row, column = divmod(index, columns)
        top = row * (1 + band) + band
        pixels = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        # vmin and vmax keep a grey image's own range from being stretched over the colour map.
        ax.imshow(
            pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1,
            extent=(column + 0.02, column + 0.98, top + 0.96, top), aspect="auto", interpolation="nearest",
        )  # fmt: skip
        ax.text(column + 0.5, top - 0.01, title, ha="center", va="bottom", fontsize=7, color=colour)
    return figure


def prediction_grid(images: Tensor, titles: Sequence[str], correct: Sequence[bool], columns: int = 8) -> Figure:
    """A grid of images, each titled with its prediction; wrong predictions in red.

    Args:
        images: N x C x H x W images, normalised in any way (each is rescaled to its own range for display).
        titles: One title per image, e.g. ``"3 (true 5)"``.
        correct: Whether each prediction is right (drawn in green, else red).
        columns: Images per row.
    """
    colours = ["tab:green" if right else "tab:red" for right in correct]
    return image_grid(stretched(images), titles, columns, colours)


def confusion_figure(
    matrix: np.ndarray | Tensor, class_names: Sequence[str], title: str, normalised: bool = False
) -> Figure:
    """A confusion matrix, rows the true classes and columns the predicted ones, each cell with its number.

    Args:
        matrix: K x K counts, ``matrix[true, predicted]``.
        class_names: The K class names, in class-index order.
        title: Figure title, e.g. ``"dr: confusion matrix, test"``.
        normalised: Show each row as fractions of its images (a row without images stays 0) instead of counts.
    """
    counts = matrix.numpy(force=True) if isinstance(matrix, Tensor) else np.asarray(matrix)
    classes = len(class_names)
    if counts.shape != (classes, classes):
        raise ValueError(f"a confusion matrix of {classes} classes must be {classes} x {classes}, not {counts.shape}")
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalised else counts
    side = max(3.5, 1.5 + 0.55 * classes)
    figure = Figure(figsize=(side, side))
    ax = figure.subplots()
    highest = 1.0 if normalised else max(float(values.max()), 1.0)
    ax.imshow(values, cmap="Blues", vmin=0, vmax=highest)
    for (true, predicted), value in np.ndenumerate(values):
        ax.text(
            predicted, true, f"{value:.2f}" if normalised else f"{value:.0f}", ha="center", va="center", fontsize=8,
            color="white" if value > highest / 2 else "black", in_layout=False,  # inside the axes: nothing to fit
        )  # fmt: skip
    rotated = max(len(name) for name in class_names) > 3  # names of more than a few letters overlap side by side
    ax.set_xticks(
        range(classes), class_names, rotation=45 if rotated else 0, ha="right" if rotated else "center",
        rotation_mode="anchor",
    )  # fmt: skip
    ax.set_yticks(range(classes), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.title.set_fontsize(9)
    figure.tight_layout()
    return figure


def roc_figure(
    scores: np.ndarray, labels: np.ndarray, points: Mapping[str, tuple[float, float]], title: str, auc: float
) -> Figure:
    """The ROC curve of a binary question, with its operating points marked.

    Args:
        scores: N values of P(positive).
        labels: N 0/1 labels.
        points: Name -> (sensitivity, specificity) of each operating point to mark.
        title: Figure title, e.g. the question's name.
        auc: Area under the curve, shown in the legend.
    """
    fpr, tpr, _ = binary_roc(torch.from_numpy(scores).double(), torch.from_numpy(labels).long())
    figure = Figure(figsize=(4.5, 4.5))
    ax = figure.subplots()
    ax.plot(fpr.numpy(), tpr.numpy(), label=f"ROC (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for name, (sensitivity, specificity) in points.items():
        ax.plot(1 - specificity, sensitivity, "o", label=f"{name}: sens {sensitivity:.2f}, spec {specificity:.2f}")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    return figure
