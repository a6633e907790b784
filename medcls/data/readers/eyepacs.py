"""EyePACS (Kaggle's "Diabetic Retinopathy Detection", 2015) as Kaggle distributes it, into validated records.

The layout: ``train/`` holding ``<patient>_left.jpeg`` and ``<patient>_right.jpeg``, listed in
``trainLabels.csv`` (``image,level``: names without their extension, DR grade 0-4); since the competition
ended, ``test/`` with its labels in ``retinopathy_solution.csv`` (``image,level,Usage``; ``Usage``, the
leaderboard half, is not read). Both eyes of a patient are one group. Ids carry the split, ``train/10_left``
and ``test/1_right``. Copies of ``trainLabels.csv`` on the web are not all complete, so the number of
images read is logged beside the complete file's.

The images are found by the names the label files give them, without extension
(:mod:`~medcls.data.readers.graded`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from medcls.data.readers.graded import read_graded_folder
from medcls.data.readers.records import Record
from medcls.errors import DataError

log = logging.getLogger(__name__)

Split = Literal["train", "test"]

EYEPACS_TASKS: dict[str, int] = {"dr": 5}
"""Task name -> number of classes: DR on the international 0-4 scale."""

SPLITS: dict[str, tuple[str, str]] = {  # split -> (image folder, label file)
    "train": ("train", "trainLabels.csv"),
    "test": ("test", "retinopathy_solution.csv"),
}
HEADER = ("image", "level")
"""The label files' columns read (the solution file has a third, ``Usage``)."""
USAGE = "Usage"
"""The solution file's third column: ``Public`` or ``Private``, the two leaderboard halves."""
COMPLETE = {"train": 35126, "test": 53576}
"""Images listed by the complete label files."""
_EYE = re.compile(r"_(left|right)$", re.IGNORECASE)


def read_eyepacs(root: Path, split: Split = "train") -> list[Record]:
    """Read and validate one split of EyePACS.

    Args:
        root: The folder holding ``train/`` and ``trainLabels.csv`` (and, for the test split, ``test/`` and
            ``retinopathy_solution.csv``), as Kaggle distributes them.
        split: ``"train"`` or ``"test"``.

    Returns:
        One record per listed image, in label-file order: id ``"<split>/<image name>"``, labels ``{"dr": 0-4}``,
        group the patient (``10`` for ``10_left`` and ``10_right``; a name without the eye is its own group).
        Image files the label file does not list are logged and left out.

    Raises:
        DataError: If the folder or label file is missing, or the label file is empty, lacks a column, or has
            a row with a grade that is no whole number in 0-4, or an image missing, ambiguous or listed twice.
    """
    root = Path(root)
    folder_name, table_name = SPLITS[split]
    folder, table = root / folder_name, root / table_name
    for path, holds in ((folder, "images"), (table, "labels")):
        if not path.exists():
            raise DataError(
                f"{path} not found: it holds EyePACS' {split} {holds}. Point the root at the folder holding "
                f"{folder_name}/ and {table_name}, as Kaggle distributes them."
            )
    records = [
        Record(id=f"{split}/{path.stem}", path=path, labels={"dr": grade}, group=_EYE.sub("", path.stem))
        for path, grade in read_graded_folder(folder, table, HEADER, "EyePACS")
    ]
    log.info(
        "EyePACS %s: %d images of %d patients (the complete %s lists %d)",
        split,
        len(records),
        len({record.group for record in records}),
        table_name,
        COMPLETE[split],
    )
    return records
