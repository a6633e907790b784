"""DICOM files read as a viewer shows them: the values after the modality and VOI transforms, and black and white.

One image a file: a file of several frames, or without pixel data (a report, a plan, a structure set), is refused.
Compressed transfer syntaxes decode through whichever of pydicom's decoders are installed: RLE always, JPEG baseline
and JPEG 2000 through Pillow, the others (JPEG-LS, 12-bit JPEG, ...) only with ``pylibjpeg`` or ``gdcm``; where
none is, the error names the file, the transfer syntax and what to install.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, apply_windowing, get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medcls.errors import DataError, summarise_error

# The DICOM file format (PS3.10): a 128-byte preamble, then these four bytes.
_PREFIX_OFFSET, _PREFIX = 128, b"DICM"
# Names of files that may be DICOM without that preamble (older systems wrote bare data sets).
_SUFFIXES = (".dcm", ".dicom")
_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# A bare data set has no transfer syntax; pydicom finds its encoding as it reads it, (implicit VR, little endian).
_UNCOMPRESSED_SYNTAX = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


def is_dicom(path: Path) -> bool:
    """Whether a file is DICOM: ``DICM`` after the 128-byte preamble, or a name ending in ``.dcm`` or ``.dicom``.

    The name counts for files without the preamble only; an unreadable file is not DICOM (its decoder says why).
    """
    try:
        with open(path, "rb") as file:
            file.seek(_PREFIX_OFFSET)
            if file.read(len(_PREFIX)) == _PREFIX:
                return True
    except OSError:
        return False
    return Path(path).suffix.lower() in _SUFFIXES


def read_dicom(path: Path) -> tuple[np.ndarray, float, float]:
    """Read the one image of a DICOM file as a viewer shows it.

    Grey images (``MONOCHROME1``, ``MONOCHROME2``) get the modality transform (rescale slope and intercept, or a
    modality LUT), then the VOI transform: the VOI LUT, else the first window (centre and width, any VOI LUT
    function), shown black to white over the window's bounds; without either, over the image's own minimum to
    maximum. ``MONOCHROME1`` shows its low values white, so that bone is bright either way. Colour images (``RGB``,
    the ``YBR`` family, which pydicom converts to RGB; ``PALETTE COLOR`` through its palette) are shown over their
    nominal range: 0 to ``2 ** BitsStored - 1``.

    pydicom's warnings about an image read are silenced; where the image is refused, the first is in the message.

    Args:
        path: A DICOM file (:func:`is_dicom`).

    Returns:
        The values (rows x columns, x 3 for colour), the value shown black and the value shown white. Black is
        above white for ``MONOCHROME1``; they are equal for a flat image.

    Raises:
        DataError: If the file cannot be read, holds no pixel data or several frames, or its compressed pixel data
            cannot be decoded with the decoders installed; the message names the file and the reason.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return _display_values(path)
        except DataError as refusal:
            raise DataError(f"{refusal}{_first_warning(caught)}") from refusal
        except Exception as error:  # pydicom raises many types on a malformed file; all mean it cannot be read
            reason = f"cannot read this DICOM file ({summarise_error(error)})"
            raise DataError(f"{path}: {reason}{_first_warning(caught)}") from error


def _first_warning(caught: list[warnings.WarningMessage]) -> str:
    """The first warning pydicom gave, for a refusal's message: e.g. that the file ended inside an element."""
    return f" (pydicom warned: {summarise_error(caught[0].message)})" if caught else ""


def _display_values(path: Path) -> tuple[np.ndarray, float, float]:
    ds = _read_data_set(path)
    if not any(element in ds for element in _PIXEL_ELEMENTS):
        raise DataError(f"{path}: a DICOM file without pixel data (e.g. a report or structured set, or a file cut "
                        "short); remove it from the data")  # fmt: skip
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise DataError(f"{path}: a DICOM file of {frames} frames; medcls reads single images: save the frame you "
                        "want as a file of its own")  # fmt: skip
    pixels = _pixel_array(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        values, black, white = _grey_values(apply_modality_lut(pixels, ds), ds)
        return (values, white, black) if photometric == "MONOCHROME1" else (values, black, white)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        return rgb, 0.0, float(np.iinfo(rgb.dtype).max)
    if pixels.ndim == 3 and pixels.shape[2] == 3:  # RGB, or YBR that pydicom has converted to RGB
        return pixels, 0.0, float(2 ** int(ds.BitsStored) - 1)
    raise DataError(f"{path}: a DICOM image of photometric interpretation {photometric or '(none)'!r}; medcls reads "
                    "MONOCHROME1, MONOCHROME2, RGB, YBR and PALETTE COLOR images")  # fmt: skip


def _read_data_set(path: Path) -> Dataset:
    """The file's data set, with the transfer syntax that pydicom found a bare one (no file meta) written in."""
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        if "SOPClassUID" not in ds and not any(element in ds for element in _PIXEL_ELEMENTS):
            # What forcing makes of any file: a few elements of nonsense.
            raise DataError(f"{path}: not a DICOM file (no DICOM header found)")
        ds.file_meta.TransferSyntaxUID = _UNCOMPRESSED_SYNTAX[ds.original_encoding]
    return ds


def _pixel_array(ds: Dataset, path: Path) -> np.ndarray:
    """The stored pixel values; a failure to decode them names the transfer syntax and the decoders missing."""
    try:
        return ds.pixel_array
    except Exception as error:  # each of pydicom's decoders raises its own types; all mean undecodable
        syntax = UID(ds.file_meta.TransferSyntaxUID)
        if not syntax.is_compressed:
            raise DataError(f"{path}: cannot read its pixel data, the file may be truncated or damaged "
                            f"({summarise_error(error)})") from error  # fmt: skip
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:  # no decoder for this transfer syntax at all
            raise DataError(
                f"{path}: pydicom has no decoder for its {syntax.name} ({syntax}) pixel data; save it uncompressed"
            ) from error
        missing = ", or ".join(needs.partition(" - requires ")[2] for needs in decoder.missing_dependencies)
        install = f"install {missing}" if missing else "no other decoder of pydicom's reads it"
        if not decoder.is_available:
            raise DataError(
                f"{path}: no decoder installed reads its {syntax.name} ({syntax}) pixel data; {install}"
            ) from error
        raise DataError(f"{path}: cannot decode its {syntax.name} ({syntax}) pixel data ({summarise_error(error)}); "
                        f"{install}") from error  # fmt: skip


def _grey_values(values: np.ndarray, ds: Dataset) -> tuple[np.ndarray, float, float]:
    """The VOI transform of grey modality values, and the values it shows black and white (low to high)."""
    if ds.get("VOILUTSequence"):
        shown = apply_voi(values, ds)
        return shown, float(shown.min()), float(shown.max())
    if "WindowCenter" in ds and "WindowWidth" in ds:
        # pydicom maps the window onto the values' nominal range (from BitsStored and the rescale), whatever its VOI
        # LUT function; the ends of that range, what it makes of -inf and inf, are the window's black and white.
        black, white = apply_windowing(np.array([-np.inf, np.inf]), ds)
        return apply_windowing(values, ds), float(black), float(white)
    return values, float(values.min()), float(values.max())
