"""Figures of an evaluation, drawn with matplotlib.

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


def prediction_grid(images: Tensor, titles: Sequence[str], correct: Sequence[bool], columns: int = 8) -> Figure:
    """A grid of images, each titled with its prediction; wrong predictions in red.

    Args:
        images: N x C x H x W images, normalised in any way (each is rescaled to its own range for display).
        titles: One title per image, e.g. ``"3 (true 5)"``.
        correct: Whether each prediction is right (drawn in green, else red).
        columns: Images per row.
    """
    count = len(images)
    rows = max(1, -(-count // columns))
    lines = max(title.count("\n") + 1 for title in titles) if titles else 1
    figure = Figure(figsize=(1.6 * columns, (1.6 + 0.15 * lines) * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title, right in zip(axes.ravel()[:count], images, titles, correct, strict=True):
        pixels = image.float().permute(1, 2, 0).cpu().numpy()
        pixels = (pixels - pixels.min()) / max(float(np.ptp(pixels)), 1e-8)
        ax.imshow(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels, cmap="gray")
        ax.set_title(title, fontsize=7, color="tab:green" if right else "tab:red")
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
