from __future__ import annotations

import logging
from pathlib import Path

import pytest

from medcls.data.readers import aptos
from medcls.data.readers.aptos import APTOS_TASKS, read_aptos
from medcls.errors import DataError

# id_code -> (file contents, grade): 1f6a copies 000c byte for byte but is graded otherwise; 5b2e has their size,
# not their bytes; 2c8d and 7e10 are a second pair of copies.
IMAGES = {
    "000c1434d8d7": (b"\x89PNG" + b"a" * 60, 2),
    "001639a390f0": (b"\x89PNG" + b"b" * 80, 4),
    "1f6a0e6a4d1b": (b"\x89PNG" + b"a" * 60, 3),
    "5b2e1f0a9c3d": (b"\x89PNG" + b"c" * 60, 0),
    "2c8d5e1b7a90": (b"\x89PNG" + b"d" * 90, 1),
    "7e10f2b3c4d5": (b"\x89PNG" + b"d" * 90, 1),
}


def write_labels(root: Path, rows: list[tuple[object, ...]], header: str = "id_code,diagnosis") -> None:
    (root / "train.csv").write_text("\n".join([header, *(",".join(map(str, row)) for row in rows)]) + "\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Kaggle's layout, the unlabelled test images included (never read)."""
    for folder in ("train_images", "test_images"):
        (tmp_path / folder).mkdir()
    for code, (contents, _) in IMAGES.items():
        (tmp_path / "train_images" / f"{code}.png").write_bytes(contents)
    (tmp_path / "test_images" / "0005cfc8afb6.png").write_bytes(b"\x89PNG" + b"a" * 60)
    (tmp_path / "test.csv").write_text("id_code\n0005cfc8afb6\n")
    write_labels(tmp_path, [(code, grade) for code, (_, grade) in IMAGES.items()])
    return tmp_path


def test_identical_files_are_one_group_and_logged(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="medcls.data.readers"):
        records = read_aptos(root)
    assert [(r.id, r.labels["dr"], r.group) for r in records] == [
        ("000c1434d8d7", 2, "duplicate/000c1434d8d7"),
        ("001639a390f0", 4, "001639a390f0"),
        ("1f6a0e6a4d1b", 3, "duplicate/000c1434d8d7"),
        ("5b2e1f0a9c3d", 0, "5b2e1f0a9c3d"),  # the same size is not the same image
        ("2c8d5e1b7a90", 1, "duplicate/2c8d5e1b7a90"),
        ("7e10f2b3c4d5", 1, "duplicate/2c8d5e1b7a90"),
    ]
    assert all(r.path == root / "train_images" / f"{r.id}.png" for r in records)
    assert caplog.messages == [
        "APTOS 2019: 6 images (the complete train.csv lists 3662); groups of identical images, each kept in one "
        "split: 2 (4 images; graded differently: 1)"
    ]  # and nothing about the test images
    assert APTOS_TASKS == {"dr": 5}


def test_only_files_that_share_a_size_are_read(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read, real_read_bytes = [], Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        read.append(path.name)
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    aptos.identical_files(sorted((root / "train_images").iterdir()))
    assert "001639a390f0.png" not in read and len(read) == 5


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("000c1434d8d7", 7)], r"train\.csv, line 2: 'diagnosis' is 7, out of range; expected 0 to 4"),
        ([("000c1434d8d7", "mild")], r"line 2: 'diagnosis' is 'mild', not a whole number"),
        ([("000c1434d8d7", 0), ("ffffffffffff", 0)], r"line 3: image 'ffffffffffff' is listed but no image file"),
        (
            [("000c1434d8d7", 0), ("000C1434D8D7", 1)],
            r"line 3: image '000C1434D8D7' is listed twice \(also on line 2\)",
        ),
    ],
)
def test_bad_rows_are_named_by_file_and_line(root: Path, rows: list[tuple[object, ...]], message: str) -> None:
    write_labels(root, rows)
    with pytest.raises(DataError, match=message):
        read_aptos(root)


def test_missing_column_and_files(root: Path) -> None:
    write_labels(root, [("000c1434d8d7", 0)], header="id_code,level")
    with pytest.raises(DataError, match=r"train\.csv, line 1: missing column\(s\) 'diagnosis'"):
        read_aptos(root)
    (root / "train.csv").unlink()
    with pytest.raises(DataError, match=r"train\.csv not found: it holds APTOS 2019's training labels"):
        read_aptos(root)
    with pytest.raises(DataError, match=r"train_images not found: .* holding train_images/ and train\.csv"):
        read_aptos(root / "train_images")
