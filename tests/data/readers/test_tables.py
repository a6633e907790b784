from __future__ import annotations

import logging
from pathlib import Path

import pytest

from medcls.data.readers.tables import read_cells, read_rows, read_sheet
from medcls.errors import DataError
from medcls.synthetic.sheets import sheet_writer

ROWS = [["Image name", "Qualité", "Grade"], ["IDRiD_001", "médiocre", "2"], ["IDRiD_002", "bonne", "0"]]


def table(delimiter: str, rows: list[list[str]] = ROWS, newline: str = "\r\n") -> str:
    return newline.join(delimiter.join(row) for row in rows) + newline


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [
        ("utf-8", ","),
        ("utf-8-sig", ";"),  # Excel's "CSV UTF-8"
        ("utf-16", "\t"),  # Excel's "Unicode text": BOM, native byte order, tabs
        ("utf-16-be", "\t"),  # written with its BOM below
    ],
)
def test_unicode_tables_in_any_delimiter(tmp_path: Path, encoding: str, delimiter: str) -> None:
    path = tmp_path / "labels.csv"
    text = ("\ufeff" if encoding == "utf-16-be" else "") + table(delimiter)
    path.write_bytes(text.encode(encoding))
    assert read_rows(path) == [(1, ROWS[0]), (2, ROWS[1]), (3, ROWS[2])]


@pytest.mark.parametrize(
    ("cell", "encoding"),
    [("médiocre €", "cp1252"), ("médiocre \x81", "latin-1")],  # 0x81 is undefined in cp1252
)
def test_legacy_encodings_are_read_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cell: str, encoding: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(table(",", [ROWS[0], ["IDRiD_001", cell, "2"]]).encode(encoding))
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.tables"):
        rows = read_rows(path)
    assert rows == [(1, ROWS[0]), (2, ["IDRiD_001", cell, "2"])]
    assert caplog.messages == [f"{path} is not UTF-8; read it as {encoding}."]


def test_line_numbers_count_blank_lines_and_the_header_decides_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    # Commas inside cells of the data rows do not outvote the header's semicolons.
    path.write_text('\n\nname;grade;note\nIDRiD_001;2;"a, b, c"\n\n"IDRiD_002";0;"two\nlines"\n')
    rows = read_rows(path)
    assert [line for line, cells in rows if cells] == [3, 4, 7]
    assert rows[-1] == (7, ["IDRiD_002", "0", "two\nlines"])
    assert rows[3] == (4, ["IDRiD_001", "2", "a, b, c"])


def test_broken_tables_are_named(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xff\xfe" + "name\tgrade\n".encode("utf-16-le") + b"\x00")  # odd byte count
    with pytest.raises(DataError, match=r"labels\.csv starts as UTF-16 text but byte \d+ is not"):
        read_rows(path)
    path.write_text('name,grade\n"IDRiD_001,2\n' + "IDRiD_002,0\n" * 20_000)  # a quote left open
    with pytest.raises(DataError, match=r"labels\.csv, line \d+: not a readable table row \(field larger than"):
        read_rows(path)
    with pytest.raises(DataError, match=r"nowhere\.csv: cannot read this table"):
        read_rows(tmp_path / "nowhere.csv")


SHEET: list[list[object]] = [["Image name", " Grade "], [10.0, 2.0], [None, None], ["a.png", 2.5], ["b", -3]]


@pytest.mark.parametrize("suffix", [".xlsx", ".xls"])
def test_sheets_read_as_the_text_a_spreadsheet_shows(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"labels{suffix}"
    sheet_writer(suffix[1:])(path, SHEET)
    rows = [(number, cells) for number, cells in read_sheet(path) if any(cells)]
    assert rows == [(1, ["Image name", " Grade "]), (2, ["10", "2"]), (4, ["a.png", "2.5"]), (5, ["b", "-3"])]


def test_tables_are_read_by_their_suffix(tmp_path: Path) -> None:
    path = tmp_path / "labels.TSV"
    path.write_text(table("\t"), encoding="utf-8")
    assert read_cells(path) == [(1, ROWS[0]), (2, ROWS[1]), (3, ROWS[2])]
    for name, written in (("labels.json", "'.json'"), ("labels", "'a file without a suffix'")):
        with pytest.raises(DataError) as error:
            read_cells(tmp_path / name)
        formats = ".csv, .tsv, .txt, .xlsx, .xls"
        assert (
            str(error.value)
            == f"{tmp_path / name}: cannot read a table saved as {written}; save it as one of {formats}."
        )
