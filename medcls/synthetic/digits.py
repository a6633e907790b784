"""Printed digits in MNIST's IDX files and torchvision's layout: a stand-in for MNIST where it cannot be downloaded.

``write_synthetic_mnist(root)`` writes them; :class:`~medcls.data.mnist.MNISTDataModule` then reads them as it
reads MNIST. :func:`write_idx` also writes the small, deliberately damaged files of the tests.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from medcls.io import atomic_write


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file (``.gz`` appended when compressed); returns the path written.

    The header is the magic number 0x0000080<ndim>, then each dimension as a big-endian int32.
    """
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path, payload = path.with_name(path.name + ".gz"), gzip.compress(payload)
    atomic_write(path, lambda file: file.write(payload), mode="wb")
    return path


def synthetic_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Printed digits in MNIST's format: N x 28 x 28 uint8, white on black, and their N labels.

    Each digit varies in size, stroke width, position and slant, so that a network has to learn shapes; they
    are a stand-in for MNIST where it cannot be downloaded, not a replacement (handwriting varies far more).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    fonts = {size: ImageFont.load_default(size=size) for size in range(16, 25)}
    images = np.empty((count, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        image = Image.new("L", (28, 28))
        centre = 14 + rng.normal(0, 1.5, size=2)
        ImageDraw.Draw(image).text(
            tuple(centre), str(label), fill=255, font=fonts[int(rng.integers(16, 25))], anchor="mm",
            stroke_width=int(rng.integers(0, 2)), stroke_fill=255,
        )  # fmt: skip
        images[i] = np.asarray(image.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR))
    return images, labels


def write_synthetic_mnist(root: str | Path, train: int = 60_000, test: int = 10_000, seed: int = 0) -> Path:
    """Write :func:`synthetic_digits` as the four MNIST files in torchvision's layout under ``root``; returns root.

    For working offline: ``MNISTDataModule(root)`` then reads them as it reads MNIST.
    """
    raw = Path(root) / "MNIST" / "raw"
    for split, count, split_seed in (("train", train, seed), ("t10k", test, seed + 1)):
        images, labels = synthetic_digits(count, split_seed)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return Path(root)
