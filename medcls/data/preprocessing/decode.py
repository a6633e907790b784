"""Image files decoded into 8-bit images, whatever their format and bit depth, DICOM included."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from medcls.data.preprocessing.dicom import is_dicom, read_dicom
from medcls.errors import DataError, summarise_error


def decode_image(path: Path, mode: Literal["RGB", "L"] = "RGB", *, draft_size: int | None = None) -> Image.Image:
    """Decode an image file into an 8-bit image of ``mode``.

    A DICOM file (:func:`~medcls.data.preprocessing.dicom.is_dicom`: recognised by its content, or a ``.dcm``
    name) is read by :func:`~medcls.data.preprocessing.dicom.read_dicom` and scaled linearly from the value it
    shows black to the one it shows white (its window's bounds, say). Any other file goes to Pillow, which
    recognises it by its content, whatever its name says. Images of more than 8 bits a sample that Pillow keeps
    as such (16-bit grey PNG and TIFF, Pillow's modes ``I;16``, ``I;16B``, ..., 32-bit ``I`` and float ``F``) are
    scaled linearly from their own range, minimum to 0 and maximum to 255: Pillow's own conversion would clip
    every value above 255 to white. Colour at 16 bits a channel (48-bit PNG and TIFF) Pillow reads as 8-bit RGB,
    keeping the high byte of each sample: a linear scaling already, left as it is.

    Args:
        path: The image file (DICOM, or any format Pillow reads).
        mode: ``"RGB"`` or ``"L"`` (grey).
        draft_size: For a JPEG, decode with DCT-domain downscaling by the largest power of two (up
            to 8) that keeps both sides at least this many pixels: several times faster on a large
            photograph. None decodes at full size.

    Returns:
        The decoded image, loaded (the file is closed).

    Raises:
        DataError: If the file cannot be decoded; the message names it.
    """
    if is_dicom(path):
        return Image.fromarray(scale_to_8_bit(*read_dicom(path))).convert(mode)
    try:
        with Image.open(path) as source:
            if draft_size is not None and source.format == "JPEG":
                source.draft(mode, (draft_size, draft_size))
            if source.mode in ("I", "F") or source.mode.startswith("I;16"):
                return _stretch_to_8_bit(source).convert(mode)
            return source.convert(mode)
    except Exception as error:  # Pillow's decoders raise many types on a malformed file; all mean unreadable
        raise DataError(f"{path}: cannot decode this image ({summarise_error(error)})") from error


def _stretch_to_8_bit(image: Image.Image) -> Image.Image:
    """A grey image of more than 8 bits scaled linearly to 0-255 from its minimum and maximum (0 if flat)."""
    return Image.fromarray(scale_to_8_bit(np.asarray(image), *image.getextrema()))


def scale_to_8_bit(values: np.ndarray, black: float, white: float) -> np.ndarray:
    """Map values linearly to uint8, ``black`` to 0 and ``white`` to 255, clipping those beyond.

    ``black`` may be above ``white`` (an inverted image); where they are equal (a flat image), everything is 0.
    """
    if black == white:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.asarray(values, dtype=np.float32) - black) * (255 / (white - black))
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)
