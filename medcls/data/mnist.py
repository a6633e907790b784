"""MNIST in torchvision's layout, as the lecture's tutorial uses it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets import MNIST
from torchvision.transforms import v2

from medcls.data.base import TaskDataModule
from medcls.data.readers.mnist import MNIST_FILES, check_mnist, gunzip_mnist
from medcls.errors import ConfigError, DataError, summarise_error


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
        gunzip_mnist(self.raw)
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
        check_mnist(self.raw)

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

    def denormalise(self, images: Tensor) -> Tensor:
        """Served digits as they are shown to a person: the normalisation undone, values in [0, 1]."""
        return (images * self.hparams.std + self.hparams.mean).clamp(0, 1)

    def class_counts(self, task: str) -> Tensor:
        """Images per digit in the training split (after ``setup("fit")``)."""
        return torch.bincount(self.train_set.labels, minlength=self.tasks[task]).float()


def _digits(
    source: MNIST, indices: Tensor, split: str, normalise: dict[str, float], augment: bool = False
) -> DigitDataset:
    ids = [f"{split}/{i:05d}" for i in indices.tolist()]
    return DigitDataset(source.data[indices], source.targets[indices], ids, **normalise, augment=augment)


def _check_val_size(val_size: int, train_images: int | None = None) -> None:
    """Refuse a validation size that leaves no training images (of ``train_images``, when known)."""
    if val_size < 1 or (train_images is not None and val_size >= train_images):
        allowed = "at least 1" if train_images is None else f"from 1 to {train_images - 1}"
        raise ConfigError(f"--data.val_size is {val_size}; the training images held out must be {allowed}.")
