from __future__ import annotations

import logging
from pathlib import Path

import pytest

from medcls.data.readers.records import MISSING_LABEL
from medcls.data.readers.table import read_table, read_unlabelled
from medcls.errors import ConfigError, DataError
from medcls.synthetic.sheets import sheet_writer
from tests.data.trees import image_bytes


def write_images(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(image_bytes("PNG"))


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    path.write_text("".join(delimiter.join(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_integer_labels_give_the_classes_up_to_the_largest(tmp_path: Path) -> None:
    write_images(tmp_path / "images", "a.png", "b.png", "c.png")
    table = write_csv(
        tmp_path / "labels.csv",
        [
            [" image ", "dr", "dme"],
            ["images/a.png", "0", "1"],
            [],
            ["images/b.png", "3", "0"],
            ["images/c.png", "2.0", "1"],
        ],
    )
    data = read_table(table, tmp_path, "image", ["dr", "dme"])
    assert [(r.id, dict(r.labels), r.group) for r in data.records] == [
        ("images/a.png", {"dr": 0, "dme": 1}, "images/a.png"),
        ("images/b.png", {"dr": 3, "dme": 0}, "images/b.png"),
        ("images/c.png", {"dr": 2, "dme": 1}, "images/c.png"),
    ]
    assert [r.path for r in data.records] == [tmp_path / "images" / n for n in ("a.png", "b.png", "c.png")]
    assert data.class_names == {"dr": ["0", "1", "2", "3"], "dme": ["0", "1"]}
    assert data.given_splits is None


def test_named_labels_sort_unless_their_order_is_given(tmp_path: Path) -> None:
    write_images(tmp_path, "a.png", "b.png", "c.png")
    rows = [["image", "diagnosis"], ["a.png", "tuberculosis"], ["b.png", " normal"], ["c.png", "tuberculosis"]]
    table = write_csv(tmp_path / "labels.csv", rows)
    found = read_table(table, tmp_path, "image", ["diagnosis"])
    assert found.class_names == {"diagnosis": ["normal", "tuberculosis"]}
    assert [r.labels["diagnosis"] for r in found.records] == [1, 0, 1]

    write_csv(table, [*rows, ["d.png", "0"]])  # an index into the given names
    write_images(tmp_path, "d.png")
    given = read_table(table, tmp_path, "image", ["diagnosis"], class_names={"diagnosis": ["tuberculosis", "normal"]})
    assert given.class_names == {"diagnosis": ["tuberculosis", "normal"]}
    assert [r.labels["diagnosis"] for r in given.records] == [0, 1, 0, 0]


def test_a_label_that_is_none_of_the_given_classes_is_refused(tmp_path: Path) -> None:
    write_images(tmp_path, "a.png", "b.png")
    table = write_csv(tmp_path / "labels.csv", [["image", "diagnosis"], ["a.png", "normal"], ["b.png", "Normal"]])
    with pytest.raises(DataError) as error:
        read_table(table, tmp_path, "image", ["diagnosis"], class_names={"diagnosis": ["normal", "tuberculosis"]})
    message = str(error.value)
    for part in ("labels.csv, row 3", "'diagnosis' is 'Normal'", "'normal', 'tuberculosis' or its index, 0 to 1"):
        assert part in message


@pytest.mark.parametrize("suffix", [".xlsx", ".xls"])
def test_excel_workbooks_with_numeric_names_and_labels(tmp_path: Path, suffix: str) -> None:
    write_images(tmp_path, "10.png", "11.jpg", "12.png")
    rows: list[list[object]] = [["image", "grade", "site"], [10, 1, "left"], [11.0, 0.0, None], [12, 2, "right"]]
    table = tmp_path / f"labels{suffix}"
    sheet_writer(suffix[1:])(table, rows)
    data = read_table(table, tmp_path, "image", ["grade"])
    assert [(r.id, r.path.name, r.labels["grade"]) for r in data.records] == [
        ("10", "10.png", 1),
        ("11", "11.jpg", 0),
        ("12", "12.png", 2),
    ]


@pytest.mark.parametrize(("suffix", "delimiter"), [(".csv", ";"), (".tsv", "\t"), (".TXT", "\t")])
def test_delimited_text_in_any_delimiter(tmp_path: Path, suffix: str, delimiter: str) -> None:
    write_images(tmp_path, "a.png", "b.png")
    rows = [["image", "label"], ["a.png", "yes"], ["b.png", "no"]]
    table = write_csv(tmp_path / f"labels{suffix}", rows, delimiter)
    data = read_table(table, tmp_path, "image", ["label"])
    assert [(r.id, r.labels["label"]) for r in data.records] == [("a.png", 1), ("b.png", 0)]


def test_paths_without_extension_find_the_one_image_of_that_name(tmp_path: Path) -> None:
    write_images(tmp_path / "images", "scan.PNG", "scan.txt", "x.2019.jpg", "twin.png", "twin.jpg")
    table = write_csv(tmp_path / "labels.csv", [["image", "y"], ["images/scan", "0"], ["images/x.2019", "1"]])
    data = read_table(table, tmp_path, "image", ["y"])
    assert [(r.id, r.path.name) for r in data.records] == [("images/scan", "scan.PNG"), ("images/x.2019", "x.2019.jpg")]

    write_csv(table, [["image", "y"], ["images/scan", "0"], ["images/twin", "1"]])
    with pytest.raises(
        DataError, match=r"labels\.csv, row 3: image 'images/twin' has 2 image files \(twin\.jpg, twin\.png"
    ):
        read_table(table, tmp_path, "image", ["y"])


def test_groups_and_given_splits(tmp_path: Path) -> None:
    write_images(tmp_path, "a.png", "b.png", "c.png", "d.png")
    rows = [
        ["image", "label", "patient", "split"],
        ["a.png", "0", "p1", "Train"],
        ["b.png", "1", "p1", " train "],
        ["c.png", "1", "", "validation"],
        ["d.png", "0", "p2", "TEST"],
    ]
    table = write_csv(tmp_path / "labels.csv", rows)
    data = read_table(table, tmp_path, "image", ["label"], group_column="patient", split_column="split")
    assert [r.group for r in data.records] == ["p1", "p1", "c.png", "p2"]
    assert data.given_splits == {"a.png": "train", "b.png": "train", "c.png": "val", "d.png": "test"}


def test_a_group_in_two_splits_is_refused(tmp_path: Path) -> None:
    write_images(tmp_path, "a.png", "b.png", "c.png")
    rows = [["image", "label", "patient", "split"], ["a.png", "0", "p1", "train"], ["b.png", "1", "p2", "train"]]
    table = write_csv(tmp_path / "labels.csv", [*rows, ["c.png", "1", "p1", "test"]])
    with pytest.raises(DataError) as error:
        read_table(table, tmp_path, "image", ["label"], group_column="patient", split_column="split")
    for part in ("labels.csv: group 'p1' ('patient')", "row 2 in 'train', row 4 in 'test'"):
        assert part in str(error.value)


MISSING = [["image", "dr", "dme"], ["a.png", "1", "0"], ["b.png", "", "1"], ["c.png", " ", ""], ["d.png", "0", ""]]


def test_empty_labels_drop_their_rows_and_are_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_images(tmp_path, "a.png", "b.png", "c.png", "d.png")
    table = write_csv(tmp_path / "labels.csv", MISSING)
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.table"):
        data = read_table(table, tmp_path, "image", ["dr", "dme"])
    assert [r.id for r in data.records] == ["a.png"]
    assert data.class_names == {"dr": ["0", "1"], "dme": ["0", "1"]}  # the dropped rows' labels count
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"{table}: 3 rows lack a label (dr 2, dme 2): 3 left out, 0 kept with the missing labels masked")
    ]


def test_masked_labels_keep_their_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_images(tmp_path, "a.png", "b.png", "c.png", "d.png")
    table = write_csv(tmp_path / "labels.csv", MISSING)
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.table"):
        data = read_table(table, tmp_path, "image", ["dr", "dme"], missing_labels="mask")
    assert [(r.id, dict(r.labels)) for r in data.records] == [
        ("a.png", {"dr": 1, "dme": 0}),
        ("b.png", {"dr": MISSING_LABEL, "dme": 1}),
        ("d.png", {"dr": 0, "dme": MISSING_LABEL}),
    ]
    assert caplog.messages == [
        f"{table}: 3 rows lack a label (dr 2, dme 2): 1 left out, 2 kept with the missing labels masked"
    ]

    write_csv(table, MISSING[:3])  # nothing left out: no warning
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="medcls.data.readers.table"):
        read_table(table, tmp_path, "image", ["dr", "dme"], missing_labels="mask")
    assert [r.levelname for r in caplog.records] == ["INFO"]


HEADER = ["image", "dr"]
BAD_TABLES: dict[str, tuple[list[list[str]], dict[str, object], list[str]]] = {
    "image column absent": (
        [["file", "dr"], ["a.png", "0"]],
        {},
        ["labels.csv, row 1: no column 'image' (--data.image_column)", "columns are 'file', 'dr'"],
    ),
    "label column absent": ([HEADER, ["a.png", "0"]], {"label_columns": ["dme"]}, ["'dme' (--data.label_columns)"]),
    "group column absent": ([HEADER, ["a.png", "0"]], {"group_column": "patient"}, ["'patient' (--data.group_column)"]),
    "split column absent": ([HEADER, ["a.png", "0"]], {"split_column": "fold"}, ["'fold' (--data.split_column)"]),
    "column twice": ([["image", "dr", "dr"], ["a.png", "0", "1"]], {}, ["row 1: 2 columns named 'dr'"]),
    "empty": ([[" ", ""]], {}, ["labels.csv is empty"]),
    "header only": ([HEADER], {}, ["labels.csv has a header but no rows"]),
    "no image path": ([HEADER, ["a.png", "0"], ["", "1"]], {}, ["labels.csv, row 3: no image path"]),
    "image missing": (
        [HEADER, ["a.png", "0"], ["images/gone.png", "1"]],
        {},
        ["labels.csv, row 3: image 'images/gone.png' not found", str(Path("images", "gone.png"))],
    ),
    "extensionless image missing": (
        [HEADER, ["a.png", "0"], ["gone", "1"]],
        {},
        ["row 3: image 'gone' not found", "(nor with an image extension)"],
    ),
    "image outside the root": (
        [HEADER, ["a.png", "0"], ["../labels.csv", "1"]],
        {},
        ["labels.csv, row 3: image name '../labels.csv' points outside the data root"],
    ),
    "image listed twice": (
        [HEADER, ["a.png", "0"], ["b.png", "1"], ["./a", "1"]],
        {},
        ["labels.csv, row 4: image './a' is listed again (first on row 2"],
    ),
    "negative label": (
        [HEADER, ["a.png", "1"], ["b.png", "-1"]],
        {},
        ["row 3: 'dr' is '-1', not a class; expected 0 to 1."],
    ),
    "one class": ([HEADER, ["a.png", "0"], ["b.png", "0"]], {}, ["labels.csv: column 'dr' has only the class '0'"]),
    "no label at all": ([HEADER, ["a.png", ""]], {}, ["column 'dr' has no label; a task needs at least 2 classes"]),
    "no complete row": (
        [["image", "dr", "dme"], ["a.png", "0", ""], ["b.png", "", "1"], ["c.png", "1", ""], ["twin.png", "", "0"]],
        {"label_columns": ["dr", "dme"]},
        ["labels.csv: no row has a label in every column ['dr', 'dme']"],
    ),
    "unknown split": (
        [[*HEADER, "split"], ["a.png", "0", "train"], ["b.png", "1", "holdout"]],
        {"split_column": "split"},
        ["row 3: 'split' is 'holdout', not a split; expected train, val (or validation) or test"],
    ),
}


@pytest.mark.parametrize(("rows", "settings", "parts"), BAD_TABLES.values(), ids=BAD_TABLES.keys())
def test_bad_tables_name_the_culprit(
    tmp_path: Path, rows: list[list[str]], settings: dict[str, object], parts: list[str]
) -> None:
    root = tmp_path / "root"
    write_images(root, "a.png", "b.png", "c.png", "twin.png", "twin.jpg")
    table = write_csv(root / "labels.csv", rows)
    with pytest.raises(DataError) as error:
        read_table(**{"table": table, "root": root, "image_column": "image", "label_columns": ["dr"], **settings})
    for part in parts:
        assert part in str(error.value)


def test_bad_files_and_settings_are_named(tmp_path: Path) -> None:
    write_images(tmp_path, "a.png")
    json_table = tmp_path / "labels.json"
    json_table.write_text("{}")
    with pytest.raises(DataError, match=r"labels\.json: cannot read a table saved as '\.json'; .*\.tsv, .*\.xls\."):
        read_table(json_table, tmp_path, "image", ["dr"])
    table = write_csv(tmp_path / "labels.csv", [HEADER, ["a.png", "0"]])
    with pytest.raises(DataError, match=r"nowhere is not a folder"):
        read_table(table, tmp_path / "nowhere", "image", ["dr"])
    with pytest.raises(ConfigError, match=r"--data.class_names: 'dme' not among the tasks"):
        read_table(table, tmp_path, "image", ["dr"], class_names={"dme": ["0", "1"]})
    with pytest.raises(ConfigError, match=r"--data.class_names: task 'dr' has the class names \['0', '0'\]"):
        read_table(table, tmp_path, "image", ["dr"], class_names={"dr": ["0", "0"]})
    with pytest.raises(ConfigError, match=r"--data.label_columns is empty"):
        read_table(table, tmp_path, "image", [])
    with pytest.raises(ConfigError, match=r"--data.missing_labels is 'keep'"):
        read_table(table, tmp_path, "image", ["dr"], missing_labels="keep")  # type: ignore[arg-type]


def test_unlabelled_folder_lists_every_image_but_hidden_ones(tmp_path: Path) -> None:
    write_images(tmp_path, "b.png", "a/z.TIF", "a/c.jpg", "scan.dcm", ".ipynb_checkpoints/b.png", "a/._c.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    records = read_unlabelled(tmp_path)
    assert [r.id for r in records] == ["a/c.jpg", "a/z.TIF", "b.png", "scan.dcm"]
    assert [r.path for r in records] == [tmp_path / r.id for r in records]
    assert all(r.labels == {} for r in records)


def test_unlabelled_table_lists_its_images_relative_to_itself(tmp_path: Path) -> None:
    write_images(tmp_path / "batch", "x.png", "y/z.jpg")
    table = write_csv(tmp_path / "batch" / "todo.csv", [["file"], ["y/z"], ["x.png"]])
    records = read_unlabelled(table, image_column="file")
    assert [(r.id, r.path, r.labels) for r in records] == [
        ("y/z", tmp_path / "batch" / "y" / "z.jpg", {}),
        ("x.png", tmp_path / "batch" / "x.png", {}),
    ]
    with pytest.raises(DataError, match=r"todo\.csv, row 1: no column 'image' \(--data.image_column\)"):
        read_unlabelled(table)
    write_csv(table, [["file"], ["x.png"], ["x"]])
    with pytest.raises(DataError, match=r"todo\.csv, row 3: image 'x' is listed again \(first on row 2"):
        read_unlabelled(table, image_column="file")


def test_nothing_to_predict_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"holds no image to predict \(files ending in \.jpg, .*\.dcm\)"):
        read_unlabelled(tmp_path)
    with pytest.raises(DataError, match=r"nowhere not found: give a folder of images, or a table"):
        read_unlabelled(tmp_path / "nowhere")
