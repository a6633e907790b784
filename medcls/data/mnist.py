"""MNIST in torchvision's layout, as the lecture's tutorial uses it."""

from __future__ import annotations

import gzip
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets import MNIST
from torchvision.transforms import v2

from medcls.data.base import TaskDataModule
from medcls.errors import ConfigError, DataError, summarise_error
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


class DigitDataset(Dataset):
    """Normalised digit images held in memory, served as batch dicts.

    Args:
        images: N x 28 x 28 uint8 images.
        labels: N digit labels.
        ids: N image ids.
        mean: Normalisation mean of the 0-1 pixel values.
        std: Normalisation standard deviation.
        augment: Shift, rotate and scale each digit slightly at random when it is served.
    """

    def __init__(
        self, images: Tensor, labels: Tensor, ids: list[str], mean: float, std: float, augment: bool = False
    ) -> None:
        self.images = ((images.float() / 255 - mean) / std).unsqueeze(1)
        self.labels = labels.long()
        self.ids = ids
        background = -mean / std  # what a black pixel becomes
        self.augmentation = (
            v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), fill=background) if augment else None
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        if self.augmentation is not None:
            image = self.augmentation(image)
        return {"image": image, "digit": self.labels[index], "id": self.ids[index]}


class MNISTDataModule(TaskDataModule):
    """MNIST: 60,000 training and 10,000 test digits, 28x28 grey; task ``digit`` with 10 classes.

    Reads torchvision's layout, ``<root>/MNIST/raw/`` with the four IDX files (plain or ``.gz``).
    The validation set is a seeded random split of the 60,000 training images; the test set is
    the 10,000 test images. Image ids are ``train/<index>`` and ``test/<index>`` in the original files.

    Args:
        root: Folder holding ``MNIST/raw``.
        download: Download the files if they are missing (needs internet access).
        val_size: Training images held out for validation.
        split_seed: Seed of the train/validation split.
        mean: Normalisation mean (the tutorial's 0.1307).
        std: Normalisation standard deviation (the tutorial's 0.3081).
        batch_size: Images per training batch.
        eval_batch_size: Images per validation, test and prediction batch.
        num_workers: Loader worker processes.
        augment: Shift, rotate and scale the training digits slightly at random (the tutorial trains without).
    """

    tasks = {"digit": 10}

    def __init__(
        self,
        root: str | Path = "data",
        download: bool = False,
        val_size: int = 5000,
        split_seed: int = 0,
        mean: float = 0.1307,
        std: float = 0.3081,
        batch_size: int = 64,
        eval_batch_size: int | None = 1000,
        num_workers: int = 0,
        augment: bool = False,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, augment)
        _check_val_size(val_size)
        if std <= 0:
            raise ConfigError(f"--data.std is {std}; the normalisation's standard deviation must be positive.")
        self.save_hyperparameters()
        self.root = Path(root)
        self.raw = self.root / "MNIST" / "raw"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Channels, height, width of the images served to the net: one grey channel of 28 x 28."""
        return (1, 28, 28)

    def prepare_data(self) -> None:
        """Unpack ``.gz`` files, download missing ones if allowed, and check the four files in full.

        Raises:
            DataError: If a file is missing, not an IDX file of MNIST's shape, truncated or padded, if a
                split's images and labels differ in number, or a label is not a digit; the message names
                the file.
        """
        for name in MNIST_FILES:
            _gunzip_if_needed(self.raw / name)
        missing = [name for name in MNIST_FILES if not (self.raw / name).exists()]
        remedy = "or set data.download true on a machine with internet access"
        if missing and self.hparams.download:
            try:
                MNIST(self.root, download=True)
                missing = []
            except Exception as error:  # torchvision tries several mirrors and raises whatever the last one gave
                failure = summarise_error(error)
                remedy = f"the download failed ({failure}) and needs internet access"
        if missing:
            raise DataError(
                f"MNIST files missing in {self.raw.resolve()}: {', '.join(missing)}. Put the four files "
                f"{', '.join(MNIST_FILES)} (plain or .gz) in that folder, {remedy}."
            )
        counts = {name: _check_idx_file(self.raw / name, magic) for name, magic in MNIST_FILES.items()}
        for images, labels in _PAIRS:
            if counts[images] != counts[labels]:
                raise DataError(
                    f"{self.raw / images} holds {counts[images]} images but {self.raw / labels} holds "
                    f"{counts[labels]} labels; replace both with the original files of one release."
                )
            _check_digits(self.raw / labels)

    def setup(self, stage: str) -> None:
        """Load the digits into memory and split off the validation set."""
        normalise = {"mean": self.hparams.mean, "std": self.hparams.std}
        if stage in ("fit", "validate"):
            train = MNIST(self.root, train=True)
            _check_val_size(self.hparams.val_size, len(train))
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.hparams.split_seed))
            val, fit = order[: self.hparams.val_size], order[self.hparams.val_size :]
            self.train_set = _digits(train, fit, "train", normalise, augment=self.augment)
            self.val_set = _digits(train, val, "train", normalise)
        if stage in ("test", "predict"):
            test = MNIST(self.root, train=False)
            self.test_set = _digits(test, torch.arange(len(test)), "test", normalise)


def _digits(
    source: MNIST, indices: Tensor, split: str, normalise: dict[str, float], augment: bool = False
) -> DigitDataset:
    ids = [f"{split}/{i:05d}" for i in indices.tolist()]
    return DigitDataset(source.data[indices], source.targets[indices], ids, **normalise, augment=augment)


def _gunzip_if_needed(path: Path) -> None:
    packed = path.with_name(path.name + ".gz")
    if path.exists() or not packed.exists():
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with gzip.open(packed, "rb") as source, open(partial, "wb") as target:
            shutil.copyfileobj(source, target)
    except (OSError, EOFError) as error:
        partial.unlink(missing_ok=True)
        raise DataError(f"{packed} is not a readable gzip file ({error}); replace it with the original.") from None
    os.replace(partial, path)


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


def _check_val_size(val_size: int, train_images: int | None = None) -> None:
    """Refuse a validation size that leaves no training images (of ``train_images``, when known)."""
    if val_size < 1 or (train_images is not None and val_size >= train_images):
        allowed = "at least 1" if train_images is None else f"from 1 to {train_images - 1}"
        raise ConfigError(f"--data.val_size is {val_size}; the training images held out must be {allowed}.")


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
