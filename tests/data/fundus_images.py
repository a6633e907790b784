"""Small synthetic fundus photographs of known geometry, for the preprocessing and cache tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def fundus_image(width: int, height: int, cx: float, cy: float, radius: float, seed: int = 0) -> Image.Image:
    """A black canvas with a textured reddish disc, darker towards its rim; pixel (i, j) covers [i, i+1)."""
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[:height, :width]
    d2 = ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2) / radius**2
    shade = 1 - 0.4 * np.clip(d2, 0, 1)
    disc = np.array([210.0, 95.0, 45.0]) * shade[..., None] + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.where(d2[..., None] <= 1, np.clip(disc, 0, 255), 0).astype(np.uint8))


def write_sources(folder: Path, count: int, *, size: tuple[int, int] = (300, 220)) -> list[Path]:
    """Write ``count`` JPEGs ``img_00.jpg`` ... of slightly shifted discs into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:02d}.jpg"
        fundus_image(*size, cx=size[0] / 2 + 3 * i, cy=size[1] / 2, radius=0.45 * size[0], seed=i).save(
            path, quality=92
        )
        paths.append(path)
    return paths
