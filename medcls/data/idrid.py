"""IDRiD reader: part "B. Disease Grading" as distributed, into validated records.

The label files carry quirks that the reader tolerates: a trailing space in the header
``Risk of macular edema ``, trailing empty columns, blank rows, a byte-order mark, and image
names without their ``.jpg``; re-saved from a spreadsheet, they may come in another encoding or
with another delimiter (see :func:`~medcls.data.tables.read_rows`). Image numbering restarts in the
test set, so ids carry the split: ``train/IDRiD_001`` and ``test/IDRiD_001`` are different images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.base import FundusDataModule
from medcls.data.records import Record, resolve_inside
from medcls.data.splits import check_holdout_size, joint_labels, stratified_holdout
from medcls.data.tables import read_rows
from medcls.errors import DataError

IDRID_TASKS: dict[str, int] = {"dr": 5, "dme": 3}
"""Task name -> number of classes: DR on the international 0-4 scale, DME risk 0-2."""

_FOLDER = "B. Disease Grading"
_SPLITS = {  # split -> (image folder, label file)
    "train": ("a. Training Set", "a. IDRiD_Disease Grading_Training Labels.csv"),
    "test": ("b. Testing Set", "b. IDRiD_Disease Grading_Testing Labels.csv"),
}
_NAME = "image name"
_COLUMNS = {"dr": "retinopathy grade", "dme": "risk of macular edema"}  # task -> stripped, lower-case header


def read_idrid(root: Path) -> dict[str, list[Record]]:
    """Read and validate IDRiD's disease-grading part.

    Args:
        root: The ``B. Disease Grading`` folder, or the folder holding it.

    Returns:
        ``{"train": [...], "test": [...]}``: one record per image, in label-file order, with
        labels ``{"dr": 0-4, "dme": 0-2}`` and ids ``"<split>/<image name>"``.

    Raises:
        DataError: If a folder or label file is missing, or a label file is empty, lacks a
            column, or has a row with a bad label, a missing, escaping or repeated image.
    """
    root = Path(root)
    if (root / _FOLDER).is_dir():
        root = root / _FOLDER
    return {split: _read_split(root, split, images, labels) for split, (images, labels) in _SPLITS.items()}


def _read_split(root: Path, split: str, images_folder: str, labels_file: str) -> list[Record]:
    images = root / "1. Original Images" / images_folder
    labels = root / "2. Groundtruths" / labels_file
    for path in (images, labels):
        if not path.exists():
            raise DataError(
                f"{path} not found: it holds IDRiD's {split} {'images' if path == images else 'labels'}. "
                f"Point the root at the {_FOLDER!r} folder as distributed (or its parent)."
            )
    columns, rows = _read_table(labels)
    records: list[Record] = []
    seen: dict[str, int] = {}  # image name without .jpg -> line
    for line, cells in rows:
        source = f"{labels}, line {line}"
        name = cells[columns[_NAME]].strip()
        if not name:
            raise DataError(f"{source}: no image name; fill it in or delete the row.")
        stem = name[:-4] if name.casefold().endswith(".jpg") else name
        if stem in seen:
            raise DataError(f"{source}: image {name!r} is listed twice (also on line {seen[stem]}); delete one row.")
        seen[stem] = line
        path = resolve_inside(images, f"{stem}.jpg", source=source)
        if not path.is_file():
            raise DataError(f"{source}: image {name!r} is listed but {path} is missing; add it or delete the row.")
        grades = {
            task: _label(cells[columns[column]], column, IDRID_TASKS[task], source) for task, column in _COLUMNS.items()
        }
        records.append(Record(id=f"{split}/{stem}", path=path, labels=grades))
    return records


def _read_table(path: Path) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """Return the required columns' positions and the non-blank data rows with their line numbers."""
    rows = [(line, cells) for line, cells in read_rows(path) if any(cell.strip() for cell in cells)]
    if not rows:
        raise DataError(
            f"{path} is empty: expected a header ('Image name', 'Retinopathy grade', ...) and one row per image."
        )
    (_, header), data = rows[0], rows[1:]
    positions = {cell.strip().casefold(): index for index, cell in enumerate(header) if cell.strip()}
    missing = [column for column in (_NAME, *_COLUMNS.values()) if column not in positions]
    if missing:
        found = ", ".join(repr(cell.strip()) for cell in header if cell.strip())
        raise DataError(
            f"{path}, line {rows[0][0]}: missing column(s) {', '.join(map(repr, missing))} (columns found: {found}); "
            "the header must name the image and both grades."
        )
    if not data:
        raise DataError(f"{path} has a header but no rows: expected one row per image.")
    width = len(header)
    return positions, [(line, cells + [""] * (width - len(cells))) for line, cells in data]


def _label(text: str, column: str, classes: int, source: str) -> int:
    """Parse a class index in ``[0, classes)`` from a label-file cell."""
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"{source}: {column!r} is {text!r}, not a number; expected 0 to {classes - 1}.") from None
    if not 0 <= value < classes:
        raise DataError(f"{source}: {column!r} is {value}, out of range; expected 0 to {classes - 1}.")
    return value


class IDRiDDataModule(FundusDataModule):
    """IDRiD disease grading: tasks ``dr`` (0-4) and ``dme`` (0-2), the official 413/103 train/test split.

    Binary views: ``referable_dr`` (DR grade >= 2, moderate or worse) and ``dme_present`` (DME grade >= 1).
    IDRiD has no validation split: a seeded one is carved from the training images, stratified on the
    joint (DR, DME) label (combinations too rare to split are pooled). The test set is never looked at
    before ``medcls test``.

    Args:
        root: The ``B. Disease Grading`` folder as distributed, or the folder holding it.
        val_size: Fraction (or number) of the training images held out for validation.
        split_seed: Seed of the validation split.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.base.FundusDataModule`.
    """

    label_tasks = IDRID_TASKS
    label_views = {"referable_dr": ("dr", 2), "dme_present": ("dme", 1)}

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
