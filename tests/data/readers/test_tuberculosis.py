from __future__ import annotations

import functools
import io
import logging
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from medcls.data.readers.tuberculosis import (
    ClinicalReading,
    parse_clinical_reading,
    read_clinical_readings,
    read_tuberculosis,
)
from medcls.errors import ConfigError, DataError
from medcls.synthetic.chest import write_montgomery_tree, write_shenzhen_tree

LOGGER = "medcls.data.readers.tuberculosis"


@functools.cache
def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 100).save(buffer, format="PNG")
    return buffer.getvalue()


def make_set(root: Path, folder: str, names: list[str]) -> Path:
    """``root/<folder>/CXR_png/<name>`` for each name, tiny grey PNGs; return ``CXR_png``."""
    images = root / folder / "CXR_png"
    images.mkdir(parents=True)
    for name in names:
        (images / name).write_bytes(png_bytes())
    return images


@pytest.fixture(scope="module")
def both_sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tuberculosis")
    write_shenzhen_tree(root, 8, size=32)
    write_montgomery_tree(root, 6, size=32)
    return root


def test_reads_both_sets_labels_from_the_names(both_sets: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        records = read_tuberculosis(both_sets)
    ids = [r.id for r in records]
    shenzhen = [i for i in ids if i.startswith("shenzhen/")]
    assert shenzhen == [f"shenzhen/CHNCXR_{n:04d}_{int(n > 4)}" for n in range(1, 9)]
    assert ids == shenzhen + sorted(i for i in ids if i.startswith("montgomery/"))
    assert len(ids) == 14 and all(re.fullmatch(r"montgomery/MCUCXR_\d{4}_[01]", i) for i in ids[8:])
    for record in records:
        assert record.labels == {"tb": int(record.id[-1])} and record.group == record.id
        assert record.path.is_absolute() and record.path.is_file() and record.path.stem == record.id.split("/")[1]
    assert f"{both_sets / 'ChinaSet_AllFiles' / 'CXR_png'}: left out what is not a PNG radiograph (1): Thumbs.db" in (
        caplog.messages
    )
    assert "Shenzhen set: 8 radiographs (4 normal, 4 tuberculosis)" in caplog.text


def test_one_set_from_the_common_root_or_its_own_folder(both_sets: Path) -> None:
    from_root = read_tuberculosis(both_sets, ["montgomery"])
    assert [r.id for r in from_root] == [r.id for r in read_tuberculosis(both_sets) if r.id.startswith("montgomery/")]
    assert read_tuberculosis(both_sets / "MontgomerySet", ["montgomery"]) == from_root
    assert [r.id for r in read_tuberculosis(both_sets, ["montgomery", "shenzhen"])][0].startswith("montgomery/")


@pytest.mark.parametrize("folder", ["ChinaSet", "ChinaSet_AllFiles/ChinaSet_AllFiles"])
def test_shenzhen_folder_renamed_or_nested_by_unzipping(tmp_path: Path, folder: str) -> None:
    images = make_set(tmp_path, folder, ["CHNCXR_0001_0.png", "CHNCXR_0002_1.png"])
    assert [r.path for r in read_tuberculosis(tmp_path, ["shenzhen"])] == sorted(images.iterdir())


def test_files_that_are_not_png_radiographs_are_left_out_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = ["CHNCXR_0001_0.png", "CHNCXR_0002_1.PNG", "Thumbs.db", ".DS_Store", "._CHNCXR_0001_0.png", "x.jpg"]
    images = make_set(tmp_path, "ChinaSet_AllFiles", names)
    (images / "old").mkdir()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        records = read_tuberculosis(tmp_path, ["shenzhen"])
    assert [(r.id, r.labels["tb"]) for r in records] == [("shenzhen/CHNCXR_0001_0", 0), ("shenzhen/CHNCXR_0002_1", 1)]
    (line,) = [m for m in caplog.messages if "left out" in m]
    left_out = ".DS_Store, ._CHNCXR_0001_0.png, Thumbs.db, old, x.jpg"
    assert line == f"{images}: left out what is not a PNG radiograph (5): {left_out}"


@pytest.mark.parametrize(
    ("names", "culprit", "message"),
    [
        (["CHNCXR_001_0.png"], "CHNCXR_001_0.png", r"not a Shenzhen radiograph's name; expected CHNCXR_<4 digits>"),
        (["CHNCXR_0001_0 (1).png"], "CHNCXR_0001_0 (1).png", "not a Shenzhen radiograph's name"),
        (["CXR_0001_0.png"], "CXR_0001_0.png", "not a Shenzhen radiograph's name"),
        (["CHNCXR_0001_2.png"], "CHNCXR_0001_2.png", r"label digit 2; .* 0 \(normal\) or 1 \(tuberculosis\)"),
        (["CHNCXR_0001_0.png", "MCUCXR_0002_1.png"], "MCUCXR_0002_1.png", "a radiograph of the Montgomery County set"),
        (
            ["CHNCXR_0001_0.png", "CHNCXR_0001_1.png"],
            "CHNCXR_0001_1.png",
            "radiograph 0001 of the Shenzhen set is also CHNCXR_0001_0.png .labelled 0 there and 1 here.",
        ),
    ],
)
def test_bad_file_names_are_refused_naming_the_file(tmp_path: Path, names: list[str], culprit: str, message: str):
    images = make_set(tmp_path, "ChinaSet_AllFiles", names)
    with pytest.raises(DataError, match=message) as error:
        read_tuberculosis(tmp_path)
    assert str(error.value).startswith(f"{images / culprit}: ")


def test_montgomery_names_are_checked_against_montgomery(tmp_path: Path) -> None:
    images = make_set(tmp_path, "MontgomerySet", ["MCUCXR_0001_0.png", "CHNCXR_0104_1.png"])
    with pytest.raises(DataError, match="a radiograph of the Shenzhen set .CHNCXR_.... among the Montgomery County"):
        read_tuberculosis(tmp_path, ["montgomery"])
    (images / "CHNCXR_0104_1.png").unlink()
    assert [r.id for r in read_tuberculosis(images.parent, ["montgomery"])] == ["montgomery/MCUCXR_0001_0"]


def test_a_missing_or_empty_image_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "MontgomerySet" / "ClinicalReadings").mkdir(parents=True)
    with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path / 'MontgomerySet' / 'CXR_png'))} not found"):
        read_tuberculosis(tmp_path, ["montgomery"])
    images = make_set(tmp_path, "ChinaSet_AllFiles", ["Thumbs.db"])
    with pytest.raises(DataError, match=f"^{re.escape(str(images))} holds no PNG radiograph; expected CHNCXR_0001_0"):
        read_tuberculosis(tmp_path, ["shenzhen"])


def test_a_set_not_found_names_where_it_was_looked_for(tmp_path: Path) -> None:
    make_set(tmp_path, "ChinaSet_AllFiles", ["CHNCXR_0001_0.png"])
    with pytest.raises(DataError, match=re.escape(f"the Montgomery County set is not under {tmp_path}: looked for "
                                                  f"{tmp_path / 'MontgomerySet'}; point the root")):  # fmt: skip
        read_tuberculosis(tmp_path)
    shenzhen = tmp_path / "ChinaSet_AllFiles"
    with pytest.raises(DataError, match="itself holds CXR_png, as one set's own folder does: read only that set"):
        read_tuberculosis(shenzhen)
    assert len(read_tuberculosis(shenzhen, ["shenzhen"])) == 1


@pytest.mark.parametrize("sets", [[], ["shenzhen", "shenzhen"], ["china"]])
def test_a_bad_choice_of_sets_is_a_config_error(tmp_path: Path, sets: list[str]) -> None:
    with pytest.raises(ConfigError, match="^--data.sets .*; choose one or both of shenzhen, montgomery"):
        read_tuberculosis(tmp_path, sets)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("male 45yrs\nnormal\n", ClinicalReading("M", 45.0, "normal")),
        ("femal 32yrs\r\nPTB in the right upper field\r\n", ClinicalReading("F", 32.0, "PTB in the right upper field")),
        ("female24yrs\n\nbilateral PTB\n", ClinicalReading("F", 24.0, "bilateral PTB")),
        ("male 16month\nnormal", ClinicalReading("M", 16 / 12, "normal")),
        ("female 64days\nnormal", ClinicalReading("F", 64 / 365.25, "normal")),
        ("Patient's Sex: F\nPatient's Age: 027Y\n\nnormal\n", ClinicalReading("F", 27.0, "normal")),
        ("Patient's Sex: O\nPatient's Age: 045Y\nright upper lobe", ClinicalReading("O", 45.0, "right upper lobe")),
        ("Patient's Sex: \nPatient's Age: unknown\nnormal", ClinicalReading(None, None, "normal")),
        ("bilateral PTB\n", ClinicalReading(None, None, "bilateral PTB")),
        ("", ClinicalReading(None, None, "")),
    ],
)  # fmt: skip
def test_clinical_readings_are_parsed_however_they_are_written(text: str, reading: ClinicalReading) -> None:
    assert parse_clinical_reading(text) == reading


def test_clinical_readings_of_both_sets_by_record_id(both_sets: Path) -> None:
    readings = read_clinical_readings(both_sets)
    assert sorted(readings) == sorted(r.id for r in read_tuberculosis(both_sets))
    assert all(r.sex in ("F", "M", "O") and r.age is not None and r.age > 0 for r in readings.values())
    assert {r.finding == "normal" for r in readings.values()} == {True, False}


def test_a_missing_reading_is_logged_and_a_garbled_one_fails_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = write_montgomery_tree(tmp_path, 4, size=32, masks=False)
    readings = sorted((tree / "ClinicalReadings").iterdir())
    readings[0].unlink()
    readings[1].write_bytes(b"\xff\xfe\x00garbage")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert len(read_tuberculosis(tmp_path, ["montgomery"])) == 4
    missing = f"{tree / 'ClinicalReadings'}: 1 of 4 radiographs have no clinical reading: {readings[0].stem}"
    assert missing in caplog.messages
    parsed = read_clinical_readings(tmp_path, ["montgomery"])
    assert len(parsed) == 3 and parsed[f"montgomery/{readings[1].stem}"].sex is None
    shutil.rmtree(tree / "ClinicalReadings")
    assert len(read_tuberculosis(tmp_path, ["montgomery"])) == 4
