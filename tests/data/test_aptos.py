from __future__ import annotations

from pathlib import Path

import pytest

from medcls.data.aptos import APTOSDataModule
from medcls.data.readers.aptos import read_aptos
from medcls.errors import ConfigError
from medcls.synthetic import write_aptos_tree


def test_tasks_views_and_ordinal_tasks(tmp_path: Path) -> None:
    data = APTOSDataModule(tmp_path)
    assert data.tasks == {"dr": 5}
    assert data.ordinal_tasks == ["dr"]
    assert data.binary_views == {"referable_dr": ("dr", 2)}


def test_copies_of_an_image_never_straddle_two_splits(tmp_path: Path) -> None:
    root = write_aptos_tree(tmp_path, 16, size=(64, 48))
    records = read_aptos(root)
    (copies,) = [[r.id for r in records if r.group == group] for group in {r.group for r in records if r.group != r.id}]
    for seed in range(6):
        splits = APTOSDataModule(root, val_size=0.2, test_size=0.25, split_seed=seed).split_records()
        assert sorted(r.id for part in splits.values() for r in part) == sorted(r.id for r in records)
        assert len(splits["test"]) in (4, 5)
        assert sum(set(copies) <= {r.id for r in part} for part in splits.values()) == 1  # both in one split


def test_settings_are_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--data\.test_size \(the hold-out size\) is 0: a number of images"):
        APTOSDataModule(tmp_path / "nowhere", test_size=0)
