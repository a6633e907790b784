"""The Messidor data module: k-fold cross-validation over the 1200 images, errata applied by the reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.fundus import FundusDataModule
from medcls.data.readers.messidor import DmeMode, DrMode, Duplicates, check_mode, messidor_tasks, read_messidor
from medcls.data.readers.records import Record
from medcls.data.splits import check_folds, check_holdout_size, joint_labels, stratified_group_kfold, stratified_holdout


class MessidorDataModule(FundusDataModule):
    """Messidor (1200 images, 12 sub-bases): k-fold cross-validation with the published errata applied.

    The folds are seeded, stratified on the joint (DR, DME) label and grouped (the two images of a
    duplicate pair share a fold). Fold ``fold`` is the test set; the validation set is carved from the
    other folds, never from the test fold. ``splits.csv`` in the run's log dir lists every image's split.

    Args:
        root: The folder holding ``Base11`` ... ``Base34`` and their annotation sheets, as distributed.
        dr: ``referable`` (grade >= 2, binary, the CANet protocol) or ``grade`` (Messidor's 0-3).
        dme: ``grade`` (0-2) or ``binary`` (any risk).
        duplicates: ``group`` keeps both images of a duplicate pair in one fold; ``drop`` drops one.
        num_folds: Number of cross-validation folds.
        fold: The test fold, ``0`` to ``num_folds - 1``.
        val_size: Fraction (or number) of the remaining images held out for validation.
        split_seed: Seed of the folds and of the validation split.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.fundus.FundusDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        dr: DrMode = "referable",
        dme: DmeMode = "grade",
        duplicates: Duplicates = "group",
        num_folds: int = 10,
        fold: int = 0,
        val_size: int | float = 0.1,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        # The tasks first: the base class checks the settings that name them (select_tasks, balance).
        self.label_tasks = messidor_tasks(dr, dme)
        # Graded tasks also answer the binary questions the literature reports; binary ones already are one.
        self.label_views = {
            name: view
            for name, view, mode in (("referable_dr", ("dr", 2), dr), ("dme_present", ("dme", 1), dme))
            if mode == "grade"
        }
        self.label_ordinal = tuple(task for task, mode in (("dr", dr), ("dme", dme)) if mode == "grade")
        super().__init__(root, **kwargs)
        check_mode("--data.duplicates", "duplicates", duplicates, Duplicates)
        check_folds(num_folds, fold)
        check_holdout_size(val_size)
        self.labels = {"dr": dr, "dme": dme, "duplicates": duplicates}
        self.num_folds, self.fold = num_folds, fold
        self.val_size, self.split_seed = val_size, split_seed

    def split_records(self) -> dict[str, list[Record]]:
        """Fold ``fold`` as test; the other folds split into train and val."""
        records = read_messidor(self.root, **self.labels)
        folds = stratified_group_kfold(records, self.num_folds, seed=self.split_seed, stratify=joint_labels)
        rest = [records[i] for k, fold in enumerate(folds) if k != self.fold for i in fold]
        train, val = stratified_holdout(rest, self.val_size, seed=self.split_seed, stratify=joint_labels)
        return {
            "train": [rest[i] for i in train],
            "val": [rest[i] for i in val],
            "test": [records[i] for i in folds[self.fold]],
        }
