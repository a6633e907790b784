"""The tuberculosis chest X-ray data module: Shenzhen and Montgomery County, split as Lakhani & Sundaram split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.cached import CachedImageDataModule
from medcls.data.preprocessing import Preprocessing, XRayPreprocessing
from medcls.data.readers.records import Record
from medcls.data.readers.tuberculosis import (
    CLASS_NAMES,
    TUBERCULOSIS_TASKS,
    SetName,
    check_sets,
    read_tuberculosis,
)
from medcls.data.splits import check_split_sizes, stratified_holdout
from medcls.errors import ConfigError


def label_and_set(record: Record) -> tuple[int, str]:
    """The stratum of a radiograph: its label and its set (the first part of its id)."""
    return record.labels["tb"], record.id.partition("/")[0]


class TuberculosisDataModule(CachedImageDataModule):
    """The public tuberculosis sets of Lakhani & Sundaram: Shenzhen (662 radiographs) and Montgomery County (138).

    One task, ``tb``: ``normal`` or ``tuberculosis`` (class 1, the positive class of the ROC and the operating
    points; unordered: unweighted kappa), read from the last digit of each file name (see
    :mod:`~medcls.data.readers.tuberculosis` for the layouts and their quirks). The sets give no splits: the
    radiographs are split seeded, stratified on the label and the set together (both sets are in every split
    when both are read), each radiograph its own group (one per patient). ``test_size`` and ``val_size`` are
    parts of all the radiographs, the rest trains: by default Lakhani's 68.0 / 17.1 / 14.9 % train / val / test.

    Args:
        root: The folder holding the sets as they unpack (``ChinaSet_AllFiles/``, ``MontgomerySet/``), or, where
            ``sets`` names one set, that set's own folder (the one holding ``CXR_png``).
        sets: The sets to read: ``shenzhen``, ``montgomery`` or both.
        preprocessing: Each radiograph to the pixels cached; unset: ``XRayPreprocessing()`` (grey, 512 px,
            aspect kept by padding, never mirrored); Montgomery's 12-bit PNGs are scaled from their range.
        val_size: Fraction of all the radiographs (or a number of them) for validation.
        test_size: Fraction of all the radiographs (or a number of them) for test.
        split_seed: Seed of the splits.
        **kwargs: Cache, transform, loader and prediction settings of
            :class:`~medcls.data.cached.CachedImageDataModule`.
    """

    label_tasks = TUBERCULOSIS_TASKS
    label_class_names = {"tb": list(CLASS_NAMES)}

    def __init__(
        self,
        root: str | Path,
        sets: list[SetName] = ["shenzhen", "montgomery"],  # noqa: B006 (read, never changed)
        preprocessing: Preprocessing | None = None,
        val_size: int | float = 0.171,
        test_size: int | float = 0.149,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, preprocessing or XRayPreprocessing(), **kwargs)
        check_sets(sets)
        check_split_sizes(val_size, test_size)
        if isinstance(val_size, float) and isinstance(test_size, float) and val_size + test_size >= 1:
            raise ConfigError(
                f"--data.val_size {val_size} and --data.test_size {test_size} leave no radiograph for training; "
                "together they must stay below 1."
            )
        self.sets = list(sets)
        self.val_size, self.test_size, self.split_seed = val_size, test_size, split_seed

    def split_records(self) -> dict[str, list[Record]]:
        """Read the sets; hold out ``test_size`` of them for test, then ``val_size`` of them for validation."""
        records = read_tuberculosis(self.root, self.sets)
        rest, test = self._holdout(records, self.test_size, "--data.test_size")
        # A fraction of all the radiographs, taken from what the test split left.
        val_size = self.val_size if isinstance(self.val_size, int) else self.val_size * len(records) / len(rest)
        train, val = self._holdout(rest, val_size, "--data.val_size")
        return {"train": train, "val": val, "test": test}

    def _holdout(self, records: list[Record], size: int | float, option: str) -> tuple[list[Record], list[Record]]:
        kept, held = stratified_holdout(records, size, seed=self.split_seed, stratify=label_and_set, option=option)
        return [records[i] for i in kept], [records[i] for i in held]
