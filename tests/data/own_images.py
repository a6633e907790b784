"""Small stand-ins for users' own data, written in the layouts users bring: a labelled table, a folder per class, DICOM.

The "X-rays" are grey 40 x 32 images: noise, with a bright disc where the class is ``tuberculosis``, so a tiny net
learns them in a few steps.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("normal", "tuberculosis")


def xray(label: int, seed: int, bits: int = 8) -> np.ndarray:
    """A 32 x 40 grey image of ``bits`` bits; a bright disc for class 1."""
    rng = np.random.default_rng(seed)
    top = 2**bits - 1
    image = rng.uniform(0.1, 0.4, (32, 40))
    if label:
        rows, columns = np.ogrid[:32, :40]
        image[(rows - 16) ** 2 + (columns - 20) ** 2 < 64] = 0.95
    return np.rint(image * top).astype(np.uint8 if bits == 8 else np.uint16)


def labels_of(count: int) -> list[int]:
    """Alternating classes, so every split of a few images holds both."""
    return [i % 2 for i in range(count)]


def write_png_table(root: Path, count: int = 24, *, split: bool = False, suffix: bool = True) -> Path:
    """``root/images/xr<i>.png`` and ``root/labels.csv`` (image, diagnosis by name, patient; optionally split).

    Two images per patient; with ``split`` the patients are dealt to train / val / test in the column ``split``.
    """
    (root / "images").mkdir(parents=True)
    rows = []
    for i, label in enumerate(labels_of(count)):
        Image.fromarray(xray(label, seed=i)).save(root / "images" / f"xr{i:03d}.png")
        patient = i // 2
        row = {"image": f"images/xr{i:03d}" + (".png" if suffix else ""), "diagnosis": CLASSES[label],
               "patient": f"p{patient}"}  # fmt: skip
        if split:
            row["split"] = ("train", "train", "val", "test")[patient % 4]
        rows.append(row)
    table = root / "labels.csv"
    with open(table, "w", newline="") as file:
        writer = csv.DictWriter(file, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table


def write_class_folders(root: Path, count: int = 16, *, classes: tuple[str, ...] = CLASSES) -> Path:
    """``root/<class>/xr<i>.png``: torchvision's ImageFolder layout."""
    for i, label in enumerate(labels_of(count)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(xray(label, seed=100 + i)).save(folder / f"xr{i:03d}.png")
    return root


def write_dicom(path: Path, pixels: np.ndarray, *, monochrome1: bool = False, window: tuple[float, float] | None = None,
                slope: float = 1.0, intercept: float = 0.0) -> Path:  # fmt: skip
    """A single-frame grey DICOM file of ``pixels`` (uint8 or uint16), as a modality writes one."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.Modality = "CR"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = pixels.dtype.itemsize * 8
    dataset.HighBit = dataset.BitsStored - 1
    dataset.PixelRepresentation = 0
    dataset.RescaleSlope, dataset.RescaleIntercept = slope, intercept
    if window is not None:
        dataset.WindowCenter, dataset.WindowWidth = window
    dataset.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
    return path


def write_dicom_folders(root: Path, count: int = 16) -> Path:
    """``root/<class>/xr<i>.dcm``: 12-bit chest "X-rays" in DICOM, half of them MONOCHROME1 (bright background)."""
    for i, label in enumerate(labels_of(count)):
        pixels = xray(label, seed=200 + i, bits=12)
        inverted = i % 4 >= 2
        stored = (4095 - pixels).astype(np.uint16) if inverted else pixels
        write_dicom(root / CLASSES[label] / f"xr{i:03d}.dcm", stored, monochrome1=inverted, window=(2048, 4096))
    return root
