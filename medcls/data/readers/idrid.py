"""IDRiD reader: part "B. Disease Grading" as distributed, into validated records.

The label files carry quirks that the reader tolerates: a trailing space in the header
``Risk of macular edema ``, trailing empty columns, blank rows, a byte-order mark, and image
names without their ``.jpg``; re-saved from a spreadsheet, they may come in another encoding or
with another delimiter (see :func:`~medcls.data.readers.tables.read_rows`). Image numbering restarts in the
test set, so ids carry the split: ``train/IDRiD_001`` and ``test/IDRiD_001`` are different images.
"""

from __future__ import annotations

from pathlib import Path

from medcls.data.readers.records import Record, resolve_inside
from medcls.data.readers.tables import read_rows
from medcls.errors import DataError

IDRID_TASKS: dict[str, int] = {"dr": 5, "dme": 3}
"""Task name -> number of classes: DR on the international 0-4 scale, DME risk 0-2."""

FOLDER = "B. Disease Grading"
"""The folder of the disease-grading part, as distributed."""
IMAGES, LABELS = "1. Original Images", "2. Groundtruths"
"""Its two sub-folders: the images of each split, the label file of each split."""
SPLITS = {  # split -> (image folder, label file)
    "train": ("a. Training Set", "a. IDRiD_Disease Grading_Training Labels.csv"),
    "test": ("b. Testing Set", "b. IDRiD_Disease Grading_Testing Labels.csv"),
}
HEADER = ("Image name", "Retinopathy grade", "Risk of macular edema ")
"""The label files' header as distributed (the trailing space included); read stripped and in any case."""
_NAME = HEADER[0].casefold()
_COLUMNS = {"dr": HEADER[1].casefold(), "dme": HEADER[2].strip().casefold()}  # task -> stripped, lower-case header


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
    if (root / FOLDER).is_dir():
        root = root / FOLDER
    return {split: _read_split(root, split, images, labels) for split, (images, labels) in SPLITS.items()}


def _read_split(root: Path, split: str, images_folder: str, labels_file: str) -> list[Record]:
    images = root / IMAGES / images_folder
    labels = root / LABELS / labels_file
    for path in (images, labels):
        if not path.exists():
            raise DataError(
                f"{path} not found: it holds IDRiD's {split} {'images' if path == images else 'labels'}. "
                f"Point the root at the {FOLDER!r} folder as distributed (or its parent)."
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
