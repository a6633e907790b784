"""Users' own labelled images: split as the data say, or seeded, stratified and grouped; any preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.cached import CachedImageDataModule
from medcls.data.preprocessing import Preprocessing
from medcls.data.readers.records import Record
from medcls.data.readers.table import LabelledImages
from medcls.data.splits import check_split_sizes, holdout, train_val_test
from medcls.errors import ConfigError


class LabelledImagesDataModule(CachedImageDataModule):
    """Labelled images of a user's own (a table, a folder per class), split into train, val and test.

    Where the data give the splits (a split column, split folders), they are used; a validation split
    they lack is carved from their training images (``val_size``). Otherwise the images are split
    seeded, stratified on all labels together and by whole groups (a patient's images never straddle two
    splits): ``test_size`` held out for test, then ``val_size`` of the rest for validation; or, with
    ``num_folds``, k-fold cross-validation with fold ``fold`` as test. Subclasses read their data in
    :meth:`read_labelled`.

    Args:
        root: The folder of the images.
        preprocessing: Turns each image file into the pixels cached, e.g. ``XRayPreprocessing`` (no crop,
            grey), ``PlainPreprocessing`` or ``FundusPreprocessing``; its settings are part of the cache key.
        class_names: Task -> class names (index = class index), as the reader found or was given them.
        ordinal_tasks: The tasks whose classes are ordered (grades such as DR 0-4): they get a quadratic
            weighted kappa; unordered ones (diagnoses) an unweighted kappa.
        val_size: Fraction (or number) of the training images held out for validation.
        test_size: Fraction (or number) of all images held out for test, where the data give no splits.
        num_folds: Cross-validation instead of a test hold-out: the number of folds.
        fold: The test fold, ``0`` to ``num_folds - 1``.
        split_seed: Seed of the splits.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.cached.CachedImageDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        preprocessing: Preprocessing,
        class_names: dict[str, list[str]],
        ordinal_tasks: list[str] | None = None,
        val_size: int | float = 0.2,
        test_size: int | float = 0.2,
        num_folds: int | None = None,
        fold: int = 0,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(ordinal_tasks or []) - class_names.keys())
        if unknown:
            raise ConfigError(f"--data.ordinal_tasks names {unknown}; the tasks are {sorted(class_names)}.")
        # The tasks first: the base class checks the settings that name them (select_tasks, balance).
        self.label_tasks = {task: len(names) for task, names in class_names.items()}
        self.label_class_names = {task: list(names) for task, names in class_names.items()}
        self.label_ordinal = tuple(ordinal_tasks or ())
        super().__init__(root, preprocessing, **kwargs)
        check_split_sizes(val_size, test_size, num_folds, fold)
        self.val_size, self.test_size = val_size, test_size
        self.num_folds, self.fold, self.split_seed = num_folds, fold, split_seed

    def read_labelled(self) -> LabelledImages:
        """Read and validate the data: records, class names and the splits they give, if any."""
        raise NotImplementedError

    def split_records(self) -> dict[str, list[Record]]:
        """The data's own splits (val carved from train where missing), or seeded hold-outs or folds."""
        data = self.read_labelled()
        records = data.records
        if data.given_splits is not None:
            splits = {
                split: [r for r in records if data.given_splits[r.id] == split] for split in ("train", "val", "test")
            }
            if not splits["val"] and splits["train"]:
                splits["train"], splits["val"] = holdout(
                    splits["train"], self.val_size, seed=self.split_seed, option="--data.val_size"
                )
            return splits
        return train_val_test(
            records, test_size=self.test_size, val_size=self.val_size, seed=self.split_seed,
            num_folds=self.num_folds, fold=self.fold,
        )  # fmt: skip
