"""The EyePACS data module: Kaggle's 2015 DR images, the test set carved from training or the official one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from medcls.data.fundus import FundusDataModule
from medcls.data.readers.eyepacs import EYEPACS_TASKS, read_eyepacs
from medcls.data.readers.messidor import check_mode
from medcls.data.readers.records import Record
from medcls.data.splits import check_split_sizes, holdout, train_val_test

TestSplit = Literal["holdout", "official"]


class EyePACSDataModule(FundusDataModule):
    """EyePACS (Kaggle "Diabetic Retinopathy Detection", 2015): task ``dr`` (0-4, ordinal), grouped by patient.

    Binary view ``referable_dr`` (DR grade >= 2). All splits are by patient (``10_left`` and ``10_right`` are
    patient ``10``), seeded and stratified on the DR grade. With ``test_split: holdout`` (the default; no test
    folder needed) ``test_size`` of the training images are the test set; with ``official``, the images of
    ``retinopathy_solution.csv`` (both leaderboard halves). Validation is carved from the rest of the training
    images.

    Args:
        root: The folder holding ``train/`` and ``trainLabels.csv`` (and ``test/`` and ``retinopathy_solution.csv``
            for the official test set), as Kaggle distributes them.
        test_split: ``holdout`` (carved from the training images) or ``official`` (Kaggle's test images).
        val_size: Fraction (or number) of the training images, after the test hold-out, held out for validation.
        test_size: Fraction (or number) of the training images held out for test (``holdout`` only).
        split_seed: Seed of the splits.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.fundus.FundusDataModule`.
    """

    label_tasks = EYEPACS_TASKS
    label_views = {"referable_dr": ("dr", 2)}
    label_ordinal = ("dr",)

    def __init__(
        self,
        root: str | Path,
        test_split: TestSplit = "holdout",
        val_size: int | float = 0.1,
        test_size: int | float = 0.2,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        check_mode("--data.test_split", "test split", test_split, TestSplit)
        check_split_sizes(val_size, test_size)
        self.test_split = test_split
        self.val_size, self.test_size, self.split_seed = val_size, test_size, split_seed

    def split_records(self) -> dict[str, list[Record]]:
        """The training images split into train, val and (``holdout``) test; or Kaggle's test images as test."""
        train = read_eyepacs(self.root, "train")
        if self.test_split == "holdout":
            return train_val_test(train, test_size=self.test_size, val_size=self.val_size, seed=self.split_seed)
        train, val = holdout(train, self.val_size, seed=self.split_seed, option="--data.val_size")
        return {"train": train, "val": val, "test": read_eyepacs(self.root, "test")}
