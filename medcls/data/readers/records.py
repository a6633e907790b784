"""What a reader makes of a data set folder: one :class:`Record` per image, validated."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medcls.errors import DataError

MISSING_LABEL = -1
"""The label of a task left unlabelled in a record that is kept (e.g. an image graded for one disease only)."""


@dataclass(frozen=True)
class Record:
    """One image of a data set.

    Attributes:
        id: Unique within the data set and stable across runs (e.g. ``"train/IDRiD_001"``);
            it is the ``"id"`` of the image in every batch and in every predictions file.
        path: The image file, inside the data set's root.
        labels: Task name -> class index, e.g. ``{"dr": 2, "dme": 1}``; :data:`MISSING_LABEL` where the
            image has no label for that task (the loss and the metrics skip it).
        group: Images sharing a group (a duplicate pair, an exam, a patient) never straddle two
            splits. Defaults to the id: every image its own group.
    """

    id: str
    path: Path
    labels: Mapping[str, int]
    group: str = field(default="")

    def __post_init__(self) -> None:
        if not self.group:
            object.__setattr__(self, "group", self.id)


def resolve_inside(root: Path, name: str, *, source: str) -> Path:
    """Return ``root / name``, refusing a name that leads outside ``root``.

    Inside or outside is decided on the name as written, normalised lexically (``a/../b`` is ``b``)
    without following links: ``../x`` escapes, but a symbolic link named inside the root (a data set
    kept as links into a store elsewhere) is inside, wherever it points.

    Args:
        root: The data set's root folder.
        name: A file name as read from a label file.
        source: Where the name was read (file and row), for the error message.

    Returns:
        The absolute, normalised path, through any links as named.

    Raises:
        DataError: If the name leads outside ``root``.
    """
    root = Path(os.path.abspath(root))
    path = Path(os.path.normpath(root / name))
    if not path.is_relative_to(root):
        raise DataError(f"{source}: image name {name!r} points outside the data root {root}; fix the label file.")
    return path
