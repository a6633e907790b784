"""The Messidor-2 data module: adjudicated grades, exams kept together, a seeded hold-out or k folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.fundus import FundusDataModule
from medcls.data.readers.messidor2 import MESSIDOR2_TASKS, read_messidor2
from medcls.data.readers.records import Record
from medcls.data.splits import check_split_sizes, train_val_test


class Messidor2DataModule(FundusDataModule):
    """Messidor-2 (1748 images of 874 exams) with Krause et al.'s adjudicated grades; ungradable images left out.

    Tasks: ``dr`` (ICDR 0-4, ordinal), ``dme`` (referable DME, 0/1) and ``referable`` (Gulshan et al.'s
    referable DR: DR grade >= 2 or referable DME); binary view ``referable_dr`` (DR grade >= 2). Splits are
    seeded, stratified on the joint labels and by exam (both eyes of a patient in one split): ``test_size``
    held out for test, then ``val_size`` of the rest for validation; or, with ``num_folds``, k-fold
    cross-validation with fold ``fold`` as test and validation carved from the other folds.

    Args:
        root: The Messidor-2 folder as distributed (``IMAGES/``, ``messidor-2.csv``), with ``messidor_data.csv``
            put beside them.
        val_size: Fraction (or number) of the images left after the test hold-out (or fold), held out for validation.
        test_size: Fraction (or number) of the images held out for test (without ``num_folds``).
        num_folds: Cross-validation instead of a test hold-out: the number of folds.
        fold: The test fold, ``0`` to ``num_folds - 1``.
        split_seed: Seed of the splits.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.fundus.FundusDataModule`.
    """

    label_tasks = MESSIDOR2_TASKS
    label_views = {"referable_dr": ("dr", 2)}
    label_ordinal = ("dr",)

    def __init__(
        self,
        root: str | Path,
        val_size: int | float = 0.1,
        test_size: int | float = 0.2,
        num_folds: int | None = None,
        fold: int = 0,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        check_split_sizes(val_size, test_size, num_folds, fold)
        self.val_size, self.test_size = val_size, test_size
        self.num_folds, self.fold, self.split_seed = num_folds, fold, split_seed

    def split_records(self) -> dict[str, list[Record]]:
        """A test hold-out (or fold ``fold``), then a validation hold-out of the rest."""
        return train_val_test(
            read_messidor2(self.root), test_size=self.test_size, val_size=self.val_size, seed=self.split_seed,
            num_folds=self.num_folds, fold=self.fold,
        )  # fmt: skip
