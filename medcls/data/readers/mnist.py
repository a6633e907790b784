"""MNIST reader: the four IDX files of torchvision's ``MNIST/raw`` folder, unpacked and checked in full.

torchvision reads the files without checking them, so a truncated download would fail later, deep in a
training run, or not at all; these checks name the damaged file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import numpy as np

from medcls.errors import DataError
from medcls.io import atomic_write

# File name -> the IDX magic number its header starts with: two zero bytes, 0x08 (unsigned bytes), the number
# of dimensions (3 for images, N x 28 x 28; 1 for labels, N); each dimension follows as a big-endian int32.
MNIST_FILES = {
    "train-images-idx3-ubyte": 0x00000803,
    "train-labels-idx1-ubyte": 0x00000801,
    "t10k-images-idx3-ubyte": 0x00000803,
    "t10k-labels-idx1-ubyte": 0x00000801,
}
# Each split's images and labels, whose counts must agree.
_PAIRS = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
_REPLACE = "replace it with the original file"


def gunzip_mnist(raw: Path) -> None:
    """Unpack each of the four files that is there only as ``<name>.gz`` (atomically, next to it).

    Raises:
        DataError: If a ``.gz`` file cannot be unpacked; the message names it.
    """
    for name in MNIST_FILES:
        _gunzip_if_needed(raw / name)


def check_mnist(raw: Path) -> None:
    """Check the four (unpacked) files in full.

    Raises:
        DataError: If a file is not an IDX file of MNIST's shape, truncated or padded, if a split's images
            and labels differ in number, or a label is not a digit; the message names the file.
    """
    counts = {name: _check_idx_file(raw / name, magic) for name, magic in MNIST_FILES.items()}
    for images, labels in _PAIRS:
        if counts[images] != counts[labels]:
            raise DataError(
                f"{raw / images} holds {counts[images]} images but {raw / labels} holds "
                f"{counts[labels]} labels; replace both with the original files of one release."
            )
        _check_digits(raw / labels)


def _gunzip_if_needed(path: Path) -> None:
    packed = path.with_name(path.name + ".gz")
    if path.exists() or not packed.exists():
        return
    try:
        with gzip.open(packed, "rb") as source:
            atomic_write(path, lambda target: shutil.copyfileobj(source, target), mode="wb")
    except (OSError, EOFError) as error:
        raise DataError(f"{packed} is not a readable gzip file ({error}); replace it with the original.") from None


def _check_idx_file(path: Path, magic: int) -> int:
    """Check an MNIST IDX file against its header: magic number, 28 x 28 images, size; return its item count."""
    file_size = path.stat().st_size
    if file_size == 0:
        raise DataError(f"{path} is empty (0 bytes); {_REPLACE}.")
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    with open(path, "rb") as file:
        header = file.read(header_size)
    found = int.from_bytes(header[:4], "big")
    if found != magic:
        raise DataError(f"{path} is not an MNIST IDX file (header 0x{found:08x}, expected 0x{magic:08x}); {_REPLACE}.")
    if len(header) < header_size:
        raise DataError(f"{path} is truncated: {file_size} bytes, less than its {header_size}-byte header; {_REPLACE}.")
    shape = [int.from_bytes(header[i : i + 4], "big") for i in range(4, header_size, 4)]
    if ndim == 3 and shape[1:] != [28, 28]:
        raise DataError(f"{path} holds images of {shape[1]} x {shape[2]} pixels, not MNIST's 28 x 28; {_REPLACE}.")
    expected = header_size + math.prod(shape)
    if file_size != expected:
        problem = "truncated" if file_size < expected else "longer than its header says"
        items = "images of 28 x 28" if ndim == 3 else "labels"
        raise DataError(
            f"{path} is {problem}: its header promises {shape[0]} {items}, {expected} bytes, but the file has "
            f"{file_size} bytes; {_REPLACE}."
        )
    return shape[0]


def _check_digits(path: Path) -> None:
    """Check that every label of an IDX labels file is a digit, 0-9."""
    labels = np.fromfile(path, dtype=np.uint8, offset=8)
    bad = np.flatnonzero(labels > 9)
    if len(bad):
        raise DataError(
            f"{path}: label {bad[0]} is {labels[bad[0]]}, not a digit 0-9 ({len(bad)} such labels); {_REPLACE}."
        )
