"""What a reader makes of a data set folder: one :class:`Record` per image, validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medcls.errors import DataError


@dataclass(frozen=True)
class Record:
    """One image of a data set.

    Attributes:
        id: Unique within the data set and stable across runs (e.g. ``"train/IDRiD_001"``);
            it is the ``"id"`` of the image in every batch and in every predictions file.
        path: The image file, inside the data set's root.
        labels: Task name -> class index, e.g. ``{"dr": 2, "dme": 1}``.
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

    Args:
        root: The data set's root folder.
        name: A file name as read from a label file.
        source: Where the name was read (file and row), for the error message.

    Raises:
        DataError: If the resolved path is not inside ``root``.
    """
    root = root.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise DataError(f"{source}: image name {name!r} points outside the data root {root}; fix the label file.")
    return path
