"""Figures of an evaluation, drawn with matplotlib (headless)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402


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
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title, right in zip(axes.ravel()[:count], images, titles, correct, strict=True):
        pixels = image.float().permute(1, 2, 0).cpu().numpy()
        pixels = (pixels - pixels.min()) / max(float(np.ptp(pixels)), 1e-8)
        ax.imshow(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels, cmap="gray")
        ax.set_title(title, fontsize=8, color="tab:green" if right else "tab:red")
    figure.tight_layout()
    return figure
