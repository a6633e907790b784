"""How fast the image cache is built from radiographs: DICOM, RLE-compressed DICOM, 16-bit PNG and 16-bit TIFF."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless, generate_uid

from medcls.data.cache import ImageCache, build_cache
from medcls.data.preprocessing import XRayPreprocessing

FILE_KINDS = ("dicom", "dicom-rle", "png16", "tiff16")
"""The files a cache is built from: uncompressed and RLE-compressed DICOM, 16-bit grey PNG and TIFF."""

_SUFFIX = {"dicom": ".dcm", "dicom-rle": ".dcm", "png16": ".png", "tiff16": ".tif"}
_DIGITAL_XRAY_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
_BITS_STORED = 12  # as most digital radiography detectors store


@dataclass(frozen=True)
class CacheBuild:
    """One timed cache build.

    Attributes:
        images_per_second: Source files preprocessed per second, worker start-up included.
        cache: The cache built.
    """

    images_per_second: float
    cache: ImageCache


def synthetic_radiograph(side: int, seed: int) -> np.ndarray:
    """A 12-bit stand-in for a chest radiograph: a bright body, two darker lungs, detector noise.

    Args:
        side: Rows and columns.
        seed: Chooses the noise and shifts the anatomy a little.

    Returns:
        A ``side`` x ``side`` uint16 array of values below ``2 ** 12``.
    """
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[-1 : 1 : side * 1j, -1 : 1 : side * 1j]
    x = x + rng.uniform(-0.05, 0.05)
    body = (x / 0.85) ** 2 + (y / 0.95) ** 2 < 1
    lungs = ((np.abs(x) - 0.38) / 0.28) ** 2 + (y / 0.6) ** 2 < 1
    values = 300 + 2400 * body - 1300 * lungs + rng.normal(0, 40, (side, side))
    return np.clip(values, 0, 2**_BITS_STORED - 1).astype(np.uint16)


def write_radiographs(folder: Path, kind: str, count: int, side: int) -> list[Path]:
    """Write ``count`` synthetic radiographs (:func:`synthetic_radiograph`) as files of one of :data:`FILE_KINDS`.

    DICOM files are ``MONOCHROME2``, 12 bits stored in 16, with a window spanning the image's own range: every kind
    then decodes to the same 8-bit pixels.

    Args:
        folder: Where to write them (created if needed).
        kind: One of :data:`FILE_KINDS`.
        count: How many.
        side: Their rows and columns.

    Returns:
        The files written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = synthetic_radiograph(side, seed=i)
        path = folder / f"xray_{i:03d}{_SUFFIX[kind]}"
        if kind in ("dicom", "dicom-rle"):
            _write_dicom(path, pixels, compress=kind == "dicom-rle")
        else:
            # The fastest zlib level: the files are written once, read as fast whatever the level.
            Image.fromarray(pixels).save(path, **({"compress_level": 1} if kind == "png16" else {}))
        paths.append(path)
    return paths


def _write_dicom(path: Path, pixels: np.ndarray, *, compress: bool) -> None:
    ds = Dataset()
    ds.SOPClassUID = _DIGITAL_XRAY_FOR_PRESENTATION
    ds.SOPInstanceUID = generate_uid()
    ds.set_pixel_data(pixels, "MONOCHROME2", _BITS_STORED)
    # The DICOM linear window shows c - 0.5 - (w - 1) / 2 black and c - 0.5 + (w - 1) / 2 white.
    low, high = int(pixels.min()), int(pixels.max())
    ds.WindowCenter, ds.WindowWidth = (low + high + 1) / 2, high - low + 1
    if compress:
        ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)


def cache_build_rates(
    folder: Path, images: int, workers: int = 2, side: int = 2048, size: int = 512
) -> dict[str, CacheBuild]:
    """Time :func:`~medcls.data.cache.build_cache` with ``XRayPreprocessing(size)`` over each of :data:`FILE_KINDS`.

    Args:
        folder: An empty folder for the files and the caches.
        images: Radiographs of each kind.
        workers: The build's worker processes.
        side: Rows and columns of the radiographs.
        size: Side of the cached images.

    Returns:
        File kind -> its build (JPEG cache).
    """
    builds = {}
    for kind in FILE_KINDS:
        sources = write_radiographs(folder / kind, kind, images, side)
        start = time.perf_counter()
        cache = build_cache(sources, folder / "caches", XRayPreprocessing(size=size), workers=workers, progress=False)
        builds[kind] = CacheBuild(images / (time.perf_counter() - start), cache)
    return builds
