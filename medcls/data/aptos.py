"""The APTOS 2019 data module: the labelled training images split into train, val and test, copies kept together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.fundus import FundusDataModule
from medcls.data.readers.aptos import APTOS_TASKS, read_aptos
from medcls.data.readers.records import Record
from medcls.data.splits import check_split_sizes, train_val_test


class APTOSDataModule(FundusDataModule):
    """APTOS 2019 Blindness Detection: task ``dr`` (0-4, ordinal), test and validation carved from training.

    Binary view ``referable_dr`` (DR grade >= 2). The test labels were never published, so ``test_size`` of
    the training images are the test set and ``val_size`` of the rest the validation set; both seeded,
    stratified on the DR grade and grouped: identical image files under different ids (a known quirk of the
    set) stay in one split.

    Args:
        root: The folder holding ``train_images/`` and ``train.csv``, as Kaggle distributes them.
        val_size: Fraction (or number) of the images left after the test hold-out, held out for validation.
        test_size: Fraction (or number) of the images held out for test.
        split_seed: Seed of the splits.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.fundus.FundusDataModule`.
    """

    label_tasks = APTOS_TASKS
    label_views = {"referable_dr": ("dr", 2)}
    label_ordinal = ("dr",)

    def __init__(
        self,
        root: str | Path,
        val_size: int | float = 0.1,
        test_size: int | float = 0.2,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        check_split_sizes(val_size, test_size)
        self.val_size, self.test_size, self.split_seed = val_size, test_size, split_seed

    def split_records(self) -> dict[str, list[Record]]:
        """``test_size`` of the images as test, ``val_size`` of the rest as val, the others as train."""
        sizes = {"test_size": self.test_size, "val_size": self.val_size, "seed": self.split_seed}
        return train_val_test(read_aptos(self.root), **sizes)
