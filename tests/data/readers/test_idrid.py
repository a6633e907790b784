from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from medcls.data.readers.idrid import IDRID_TASKS, read_idrid
from medcls.errors import DataError
from tests.data.trees import IDRID_TEST, IDRID_TRAIN, make_idrid, symlink, write_idrid_csv

TRAIN_CSV = "2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv"


@pytest.fixture
def idrid(tmp_path: Path) -> Path:
    return make_idrid(tmp_path)


def rewrite(top: Path, rows: list[tuple[object, ...]]) -> None:
    write_idrid_csv(top / TRAIN_CSV, rows)


def test_reads_both_splits_despite_the_quirks(idrid: Path) -> None:
    splits = read_idrid(idrid)
    assert set(splits) == {"train", "test"}
    for split, expected in (("train", IDRID_TRAIN), ("test", IDRID_TEST)):
        records = splits[split]
        assert [(r.labels["dr"], r.labels["dme"]) for r in records] == expected
        assert [r.id for r in records] == [f"{split}/IDRiD_{n:03d}" for n in range(1, len(expected) + 1)]
        assert all(r.path.is_file() and r.path.suffix == ".jpg" and r.group == r.id for r in records)
    assert IDRID_TASKS == {"dr": 5, "dme": 3}


def test_ids_differ_across_splits_though_names_collide(idrid: Path) -> None:
    splits = read_idrid(idrid)
    assert splits["train"][0].path.name == splits["test"][0].path.name == "IDRiD_001.jpg"
    assert splits["train"][0].id != splits["test"][0].id


def test_accepts_the_parent_folder(idrid: Path) -> None:
    assert read_idrid(idrid.parent) == read_idrid(idrid)


def test_tolerates_names_with_extension_and_blank_rows_inside(idrid: Path) -> None:
    rewrite(idrid, [("IDRiD_001.jpg", 2, 1), (), ("IDRiD_002", 0, 0)])
    records = read_idrid(idrid)["train"]
    assert [(r.id, r.labels["dr"]) for r in records] == [("train/IDRiD_001", 2), ("train/IDRiD_002", 0)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [("IDRiD_001", 2, 1), ("IDRiD_002", 7, 0)],
            r"Training Labels\.csv, line 3: 'retinopathy grade' is 7, out of range",
        ),
        ([("IDRiD_001", 2, 3)], r"line 2: 'risk of macular edema' is 3, out of range; expected 0 to 2"),
        ([("IDRiD_001", 2, 1), (), ("IDRiD_002", "two", 0)], r"line 4: 'retinopathy grade' is 'two', not a number"),
        ([("IDRiD_001", "", 0)], r"line 2: 'retinopathy grade' is '', not a number"),
        (
            [("IDRiD_001", 2, 1), ("IDRiD_999", 0, 0)],
            r"line 3: image 'IDRiD_999' is listed but .*IDRiD_999\.jpg is missing",
        ),
        ([("../IDRiD_001", 2, 1)], r"line 2: image name '\.\./IDRiD_001\.jpg' points outside the data root"),
        (
            [("IDRiD_001", 2, 1), ("IDRiD_001.jpg", 2, 1)],
            r"line 3: image 'IDRiD_001\.jpg' is listed twice \(also on line 2\)",
        ),
        ([("", 2, 1)], r"line 2: no image name"),
    ],
)
def test_bad_rows_are_named_by_file_and_line(idrid: Path, rows: list[tuple[object, ...]], message: str) -> None:
    # The images folder's parent holds a file of the right name, so '../' would find an image there.
    (idrid / "1. Original Images" / "IDRiD_001.jpg").touch()
    rewrite(idrid, rows)
    with pytest.raises(DataError, match=message):
        read_idrid(idrid)


def test_reads_a_cp1252_semicolon_export_from_a_french_excel(idrid: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = "Image name;Retinopathy grade;Risk of macular edema ;Qualité\r\nIDRiD_001;2;1;médiocre\r\nIDRiD_002;0;0;\r\n"
    (idrid / TRAIN_CSV).write_bytes(text.encode("cp1252"))
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.tables"):
        records = read_idrid(idrid)["train"]
    assert [(r.id, r.labels["dr"], r.labels["dme"]) for r in records] == [
        ("train/IDRiD_001", 2, 1),
        ("train/IDRiD_002", 0, 0),
    ]
    assert f"{idrid / TRAIN_CSV} is not UTF-8; read it as cp1252." in caplog.messages


def test_a_tree_of_links_into_a_store_elsewhere_is_inside_the_root(tmp_path: Path) -> None:
    idrid = make_idrid(tmp_path / "tree")
    store = tmp_path / "store"
    training = idrid / "1. Original Images" / "a. Training Set"
    shutil.move(training, store / "train")
    training.mkdir()
    for image in sorted((store / "train").iterdir()):
        symlink(training / image.name, image)  # each image a link
    testing = idrid / "1. Original Images" / "b. Testing Set"
    shutil.move(testing, store / "test")
    symlink(testing, store / "test")  # the whole folder a link
    splits = read_idrid(idrid)
    assert [(r.labels["dr"], r.labels["dme"]) for r in splits["train"]] == IDRID_TRAIN
    assert [(r.labels["dr"], r.labels["dme"]) for r in splits["test"]] == IDRID_TEST
    # Records keep the names inside the root; the links lead to the images.
    assert splits["train"][0].path == training / "IDRiD_001.jpg" and splits["train"][0].path.is_symlink()
    assert splits["test"][0].path == testing / "IDRiD_001.jpg"
    assert splits["test"][0].path.read_bytes() == (store / "test" / "IDRiD_001.jpg").read_bytes()


def test_image_listed_but_deleted(idrid: Path) -> None:
    (idrid / "1. Original Images" / "b. Testing Set" / "IDRiD_004.jpg").unlink()
    with pytest.raises(DataError, match=r"Testing Labels\.csv, line 5: image 'IDRiD_004' is listed but"):
        read_idrid(idrid)


def test_missing_label_column_lists_the_columns_found(idrid: Path) -> None:
    (idrid / TRAIN_CSV).write_text("Image name,Retinopathy grade,Macular edema,\nIDRiD_001,2,1,\n")
    with pytest.raises(
        DataError,
        match=r"line 1: missing column\(s\) 'risk of macular edema' \(columns found: 'Image name', "
        r"'Retinopathy grade', 'Macular edema'\)",
    ):
        read_idrid(idrid)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"Training Labels\.csv is empty"),
        (",,,\r\n\r\n", r"is empty"),
        ("Image name,Retinopathy grade,Risk of macular edema \n", "no rows"),
    ],
)
def test_empty_label_file(idrid: Path, text: str, message: str) -> None:
    (idrid / TRAIN_CSV).write_text(text)
    with pytest.raises(DataError, match=message):
        read_idrid(idrid)


def test_missing_label_file_says_where_it_was_expected(idrid: Path) -> None:
    (idrid / TRAIN_CSV).unlink()
    with pytest.raises(DataError, match=r"Groundtruths/a\. IDRiD_Disease Grading_Training Labels\.csv not found"):
        read_idrid(idrid)


def test_missing_image_folder_says_where_it_was_expected(idrid: Path) -> None:
    shutil.rmtree(idrid / "1. Original Images" / "b. Testing Set")
    with pytest.raises(DataError, match=r"b\. Testing Set not found: it holds IDRiD's test images"):
        read_idrid(idrid)


def test_wrong_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Point the root at the 'B. Disease Grading' folder"):
        read_idrid(tmp_path / "nowhere")
