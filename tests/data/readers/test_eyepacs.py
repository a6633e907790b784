from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from medcls.data.readers.eyepacs import EYEPACS_TASKS, read_eyepacs
from medcls.errors import DataError
from tests.data.trees import image_bytes

TRAIN = [("10_left", 0), ("10_right", 1), ("13_left", 2), ("13_right", 4), ("15_left", 3)]
TEST = [("1_left", 0), ("1_right", 2), ("2_left", 0)]


def write_labels(path: Path, header: str, rows: list[tuple[object, ...]]) -> None:
    path.write_text("\n".join([header, *(",".join(map(str, row)) for row in rows)]) + "\n")


@pytest.fixture
def eyepacs(tmp_path: Path) -> Path:
    """Kaggle's layout: extension-less names in the label files, .jpeg images, the solution's Usage column."""
    for folder, rows in (("train", TRAIN), ("test", TEST)):
        (tmp_path / folder).mkdir()
        for name, _ in rows:
            (tmp_path / folder / f"{name}.jpeg").write_bytes(image_bytes("JPEG"))
    write_labels(tmp_path / "trainLabels.csv", "image,level", TRAIN)
    write_labels(tmp_path / "retinopathy_solution.csv", "image,level,Usage", [(*row, "Private") for row in TEST])
    return tmp_path


def test_reads_both_splits_grouped_by_patient(eyepacs: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.eyepacs"):
        train, test = read_eyepacs(eyepacs), read_eyepacs(eyepacs, "test")
    assert [(r.id, r.labels, r.group) for r in train] == [
        ("train/10_left", {"dr": 0}, "10"),
        ("train/10_right", {"dr": 1}, "10"),
        ("train/13_left", {"dr": 2}, "13"),
        ("train/13_right", {"dr": 4}, "13"),
        ("train/15_left", {"dr": 3}, "15"),
    ]
    assert [(r.id, r.group) for r in test] == [("test/1_left", "1"), ("test/1_right", "1"), ("test/2_left", "2")]
    assert all(r.path == eyepacs / f"{r.id}.jpeg" for r in train + test)
    assert "EyePACS train: 5 images of 3 patients (the complete trainLabels.csv lists 35126)" in caplog.messages
    assert EYEPACS_TASKS == {"dr": 5}


def test_names_with_an_extension_or_in_another_case_name_the_same_files(eyepacs: Path) -> None:
    write_labels(eyepacs / "trainLabels.csv", "Image,Level", [("10_left.jpeg", 1), ("10_RIGHT", "2.0")])
    records = read_eyepacs(eyepacs)
    assert [(r.path.name, r.labels["dr"]) for r in records] == [("10_left.jpeg", 1), ("10_right.jpeg", 2)]


def test_a_name_without_an_eye_is_a_patient_of_its_own(eyepacs: Path) -> None:
    (eyepacs / "train" / "scan7.jpeg").write_bytes(image_bytes("JPEG"))
    write_labels(eyepacs / "trainLabels.csv", "image,level", [("scan7", 0)])
    assert [r.group for r in read_eyepacs(eyepacs)] == ["scan7"]


def test_unlisted_images_are_logged_in_one_line_and_left_out(eyepacs: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("99_left.jpeg", "99_right.jpeg"):
        (eyepacs / "train" / name).write_bytes(image_bytes("JPEG"))
    (eyepacs / "train" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="medcls.data.readers.eyepacs"):
        records = read_eyepacs(eyepacs)
    assert len(records) == len(TRAIN)
    assert caplog.messages == [
        f"EyePACS: 2 image files under {eyepacs / 'train'} are not listed in trainLabels.csv and are left out "
        "(e.g. 99_left.jpeg)"
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("10_left", 0), ("10_right", 5)], r"trainLabels\.csv, line 3: 'level' is 5, out of range; expected 0 to 4"),
        ([("10_left", -1)], r"line 2: 'level' is -1, out of range"),
        ([("10_left", "two")], r"line 2: 'level' is 'two', not a whole number; expected 0 to 4"),
        ([("10_left", "1.5")], r"line 2: 'level' is '1\.5', not a whole number"),
        ([("10_left", "")], r"line 2: 'level' is '', not a whole number"),
        ([("10_left", 0), ("77_left", 1)], r"line 3: image '77_left' is listed but no image file of that name"),
        (
            [("10_left", 0), ("13_left", 1), ("10_left.jpeg", 0)],
            r"line 4: image '10_left\.jpeg' is listed twice \(also on line 2\)",
        ),
        ([("", 1)], r"line 2: no image name"),
    ],
)
def test_bad_rows_are_named_by_file_and_line(eyepacs: Path, rows: list[tuple[object, ...]], message: str) -> None:
    write_labels(eyepacs / "trainLabels.csv", "image,level", rows)
    with pytest.raises(DataError, match=message):
        read_eyepacs(eyepacs)


def test_a_name_matching_two_image_files_is_refused(eyepacs: Path) -> None:
    (eyepacs / "test" / "1_left.png").write_bytes(image_bytes("JPEG"))
    with pytest.raises(
        DataError, match=r"solution\.csv, line 2: image '1_left' could be .*1_left\.jpeg or .*1_left\.png"
    ):
        read_eyepacs(eyepacs, "test")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "image,grade\n10_left,0\n",
            r"trainLabels\.csv, line 1: missing column\(s\) 'level' \(columns found: 'image', 'grade'\)",
        ),
        ("", r"trainLabels\.csv is empty"),
        ("image,level\n\n", r"trainLabels\.csv has a header but no rows"),
    ],
)
def test_bad_label_files(eyepacs: Path, text: str, message: str) -> None:
    (eyepacs / "trainLabels.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        read_eyepacs(eyepacs)


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("test", r"test not found: it holds EyePACS' test images\. Point the root at the folder holding test/ and"),
        ("retinopathy_solution.csv", r"retinopathy_solution\.csv not found: it holds EyePACS' test labels"),
    ],
)
def test_a_missing_test_folder_or_solution_says_what_it_holds(eyepacs: Path, missing: str, message: str) -> None:
    path = eyepacs / missing
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    assert read_eyepacs(eyepacs)  # the training split needs neither
    with pytest.raises(DataError, match=message):
        read_eyepacs(eyepacs, "test")
