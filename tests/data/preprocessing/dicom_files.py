"""Small DICOM files written with pydicom, for the decoding and preprocessing tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless, generate_uid

DIGITAL_XRAY = "1.2.840.10008.5.1.4.1.1.1.1"


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    *,
    rle: bool = False,
    **elements: Any,
) -> Path:
    """Write ``pixels`` as a DICOM file (preamble and file meta included), with any further elements given."""
    ds = Dataset()
    ds.SOPClassUID = DIGITAL_XRAY
    ds.SOPInstanceUID = generate_uid()
    ds.set_pixel_data(pixels, photometric, bits_stored)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if rle:
        ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    return path


def sample(name: str) -> Path:
    """One of pydicom's sample files, as installed with it (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom's sample file {name} is not installed"
    return Path(path)
