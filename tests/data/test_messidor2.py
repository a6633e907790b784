from __future__ import annotations

from pathlib import Path

import pytest

from medcls.data.messidor2 import Messidor2DataModule
from medcls.data.readers.messidor2 import read_messidor2
from medcls.errors import ConfigError
from medcls.synthetic import write_messidor2_tree

SIZE = (64, 43)


def groups(splits: dict) -> list[set[str]]:
    return [{r.group for r in splits[part]} for part in ("train", "val", "test")]


def test_tasks_views_and_ordinal_tasks(tmp_path: Path) -> None:
    data = Messidor2DataModule(tmp_path)
    assert data.tasks == {"dr": 5, "dme": 2, "referable": 2}
    assert data.ordinal_tasks == ["dr"]
    assert data.binary_views == {"referable_dr": ("dr", 2)}


def test_referable_is_derived_and_ungradable_images_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "IMAGES").mkdir()
    rows = {"IM000001": (0, 0, 1), "IM000002": (1, 1, 1), "IM000003": (2, 0, 1), "IM000004": (1, 0, 1)}
    rows |= {f"IM0000{n}": (n % 5, n % 2, 1) for n in range(10, 22)} | {"IM000099": ("", "", 0)}
    for name in rows:
        (tmp_path / "IMAGES" / f"{name}.JPG").write_bytes(b"jpeg")
    (tmp_path / "messidor_data.csv").write_text(
        "image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable\n"
        + "".join(f"{name}.jpg,{dr},{dme},{gradable}\n" for name, (dr, dme, gradable) in rows.items())
    )
    (tmp_path / "messidor-2.csv").write_text("left;right\nIM000001.JPG;IM000002.JPG\nIM000003.JPG;IM000099.JPG\n")
    splits = Messidor2DataModule(tmp_path, val_size=0.25, test_size=0.25).split_records()
    labels = {r.id: r.labels for part in splits.values() for r in part}
    assert "IM000099" not in labels and len(labels) == len(rows) - 1
    assert [labels[f"IM00000{n}"]["referable"] for n in range(1, 5)] == [0, 1, 1, 0]
    assert all(label["referable"] == int(label["dr"] >= 2 or label["dme"] == 1) for label in labels.values())


def test_holdout_keeps_exams_together(tmp_path: Path) -> None:
    root = write_messidor2_tree(tmp_path, 12, size=SIZE)
    splits = Messidor2DataModule(root, val_size=0.2, test_size=0.25).split_records()
    assert sorted(r.id for part in splits.values() for r in part) == sorted(r.id for r in read_messidor2(root))
    train, val, test = groups(splits)
    assert not (train & val or train & test or val & test)
    assert all(r.group.startswith("exam/") for part in splits.values() for r in part)


def test_folds_cover_the_set_and_never_validate_on_test(tmp_path: Path) -> None:
    root = write_messidor2_tree(tmp_path, 12, size=SIZE)
    folds = [Messidor2DataModule(root, num_folds=3, fold=k, val_size=0.2).split_records() for k in range(3)]
    tests = [{r.id for r in fold["test"]} for fold in folds]
    assert sum(map(len, tests)) == len(set().union(*tests)) == len(read_messidor2(root))
    for fold in folds:
        train, val, test = groups(fold)
        assert not (train & val or train & test or val & test)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_folds": 1}, r"--data\.num_folds is 1; cross-validation needs at least 2 folds"),
        ({"num_folds": 5, "fold": 5}, r"--data\.fold is 5; the test fold must be between 0 and 4"),
        ({"test_size": 1.0}, r"--data\.test_size \(the hold-out size\) is 1\.0"),
    ],
)
def test_settings_are_refused_before_reading(tmp_path: Path, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Messidor2DataModule(tmp_path / "nowhere", **settings)
