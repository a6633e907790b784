"""The IDRiD data module: the official train/test split, a validation split carved from the training images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.fundus import FundusDataModule
from medcls.data.readers.idrid import IDRID_TASKS, read_idrid
from medcls.data.readers.records import Record
from medcls.data.splits import check_holdout_size, joint_labels, stratified_holdout


class IDRiDDataModule(FundusDataModule):
    """IDRiD disease grading: tasks ``dr`` (0-4) and ``dme`` (0-2), the official 413/103 train/test split.

    Both tasks are grades (ordinal: quadratic weighted kappa). Binary views: ``referable_dr`` (DR grade >= 2,
    moderate or worse) and ``dme_present`` (DME grade >= 1).
    IDRiD has no validation split: a seeded one is carved from the training images, stratified on the
    joint (DR, DME) label (combinations too rare to split are pooled). The test set is never looked at
    before ``medcls test``.

    Args:
        root: The ``B. Disease Grading`` folder as distributed, or the folder holding it.
        val_size: Fraction (or number) of the training images held out for validation.
        split_seed: Seed of the validation split.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.fundus.FundusDataModule`.
    """

    label_tasks = IDRID_TASKS
    label_views = {"referable_dr": ("dr", 2), "dme_present": ("dme", 1)}
    label_ordinal = ("dr", "dme")

    def __init__(self, root: str | Path, val_size: int | float = 0.2, split_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        check_holdout_size(val_size)
        self.val_size = val_size
        self.split_seed = split_seed

    def split_records(self) -> dict[str, list[Record]]:
        """The official training images split into train and val, and the official test images."""
        official = read_idrid(self.root)
        train, val = stratified_holdout(official["train"], self.val_size, seed=self.split_seed, stratify=joint_labels)
        return {
            "train": [official["train"][i] for i in train],
            "val": [official["train"][i] for i in val],
            "test": official["test"],
        }
