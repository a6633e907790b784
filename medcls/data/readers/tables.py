"""Label tables, whatever the program and the locale that saved them: delimited text or Excel workbooks.

Excel alone saves a table in several ways: "CSV UTF-8" (with a byte-order mark), plain "CSV" in the
Windows code page of its locale (cp1252 in Western Europe, ``;``-separated where ``,`` is the decimal
mark), and "Unicode text" (UTF-16 with a byte-order mark, tab-separated). :func:`read_rows` reads
them all; :func:`read_sheet` reads workbooks (``.xlsx``, and Excel 97's ``.xls``), and :func:`read_cells`
either, by the file's suffix.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from pathlib import Path

import xlrd

from medcls.errors import DataError, summarise_error

log = logging.getLogger(__name__)

DELIMITERS = ",;\t"
"""The separators a table may use; the header line decides which (the most frequent there)."""

TEXT_FORMATS = (".csv", ".tsv", ".txt")
"""The suffixes of tables read as delimited text (whatever their delimiter)."""
SHEET_FORMATS = (".xlsx", ".xls")
"""The suffixes of tables read as Excel workbooks."""

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Read a delimited text table into its rows, each with the line it ends on (1 for the first).

    The text is decoded as UTF-8 (with or without a byte-order mark), as UTF-16 if it starts with
    a byte-order mark, else as cp1252, else as Latin-1 (the legacy encoding used is logged at INFO).
    The delimiter is the one of ``,``, ``;`` and tab most frequent in the first non-blank line (``,``
    where there is none). Blank rows are kept, so that callers can number what they report.

    Args:
        path: The table file.

    Returns:
        ``(line number, cells)`` for every row, cells as written (not stripped).

    Raises:
        DataError: If the file cannot be read, or is not delimited text (e.g. a quote left open
            swallows the rest of the file into one huge cell); the message names the file and the line.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read this table ({error.strerror}); check the path and permissions.") from None
    text = _decode(path, data)
    header = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(DELIMITERS, key=header.count)  # the first, ',', on a tie
    # newline="": the csv module sees the line ends as written, so quoted cells may span lines.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return [(reader.line_num, cells) for cells in reader]
    except csv.Error as error:
        raise DataError(
            f"{path}, line {reader.line_num}: not a readable table row ({error}); "
            "open the file in a spreadsheet and save it again as CSV."
        ) from None


def _decode(path: Path, data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path} starts as {encoding.upper()} text but byte {error.start} is not; "
                    "open it in a spreadsheet and save it again as CSV UTF-8."
                ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text, encoding = data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined; Latin-1 decodes any byte
        text, encoding = data.decode("latin-1"), "latin-1"
    log.info("%s is not UTF-8; read it as %s.", path, encoding)
    return text


def read_cells(path: Path) -> list[tuple[int, list[str]]]:
    """Read a table of any format taken (:data:`TEXT_FORMATS`, :data:`SHEET_FORMATS`), by its suffix in any case.

    Returns:
        ``(row number, cells as text)`` for every row, as :func:`read_rows` and :func:`read_sheet` give them.

    Raises:
        DataError: If the suffix is none of those, or the file cannot be read as its suffix says.
    """
    suffix = path.suffix.casefold()
    if suffix in TEXT_FORMATS:
        return read_rows(path)
    if suffix in SHEET_FORMATS:
        return read_sheet(path)
    raise DataError(
        f"{path}: cannot read a table saved as {suffix or 'a file without a suffix'!r}; "
        f"save it as one of {', '.join(TEXT_FORMATS + SHEET_FORMATS)}."
    )


def read_sheet(path: Path) -> list[tuple[int, list[str]]]:
    """Read the first worksheet of an Excel workbook (``.xlsx``, or Excel 97's ``.xls``), whatever its name.

    Cells come as the text a spreadsheet shows: an empty cell as ``""``, a whole number as an integer
    (spreadsheets store every number as a float, so that an image named ``10`` would otherwise read as
    ``10.0``), any other number as Python writes the float.

    Args:
        path: The workbook; ``.xls`` is read as Excel 97, anything else as ``.xlsx``.

    Returns:
        ``(row number, cells)`` for every row of the worksheet, numbered from 1 as the spreadsheet numbers them.

    Raises:
        DataError: If the file is not a readable workbook; the message names the file.
    """
    excel97 = path.suffix.casefold() == ".xls"
    if not excel97:
        import openpyxl  # here, not at the top: it takes 0.2 s to import, for .xlsx files only
    # Both libraries raise many types on a damaged file (xlrd: XLRDError, but also struct.error or
    # IndexError on a truncated one; openpyxl: BadZipFile, KeyError, InvalidFileException, ...); all
    # mean the same to the user.
    try:
        if excel97:
            # xlrd prints its warnings about a damaged file to stdout unless given a log of its own.
            worksheet = xlrd.open_workbook(path, logfile=io.StringIO()).sheet_by_index(0)
            rows = [worksheet.row_values(row) for row in range(worksheet.nrows)]
        else:
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                rows = list(workbook.worksheets[0].iter_rows(values_only=True))
            finally:
                workbook.close()
    except Exception as error:
        kind = "Excel 97 sheet" if excel97 else "Excel workbook"
        raise DataError(
            f"{path} is not a readable {kind} ({summarise_error(error)}); open it in Excel and save it again "
            f"as {path.suffix}, or save it as .csv."
        ) from None
    return [(number, [_cell_text(cell) for cell in row]) for number, row in enumerate(rows, start=1)]


def _cell_text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)
