"""Spreadsheets in the formats Messidor's annotation sheets come in: ``.xls`` as distributed, ``.xlsx``, ``.csv``.

The Excel ones have a single worksheet, ``Feuil1``, as Messidor's have.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

Rows = Sequence[Sequence[object]]
"""A sheet's rows, the header first; cells are strings or numbers."""


def sheet_writer(fmt: str) -> Callable[[Path, Rows], None]:
    """The function writing a sheet in ``fmt``; it fails now, before anything is written, if it cannot.

    Args:
        fmt: ``"xls"`` (Excel 97; needs ``xlwt``, a development dependency), ``"xlsx"`` or ``"csv"``.

    Raises:
        ValueError: If ``fmt`` is unknown.
        ImportError: If ``fmt`` is ``"xls"`` and xlwt is not installed.
    """
    if fmt == "csv":
        return write_csv
    if fmt == "xls":
        _xlwt()
        return write_xls
    if fmt == "xlsx":
        return write_xlsx
    raise ValueError(f"unknown sheet format {fmt!r}: use 'xls', 'xlsx' or 'csv'")


def write_csv(path: Path, rows: Rows) -> None:
    """Write ``rows`` to ``path`` as UTF-8 comma-separated values."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)


def write_xls(path: Path, rows: Rows) -> None:
    """Write ``rows`` to ``path`` as an Excel 97 workbook (needs xlwt).

    Raises:
        ImportError: If xlwt is not installed.
    """
    book = _xlwt().Workbook(encoding="utf-8")
    sheet = book.add_sheet("Feuil1")
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            sheet.write(i, j, value)
    book.save(str(path))


def write_xlsx(path: Path, rows: Rows) -> None:
    """Write ``rows`` to ``path`` as an Excel workbook."""
    import openpyxl  # here, not at the top: it takes 0.2 s to import, for .xlsx sheets only

    book = openpyxl.Workbook()
    book.active.title = "Feuil1"
    for row in rows:
        book.active.append(list(row))
    book.save(path)


def _xlwt() -> ModuleType:
    """Import xlwt, a development dependency, or say how to get it."""
    try:
        import xlwt
    except ImportError as error:
        raise ImportError("writing Excel 97 (.xls) sheets needs xlwt: pip install xlwt (or use fmt='csv')") from error
    return xlwt
