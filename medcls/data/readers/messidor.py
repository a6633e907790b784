"""Messidor reader: the 12 annotation sheets, the published errata, the duplicate pairs.

The folder is searched as a whole, so the layouts seen in the wild all read the same: the
sheet ``Annotation_BaseXX`` (or ``Annotation BaseXX``, any case) beside or inside its folder,
``BaseXX/BaseXX/`` after unzipping, the first worksheet whatever its name (``Feuil1``), saved
as ``.xls`` (the original), ``.xlsx`` or ``.csv`` (any encoding and delimiter Excel writes, see
:func:`~medcls.data.readers.tables.read_cells`). Sub-folders may be symbolic links (a link cycle is
followed once).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from medcls.data.readers.records import Record
from medcls.data.readers.tables import read_cells
from medcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)

DrMode = Literal["grade", "referable"]
DmeMode = Literal["grade", "binary"]
Duplicates = Literal["group", "drop"]

BASES = tuple(f"Base{department}{part}" for department in (1, 2, 3) for part in (1, 2, 3, 4))

DR_CORRECTIONS: dict[str, tuple[int, int]] = {  # image -> (erroneous DR grade, corrected one)
    "20051020_63045_0100_PP": (3, 0),
    "20051020_64007_0100_PP": (1, 3),
    "20051020_63936_0100_PP": (3, 1),
    "20060523_48477_0100_PP": (2, 3),
}
"""The maintainers' published DR grade corrections."""

DUPLICATE_PAIRS: tuple[tuple[str, str], ...] = (
    ("20051202_54744", "20051202_55582"),
    ("20051202_40508", "20051202_41076"),
    ("20051202_41238", "20051202_48287"),
    ("20051202_41260", "20051202_48586"),
    ("20051202_54530", "20051202_55457"),
    ("20051205_33025", "20051202_55626"),
    ("20051202_55607", "20051202_54783"),
    ("20051202_41034", "20051202_48575"),
    ("20051205_35099", "20051205_32966"),
    ("20051202_54555", "20051202_55484"),
    ("20051205_35110", "20051205_32981"),
    ("20051202_54611", "20051202_55562"),
    ("20051202_55498", "20051202_54547"),
)
"""The maintainers' 13 duplicate pairs of Base33 (``duplicates="drop"`` drops the first of each).

The errata name the partners without the rest of their file name, so pairs are matched on the
first two fields of the name (``date_number``).
"""

SHEET = "Annotation_{base}"
"""The name of a base's annotation sheet as distributed (any of the names ``_SHEET`` matches is read)."""
_SHEET = re.compile(r"annotation[ _]*(base\d\d)")  # matched against the lower-case file stem
_FORMATS = (".xls", ".xlsx", ".csv")  # by preference, when a base has its sheet in several
HEADER = ("Image name", "Ophthalmologic department", "Retinopathy grade", "Risk of macular edema ")
"""The annotation sheets' header as distributed (the trailing space included); read stripped and in any case."""
_NAME, _DR, _DME = (HEADER[i].strip().casefold() for i in (0, 2, 3))


@dataclass
class _Entry:
    path: Path
    dr: int
    dme: int
    source: str


def messidor_tasks(dr: DrMode = "referable", dme: DmeMode = "grade") -> dict[str, int]:
    """Task name -> number of classes for the given label modes.

    Args:
        dr: ``"grade"`` (Messidor's 0-3) or ``"referable"`` (grade >= 2 -> 1, else 0).
        dme: ``"grade"`` (risk 0-2) or ``"binary"`` (risk >= 1 -> 1, else 0).

    Raises:
        ConfigError: If a mode is unknown (named as its option, ``--data.dr`` or ``--data.dme``).
    """
    check_mode("--data.dr", "label", dr, DrMode)
    check_mode("--data.dme", "label", dme, DmeMode)
    return {"dr": 4 if dr == "grade" else 2, "dme": 3 if dme == "grade" else 2}


def check_mode(option: str, kind: str, value: str, modes: Any) -> None:
    """Refuse a value that is not one of the ``Literal`` type ``modes``."""
    if value not in get_args(modes):
        choices = " or ".join(repr(mode) for mode in get_args(modes))
        raise ConfigError(f"{option}: unknown {kind} mode {value!r}; choose {choices}.")


def read_messidor(
    root: Path, *, dr: DrMode = "referable", dme: DmeMode = "grade", duplicates: Duplicates = "group"
) -> list[Record]:
    """Read and validate Messidor, applying the published errata.

    Args:
        root: The folder holding the 12 sub-bases ``Base11`` ... ``Base34`` and their sheets.
        dr: DR label mode, see :func:`messidor_tasks`.
        dme: DME label mode, see :func:`messidor_tasks`.
        duplicates: ``"group"`` gives both images of a duplicate pair one group, so that they
            never straddle two splits; ``"drop"`` drops the first image of each pair (1187
            images remain of 1200).

    Returns:
        One record per image, base by base in sheet order; ids are the image names without
        extension, labels ``{"dr": ..., "dme": ...}`` in the chosen modes.

    Raises:
        DataError: If a base has no sheet, a sheet is unreadable, lacks a column or has a bad row (a
            grade that is no whole number or out of range, an image not found or listed twice).
        ConfigError: If a mode is unknown.
    """
    messidor_tasks(dr, dme)
    check_mode("--data.duplicates", "duplicates", duplicates, Duplicates)
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: point the root at the Messidor folder holding Base11 ... Base34.")
    sheets, images = _scan(root)
    entries: dict[str, _Entry] = {}
    for base in BASES:
        _read_sheet(_pick_sheet(root, base, sheets.get(base.casefold(), [])), images, entries)

    corrected = _correct(entries)
    groups, dropped, pairs = _pair_duplicates(entries, duplicates)
    log.info(
        "Messidor: %d images from %d sheets; DR errata: %d of %d images found, %d corrected; "
        "duplicate pairs: %d of %d found, %s",
        len(entries),
        len(BASES),
        len(DR_CORRECTIONS.keys() & entries.keys()),
        len(DR_CORRECTIONS),
        corrected,
        pairs,
        len(DUPLICATE_PAIRS),
        f"{len(dropped)} images dropped" if duplicates == "drop" else "grouped",
    )
    return [
        Record(id=name, path=entry.path, labels=_labels(entry, dr, dme), group=groups.get(name, ""))
        for name, entry in entries.items()
        if name not in dropped
    ]


def _labels(entry: _Entry, dr: DrMode, dme: DmeMode) -> dict[str, int]:
    return {
        "dr": entry.dr if dr == "grade" else int(entry.dr >= 2),
        "dme": entry.dme if dme == "grade" else int(entry.dme >= 1),
    }


def _scan(root: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Index the tree: sheets by lower-case base name, all other files by lower-case file name.

    Linked folders are followed, each real folder once: a link cycle, or two links to one folder,
    would otherwise list its files again and again.
    """
    sheets: dict[str, list[Path]] = {}
    files: dict[str, list[Path]] = {}
    visited: set[tuple[int, int]] = set()
    for folder, subfolders, names in os.walk(root, onerror=_unreadable_folder, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in visited:
            subfolders.clear()
            continue
        visited.add((stat.st_dev, stat.st_ino))
        for name in names:
            path = Path(folder, name)
            match = _SHEET.fullmatch(path.stem.casefold())
            if match and path.suffix.casefold() in _FORMATS:
                sheets.setdefault(match[1], []).append(path)
            else:
                files.setdefault(name.casefold(), []).append(path)
    return sheets, files


def _unreadable_folder(error: OSError) -> None:
    raise DataError(f"cannot list the folder {error.filename} ({error.strerror}); check its permissions.")


def _pick_sheet(root: Path, base: str, candidates: list[Path]) -> Path:
    if not candidates:
        raise DataError(
            f"no annotation sheet for {base} under {root}: expected Annotation_{base}.xls "
            f"(or .xlsx / .csv, '_' or ' ') beside or inside the {base} folder."
        )
    ranked = sorted(candidates, key=lambda path: (_FORMATS.index(path.suffix.casefold()), str(path)))
    if len(ranked) > 1 and ranked[0].suffix.casefold() == ranked[1].suffix.casefold():
        raise DataError(f"two annotation sheets for {base}: {ranked[0]} and {ranked[1]}; keep one.")
    return ranked[0]


def _read_sheet(sheet: Path, images: dict[str, list[Path]], entries: dict[str, _Entry]) -> None:
    """Add the sheet's rows to ``entries`` (image name without extension -> entry), validated."""
    rows = [(number, cells) for number, cells in read_cells(sheet) if any(cell.strip() for cell in cells)]
    if not rows:
        raise DataError(f"{sheet} is empty: expected a header ('Image name', 'Retinopathy grade', ...) and 100 rows.")
    (header_row, header), data = rows[0], rows[1:]
    positions = {cell.strip().casefold(): index for index, cell in enumerate(header) if cell.strip()}
    missing = [column for column in (_NAME, _DR, _DME) if column not in positions]
    if missing:
        found = ", ".join(repr(cell.strip()) for cell in header if cell.strip())
        raise DataError(
            f"{sheet}, row {header_row}: missing column(s) {', '.join(map(repr, missing))} (columns found: {found}); "
            "the header must name the image and both grades."
        )
    for number, cells in data:
        source = f"{sheet}, row {number}"
        cells = [*cells, *[""] * (len(header) - len(cells))]
        name = cells[positions[_NAME]].strip()
        stem = Path(name).stem
        if stem in entries:
            raise DataError(
                f"{source}: image {name!r} is listed again (first at {entries[stem].source}); delete one row."
            )
        entries[stem] = _Entry(
            path=_find_image(name, images, source),
            dr=_grade(cells[positions[_DR]], "Retinopathy grade", 3, source),
            dme=_grade(cells[positions[_DME]], "Risk of macular edema", 2, source),
            source=source,
        )


def _find_image(name: str, images: dict[str, list[Path]], source: str) -> Path:
    if not name or Path(name).name != name:
        raise DataError(f"{source}: image name {name!r} is not a plain file name; fix the sheet.")
    found = images.get(name.casefold(), [])
    if not found:
        raise DataError(
            f"{source}: image {name!r} is listed but not found in the data folder; add it or delete the row."
        )
    if len(found) > 1:
        raise DataError(
            f"{source}: image {name!r} is found {len(found)} times ({found[0]}, {found[1]}); keep one copy."
        )
    return found[0]


def _grade(cell: str, column: str, top: int, source: str) -> int:
    """Parse a grade in ``[0, top]``; a CSV export may write whole numbers as floats (``2.0``)."""
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{source}: {column!r} is {text!r}, not a whole number; expected 0 to {top}.") from None
    if not value.is_integer():
        raise DataError(f"{source}: {column!r} is {text}, not a whole number; expected 0 to {top}.")
    if not 0 <= value <= top:
        raise DataError(f"{source}: {column!r} is {int(value)}, out of range; expected 0 to {top}.")
    return int(value)


def _correct(entries: dict[str, _Entry]) -> int:
    """Apply :data:`DR_CORRECTIONS` where the sheet still has the erroneous grade; return how many."""
    corrected = 0
    for name, (wrong, right) in DR_CORRECTIONS.items():
        entry = entries.get(name)
        if entry is None:
            log.debug("Messidor erratum skipped: %s is not in this tree", name)
        elif entry.dr == wrong:
            entry.dr = right
            corrected += 1
            log.info("Messidor erratum applied: %s DR grade %d -> %d", name, wrong, right)
        elif entry.dr == right:
            log.debug("Messidor erratum already in the sheet: %s has DR grade %d", name, right)
        else:
            log.warning(
                "Messidor erratum not applied: %s has DR grade %d, expected %d (to become %d)",
                name,
                entry.dr,
                wrong,
                right,
            )
    return corrected


def _pair_duplicates(entries: dict[str, _Entry], mode: Duplicates) -> tuple[dict[str, str], set[str], int]:
    """Return the groups of paired images (name -> group), the names to drop, the number of pairs found."""
    by_prefix: dict[str, list[str]] = {}
    for name in entries:
        by_prefix.setdefault("_".join(name.split("_")[:2]), []).append(name)
    groups: dict[str, str] = {}
    dropped: set[str] = set()
    found = 0
    for first, second in DUPLICATE_PAIRS:
        if first not in by_prefix or second not in by_prefix:
            log.debug("Messidor duplicate pair skipped: %s / %s is not (wholly) in this tree", first, second)
            continue
        found += 1
        if mode == "drop":
            dropped.update(by_prefix[first])
        else:
            groups.update((name, f"duplicate/{first}") for name in by_prefix[first] + by_prefix[second])
    return groups, dropped, found
