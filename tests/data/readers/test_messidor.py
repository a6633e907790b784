from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import pytest

from medcls.data.readers.messidor import DR_CORRECTIONS, DUPLICATE_PAIRS, messidor_tasks, read_messidor
from medcls.data.splits import stratified_group_kfold
from medcls.errors import ConfigError, DataError
from tests.data.trees import make_messidor, symlink

PER_BASE = 2
PLAIN = 12 * PER_BASE
ERRATA = len(DR_CORRECTIONS) + 2 * len(DUPLICATE_PAIRS)


def find(root: Path, name: str) -> Path:
    (path,) = (p for p in root.rglob("*") if p.name == name)
    return path


@pytest.mark.parametrize("fmt", ["xls", "xlsx", "csv"])
def test_reads_every_layout_and_format(tmp_path: Path, fmt: str) -> None:
    written = make_messidor(tmp_path, per_base=PER_BASE, fmt=fmt)
    records = read_messidor(tmp_path, dr="grade", dme="grade")
    assert {r.id: (r.labels["dr"], r.labels["dme"]) for r in records} == written
    assert len(records) == PLAIN
    assert all(r.path.is_file() and r.path.stem == r.id and r.group == r.id for r in records)
    assert any(r.path.parent.name == r.path.parent.parent.name for r in records)  # BaseXX/BaseXX/


def test_label_modes(tmp_path: Path) -> None:
    written = make_messidor(tmp_path, per_base=PER_BASE, fmt="csv")
    records = read_messidor(tmp_path, dr="referable", dme="binary")
    assert {r.id: (r.labels["dr"], r.labels["dme"]) for r in records} == {
        name: (int(dr >= 2), int(dme >= 1)) for name, (dr, dme) in written.items()
    }
    assert messidor_tasks() == {"dr": 2, "dme": 3}
    assert messidor_tasks("grade", "binary") == {"dr": 4, "dme": 2}
    with pytest.raises(ConfigError, match="--data.dr: unknown label mode 'international'"):
        messidor_tasks("international")  # type: ignore[arg-type]


def test_errata_are_applied_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_messidor(tmp_path, per_base=PER_BASE, errata=True)
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.messidor"):
        records = read_messidor(tmp_path, dr="grade")
    grades = {r.id: r.labels["dr"] for r in records}
    assert {name: grades[name] for name in DR_CORRECTIONS} == {
        name: right for name, (_, right) in DR_CORRECTIONS.items()
    }
    applied = [m for m in caplog.messages if m.startswith("Messidor erratum applied")]
    assert applied[0] == "Messidor erratum applied: 20051020_63045_0100_PP DR grade 3 -> 0"
    assert len(applied) == 4
    assert "DR errata: 4 of 4 images found, 4 corrected; duplicate pairs: 13 of 13 found, grouped" in caplog.text


def test_errata_only_correct_the_erroneous_value(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [("20051020_63045_0100_PP.tif", 0, 0), ("20051020_64007_0100_PP.tif", 2, 0)]  # corrected; unexpected
    make_messidor(tmp_path, fmt="csv", extra={"Base11": rows})
    with caplog.at_level(logging.DEBUG, logger="medcls.data.readers.messidor"):
        grades = {r.id: r.labels["dr"] for r in read_messidor(tmp_path, dr="grade")}
    assert (grades["20051020_63045_0100_PP"], grades["20051020_64007_0100_PP"]) == (0, 2)
    assert "erratum already in the sheet: 20051020_63045_0100_PP has DR grade 0" in caplog.text
    warning = "erratum not applied: 20051020_64007_0100_PP has DR grade 2, expected 1 (to become 3)"
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [f"Messidor {warning}"]
    assert "DR errata: 2 of 4 images found, 0 corrected" in caplog.text


def test_errata_missing_from_a_small_tree_are_skipped_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_messidor(tmp_path, fmt="csv")
    with caplog.at_level(logging.DEBUG, logger="medcls.data.readers.messidor"):
        read_messidor(tmp_path)
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == len(DR_CORRECTIONS) + len(DUPLICATE_PAIRS)
    assert {r.levelno for r in skipped} == {logging.DEBUG}
    assert "DR errata: 0 of 4 images found, 0 corrected; duplicate pairs: 0 of 13 found" in caplog.text


def test_duplicate_pairs_are_grouped_and_never_split(tmp_path: Path) -> None:
    make_messidor(tmp_path, per_base=PER_BASE, errata=True)
    records = read_messidor(tmp_path)
    assert len(records) == PLAIN + ERRATA
    group = {r.id: r.group for r in records}
    for first, second in DUPLICATE_PAIRS:
        assert group[f"{first}_0400_PP"] == group[f"{second}_0400_PP"] != f"{first}_0400_PP"
    assert len(set(group.values())) == len(records) - len(DUPLICATE_PAIRS)
    folds = stratified_group_kfold(records, 5, seed=0, stratify=lambda r: (r.labels["dr"], r.labels["dme"]))
    fold_of = {records[i].id: number for number, fold in enumerate(folds) for i in fold}
    for first, second in DUPLICATE_PAIRS:
        assert fold_of[f"{first}_0400_PP"] == fold_of[f"{second}_0400_PP"]


def test_duplicates_drop_the_first_of_each_pair(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_messidor(tmp_path, per_base=PER_BASE, errata=True)
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.messidor"):
        records = read_messidor(tmp_path, duplicates="drop")
    ids = {r.id for r in records}
    assert len(records) == PLAIN + ERRATA - 13  # as 1200 -> 1187 on the full set
    assert all(f"{first}_0400_PP" not in ids and f"{second}_0400_PP" in ids for first, second in DUPLICATE_PAIRS)
    assert all(r.group == r.id for r in records)
    assert "13 images dropped" in caplog.text


def test_lookups_ignore_case_and_csv_may_use_semicolons(tmp_path: Path) -> None:
    make_messidor(tmp_path, fmt="csv")
    image = find(tmp_path, "20040101_00000_0100_PP.tif")
    image.rename(image.with_name("20040101_00000_0100_PP.TIF"))
    sheet = find(tmp_path, "Annotation Base12.csv")
    sheet.rename(sheet.with_name("annotation base12.CSV"))
    sheet = find(tmp_path, "Annotation_Base13.csv")
    sheet.write_text(sheet.read_text().replace(",", ";"))
    assert len(read_messidor(tmp_path)) == PLAIN


def test_reads_a_utf16_tab_separated_unicode_text_export(tmp_path: Path) -> None:
    written = make_messidor(tmp_path, fmt="csv")
    sheet = find(tmp_path, "Annotation_Base31.csv")  # its department, Lariboisière, is not ASCII
    text = sheet.read_text(encoding="utf-8")
    assert "è" in text
    sheet.write_text(text.replace(",", "\t"), encoding="utf-16")  # with a byte-order mark
    records = read_messidor(tmp_path, dr="grade")
    assert {r.id: (r.labels["dr"], r.labels["dme"]) for r in records} == written


def test_linked_sub_folders_are_searched_once_even_in_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / "Messidor"
    written = make_messidor(root, fmt="csv")
    store = tmp_path / "store"
    store.mkdir()
    for base in ("Base11", "Base13"):  # a plain layout, and a nested BaseXX/BaseXX/ one holding its sheet
        shutil.move(root / base, store / base)
        symlink(root / base, store / base)
    symlink(store / "Base11" / "loop", root)  # a cycle back to the root
    symlink(root / "again", store / "Base11")  # and a second link to one folder
    records = read_messidor(root, dr="grade")
    assert {r.id: (r.labels["dr"], r.labels["dme"]) for r in records} == written
    linked = {r.id: r.path for r in records}["20040101_00000_0100_PP"]
    assert linked.read_bytes() == (store / "Base11" / "20040101_00000_0100_PP.tif").read_bytes()


def test_xls_wins_over_a_csv_export(tmp_path: Path) -> None:
    make_messidor(tmp_path)
    (tmp_path / "Annotation_Base11.csv").write_text("not, a, sheet\n")
    assert len(read_messidor(tmp_path)) == PLAIN


@pytest.mark.parametrize(
    ("dr", "dme", "message"),
    [
        (2.5, 0, r"'Retinopathy grade' is 2\.5, not a whole number; expected 0 to 3"),
        ("two", 0, r"'Retinopathy grade' is 'two', not a whole number"),
        (4, 0, r"'Retinopathy grade' is 4, out of range; expected 0 to 3"),
        (0, 3.0, r"'Risk of macular edema' is 3, out of range; expected 0 to 2"),
        (0, "", r"'Risk of macular edema' is '', not a whole number"),
    ],
)
def test_bad_grades_name_the_sheet_and_row(tmp_path: Path, dr: object, dme: object, message: str) -> None:
    make_messidor(tmp_path, extra={"Base22": [("bad.tif", dr, dme)]})
    with pytest.raises(DataError, match=r"Annotation Base22\.xls, row 4: " + message):
        read_messidor(tmp_path)


def test_integral_floats_are_accepted(tmp_path: Path) -> None:
    make_messidor(tmp_path, fmt="csv", extra={"Base11": [("float.tif", "2.0", "1.0")]})
    labels = {r.id: r.labels for r in read_messidor(tmp_path, dr="grade")}
    assert labels["float"] == {"dr": 2, "dme": 1}


def test_image_listed_but_missing(tmp_path: Path) -> None:
    make_messidor(tmp_path)
    find(tmp_path, "20040101_00023_0100_PP.tif").unlink()  # Base34, nested: its second row
    with pytest.raises(
        DataError, match=r"Annotation Base34\.xls, row 3: image '20040101_00023_0100_PP\.tif' is listed but not found"
    ):
        read_messidor(tmp_path)


def test_image_name_escaping_the_root(tmp_path: Path) -> None:
    make_messidor(tmp_path, fmt="csv", extra={"Base22": [("../outside.tif", 0, 0)]})
    with pytest.raises(
        DataError, match=r"Annotation Base22\.csv, row 4: image name '\.\./outside\.tif' is not a plain file name"
    ):
        read_messidor(tmp_path)


def test_image_listed_in_two_sheets(tmp_path: Path) -> None:
    make_messidor(tmp_path, fmt="csv")
    sheet = find(tmp_path, "Annotation Base22.csv")
    sheet.write_text(sheet.read_text() + "20040101_00000_0100_PP.tif,x,0,0\n")
    with pytest.raises(
        DataError,
        match=r"Base22\.csv, row 4: image '20040101_00000_0100_PP\.tif' is listed again "
        r"\(first at .*Annotation_Base11\.csv, row 2\)",
    ):
        read_messidor(tmp_path)


def test_image_found_twice(tmp_path: Path) -> None:
    make_messidor(tmp_path, fmt="csv")
    image = find(tmp_path, "20040101_00000_0100_PP.tif")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / image.name).write_bytes(image.read_bytes())
    with pytest.raises(DataError, match=r"row 2: image '20040101_00000_0100_PP\.tif' is found 2 times"):
        read_messidor(tmp_path)


def test_missing_label_column(tmp_path: Path) -> None:
    make_messidor(tmp_path, header=("Image name", "Ophthalmologic department", "Retinopathy grade", "Macular edema"))
    with pytest.raises(
        DataError,
        match=r"Annotation_Base11\.xls, row 1: missing column\(s\) 'risk of macular edema' "
        r"\(columns found: 'Image name', 'Ophthalmologic department', 'Retinopathy grade', 'Macular edema'\)",
    ):
        read_messidor(tmp_path)


def test_empty_sheet(tmp_path: Path) -> None:
    make_messidor(tmp_path, fmt="csv")
    find(tmp_path, "Annotation_Base31.csv").write_text(",,,\n\n")
    with pytest.raises(DataError, match=r"Annotation_Base31\.csv is empty"):
        read_messidor(tmp_path)


def test_missing_sheet(tmp_path: Path) -> None:
    make_messidor(tmp_path)
    find(tmp_path, "Annotation Base22.xls").unlink()
    with pytest.raises(DataError, match=r"no annotation sheet for Base22 under .*: expected Annotation_Base22\.xls"):
        read_messidor(tmp_path)


def test_two_sheets_for_one_base(tmp_path: Path) -> None:
    make_messidor(tmp_path, fmt="csv")
    (tmp_path / "Base11" / "Annotation_Base11.csv").write_text("Image name\n")
    with pytest.raises(DataError, match=r"two annotation sheets for Base11"):
        read_messidor(tmp_path)


def test_unreadable_xls(tmp_path: Path) -> None:
    make_messidor(tmp_path)
    find(tmp_path, "Annotation_Base13.xls").write_text("Image name,Retinopathy grade\n")
    with pytest.raises(DataError, match=r"Annotation_Base13\.xls is not a readable Excel 97 sheet"):
        read_messidor(tmp_path)


@pytest.mark.parametrize("cut", [600, -10], ids=["half", "end"])  # xlrd raises IndexError, struct.error
def test_truncated_xls_is_named_without_xlrd_noise(tmp_path: Path, capsys: pytest.CaptureFixture, cut: int) -> None:
    make_messidor(tmp_path)
    sheet = find(tmp_path, "Annotation Base22.xls")
    sheet.write_bytes(sheet.read_bytes()[:cut])
    with pytest.raises(DataError) as error:
        read_messidor(tmp_path)
    assert str(error.value).startswith(f"{sheet} is not a readable Excel 97 sheet (")
    assert str(error.value).endswith("open it in Excel and save it again as .xls, or save it as .csv.")
    assert "\n" not in str(error.value) and capsys.readouterr().out == ""


@pytest.mark.parametrize("damage", ["truncated", "not a workbook"])  # BadZipFile, KeyError
def test_corrupt_xlsx_is_named(tmp_path: Path, damage: str) -> None:
    make_messidor(tmp_path, fmt="xlsx")
    sheet = find(tmp_path, "Annotation_Base31.xlsx")
    if damage == "truncated":
        sheet.write_bytes(sheet.read_bytes()[:300])
    else:
        with zipfile.ZipFile(sheet, "w") as archive:
            archive.writestr("notes.txt", "not a workbook")
    with pytest.raises(
        DataError,
        match=r"Annotation_Base31\.xlsx is not a readable Excel workbook \(\w+: .*\); "
        r"open it in Excel and save it again as \.xlsx, or save it as \.csv\.$",
    ):
        read_messidor(tmp_path)


def test_wrong_root_and_modes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a folder: point the root at the Messidor folder"):
        read_messidor(tmp_path / "nowhere")
    with pytest.raises(
        ConfigError, match="--data.duplicates: unknown duplicates mode 'keep'; choose 'group' or 'drop'"
    ):
        read_messidor(tmp_path, duplicates="keep")  # type: ignore[arg-type]
