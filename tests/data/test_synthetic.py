from __future__ import annotations

import csv
import hashlib
import importlib.util
import math
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcls.data import SyntheticFundusDataModule, synthetic
from medcls.data.synthetic import (
    IDRID_COLUMNS,
    MESSIDOR_BASES,
    MESSIDOR_COLUMNS,
    FundusGeometry,
    draw_fundus,
    sample_labels,
    write_idrid_tree,
    write_messidor_tree,
)
from medcls.errors import ConfigError

SIZE = (144, 96)
REPO = Path(__file__).resolve().parents[2]


def pixels(seed: int, index: int, dr: int = 0, dme: int = 0, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.asarray(draw_fundus(seed, index, size, dr, dme)[0])


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def messidor_grade(g: FundusGeometry) -> int:
    """Messidor's rule from lesion counts (reference/datasets.md)."""
    ma, h, nv = g.microaneurysms, g.haemorrhages, g.neovascular_tufts
    if ma == 0 and h == 0:
        return 0
    if 0 < ma <= 5 and h == 0:
        return 1
    if (5 < ma < 15 or 0 < h < 5) and nv == 0:
        return 2
    return 3


# --------------------------------------------------------------------------- drawing


def test_drawing_is_deterministic_per_seed_and_index():
    first, again = draw_fundus(3, 5, SIZE, 3, 2), draw_fundus(3, 5, SIZE, 3, 2)
    assert first[0].mode == "RGB" and first[0].size == SIZE
    assert np.array_equal(np.asarray(first[0]), np.asarray(again[0]))
    assert first[1] == again[1]
    assert not np.array_equal(pixels(3, 5, 3, 2), pixels(4, 5, 3, 2))
    assert not np.array_equal(pixels(3, 5, 3, 2), pixels(3, 6, 3, 2))


def test_grade_zero_draws_no_lesions_and_the_anatomy_does_not_depend_on_the_grade():
    for index in range(4):
        healthy_image, healthy = draw_fundus(1, index, SIZE, 0, 0)
        assert healthy.exudates == ()
        assert (healthy.microaneurysms, healthy.haemorrhages, healthy.cotton_wool_spots, healthy.neovascular_tufts) == (
            0,
            0,
            0,
            0,
        )
        for dr, dme in ((1, 0), (2, 1), (4, 2)):
            image, sick = draw_fundus(1, index, SIZE, dr, dme)
            anatomy = ("fov_center", "fov_radius", "disc_center", "disc_radius", "macula_center", "eye")
            assert all(getattr(sick, name) == getattr(healthy, name) for name in anatomy)
            assert not np.array_equal(np.asarray(image), np.asarray(healthy_image))


def test_lesions_follow_the_dr_and_dme_grading_rules():
    counts = Counter()
    for index, (dr, dme) in enumerate(sample_labels(11, 60)):
        g = draw_fundus(11, index, (128, 85), dr, dme)[1]
        counts[dr, dme] += 1
        # DME read back from where the exudates are: nearest one to the macula, in disc diameters.
        assert g.dme_grade() == dme
        if g.exudates:
            nearest = min(math.dist(e, g.macula_center) for e in g.exudates) / g.disc_diameter
            assert (nearest <= 1) == (dme == 2)
        # Which lesions, and how many, as the international scale and Messidor's count rule say.
        assert messidor_grade(g) == (0, 1, 2, 3, 3)[dr]
        assert (g.microaneurysms > 0) == (dr > 0)
        assert (g.haemorrhages > 0) == (dr >= 2)
        assert (g.cotton_wool_spots > 0) == (dr >= 3)
        assert (g.neovascular_tufts > 0) == (dr == 4)
    assert {dr for dr, _ in counts} == {0, 1, 2, 3, 4}
    assert {dme for _, dme in counts} == {0, 1, 2}


def test_exudates_lie_inside_the_field_of_view_and_off_the_disc():
    for index in range(6):
        g = draw_fundus(2, index, SIZE, 3, 1 + index % 2)[1]
        assert g.exudates
        for e in g.exudates:
            assert math.dist(e, g.fov_center) < g.fov_radius
            assert math.dist(e, g.disc_center) > g.disc_radius


def test_grade_arguments_are_checked():
    with pytest.raises(ValueError, match="DR grade 0"):
        draw_fundus(0, 0, SIZE, 0, 1)
    with pytest.raises(ValueError, match="out of range"):
        draw_fundus(0, 0, SIZE, 5, 0)


@pytest.mark.parametrize("size", [(144, 96), (96, 96), (1800, 1196)])
def test_field_of_view_is_a_clipped_circle_on_black(size):
    width, height = size
    image, g = draw_fundus(7, 2, size, 4, 2)
    array = np.asarray(image)
    y, x = np.mgrid[0:height, 0:width]
    distance = np.hypot(x + 0.5 - g.fov_center[0], y + 0.5 - g.fov_center[1])
    # Drawn big images are resized, which softens the edge by a pixel or two.
    margin = 1.5 if max(size) <= 1536 else 3.5
    assert (array[distance > g.fov_radius + margin] == 0).all()
    assert (array[distance < g.fov_radius - margin][:, 0] > 0).all()
    assert 2 * g.fov_radius >= min(size)  # the circle is clipped by the frame
    assert abs(g.fov_center[0] - width / 2) < 0.05 * width


def test_disc_and_macula_sit_on_a_horizontal_line_two_and_a_half_disc_diameters_apart():
    eyes = set()
    for index in range(12):
        g = draw_fundus(5, index, SIZE)[1]
        dx = g.macula_center[0] - g.disc_center[0]
        assert 2.2 < math.hypot(dx, g.macula_center[1] - g.disc_center[1]) / g.disc_diameter < 2.8
        assert abs(g.macula_center[1] - g.disc_center[1]) < 0.5 * g.disc_diameter
        assert (dx < 0) == (g.eye == "right")
        eyes.add(g.eye)
    assert eyes == {"left", "right"}


def test_disc_is_bright_and_macula_dark():
    image, g = draw_fundus(9, 1, (384, 255))
    grey = np.asarray(image.convert("L"), dtype=float)

    def mean_around(centre: tuple[float, float], radius: float) -> float:
        y, x = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
        return grey[np.hypot(x - centre[0], y - centre[1]) < radius].mean()

    fundus = mean_around(g.fov_center, 0.8 * g.fov_radius)
    assert mean_around(g.disc_center, 0.5 * g.disc_radius) > fundus + 30
    assert mean_around(g.macula_center, 0.3 * g.disc_radius) < fundus


def test_report_draw_time_at_512_px():
    draw_fundus(0, 0, (512, 340), 4, 2)
    start = time.perf_counter()
    for index in range(5):
        draw_fundus(0, index, (512, 340), index, min(index, 2))
    print(f"\ndraw_fundus 512x340: {(time.perf_counter() - start) / 5 * 1000:.1f} ms per image")


# --------------------------------------------------------------------------- labels


def test_sample_labels_is_deterministic_consistent_and_proportional():
    labels = sample_labels(0, 413)
    assert labels == sample_labels(0, 413)
    assert labels != sample_labels(1, 413)
    assert all(dme == 0 for dr, dme in labels if dr == 0)
    dr_counts, dme_counts = Counter(dr for dr, _ in labels), Counter(dme for _, dme in labels)
    assert [dr_counts[k] for k in range(5)] == [134, 20, 136, 74, 49]
    assert [dme_counts[k] for k in range(3)] == [177, 41, 195]
    small = Counter(dr for dr, _ in sample_labels(2, 40))
    for grade, frequency in enumerate((134, 20, 136, 74, 49)):
        assert abs(small[grade] - 40 * frequency / 413) <= 1


def test_sample_labels_custom_frequencies():
    labels = sample_labels(0, 100, dr_frequencies=(1, 0, 0, 0, 1), dme_frequencies=(0, 0, 1))
    assert Counter(labels) == {(0, 0): 50, (4, 2): 50}
    # Only DME 0 asked for: the images with lesions get DME 0 too.
    assert {dme for _, dme in sample_labels(0, 20, dme_frequencies=(1, 0, 0))} == {0}
    with pytest.raises(ValueError, match="dr_frequencies"):
        sample_labels(0, 10, dr_frequencies=(1, 2, 3))


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
        assert tuple(rows[0][:3]) == IDRID_COLUMNS and rows[0][3:] == ["", "", ""]
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
    real_draw, calls = synthetic.draw_fundus, []

    def failing_draw(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real_draw(*args, **kwargs)

    monkeypatch.setattr(synthetic, "draw_fundus", failing_draw)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_idrid_tree(tmp_path, train=4, test=2, size=(96, 64))
    assert list(tmp_path.iterdir()) == []  # neither a half tree nor the partial folder
    monkeypatch.setattr(synthetic, "draw_fundus", real_draw)

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
        [*MESSIDOR_BASES, *(f"Annotation_{base}.xls" for base in MESSIDOR_BASES)]
    )
    assert len(MESSIDOR_BASES) == 12 and MESSIDOR_BASES[0] == "Base11" and MESSIDOR_BASES[-1] == "Base34"
    names = []
    for base in MESSIDOR_BASES:
        sheet = xlrd.open_workbook(tree / f"Annotation_{base}.xls").sheet_by_index(0)
        assert tuple(sheet.row_values(0)) == MESSIDOR_COLUMNS  # "Risk of macular edema " keeps its space
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
    assert tuple(rows[0]) == MESSIDOR_COLUMNS and len(rows) == 2 and rows[1][0].endswith(".tif")
    assert digests(first) == digests(write_messidor_tree(tmp_path / "b", per_base=1, size=(64, 43), fmt="csv"))
    with pytest.raises(ValueError, match="sheet format"):
        write_messidor_tree(tmp_path / "c", fmt="ods")
    assert not (tmp_path / "c").exists()


def test_messidor_xls_bytes_are_deterministic(tmp_path):
    pytest.importorskip("xlwt")
    first = write_messidor_tree(tmp_path / "a", per_base=1, size=(64, 43), seed=2)
    assert digests(first) == digests(write_messidor_tree(tmp_path / "b", per_base=1, size=(64, 43), seed=2))


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


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"train": 1}, r"--data\.train is 1; the synthetic data set needs at least 2\."),
        ({"test": 0}, r"--data\.test is 0; the synthetic data set needs at least 1\."),
        ({"width": 8}, r"--data\.width is 8; the synthetic data set needs at least 16\."),
        ({"seed": -1}, r"--data\.seed is -1; the generator's seed must be 0 or more\."),
        ({"val_size": 0.0}, r"--data\.val_size \(the hold-out size\) is 0\.0"),
        ({"image_size": 31}, r"--data\.image_size \(the cache's image size\) is 31"),
    ],
)
def test_data_module_refuses_impossible_generator_settings_before_writing(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        SyntheticFundusDataModule(tmp_path / "synthetic", cache_dir=tmp_path / "cache", **settings)
    assert list(tmp_path.iterdir()) == []
