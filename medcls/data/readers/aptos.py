"""APTOS 2019 Blindness Detection (Kaggle) as distributed: the labelled training images, duplicates grouped.

The layout: ``train_images/<id_code>.png`` listed in ``train.csv`` (``id_code,diagnosis``, DR grade 0-4);
``test_images/`` and ``test.csv`` are not read, their labels were never published. Read as Kaggle's EyePACS
layout is (:func:`~medcls.data.readers.eyepacs.read_graded_folder`): names without extension, matched in any
case; unlisted image files logged and left out.

The training set holds the same image under different ids, some graded differently. Files with identical
bytes are one group, so that copies never straddle two splits. Identical means byte for byte: files are
compared by size, and those of equal size by a SHA-256 of their contents (so the check reads only the few
files that could be copies); an image re-encoded or resized is a different file.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from pathlib import Path

from medcls.data.readers.graded import read_graded_folder
from medcls.data.readers.records import Record
from medcls.errors import DataError

log = logging.getLogger(__name__)

APTOS_TASKS: dict[str, int] = {"dr": 5}
"""Task name -> number of classes: DR on the international 0-4 scale."""

IMAGES, LABELS = "train_images", "train.csv"
"""The training images' folder and their label file, as distributed."""
HEADER = ("id_code", "diagnosis")
"""The label file's columns."""
COMPLETE = 3662
"""Images listed by the complete ``train.csv``."""


def read_aptos(root: Path) -> list[Record]:
    """Read and validate APTOS 2019's labelled training images.

    Args:
        root: The folder holding ``train_images/`` and ``train.csv``, as Kaggle distributes them.

    Returns:
        One record per listed image, in label-file order: id the ``id_code``, labels ``{"dr": 0-4}``, group
        ``duplicate/<id of the first copy>`` for identical files (else the id).

    Raises:
        DataError: If the folder or label file is missing, or the label file is empty, lacks a column, or has
            a row with a grade that is no whole number in 0-4, or an image missing, ambiguous or listed twice.
    """
    root = Path(root)
    for path, holds in ((root / IMAGES, "images"), (root / LABELS, "labels")):
        if not path.exists():
            raise DataError(
                f"{path} not found: it holds APTOS 2019's training {holds}. Point the root at the folder holding "
                f"{IMAGES}/ and {LABELS}, as Kaggle distributes them."
            )
    graded = read_graded_folder(root / IMAGES, root / LABELS, HEADER, "APTOS 2019")
    copies = identical_files([path for path, _ in graded])
    group = {path: f"duplicate/{same[0].stem}" for same in copies for path in same}
    grade = dict(graded)
    log.info(
        "APTOS 2019: %d images (the complete %s lists %d); groups of identical images, each kept in one split: %d "
        "(%d images; graded differently: %d)",
        len(graded),
        LABELS,
        COMPLETE,
        len(copies),
        sum(map(len, copies)),
        sum(len({grade[path] for path in same}) > 1 for same in copies),
    )
    return [Record(id=path.stem, path=path, labels={"dr": dr}, group=group.get(path, "")) for path, dr in graded]


def identical_files(paths: list[Path]) -> list[list[Path]]:
    """The groups of two or more files with identical bytes, each in the order of ``paths``.

    Only files that share their size with another are read.
    """
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in paths:
        by_size[path.stat().st_size].append(path)
    by_content: dict[str, list[Path]] = defaultdict(list)
    for same_size in by_size.values():
        if len(same_size) > 1:
            for path in same_size:
                by_content[hashlib.sha256(path.read_bytes()).hexdigest()].append(path)
    return sorted((same for same in by_content.values() if len(same) > 1), key=lambda same: paths.index(same[0]))
