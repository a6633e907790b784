"""Images preprocessed for a cache as they are: resized to a square, the aspect ratio kept, in colour or grey.

For any modality without a preprocessing of its own (dermoscopy, histology, photographs) and, grey and never
mirrored, for radiographs. Nothing is detected or cropped but what the square requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from PIL import Image, ImageOps

from medcls.data.preprocessing.base import Preprocessing
from medcls.data.preprocessing.decode import decode_image
from medcls.errors import ConfigError


@dataclass(frozen=True)
class PlainPreprocessing(Preprocessing):
    """Any image resized to a square, its aspect ratio kept.

    The file is decoded by :func:`~medcls.data.preprocessing.decode.decode_image`: DICOM (windowed), 16-bit PNG
    and TIFF (scaled, not clipped) or any format Pillow reads; a JPEG with draft downscaling to no less than
    ``size``. It is resized with Lanczos filtering. Mirrored images count as plausible: the default training
    pipeline flips them.

    Args:
        size: Side of the square images cached, in pixels.
        fit: How a non-square image becomes square: ``pad`` resizes its longer side to ``size`` and pads the
            shorter one on both sides with black (nothing is lost); ``crop`` resizes its shorter side to ``size``
            and cuts the longer one to the centre (nothing is padded).
        grey: ``true`` keeps one grey channel, ``false`` colour (RGB; a grey image's value in all three channels);
            unset: colour.

    Raises:
        ConfigError: If ``size`` is below 1 or ``fit`` is neither ``pad`` nor ``crop``.
    """

    kind: ClassVar[str] = "image"
    mirror_invariant: ClassVar[bool] = True
    grey_by_default: ClassVar[bool] = False
    """What an unset ``grey`` means."""

    size: int = 512
    fit: Literal["pad", "crop"] = "pad"
    grey: bool | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"--data.preprocessing.size is {self.size}; it must be at least 1.")
        if self.fit not in ("pad", "crop"):
            raise ConfigError(f"--data.preprocessing.fit is {self.fit!r}; choose 'pad' or 'crop'.")
        # Unset rather than a default of each class's own: a config that switches from one class to the other keeps
        # the first one's init_args, defaults included (jsonargparse does), and would carry its colour over.
        if self.grey is None:
            object.__setattr__(self, "grey", self.grey_by_default)

    @property
    def channels(self) -> int:
        """1 for grey images, 3 for RGB."""
        return 1 if self.grey else 3

    def __call__(self, path: Path) -> np.ndarray:
        """Decode one image and make it square.

        Args:
            path: The image file (DICOM, or any format Pillow reads).

        Returns:
            A ``size`` x ``size`` x ``channels`` uint8 array.

        Raises:
            DataError: If the file cannot be decoded; the message names it.
        """
        image = decode_image(path, "L" if self.grey else "RGB", draft_size=self.size)
        square = (self.size, self.size)
        if self.fit == "pad":
            image = ImageOps.pad(image, square, Image.Resampling.LANCZOS, color=0)
        else:
            image = ImageOps.fit(image, square, Image.Resampling.LANCZOS)
        return np.asarray(image).reshape(self.size, self.size, self.channels)


@dataclass(frozen=True)
class XRayPreprocessing(PlainPreprocessing):
    """A radiograph resized to a square, its aspect ratio kept, grey by default.

    As :class:`PlainPreprocessing`, but never mirrored by the default training pipeline: a mirrored chest
    radiograph, its heart on the right, is not one a network should learn from. A DICOM file is shown as its
    first window (or VOI LUT) sets, ``MONOCHROME1`` inverted so that bone is bright.

    Args:
        size: Side of the square images cached, in pixels.
        fit: How a non-square image becomes square: ``pad`` resizes its longer side to ``size`` and pads the
            shorter one on both sides with black (nothing is lost); ``crop`` resizes its shorter side to ``size``
            and cuts the longer one to the centre (nothing is padded).
        grey: ``true`` keeps one grey channel, ``false`` repeats the grey value in three channels (RGB), for a
            network that takes colour; unset: grey.

    Raises:
        ConfigError: If ``size`` is below 1 or ``fit`` is neither ``pad`` nor ``crop``.
    """

    kind: ClassVar[str] = "x-ray"
    mirror_invariant: ClassVar[bool] = False
    grey_by_default: ClassVar[bool] = True
