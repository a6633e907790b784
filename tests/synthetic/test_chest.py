from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcls.data.readers.tuberculosis import parse_clinical_reading, read_tuberculosis
from medcls.synthetic.chest import (
    MONTGOMERY_MAX_COUNT,
    ChestRadiograph,
    draw_chest,
    write_montgomery_tree,
    write_shenzhen_tree,
)
from tests.scripts import run_script

SIZE = (96, 96)


def upper_lungs(chest: ChestRadiograph, sides: tuple[str, ...] = ("right", "left")) -> np.ndarray:
    """The upper halves of the named lungs, a boolean mask."""
    mask = np.zeros_like(chest.right_lung)
    for side in sides:
        lung = chest.right_lung if side == "right" else chest.left_lung
        rows = np.nonzero(lung.any(axis=1))[0]
        upper = np.zeros_like(lung)
        upper[: (rows[0] + rows[-1]) // 2] = True
        mask |= lung & upper
    return mask


def lower_lungs(chest: ChestRadiograph) -> np.ndarray:
    return (chest.right_lung | chest.left_lung) & ~upper_lungs(chest)


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.*")}


def test_drawing_is_deterministic_per_seed_and_index() -> None:
    first, again = draw_chest(3, 5, SIZE, tuberculosis=True), draw_chest(3, 5, SIZE, tuberculosis=True)
    assert first.image.dtype == np.float32 and first.image.shape == (96, 96)
    assert first.image.min() >= 0 and first.image.max() <= 1
    assert np.array_equal(first.image, again.image) and np.array_equal(first.left_lung, again.left_lung)
    assert (first.opacities, first.cavity) == (again.opacities, again.cavity)
    assert not np.array_equal(first.image, draw_chest(4, 5, SIZE, tuberculosis=True).image)
    assert not np.array_equal(first.image, draw_chest(3, 6, SIZE, tuberculosis=True).image)
    portrait = draw_chest(0, 0, (80, 96))
    assert portrait.image.shape == portrait.left_lung.shape == (96, 80)


def test_the_lungs_are_dark_fields_either_side_of_the_mediastinum() -> None:
    chest = draw_chest(0, 1, SIZE)
    right_columns, left_columns = np.nonzero(chest.right_lung)[1], np.nonzero(chest.left_lung)[1]
    assert right_columns.max() < 48 <= left_columns.min()  # the patient's right lung on the image's left
    lungs = chest.right_lung | chest.left_lung
    assert chest.image[lungs].mean() < chest.image[~lungs].mean() - 0.1
    assert chest.image[:, 44:52][~lungs[:, 44:52]].mean() > chest.image[lungs].mean() + 0.2  # mediastinum


def test_tuberculosis_changes_only_the_upper_lobes_it_names() -> None:
    for index in range(6):
        normal, sick = draw_chest(7, index, SIZE), draw_chest(7, index, SIZE, tuberculosis=True)
        assert normal.opacities == () and not normal.cavity and sick.opacities
        assert np.array_equal(normal.right_lung, sick.right_lung)  # same anatomy
        change = np.abs(sick.image - normal.image)
        where = upper_lungs(sick, sick.opacities)
        assert change[where].sum() > 0.85 * change.sum(), index  # the rest: the lungs' soft edges
        assert (sick.image - normal.image)[where].mean() > 0.05, index


def test_upper_lungs_of_tuberculous_radiographs_are_brighter_than_normal_ones() -> None:
    def contrast(chest: ChestRadiograph) -> float:
        return float(chest.image[upper_lungs(chest)].mean() - chest.image[lower_lungs(chest)].mean())

    normal = [contrast(draw_chest(2, index, SIZE)) for index in range(12)]
    sick = [contrast(draw_chest(2, index, SIZE, tuberculosis=True)) for index in range(12, 24)]
    assert np.mean(sick) > np.mean(normal) + 0.04
    assert np.median(sick) > max(normal)


def test_a_256_px_radiograph_takes_milliseconds() -> None:
    draw_chest(0, 0, (256, 256), tuberculosis=True)
    start = time.perf_counter()
    for index in range(5):
        draw_chest(0, index, (256, 256), tuberculosis=True)
    assert (time.perf_counter() - start) / 5 < 0.05


def test_shenzhen_tree_layout_numbering_and_readings(tmp_path: Path) -> None:
    tree = write_shenzhen_tree(tmp_path, 12, size=40, seed=1)
    assert tree == tmp_path / "ChinaSet_AllFiles" and [p.name for p in tmp_path.iterdir()] == [tree.name]
    images = sorted(p.name for p in (tree / "CXR_png").iterdir())
    assert images[-1] == "Thumbs.db"
    assert images[:-1] == [f"CHNCXR_{n:04d}_{int(n > 6)}.png" for n in range(1, 13)]  # contiguous, normals first
    with Image.open(tree / "CXR_png" / images[0]) as image:
        assert (image.mode, image.size) == ("L", (40, 40))
    readings = sorted((tree / "ClinicalReadings").iterdir())
    assert [p.stem for p in readings] == [name[:-4] for name in images[:-1]]
    for path in readings:
        first, finding = path.read_text().splitlines()
        assert re.fullmatch(r"(male|female|femal) ?\d+(yrs|yr|month|days)", first), first
        reading = parse_clinical_reading(path.read_text())
        assert reading.sex in ("F", "M") and reading.age > 0
        assert (finding == "normal") == path.stem.endswith("_0")
    assert [r.labels["tb"] for r in read_tuberculosis(tmp_path, ["shenzhen"])] == [0] * 6 + [1] * 6


def test_montgomery_tree_numbers_twelve_bits_and_masks(tmp_path: Path) -> None:
    tree = write_montgomery_tree(tmp_path, 10, size=48, seed=2)
    assert tree == tmp_path / "MontgomerySet"
    images = sorted((tree / "CXR_png").iterdir())
    numbers = {int(p.stem.split("_")[1]): int(p.stem[-1]) for p in images}
    assert sorted(numbers.values()) == [0] * 6 + [1] * 4  # Montgomery's 80 : 58
    assert all(number < 104 for number, label in numbers.items() if label == 0)
    assert all(104 <= number < 400 for number, label in numbers.items() if label == 1)
    assert sorted(numbers) != list(range(min(numbers), min(numbers) + 10))  # gaps
    for path in images:
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (48, 39) and pixels.dtype.itemsize == 2  # 4020 x 4892, portrait
        assert 255 < pixels.max() <= 4095
        reading = (tree / "ClinicalReadings" / f"{path.stem}.txt").read_text()
        assert re.match(r"Patient's Sex: [FMO]\nPatient's Age: \d{3}Y\n", reading), reading
        masks = tree / "ManualMask"
        left, right = (np.asarray(Image.open(masks / side / path.name)) for side in ("leftMask", "rightMask"))
        assert set(np.unique(left)) == set(np.unique(right)) == {0, 255}
        assert np.nonzero(left)[1].min() > np.nonzero(right)[1].max()  # the patient's left lung on the image's right
    assert write_montgomery_tree(tmp_path / "plain", 4, size=32, masks=False).joinpath("CXR_png").is_dir()
    assert not (tmp_path / "plain" / "MontgomerySet" / "ManualMask").exists()


def test_trees_are_deterministic_and_an_existing_one_is_kept(tmp_path: Path) -> None:
    first = write_shenzhen_tree(tmp_path / "a", 4, size=32, seed=5)
    second = write_shenzhen_tree(tmp_path / "b", 4, size=32, seed=5)
    assert digests(first) == digests(second)
    (first / "CXR_png" / "CHNCXR_0001_0.png").unlink()
    assert write_shenzhen_tree(tmp_path / "a", 4, size=32, seed=5) == first
    assert not (first / "CXR_png" / "CHNCXR_0001_0.png").exists()
    montgomery = write_montgomery_tree(tmp_path / "a", 4, size=32, seed=5)
    assert digests(montgomery) != digests(write_montgomery_tree(tmp_path / "c", 4, size=32, seed=6))
    shenzhen_pixels = np.asarray(Image.open(first / "CXR_png" / "CHNCXR_0002_0.png"))
    assert not np.array_equal(shenzhen_pixels, np.asarray(Image.open(sorted((montgomery / "CXR_png").iterdir())[1])))


@pytest.mark.parametrize(
    ("writer", "count"),
    [(write_shenzhen_tree, 1), (write_shenzhen_tree, 10000), (write_montgomery_tree, MONTGOMERY_MAX_COUNT + 1)],
)
def test_counts_the_naming_cannot_hold_are_refused(tmp_path: Path, writer, count: int) -> None:
    with pytest.raises(ValueError, match=f"asked for {count}"):
        writer(tmp_path, count)
    assert list(tmp_path.iterdir()) == []


def test_the_script_writes_both_sets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    run_script("make_synthetic_chest.py", ["both", str(tmp_path), "--count", "3", "--size", "32"], monkeypatch)
    assert capsys.readouterr().out.split() == [str(tmp_path / "ChinaSet_AllFiles"), str(tmp_path / "MontgomerySet")]
    assert len(read_tuberculosis(tmp_path)) == 6
    with pytest.raises(SystemExit):
        run_script("make_synthetic_chest.py", ["montgomery", str(tmp_path / "big"), "--count", "500"], monkeypatch)
    assert f"holds {MONTGOMERY_MAX_COUNT} radiographs at most" in capsys.readouterr().err
