from __future__ import annotations

import csv
import sys

import pytest

from medcls.synthetic import sheet_writer, write_csv, write_messidor_tree, write_xls, write_xlsx

ROWS = [
    ("Image name", "Ophthalmologic department", "Retinopathy grade", "Risk of macular edema "),
    ("20051019_38557_0100_PP.tif", "Service Ophtalmologie Lariboisière", 3, 2),
    ("20051020_43808_0100_PP.tif", "CHU de St Etienne", 0, 0),
]


def test_csv_sheet_is_utf8_comma_separated(tmp_path):
    assert sheet_writer("csv") is write_csv
    write_csv(tmp_path / "sheet.csv", ROWS)
    with open(tmp_path / "sheet.csv", newline="", encoding="utf-8") as file:
        assert list(csv.reader(file)) == [[str(cell) for cell in row] for row in ROWS]


def test_xls_sheet_has_one_worksheet_called_feuil1(tmp_path):
    xlrd = pytest.importorskip("xlrd")
    pytest.importorskip("xlwt")
    assert sheet_writer("xls") is write_xls
    write_xls(tmp_path / "sheet.xls", ROWS)
    book = xlrd.open_workbook(tmp_path / "sheet.xls")
    assert book.sheet_names() == ["Feuil1"]
    sheet = book.sheet_by_index(0)
    assert [tuple(sheet.row_values(i)) for i in range(sheet.nrows)] == ROWS  # Excel's 3.0 == 3


def test_xlsx_sheet_has_one_worksheet_called_feuil1(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    assert sheet_writer("xlsx") is write_xlsx
    write_xlsx(tmp_path / "sheet.xlsx", ROWS)
    book = openpyxl.load_workbook(tmp_path / "sheet.xlsx")
    assert book.sheetnames == ["Feuil1"]
    assert list(book.active.iter_rows(values_only=True)) == ROWS


def test_an_unknown_format_or_a_missing_xlwt_fails_before_anything_is_written(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown sheet format 'ods'"):
        sheet_writer("ods")
    monkeypatch.setitem(sys.modules, "xlwt", None)  # what an import of a missing package meets
    with pytest.raises(ImportError, match=r"needs xlwt: pip install xlwt \(or use fmt='csv'\)"):
        sheet_writer("xls")
    with pytest.raises(ImportError, match="needs xlwt"):
        write_messidor_tree(tmp_path, per_base=1, size=(64, 43), fmt="xls")
    assert list(tmp_path.iterdir()) == []
