from __future__ import annotations

from pathlib import Path

import pytest

from medcls.data.eyepacs import EyePACSDataModule
from medcls.data.readers.eyepacs import read_eyepacs
from medcls.errors import ConfigError
from medcls.synthetic import write_eyepacs_tree

SIZE = (64, 43)


def ids(records: list) -> list[str]:
    return [record.id for record in records]


def test_tasks_views_and_ordinal_tasks(tmp_path: Path) -> None:
    data = EyePACSDataModule(tmp_path)
    assert data.tasks == {"dr": 5}
    assert data.ordinal_tasks == ["dr"]
    assert data.binary_views == {"referable_dr": ("dr", 2)}
    assert data.class_names == {"dr": ["0", "1", "2", "3", "4"]}


def test_holdout_needs_no_test_folder_and_keeps_patients_together(tmp_path: Path) -> None:
    root = write_eyepacs_tree(tmp_path, 40, size=SIZE)
    splits = EyePACSDataModule(root, val_size=0.2, test_size=0.25).split_records()
    assert sorted(ids(splits["train"] + splits["val"] + splits["test"])) == sorted(ids(read_eyepacs(root)))
    assert 8 <= len(splits["test"]) <= 12 and 4 <= len(splits["val"]) <= 8  # whole patients of two eyes
    patients = [{r.group for r in splits[part]} for part in ("train", "val", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert all(r.group == r.id.removeprefix("train/").split("_")[0] for r in splits["test"])
    again = EyePACSDataModule(root, val_size=0.2, test_size=0.25).split_records()
    assert ids(again["test"]) == ids(splits["test"]) and ids(again["val"]) == ids(splits["val"])
    other = EyePACSDataModule(root, val_size=0.2, test_size=0.25, split_seed=1).split_records()
    assert set(ids(other["test"])) != set(ids(splits["test"]))


def test_official_test_split_is_the_solution_files_images(tmp_path: Path) -> None:
    root = write_eyepacs_tree(tmp_path, 20, test=7, size=SIZE)
    splits = EyePACSDataModule(root, test_split="official", val_size=0.25).split_records()
    assert ids(splits["test"]) == ids(read_eyepacs(root, "test")) and all(
        i.startswith("test/") for i in ids(splits["test"])
    )
    assert sorted(ids(splits["train"] + splits["val"])) == sorted(ids(read_eyepacs(root)))
    assert not {r.group for r in splits["train"]} & {r.group for r in splits["val"]}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"test_split": "kaggle"},
            r"--data\.test_split: unknown test split mode 'kaggle'; choose 'holdout' or 'official'",
        ),
        ({"test_size": 1.5}, r"--data\.test_size \(the hold-out size\) is 1\.5"),
        ({"val_size": 0}, r"--data\.val_size \(the hold-out size\) is 0"),
    ],
)
def test_settings_are_refused_before_reading(tmp_path: Path, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EyePACSDataModule(tmp_path / "nowhere", **settings)
