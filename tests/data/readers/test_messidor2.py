from __future__ import annotations

import logging
from pathlib import Path

import pytest

from medcls.data.readers.messidor2 import MESSIDOR2_TASKS, read_messidor2, referable
from medcls.errors import DataError
from tests.data.trees import image_bytes

HEADER = "image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable"
# As distributed: the grades list .png for the .tif files and .jpg for the .JPG ones; pandas wrote some grades
# as floats; one image is ungradable, its grades empty.
GRADES = [
    ("20051020_43808_0100_PP.png", 0, 0, 1),
    ("20051020_43832_0100_PP.png", "2.0", "0.0", 1),
    ("IM000013.jpg", 1, 1, 1),
    ("IM000012.jpg", 3, 0, 1),
    ("IM000020.jpg", "", "", 0),
    ("IM000021.jpg", 1, 0, 1),
    ("IM000030.jpg", 0, 0, 1),
]
# A blank row; an exam whose one image is ungradable; IM000030 in no exam.
EXAMS = [
    "left;right",
    "20051020_43808_0100_PP.tif;20051020_43832_0100_PP.tif",
    "",
    "IM000013.JPG;IM000012.JPG",
    "IM000021.JPG;IM000020.JPG",
]


def write_grades(root: Path, rows: list[tuple[object, ...]], header: str = HEADER) -> None:
    (root / "messidor_data.csv").write_text("\n".join([header, *(",".join(map(str, row)) for row in rows)]) + "\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    images = tmp_path / "IMAGES"
    images.mkdir()
    for name, *_ in GRADES:
        real = name.replace(".png", ".tif").replace(".jpg", ".JPG")
        images.joinpath(real).write_bytes(image_bytes("TIFF" if real.endswith(".tif") else "JPEG"))
    write_grades(tmp_path, GRADES)
    (tmp_path / "messidor-2.csv").write_text("\r\n".join(EXAMS) + "\r\n")
    return tmp_path


def test_reads_the_quirks_as_distributed(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.messidor2"):
        records = read_messidor2(root)
    by_id = {r.id: r for r in records}
    assert list(by_id) == [
        "20051020_43808_0100_PP",
        "20051020_43832_0100_PP",
        "IM000013",
        "IM000012",
        "IM000021",
        "IM000030",
    ]  # IM000020, ungradable, is left out
    assert by_id["20051020_43832_0100_PP"].path == root / "IMAGES" / "20051020_43832_0100_PP.tif"
    assert by_id["IM000013"].path == root / "IMAGES" / "IM000013.JPG"
    assert by_id["20051020_43832_0100_PP"].labels == {"dr": 2, "dme": 0, "referable": 1}
    assert by_id["IM000013"].labels == {"dr": 1, "dme": 1, "referable": 1}
    assert by_id["IM000021"].labels == {"dr": 1, "dme": 0, "referable": 0}
    assert {r.id: r.group for r in records} == {
        "20051020_43808_0100_PP": "exam/20051020_43808_0100_PP+20051020_43832_0100_PP",
        "20051020_43832_0100_PP": "exam/20051020_43808_0100_PP+20051020_43832_0100_PP",
        "IM000013": "exam/IM000013+IM000012",
        "IM000012": "exam/IM000013+IM000012",
        "IM000021": "exam/IM000021+IM000020",
        "IM000030": "IM000030",
    }
    assert caplog.records[-1].levelno == logging.WARNING  # an image in no exam
    assert caplog.messages[-1] == (
        "Messidor-2: 6 gradable images in 3 exams, ungradable images left out: 1; in no exam of messidor-2.csv "
        "(each a group of its own): 1; names there that are no gradable image (ignored): 1"
    )
    assert MESSIDOR2_TASKS == {"dr": 5, "dme": 2, "referable": 2}


@pytest.mark.parametrize(
    ("dr", "dme", "expected"), [(0, 0, 0), (1, 0, 0), (1, 1, 1), (2, 0, 1), (3, 0, 1), (4, 1, 1), (0, 1, 1)]
)
def test_referable_is_moderate_or_worse_dr_or_referable_dme(dr: int, dme: int, expected: int) -> None:
    assert referable(dr, dme) == expected


def test_images_anywhere_under_the_root_and_unlisted_ones_logged(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    (root / "nested").mkdir()
    (root / "IMAGES").rename(root / "nested" / "images")
    (root / "nested" / "images" / "IM009999.JPG").write_bytes(image_bytes("JPEG"))
    with caplog.at_level(logging.WARNING):
        records = read_messidor2(root)
    assert records[0].path == root / "nested" / "images" / "20051020_43808_0100_PP.tif"
    assert (
        f"Messidor-2: 1 image files under {root} are not listed in messidor_data.csv and are left out "
        "(e.g. IM009999.JPG)"
    ) in caplog.messages


def test_a_stem_naming_two_files_is_refused(root: Path) -> None:
    (root / "IMAGES" / "IM000012.tif").write_bytes(image_bytes("TIFF"))
    with pytest.raises(
        DataError,
        match=r"messidor_data\.csv, line 5: image 'IM000012\.jpg' could be .*IM000012\.JPG or .*IM000012\.tif",
    ):
        read_messidor2(root)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("IM000030.jpg", "", "", 1), r"line 8: 'adjudicated_dr_grade' is '', not a whole number; expected 0 to 4"),
        (("IM000030.jpg", 5, 0, 1), r"line 8: 'adjudicated_dr_grade' is 5, out of range; expected 0 to 4"),
        (("IM000030.jpg", 2, 2, 1), r"line 8: 'adjudicated_dme' is 2, out of range; expected 0 to 1"),
        (("IM000030.jpg", 0, 0, "yes"), r"line 8: 'adjudicated_gradable' is 'yes', not a whole number"),
        (("IM000031.jpg", 0, 0, 1), r"line 8: image 'IM000031\.jpg' is listed but no image file"),
        (("IM000013.png", 0, 0, 1), r"line 8: image 'IM000013\.png' is listed twice \(also on line 4\)"),
    ],
)
def test_bad_grade_rows_are_named_by_file_and_line(root: Path, row: tuple[object, ...], message: str) -> None:
    write_grades(root, [*GRADES[:-1], row])
    with pytest.raises(DataError, match=rf"messidor_data\.csv, {message}"):
        read_messidor2(root)


def test_an_image_in_two_exams_is_refused(root: Path) -> None:
    (root / "messidor-2.csv").write_text("\n".join([*EXAMS, "IM000030.JPG;IM000012.JPG"]) + "\n")
    with pytest.raises(
        DataError, match=r"messidor-2\.csv, line 6: image 'IM000012\.JPG' is in two exams \(also on line 4\)"
    ):
        read_messidor2(root)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "messidor_data.csv",
            "image_id,adjudicated_dr_grade\nIM000012.jpg,0\n",
            r"missing column\(s\) 'adjudicated_dme'",
        ),
        ("messidor-2.csv", "first;second\nIM000013.JPG;IM000012.JPG\n", r"missing column\(s\) 'left', 'right'"),
        ("messidor-2.csv", "", r"messidor-2\.csv is empty"),
        (
            "messidor-2.csv",
            None,
            r"messidor-2\.csv not found: it holds the exams\. Point the root at the Messidor-2 folder as distributed",
        ),
        ("messidor_data.csv", None, r"messidor_data\.csv not found: it holds the adjudicated grades of Krause"),
    ],
)
def test_bad_or_missing_tables(root: Path, name: str, text: str | None, message: str) -> None:
    if text is None:
        (root / name).unlink()
    else:
        (root / name).write_text(text)
    with pytest.raises(DataError, match=message):
        read_messidor2(root)
