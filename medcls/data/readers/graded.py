"""Label tables that name images by their stem: Kaggle's layout (EyePACS, APTOS) and Messidor-2's grades.

A folder of images and a table naming each one without its extension, or with another one (Messidor-2 lists
``.png`` for ``.tif`` files): :class:`ImagesByStem` finds each named file, :func:`read_columns` and
:func:`parse_grade` read the table, :func:`read_graded_folder` puts them together.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path, PurePath

from medcls.data.readers.table import IMAGE_EXTENSIONS, image_files
from medcls.data.readers.tables import read_rows
from medcls.errors import DataError

log = logging.getLogger(__name__)


def read_graded_folder(folder: Path, table: Path, columns: tuple[str, str], data_set: str) -> list[tuple[Path, int]]:
    """Read Kaggle's layout: a folder of images and a table naming each image and its DR grade.

    Args:
        folder: The images, found by their names in the table (:class:`ImagesByStem`).
        table: The label table (delimited text).
        columns: The table's image column and its grade column (0-4).
        data_set: The data set's name, for the log.

    Returns:
        ``(image file, grade)`` per row, in table order. Image files the table does not list are logged.

    Raises:
        DataError: As :func:`read_columns`, :func:`parse_grade` and :meth:`ImagesByStem.claim` raise it.
    """
    image, grade = columns
    positions, rows = read_columns(table, columns)
    images = ImagesByStem(folder)
    graded = [
        (
            images.claim(cells[positions[image]], table, line),
            parse_grade(cells[positions[grade]], grade, 4, f"{table}, line {line}"),
        )
        for line, cells in rows
    ]
    images.log_unlisted(table, data_set)
    return graded


def read_columns(table: Path, columns: Sequence[str]) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """Read a label table: where its ``columns`` are, and its non-blank data rows.

    Columns are found by name, stripped and in any case; other columns are ignored.

    Args:
        table: Delimited text in any encoding and delimiter :func:`~medcls.data.readers.tables.read_rows` takes.
        columns: The columns needed.

    Returns:
        Column -> position, and ``(line number, cells)`` per non-blank data row, cells stripped and padded to
        the header's width.

    Raises:
        DataError: If the table is empty, lacks a column, or has no data row.
    """
    rows = [(line, [cell.strip() for cell in cells]) for line, cells in read_rows(table) if any(map(str.strip, cells))]
    if not rows:
        raise DataError(f"{table} is empty: expected a header ({', '.join(columns)}) and one row per image.")
    (header_line, header), data = rows[0], rows[1:]
    found = {cell.casefold(): index for index, cell in enumerate(header) if cell}
    missing = [column for column in columns if column.casefold() not in found]
    if missing:
        raise DataError(
            f"{table}, line {header_line}: missing column(s) {', '.join(map(repr, missing))} "
            f"(columns found: {', '.join(repr(cell) for cell in header if cell)})."
        )
    if not data:
        raise DataError(f"{table} has a header but no rows: expected one row per image.")
    width = len(header)
    return {column: found[column.casefold()] for column in columns}, [
        (line, cells + [""] * (width - len(cells))) for line, cells in data
    ]


def parse_grade(cell: str, column: str, top: int, source: str) -> int:
    """A grade in ``0 .. top`` from a cell; a whole number written as a float (``2.0``, as pandas writes) is taken.

    Raises:
        DataError: If the cell is no whole number, or out of range; naming ``source`` (file and line) and the column.
    """
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise DataError(f"{source}: {column!r} is {cell!r}, not a whole number; expected 0 to {top}.")
    if not 0 <= value <= top:
        raise DataError(f"{source}: {column!r} is {int(value)}, out of range; expected 0 to {top}.")
    return int(value)


def stem_key(name: str) -> str:
    """An image's name as label files are matched on it: without an image extension, in lower case."""
    suffix = PurePath(name).suffix
    return (name[: -len(suffix)] if suffix.casefold() in IMAGE_EXTENSIONS else name).casefold()


class ImagesByStem:
    """The image files under a folder, each found by the one label-file row that names it.

    Label files name images without their extension (EyePACS, APTOS) or with another one (Messidor-2 lists
    ``.png`` for ``.tif`` files), so a name is matched on its :func:`stem_key` against every image file under
    the folder (:func:`~medcls.data.readers.table.image_files`).

    Args:
        folder: The folder searched, sub-folders included.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, list[Path]] = {}  # lower-case stem -> the files of that stem
        for name in sorted(image_files(folder)):
            self.files.setdefault(name.stem.casefold(), []).append(folder / name)
        self.claimed: dict[str, int] = {}  # lower-case stem -> the line naming it

    def claim(self, name: str, table: Path, line: int) -> Path:
        """The one image file ``name`` (line ``line`` of ``table``) names.

        Raises:
            DataError: If the name is empty, names no file or two, or was claimed before.
        """
        source = f"{table}, line {line}"
        if not name:
            raise DataError(f"{source}: no image name; fill it in or delete the row.")
        key = stem_key(name)
        if key in self.claimed:
            raise DataError(f"{source}: image {name!r} is listed twice (also on line {self.claimed[key]}); delete one.")
        found = self.files.get(key, [])
        if not found:
            raise DataError(
                f"{source}: image {name!r} is listed but no image file of that name (with any extension) is under "
                f"{self.folder}; add it or delete the row."
            )
        if len(found) > 1:
            raise DataError(
                f"{source}: image {name!r} could be {found[0]} or {found[1]} (names are matched without their "
                "extension, in any case); keep one of them."
            )
        self.claimed[key] = line
        return found[0]

    def log_unlisted(self, table: Path, data_set: str) -> None:
        """Log, in one line, the image files no row of ``table`` claimed: they are not used."""
        unlisted = [path for key, paths in self.files.items() if key not in self.claimed for path in paths]
        if unlisted:
            log.warning(
                "%s: %d image files under %s are not listed in %s and are left out (e.g. %s)",
                data_set,
                len(unlisted),
                self.folder,
                table.name,
                unlisted[0].name,
            )
