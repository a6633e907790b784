"""Label tables saved as delimited text, whatever the program and the locale that saved them.

Excel alone saves a table in several ways: "CSV UTF-8" (with a byte-order mark), plain "CSV" in the
Windows code page of its locale (cp1252 in Western Europe, ``;``-separated where ``,`` is the decimal
mark), and "Unicode text" (UTF-16 with a byte-order mark, tab-separated). :func:`read_rows` reads
them all.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from pathlib import Path

from medcls.errors import DataError

log = logging.getLogger(__name__)

DELIMITERS = ",;\t"
"""The separators a table may use; the header line decides which (the most frequent there)."""

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
