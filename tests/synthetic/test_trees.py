from __future__ import annotations

import csv
import hashlib
import importlib.util
import re
from pathlib import Path

import pytest
from PIL import Image

from medcls.data.readers import aptos, eyepacs, idrid, messidor, messidor2
from medcls.synthetic import (
    trees,
    write_aptos_tree,
    write_eyepacs_tree,
    write_idrid_tree,
    write_messidor2_tree,
    write_messidor_tree,
)

SIZE = (144, 96)
REPO = Path(__file__).resolve().parents[2]


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- IDRiD tree


def test_idrid_tree_has_the_real_layout_and_csv_quirks(tmp_path):
    tree = write_idrid_tree(tmp_path, train=5, test=3, size=SIZE, seed=0)
    assert tree == tmp_path / "B. Disease Grading"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B. Disease Grading"]
    images, truths = tree / "1. Original Images", tree / "2. Groundtruths"
    assert {p.relative_to(tree).as_posix() for p in tree.rglob("*")} == {
        "1. Original Images",
        "2. Groundtruths",
        "1. Original Images/a. Training Set",
        "1. Original Images/b. Testing Set",
        *(f"1. Original Images/a. Training Set/IDRiD_{i:03d}.jpg" for i in range(1, 6)),
        *(f"1. Original Images/b. Testing Set/IDRiD_{i:03d}.jpg" for i in range(1, 4)),
        "2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv",
        "2. Groundtruths/b. IDRiD_Disease Grading_Testing Labels.csv",
    }
    for split, label_file, count in (
        ("a. Training Set", "a. IDRiD_Disease Grading_Training Labels.csv", 5),
        ("b. Testing Set", "b. IDRiD_Disease Grading_Testing Labels.csv", 3),
    ):
        text = (truths / label_file).read_text(encoding="utf-8")
        lines = text.splitlines()
        assert lines[0] == "Image name,Retinopathy grade,Risk of macular edema ,,,"
        assert lines[-1] == ",,,,,"
        assert len(lines) == count + 2
        for number, line in enumerate(lines[1:-1], start=1):
            assert re.fullmatch(rf"IDRiD_{number:03d},[0-4],[0-2],,,", line), line
        rows = list(csv.reader(text.splitlines()))
        assert tuple(rows[0][:3]) == idrid.HEADER and rows[0][3:] == ["", "", ""]
        for name, dr, dme, *rest in rows[1:-1]:
            assert rest == ["", "", ""] and not (dr == "0" and dme != "0")
            with Image.open(images / split / f"{name}.jpg") as image:
                assert image.format == "JPEG" and image.size == SIZE
    # Numbering restarts per split, but the images come from disjoint streams.
    train_first = (images / "a. Training Set" / "IDRiD_001.jpg").read_bytes()
    assert train_first != (images / "b. Testing Set" / "IDRiD_001.jpg").read_bytes()


def test_idrid_tree_is_deterministic(tmp_path):
    kwargs = {"train": 3, "test": 2, "size": (96, 64)}
    first = digests(write_idrid_tree(tmp_path / "a", seed=4, **kwargs))
    assert first == digests(write_idrid_tree(tmp_path / "b", seed=4, **kwargs))
    assert first != digests(write_idrid_tree(tmp_path / "c", seed=5, **kwargs))


def test_idrid_tree_write_is_atomic_and_an_existing_tree_is_kept(tmp_path, monkeypatch):
    real_draw, calls = trees.draw_fundus, []

    def failing_draw(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real_draw(*args, **kwargs)

    monkeypatch.setattr(trees, "draw_fundus", failing_draw)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_idrid_tree(tmp_path, train=4, test=2, size=(96, 64))
    assert list(tmp_path.iterdir()) == []  # neither a half tree nor the partial folder
    monkeypatch.setattr(trees, "draw_fundus", real_draw)

    tree = write_idrid_tree(tmp_path, train=4, test=2, size=(96, 64))
    before = digests(tree)
    assert write_idrid_tree(tmp_path, train=9, test=9, size=(128, 85), seed=1) == tree
    assert digests(tree) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B. Disease Grading"]


# --------------------------------------------------------------------------- Messidor tree


def test_messidor_tree_has_twelve_bases_and_xls_sheets(tmp_path):
    xlrd = pytest.importorskip("xlrd")
    pytest.importorskip("xlwt")
    tree = write_messidor_tree(tmp_path, per_base=2, size=(96, 64), seed=0, fmt="xls")
    assert tree == tmp_path / "Messidor"
    assert sorted(p.name for p in tree.iterdir()) == sorted(
        [*messidor.BASES, *(f"Annotation_{base}.xls" for base in messidor.BASES)]
    )
    assert len(messidor.BASES) == 12 and messidor.BASES[0] == "Base11" and messidor.BASES[-1] == "Base34"
    names = []
    for base in messidor.BASES:
        sheet = xlrd.open_workbook(tree / f"Annotation_{base}.xls").sheet_by_index(0)
        assert tuple(sheet.row_values(0)) == messidor.HEADER  # "Risk of macular edema " keeps its space
        assert sheet.nrows == 3
        rows = [sheet.row_values(i) for i in range(1, sheet.nrows)]
        assert sorted(p.name for p in (tree / base).iterdir()) == sorted(row[0] for row in rows)
        for name, department, dr, dme in rows:
            assert re.fullmatch(r"200[5-6]\d{4}_\d{5}_0[1-3]00_PP\.tif", name), name
            assert department and dr in (0, 1, 2, 3) and dme in (0, 1, 2)
            assert not (dr == 0 and dme != 0)
            with Image.open(tree / base / name) as image:
                assert image.format == "TIFF" and image.size == (96, 64)
            names.append(name)
    assert len(set(names)) == len(names) == 24


def test_messidor_tree_csv_sheets_and_determinism(tmp_path):
    first = write_messidor_tree(tmp_path / "a", per_base=1, size=(64, 43), fmt="csv")
    with open(first / "Annotation_Base23.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert tuple(rows[0]) == messidor.HEADER and len(rows) == 2 and rows[1][0].endswith(".tif")
    assert digests(first) == digests(write_messidor_tree(tmp_path / "b", per_base=1, size=(64, 43), fmt="csv"))
    with pytest.raises(ValueError, match="sheet format"):
        write_messidor_tree(tmp_path / "c", fmt="ods")
    assert not (tmp_path / "c").exists()


def test_messidor_xls_bytes_are_deterministic(tmp_path):
    pytest.importorskip("xlwt")
    first = write_messidor_tree(tmp_path / "a", per_base=1, size=(64, 43), seed=2)
    assert digests(first) == digests(write_messidor_tree(tmp_path / "b", per_base=1, size=(64, 43), seed=2))


# --------------------------------------------------------------------------- EyePACS, APTOS, Messidor-2 trees


def read_csv(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file, delimiter=delimiter))


def test_eyepacs_tree_lists_names_without_extension_by_patient(tmp_path):
    tree = write_eyepacs_tree(tmp_path, 5, test=3, size=(96, 64), seed=0)
    assert tree == tmp_path / "diabetic-retinopathy-detection"
    assert sorted(p.name for p in tree.iterdir()) == ["retinopathy_solution.csv", "test", "train", "trainLabels.csv"]
    train, test = read_csv(tree / "trainLabels.csv"), read_csv(tree / "retinopathy_solution.csv")
    assert tuple(train[0]) == eyepacs.HEADER and tuple(test[0]) == (*eyepacs.HEADER, eyepacs.USAGE)
    patients = {}
    for folder, rows in (("train", train[1:]), ("test", test[1:])):
        assert sorted(p.name for p in (tree / folder).iterdir()) == sorted(f"{row[0]}.jpeg" for row in rows)
        for name, level, *usage in rows:
            assert re.fullmatch(r"\d+_(left|right)", name) and level in {"0", "1", "2", "3", "4"}
            assert usage in ([], ["Public"], ["Private"])
            patients.setdefault(folder, []).append(name.split("_")[0])
        with Image.open(tree / folder / f"{rows[0][0]}.jpeg") as image:
            assert image.format == "JPEG" and image.size == (96, 64)
    # Both eyes of each patient but the last of an odd count; no patient in both splits.
    assert [patients["train"].count(p) for p in dict.fromkeys(patients["train"])] == [2, 2, 1]
    assert [patients["test"].count(p) for p in dict.fromkeys(patients["test"])] == [2, 1]
    assert not set(patients["train"]) & set(patients["test"])
    assert [r.labels["dr"] for r in eyepacs.read_eyepacs(tree)] == [int(row[1]) for row in train[1:]]
    only_train = write_eyepacs_tree(tmp_path / "b", 2, size=(64, 43))
    assert sorted(p.name for p in only_train.iterdir()) == ["train", "trainLabels.csv"]


def test_aptos_tree_holds_a_copy_of_its_first_image(tmp_path):
    tree = write_aptos_tree(tmp_path, 4, size=(64, 48), seed=0)
    assert tree == tmp_path / "aptos2019-blindness-detection"
    rows = read_csv(tree / aptos.LABELS)
    assert tuple(rows[0]) == aptos.HEADER and len(rows) == 5
    assert sorted(p.name for p in (tree / aptos.IMAGES).iterdir()) == sorted(f"{row[0]}.png" for row in rows[1:])
    assert all(re.fullmatch(r"[0-9a-f]{12}", code) for code, _ in rows[1:])
    images = [(tree / aptos.IMAGES / f"{code}.png").read_bytes() for code, _ in rows[1:]]
    assert images[-1] == images[0] and len(set(images)) == 3 and rows[-1][1] == rows[1][1]
    with Image.open(tree / aptos.IMAGES / f"{rows[1][0]}.png") as image:
        assert image.format == "PNG" and image.size == (64, 48)


def test_messidor2_tree_has_the_distributed_quirks(tmp_path):
    tree = write_messidor2_tree(tmp_path, 4, size=(64, 43), seed=0)
    assert tree == tmp_path / "messidor-2"
    files = sorted(p.name for p in (tree / messidor2.IMAGES).iterdir())
    assert len(files) == 8 and sum(name.endswith("_PP.tif") for name in files) == 4
    assert sum(bool(re.fullmatch(r"IM\d{6}\.JPG", name)) for name in files) == 4
    grades = read_csv(tree / messidor2.GRADES)
    assert tuple(grades[0]) == messidor2.GRADES_HEADER
    listed = [row[0] for row in grades[1:]]
    assert sorted(name.replace(".png", ".tif").replace(".jpg", ".JPG") for name in listed) == files
    assert not any(name.endswith((".tif", ".JPG")) for name in listed)  # the wrong extensions, as distributed
    assert grades[-1][1:] == ["", "", "0"] and all(row[3] == "1" for row in grades[1:-1])
    exams = read_csv(tree / messidor2.EXAMS, delimiter=";")
    assert tuple(exams[0]) == messidor2.EXAMS_HEADER and ["", ""] in exams
    assert sorted(name for row in exams[1:] for name in row if name) == files
    records = messidor2.read_messidor2(tree)
    assert len(records) == 7 and all(r.group.startswith("exam/") for r in records)


@pytest.mark.parametrize(
    ("write", "kwargs"),
    [
        (write_eyepacs_tree, {"train": 3, "test": 2}),
        (write_aptos_tree, {"train": 3}),
        (write_messidor2_tree, {"exams": 2}),
    ],
)
def test_public_trees_are_deterministic_atomic_and_kept(tmp_path, monkeypatch, write, kwargs):
    first = digests(write(tmp_path / "a", size=(64, 43), seed=3, **kwargs))
    assert first == digests(write(tmp_path / "b", size=(64, 43), seed=3, **kwargs))
    assert first != digests(write(tmp_path / "c", size=(64, 43), seed=4, **kwargs))
    tree = write(tmp_path / "a", size=(96, 64), seed=9, **kwargs)
    assert digests(tree) == first  # an existing tree is complete: kept as it is

    def interrupted(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(trees, "draw_fundus", interrupted)
    with pytest.raises(RuntimeError, match="interrupted"):
        write(tmp_path / "d", size=(64, 43), **kwargs)
    assert list((tmp_path / "d").iterdir()) == []


# --------------------------------------------------------------------------- script


def test_script_writes_a_tree(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_synthetic_fundus", REPO / "scripts/make_synthetic_fundus.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tree = script.main(["idrid", str(tmp_path), "--size", "96x64", "--train", "2", "--test", "1", "--seed", "3"])
    assert tree == tmp_path / "B. Disease Grading" and str(tree) in capsys.readouterr().out
    with Image.open(tree / "1. Original Images" / "a. Training Set" / "IDRiD_002.jpg") as image:
        assert image.size == (96, 64)
    with pytest.raises(SystemExit):
        script.main(["messidor", str(tmp_path), "--size", "big"])
    with pytest.raises(SystemExit):
        script.main(["idrid", str(tmp_path / "none"), "--train", "0"])
    assert "--train: expected a whole number at least 1; got 0" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_script_writes_the_public_layouts(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_synthetic_fundus", REPO / "scripts/make_synthetic_fundus.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    common = ["--size", "64x43", "--seed", "1"]
    eyepacs_tree = script.main(["eyepacs", str(tmp_path), "--train", "3", "--test", "0", *common])
    assert len(list((eyepacs_tree / "train").iterdir())) == 3 and not (eyepacs_tree / "test").exists()
    assert len(list((script.main(["aptos", str(tmp_path), "--train", "3", *common]) / "train_images").iterdir())) == 3
    messidor2_tree = script.main(["messidor2", str(tmp_path), "--exams", "2", *common])
    assert len(list((messidor2_tree / "IMAGES").iterdir())) == 4
    with pytest.raises(SystemExit):
        script.main(["idrid", str(tmp_path / "none"), "--test", "0"])
    assert "--test: IDRiD needs at least 1 test image" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_a_tree_finished_first_by_a_concurrent_build_is_kept(tmp_path, monkeypatch):
    real_draw = trees.draw_fundus

    def racing_draw(*args, **kwargs):
        # Another process finishes its tree while this one is still drawing.
        if not (tmp_path / "B. Disease Grading").exists():
            (tmp_path / "B. Disease Grading").mkdir()
            (tmp_path / "B. Disease Grading" / "theirs").write_text("complete")
        return real_draw(*args, **kwargs)

    monkeypatch.setattr(trees, "draw_fundus", racing_draw)
    tree = write_idrid_tree(tmp_path, train=2, test=1, size=(96, 64))
    assert tree == tmp_path / "B. Disease Grading"
    assert [p.name for p in tree.iterdir()] == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B. Disease Grading"]  # our partial folder is gone
