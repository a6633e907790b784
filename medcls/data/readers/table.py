"""Users' own data: a table naming images and their labels, or images without labels to predict.

A table is delimited text (``.csv``, ``.tsv``, ``.txt``: any encoding and delimiter, see
:func:`~medcls.data.readers.tables.read_rows`) or an Excel workbook (``.xlsx``, ``.xls``: its first
worksheet). Its first non-blank row names the columns; a column is found by its name as written there,
spaces around it stripped, case-sensitive (``Label`` is not ``label``). Every other non-blank row is an image:

- **Image**: a path relative to the root, with or without its extension; ``images/0001`` (no file of that
  name, and no image suffix) is ``images/0001.png`` when that is the only image file (:data:`IMAGE_EXTENSIONS`,
  any case) of that name. The image's id is the path as written; each image may be listed once.
- **Labels**: one column per task, named after it. A cell holds a class name (``tuberculosis``) or a class
  index (``1``, or ``1.0`` as spreadsheets and exports of a column with gaps write it). Unless the task's class
  names are given, the classes are ``"0"`` up to the largest index if every cell is a whole number, else the
  distinct names in Python's ``sorted()`` order (``["normal", "tuberculosis"]``; ``class_names`` gives another
  order). Where both could apply, a cell is a class name before it is an index. An empty cell is a missing
  label (an ungradable image): the row is dropped, or kept with
  :data:`~medcls.data.readers.records.MISSING_LABEL` for that task.
- **Group** (optional): the patient or exam; images of one group never straddle two splits.
- **Split** (optional): ``train``, ``val`` (or ``validation``) or ``test``, in any case.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

from torchvision.datasets.folder import IMG_EXTENSIONS

from medcls.data.readers.records import MISSING_LABEL, Record, resolve_inside
from medcls.data.readers.tables import read_cells
from medcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
"""The splits a table's split column or a folder's top folders name."""
_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}  # a cell, lower-case -> its split
IMAGE_EXTENSIONS = (*IMG_EXTENSIONS, ".dcm")
"""The suffixes of image files, in any case: those of torchvision's image folders, and DICOM's."""

MissingLabels = Literal["drop", "mask"]


@dataclass(frozen=True)
class LabelledImages:
    """What a reader of a user's own data found.

    Attributes:
        records: One per image, in table order (a table) or in the order of their ids (a folder).
        class_names: Task -> its class names; a class's index is its position.
        given_splits: Record id -> ``"train"``, ``"val"`` or ``"test"`` where the data says (a split
            column, split folders); None where it does not.
    """

    records: list[Record]
    class_names: dict[str, list[str]]
    given_splits: dict[str, str] | None


@dataclass(frozen=True)
class _Row:
    number: int
    image: str
    path: Path
    labels: dict[str, str]  # task -> cell
    group: str
    split: str


def read_table(
    table: Path,
    root: Path,
    image_column: str,
    label_columns: list[str],
    class_names: dict[str, list[str]] | None = None,
    group_column: str | None = None,
    split_column: str | None = None,
    missing_labels: MissingLabels = "drop",
) -> LabelledImages:
    """Read and validate a table of images and their labels.

    Args:
        table: The table file, ``.csv``, ``.tsv``, ``.txt``, ``.xlsx`` or ``.xls``.
        root: The folder the image paths start from.
        image_column: The column of image paths.
        label_columns: The label columns, one per task; each task is named after its column.
        class_names: Task -> its class names in the order of their indices, for some or all tasks; a cell
            must then be one of the names, or an index into them.
        group_column: The column of groups (patient, exam); an empty cell makes the image a group of its own.
        split_column: The column of given splits.
        missing_labels: What becomes of a row with an empty label cell: ``"drop"`` leaves it out, ``"mask"``
            keeps it with :data:`~medcls.data.readers.records.MISSING_LABEL` for that task. A row with no label
            at all is left out either way; the count per task is logged.

    Returns:
        The records (group ``""`` where there is no group column: the image's id), the class names of every
        task, and the given splits if there is a split column.

    Raises:
        ConfigError: If ``class_names`` names a task that is not a label column or gives a task fewer than 2
            distinct names, or ``missing_labels`` is neither ``"drop"`` nor ``"mask"``.
        DataError: If the root is not a folder, the table cannot be read, is empty or lacks a column named,
            or a row names no image, an image not found, escaping the root or listed twice, a label that is
            not one of the given classes, a negative index, a split that is none of the splits, or a group
            another row puts in another split; or if a task has fewer than 2 classes or no row is labelled.
    """
    class_names = class_names or {}
    _check_settings(label_columns, class_names, missing_labels)
    table, root = Path(table), Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: the paths of {table} must be relative to a folder of images.")
    columns = {image_column: "--data.image_column"} | dict.fromkeys(label_columns, "--data.label_columns")
    for column, option in ((group_column, "--data.group_column"), (split_column, "--data.split_column")):
        if column:
            columns[column] = option
    positions, data = _read_columns(table, columns)

    images = _ImageFinder(table, root)
    rows: list[_Row] = []
    first_split: dict[str, _Row] = {}  # group -> its first row
    for number, cells in data:
        image = cells[positions[image_column]]
        row = _Row(
            number=number,
            image=image,
            path=images.find(number, image),
            labels={task: cells[positions[task]] for task in label_columns},
            group=cells[positions[group_column]] if group_column else "",
            split=_split(table, number, cells[positions[split_column]], split_column) if split_column else "",
        )
        rows.append(row)
        first = first_split.setdefault(row.group or row.image, row)
        if first.split != row.split:
            raise DataError(
                f"{table}: group {row.group!r} ({group_column!r}) has images in two splits: row {first.number} "
                f"in {first.split!r}, row {row.number} in {row.split!r}; give all of a group's images one split."
            )

    tasks = {
        task: _label_column(table, task, [(row.number, row.labels[task]) for row in rows], class_names.get(task))
        for task in label_columns
    }
    records: list[Record] = []
    given_splits: dict[str, str] = {}
    unlabelled: Counter[str] = Counter()  # task -> rows without its label
    incomplete = dropped = 0
    for position, row in enumerate(rows):
        labels = {task: indices[position] for task, (_, indices) in tasks.items()}
        missing = [task for task, label in labels.items() if label == MISSING_LABEL]
        if missing:
            unlabelled.update(missing)
            incomplete += 1
            if missing_labels == "drop" or len(missing) == len(labels):
                dropped += 1
                continue
        records.append(Record(id=row.image, path=row.path, labels=labels, group=row.group))
        if split_column:
            given_splits[row.image] = row.split
    if incomplete:
        log.log(
            logging.WARNING if dropped else logging.INFO,
            "%s: %d rows lack a label (%s): %d left out, %d kept with the missing labels masked",
            table,
            incomplete,
            ", ".join(f"{task} {unlabelled[task]}" for task in label_columns if unlabelled[task]),
            dropped,
            incomplete - dropped,
        )
    if not records:
        raise DataError(f"{table}: no row has a label in every column {label_columns}; label some images.")
    return LabelledImages(
        records=records,
        class_names={task: names for task, (names, _) in tasks.items()},
        given_splits=given_splits if split_column else None,
    )


def read_unlabelled(path: Path, image_column: str = "image") -> list[Record]:
    """Read the images to predict: a folder of images, or a table listing them.

    Args:
        path: A folder: every image under it (:data:`IMAGE_EXTENSIONS`, hidden files and folders left out),
            with ids the paths relative to it, in the order of the ids. A table (as :func:`read_table` takes):
            the images of its ``image_column``, relative to the table's folder, with or without extension,
            ids as written, in table order.
        image_column: The table's column of image paths.

    Returns:
        One record per image, with no labels.

    Raises:
        DataError: If the path does not exist, a folder holds no image, or the table cannot be read, is empty,
            lacks the column, or a row names no image, an image not found, escaping its folder or listed twice.
    """
    path = Path(path)
    if path.is_dir():
        folder = path.absolute()
        records = sorted(
            (Record(id=name.as_posix(), path=folder / name, labels={}) for name in image_files(folder)),
            key=lambda record: record.id,
        )
        if not records:
            raise DataError(f"{path} holds no image to predict (files ending in {', '.join(IMAGE_EXTENSIONS)}).")
        return records
    if not path.exists():
        raise DataError(f"{path} not found: give a folder of images, or a table listing them, to predict.")
    positions, data = _read_columns(path, {image_column: "--data.image_column"})
    images = _ImageFinder(path, path.parent)
    column = positions[image_column]
    return [Record(id=cells[column], path=images.find(number, cells[column]), labels={}) for number, cells in data]


def _check_settings(label_columns: list[str], class_names: dict[str, list[str]], missing_labels: str) -> None:
    if not label_columns:
        raise ConfigError("--data.label_columns is empty: name the table's label column(s), one per task.")
    check_class_names(class_names)
    unknown = sorted(class_names.keys() - set(label_columns))
    if unknown:
        raise ConfigError(
            f"--data.class_names: {', '.join(map(repr, unknown))} not among the tasks, "
            f"the --data.label_columns {label_columns}."
        )
    if missing_labels not in ("drop", "mask"):
        raise ConfigError(f"--data.missing_labels is {missing_labels!r}; choose 'drop' or 'mask'.")


def check_class_names(class_names: dict[str, list[str]]) -> None:
    """Refuse given class names (``--data.class_names``) that cannot make a task: fewer than 2, or one twice.

    Raises:
        ConfigError: Naming the task.
    """
    for task, names in class_names.items():
        if len(set(names)) < 2 or len(set(names)) < len(names):
            raise ConfigError(
                f"--data.class_names: task {task!r} has the class names {names}; give at least 2, each once."
            )


def image_files(folder: Path) -> list[Path]:
    """The image files under a folder (links followed), as paths relative to it; see :func:`is_image_file`."""
    found = []
    for parent, _, names in os.walk(folder, followlinks=True):
        relative = Path(parent).relative_to(folder)
        found += [relative / name for name in names if is_image_file(relative / name)]
    return found


def is_image_file(relative: PurePath) -> bool:
    """Whether a file, named relative to the folder searched, is an image to read.

    It is if its suffix is one of :data:`IMAGE_EXTENSIONS` and neither it nor a folder on its way is hidden:
    hidden entries (``.DS_Store``, ``.ipynb_checkpoints/``, macOS's ``._scan.png`` copies) are what tools leave
    beside the data, never data.
    """
    return relative.suffix.casefold() in IMAGE_EXTENSIONS and not any(part.startswith(".") for part in relative.parts)


def _read_columns(table: Path, columns: dict[str, str]) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """The columns' positions, and the non-blank data rows with their numbers, cells stripped and padded.

    Args:
        table: The table file.
        columns: Name -> the setting that names it, for the message if the table lacks it.
    """
    rows = [(number, cells) for number, cells in read_cells(table) if any(cell.strip() for cell in cells)]
    if not rows:
        raise DataError(f"{table} is empty: expected a header row naming the columns, then one row per image.")
    (header_row, header), data = rows[0], rows[1:]
    names = [cell.strip() for cell in header]
    positions: dict[str, int] = {}
    for column, option in columns.items():
        found = [index for index, name in enumerate(names) if name == column]
        if len(found) != 1:
            problem = f"no column {column!r}" if not found else f"{len(found)} columns named {column!r}"
            raise DataError(
                f"{table}, row {header_row}: {problem} ({option}); the table's columns are "
                f"{', '.join(repr(name) for name in names if name)}."
            )
        positions[column] = found[0]
    if not data:
        raise DataError(f"{table} has a header but no rows: expected one row per image.")
    return positions, [
        (number, [cell.strip() for cell in cells] + [""] * (len(header) - len(cells))) for number, cells in data
    ]


class _ImageFinder:
    """Finds the images a table names under a root, each once: as named, or the one image file ``name.<ext>``."""

    def __init__(self, table: Path, root: Path) -> None:
        self.table = table
        self.root = root
        self.rows: dict[Path, int] = {}  # image file -> the row naming it
        self.listings: dict[Path, dict[str, list[Path]]] = {}  # folder -> file name without image suffix -> files

    def find(self, row: int, name: str) -> Path:
        source = f"{self.table}, row {row}"
        if not name:
            raise DataError(f"{source}: no image path; fill it in or delete the row.")
        path = resolve_inside(self.root, name, source=source)
        if not path.is_file():
            has_suffix = path.suffix.casefold() in IMAGE_EXTENSIONS
            matches = [] if has_suffix else self._images_by_stem(path.parent).get(path.name, [])
            if len(matches) > 1:
                raise DataError(
                    f"{source}: image {name!r} has {len(matches)} image files ({matches[0].name}, {matches[1].name}); "
                    "write the extension of the one meant."
                )
            if not matches:
                nor = "" if has_suffix else " (nor with an image extension)"
                raise DataError(f"{source}: image {name!r} not found: no file {path}{nor}; add it or fix the path.")
            path = matches[0]
        # Compared as named, not through links: a data set kept as links into a store may link identical images
        # to one stored file.
        if path in self.rows:
            raise DataError(
                f"{source}: image {name!r} is listed again (first on row {self.rows[path]}, both {path}); "
                "delete one row."
            )
        self.rows[path] = row
        return path

    def _images_by_stem(self, folder: Path) -> dict[str, list[Path]]:
        # Listed once per folder: a table of thousands of extensionless names in one folder is read in one pass.
        if folder not in self.listings:
            names = sorted(os.listdir(folder)) if folder.is_dir() else []
            listing: dict[str, list[Path]] = {}
            for name in names:
                stem, suffix = os.path.splitext(name)
                if suffix.casefold() in IMAGE_EXTENSIONS and (folder / name).is_file():
                    listing.setdefault(stem, []).append(folder / name)
            self.listings[folder] = listing
        return self.listings[folder]


def _label_column(
    table: Path, column: str, cells: list[tuple[int, str]], given: list[str] | None
) -> tuple[list[str], list[int]]:
    """A label column's class names, given or found, and the class index of each cell (MISSING_LABEL if empty).

    A cell is a class name, else the index it holds.
    """
    numbers = [_whole_number(cell) for _, cell in cells if cell]
    numbered = given is None and None not in numbers
    if given is not None:
        names = list(given)
    elif numbered:
        names = [str(index) for index in range(max(numbers, default=-1) + 1)]
    else:
        names = sorted({cell for _, cell in cells if cell})
    if len(names) < 2:
        found = f"only the class {names[0]!r}" if names else "no label"
        raise DataError(f"{table}: column {column!r} has {found}; a task needs at least 2 classes.")
    positions = {name: index for index, name in enumerate(names)}
    indices = []
    for number, cell in cells:
        index = positions.get(cell, _whole_number(cell)) if cell else MISSING_LABEL
        if cell and (index is None or not 0 <= index < len(names)):
            expected = "" if numbered else f"one of {', '.join(map(repr, names))} or its index, "
            raise DataError(
                f"{table}, row {number}: {column!r} is {cell!r}, not a class; expected {expected}0 to {len(names) - 1}."
            )
        indices.append(index)
    return names, indices


def _whole_number(cell: str) -> int | None:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _split(table: Path, row: int, cell: str, column: str) -> str:
    split = _SPLITS.get(cell.casefold())
    if split is None:
        raise DataError(
            f"{table}, row {row}: {column!r} is {cell!r}, not a split; expected train, val (or validation) or test."
        )
    return split
