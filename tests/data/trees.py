"""Tiny IDRiD and Messidor trees in the real layouts, quirks included, for the reader tests."""

from __future__ import annotations

import csv
import functools
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from PIL import Image

from medcls.data.readers import idrid, messidor

IDRID_TRAIN = [(0, 0), (1, 0), (2, 1), (2, 2), (3, 2), (4, 2), (0, 0), (4, 1)]
IDRID_TEST = [(0, 0), (2, 2), (3, 1), (4, 0)]
DEPARTMENTS = {"1": "LaTIM - CHU de BREST", "2": "CHU de St Etienne", "3": "Service Ophtalmologie Lariboisière"}


@functools.cache
def image_bytes(fmt: str) -> bytes:
    """A 32x24 fundus-coloured image encoded as ``fmt`` (``"JPEG"``, ``"TIFF"``), made once."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (150, 60, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def symlink(link: Path, target: Path) -> None:
    """Make ``link`` a symbolic link to ``target``, or skip the test where the OS or the user cannot."""
    try:
        os.symlink(target, link, target_is_directory=target.is_dir())
    except (OSError, NotImplementedError) as error:
        pytest.skip(f"cannot make symbolic links here: {error}")


def write_idrid_csv(path: Path, rows: Sequence[Sequence[object]]) -> None:
    """Write an IDRiD label file with its quirks: trailing-space header, trailing commas, CRLF, blank rows.

    An empty row in ``rows`` becomes a blank (all-commas) line.
    """
    lines = [",".join(idrid.HEADER) + ",,"]
    lines += [",".join(map(str, row)) + ",," for row in rows]
    lines += [",,,,", ""]
    path.write_text("\r\n".join(lines) + "\r\n", newline="")


def make_idrid(
    root: Path, train: Sequence[tuple[int, int]] = IDRID_TRAIN, test: Sequence[tuple[int, int]] = IDRID_TEST
) -> Path:
    """Write ``root/B. Disease Grading`` with images ``IDRiD_001.jpg`` ... per split; return that folder.

    Args:
        root: Where to write.
        train: (DR, DME) per training image, in order.
        test: (DR, DME) per test image; numbering restarts at 001 as in the real set.
    """
    top = root / idrid.FOLDER
    for split, (folder, csv_name) in idrid.SPLITS.items():
        labels = {"train": train, "test": test}[split]
        images = top / idrid.IMAGES / folder
        images.mkdir(parents=True)
        for number in range(1, len(labels) + 1):
            (images / f"IDRiD_{number:03d}.jpg").write_bytes(image_bytes("JPEG"))
        (top / idrid.LABELS).mkdir(exist_ok=True)
        rows = [(f"IDRiD_{number:03d}", dr, dme) for number, (dr, dme) in enumerate(labels, start=1)]
        write_idrid_csv(top / idrid.LABELS / csv_name, rows)
    return top


def errata_rows() -> dict[str, list[tuple[str, int, int]]]:
    """The errata's images, by base: the 4 to correct, with their erroneous DR grades; the 13
    duplicate pairs (``_0400_PP``), graded alike within a pair except the two pairs graded
    inconsistently in the original (DME 0 vs 1, DR 2 vs 3).
    """
    corrections = [(f"{name}.tif", wrong, 0) for name, (wrong, _) in messidor.DR_CORRECTIONS.items()]
    grades = {name: (number % 4, number % 3) for number, pair in enumerate(messidor.DUPLICATE_PAIRS) for name in pair}
    grades |= {"20051202_55562": (1, 0), "20051202_54611": (1, 1), "20051202_55626": (2, 0), "20051205_33025": (3, 0)}
    pairs = [(f"{name}_0400_PP.tif", dr, dme) for name, (dr, dme) in grades.items()]
    return {"Base11": corrections[:2], "Base12": corrections[2:3], "Base24": corrections[3:], "Base33": pairs}


def make_messidor(
    root: Path,
    *,
    per_base: int = 2,
    fmt: str = "xls",
    errata: bool = False,
    extra: Mapping[str, Sequence[tuple[str, object, object]]] | None = None,
    header: Sequence[str] = messidor.HEADER,
) -> dict[str, tuple[object, object]]:
    """Write the 12 Messidor sub-bases under ``root``, cycling through the layouts seen in the wild.

    Base ``i`` (0-11) puts its sheet beside its folder (i % 3 == 0), inside it (1), or beside a
    nested ``BaseXX/BaseXX/`` image folder (2); names it ``Annotation_BaseXX`` (even i) or
    ``Annotation BaseXX`` (odd i, whose worksheet is also called ``Feuil1``).

    Args:
        root: Where to write.
        per_base: Plain images per base, graded DR ``n % 4``, DME ``n // 4 % 3`` (n counts all).
        fmt: ``"xls"`` (xlwt), ``"xlsx"`` (openpyxl) or ``"csv"``, for every sheet.
        errata: Add the errata's images, see :func:`errata_rows`.
        extra: More rows per base, ``(image name, DR cell, DME cell)``, written as given.
        header: The sheet's header row.

    Returns:
        Image name without extension -> (DR, DME) as written, for every row.
    """
    written: dict[str, tuple[object, object]] = {}
    more = errata_rows() if errata else {}
    for index, base in enumerate(messidor.BASES):
        plain = [
            (f"20040101_{n:05d}_0100_PP.tif", n % 4, n // 4 % 3)
            for n in range(index * per_base, (index + 1) * per_base)
        ]
        rows = plain + more.get(base, []) + list((extra or {}).get(base, []))
        folder = root / base / base if index % 3 == 2 else root / base
        folder.mkdir(parents=True)
        for name, dr, dme in rows:
            (folder / name).write_bytes(image_bytes("TIFF"))
            written[Path(name).stem] = (dr, dme)
        sheet_name = messidor.SHEET.format(base=base)
        if index % 2:  # "Annotation BaseXX", a variant seen in the wild
            sheet_name = sheet_name.replace("_", " ")
        sheet = (root / base if index % 3 else root) / f"{sheet_name}.{fmt}"
        cells = [list(header)] + [[name, DEPARTMENTS[base[4]], dr, dme] for name, dr, dme in rows]
        _write_sheet(sheet, cells, "Feuil1" if index % 2 else base)
    return written


def _write_sheet(path: Path, rows: list[list[object]], title: str) -> None:
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows(rows)
    elif path.suffix == ".xls":
        import xlwt

        book = xlwt.Workbook()
        sheet = book.add_sheet(title)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                sheet.write(r, c, value)
        book.save(str(path))
    else:
        import openpyxl

        book = openpyxl.Workbook()
        book.active.title = title
        for row in rows:
            book.active.append(row)
        book.save(path)
