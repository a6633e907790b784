"""Fundus photographs preprocessed for a cache: the field of view cropped, resized, optionally contrast-normalised.

Each image is cropped to the bounding square of its circular field of view (padded with black where the
camera clipped the circle), resized to ``size`` x ``size`` with the circle centred and inscribed, and
optionally contrast-normalised the way Ben Graham did for the Kaggle DR 2015 competition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from medcls.data.preprocessing.base import Preprocessing
from medcls.data.preprocessing.decode import decode_image
from medcls.errors import ConfigError, DataError

# Field-of-view detection runs at about this many pixels on the longer side: plenty for a
# sub-pixel circle fit, and it keeps the numpy work to a few milliseconds.
_DETECT_SIDE = 512
# Darkest level counted as field of view, whatever the image's brightness: above JPEG noise in
# the black surround.
_MIN_LEVEL = 10


@dataclass(frozen=True)
class FieldOfView:
    """The circular field of view of a fundus photograph, in pixels of the image it was found in.

    Coordinates are continuous: pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``.

    Attributes:
        cx: Horizontal position of the centre.
        cy: Vertical position of the centre.
        radius: Radius of the circle.
    """

    cx: float
    cy: float
    radius: float


def find_field_of_view(image: Image.Image | np.ndarray) -> FieldOfView:
    """Find the circular field of view: the bright disc on the black surround.

    Cameras often clip the circle at the top and bottom of the frame, so the circle is fitted to the
    left and right ends of every row of the bright region (which lie on the circle even where it is
    clipped), not estimated from its height. Points on the image's own left and right edges and
    outliers (notches, labels) are left out of the fit.

    Args:
        image: An RGB (or grey) fundus photograph, as a PIL image or an H x W (x 3) uint8 array.

    Returns:
        The field of view in pixels of ``image``.

    Raises:
        ValueError: If no bright region large enough to be a field of view is found.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    step = max(1, math.ceil(max(image.size) / _DETECT_SIDE))
    # Sample every step-th pixel rather than averaging blocks: an averaged rim pixel partly covered
    # by the disc would count as inside and push the circle outwards.
    small = np.asarray(image)[step // 2 :: step, step // 2 :: step]
    # Elementwise maxima: numpy's max over a length-3 axis is several times slower.
    level = np.maximum(np.maximum(small[..., 0], small[..., 1]), small[..., 2]) if small.ndim == 3 else small
    bright = level > max(_MIN_LEVEL, 0.1 * np.percentile(level, 99))
    # Opening cuts thin bridges (text, JPEG ringing) off the disc; the largest component is the disc.
    labels, count = ndimage.label(ndimage.binary_opening(bright, structure=np.ones((3, 3), dtype=bool)))
    if count == 0:
        raise ValueError("no field of view found: the image has no bright region")
    disc = labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])
    if disc.sum() < 0.05 * disc.size:
        raise ValueError("no field of view found: the bright region covers under 5% of the image")

    rows = np.flatnonzero(disc.any(axis=1))
    left = disc[rows].argmax(axis=1)
    right = disc.shape[1] - disc[rows, ::-1].argmax(axis=1)
    x = np.concatenate([left, right]).astype(float)
    y = np.concatenate([rows, rows]) + 0.5
    on_circle = (x > 0) & (x < disc.shape[1])
    cx, cy, radius = _fit_circle(x[on_circle], y[on_circle])
    # Pixel k of the sample is pixel step * k + step // 2 of the image.
    offset = step // 2 + 0.5 - 0.5 * step
    return FieldOfView(cx * step + offset, cy * step + offset, radius * step)


def _fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares circle through the points, refitted once without the outliers."""
    keep = np.ones(len(x), dtype=bool)
    for _ in range(2):
        if keep.sum() < 10:
            raise ValueError("no field of view found: too few edge points for a circle")
        # Kasa's algebraic fit: x^2 + y^2 = a x + b y + c is linear in (a, b, c).
        design = np.column_stack([x[keep], y[keep], np.ones(keep.sum())])
        (a, b, c), *_ = np.linalg.lstsq(design, x[keep] ** 2 + y[keep] ** 2, rcond=None)
        cx, cy = a / 2, b / 2
        radius = math.sqrt(c + cx**2 + cy**2)
        residual = np.abs(np.hypot(x - cx, y - cy) - radius)
        keep = residual <= max(1.0, 3 * np.median(residual))
    return float(cx), float(cy), radius


def crop_to_field_of_view(image: Image.Image, fov: FieldOfView, size: int) -> Image.Image:
    """Crop the field of view's bounding square and resize it, the circle centred and inscribed.

    Args:
        image: The fundus photograph.
        fov: Its field of view, in pixels of ``image``.
        size: Side of the output square.

    Returns:
        A ``size`` x ``size`` image; where the camera clipped the circle it is padded with black.
    """
    left, top, side = fov.cx - fov.radius, fov.cy - fov.radius, 2 * fov.radius
    box = (math.floor(left), math.floor(top), math.ceil(left + side), math.ceil(top + side))
    # Pillow fills the parts of the box outside the image with black; the resize box then keeps
    # the sub-pixel position of the circle that the integer crop box cannot.
    square = image.crop(box)
    inner = (left - box[0], top - box[1], left - box[0] + side, top - box[1] + side)
    return square.resize((size, size), Image.Resampling.LANCZOS, box=inner)


def normalise_contrast(image: np.ndarray) -> np.ndarray:
    """Subtract the local average colour (Ben Graham, Kaggle Diabetic Retinopathy 2015).

    ``4 * image - 4 * GaussianBlur(image, sigma=radius / 30) + 128``, clipped to 0..255, then
    everything outside 0.9 of the circle set to 128: the blur mixes the black surround into the rim,
    which would otherwise turn into a bright ring. ``radius / 30`` is Graham's sigma (he scaled every
    field of view to a radius of 300 pixels and blurred with sigma 10).

    Args:
        image: A square uint8 RGB array whose field of view is the inscribed circle, as returned by
            :func:`crop_to_field_of_view`.

    Returns:
        The normalised uint8 array, mid-grey (128) outside 0.9 of the circle.
    """
    radius = image.shape[0] / 2
    blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius / 30))
    out = 4 * image.astype(np.int16) - 4 * np.asarray(blurred, dtype=np.int16) + 128
    out = np.clip(out, 0, 255).astype(np.uint8)
    grid = np.arange(image.shape[0]) + 0.5 - radius
    out[grid[:, None] ** 2 + grid[None, :] ** 2 > (0.9 * radius) ** 2] = 128
    return out


@dataclass(frozen=True)
class FundusPreprocessing(Preprocessing):
    """A fundus photograph as training reads it: its field of view cropped and resized to a square, in RGB.

    The file is decoded by :func:`~medcls.data.preprocessing.decode.decode_image` (16-bit images are scaled,
    not clipped), a JPEG with draft downscaling to no less than ``size``: 5-7x faster on a 4288 x 2848
    photograph. The field of view is then found and cropped on the reduced image
    (:func:`find_field_of_view`, :func:`crop_to_field_of_view`). A
    :class:`~medcls.data.preprocessing.Preprocessing`: its fields are part of the cache key.

    The data modules' ``--data.image_size`` and ``--data.contrast`` are ``size`` and ``contrast``; the
    error about the size names that option.

    Attributes:
        size: Side of the square output images, in pixels.
        contrast: Apply Ben Graham's local-average-colour subtraction (:func:`normalise_contrast`).

    Raises:
        ConfigError: If ``size`` is below 32.
    """

    kind: ClassVar[str] = "fundus"
    mirror_invariant: ClassVar[bool] = True  # a mirrored right eye looks like a left one
    channels: ClassVar[int] = 3

    size: int = 512
    contrast: bool = False

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ConfigError(f"--data.image_size (the cache's image size) is {self.size}; it must be at least 32.")

    def __call__(self, path: Path, *, draft: bool = True) -> np.ndarray:
        """Decode one fundus photograph and preprocess it.

        Args:
            path: The image file (any format Pillow reads).
            draft: Use JPEG draft decoding; ``False`` decodes at full size (the slow baseline).

        Returns:
            A ``size`` x ``size`` x 3 uint8 array.

        Raises:
            DataError: If the file cannot be decoded or shows no field of view; the message names it.
        """
        image = decode_image(path, "RGB", draft_size=self.size if draft else None)
        try:
            fov = find_field_of_view(image)
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from exc
        out = np.asarray(crop_to_field_of_view(image, fov, self.size))
        return normalise_contrast(out) if self.contrast else out
