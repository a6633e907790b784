from __future__ import annotations

import pytest
from PIL import Image

from medcls.data import SyntheticFundusDataModule
from medcls.errors import ConfigError


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


def test_data_module_writes_a_tree_per_setting_once_and_reads_it_as_idrid(tmp_path):
    settings = {"train": 5, "test": 2, "width": 48, "seed": 1, "cache_dir": tmp_path / "cache"}
    splits = SyntheticFundusDataModule(tmp_path / "synthetic", **settings).split_records()
    tree = tmp_path / "synthetic" / "idrid-train5-test2-48px-seed1" / "B. Disease Grading"
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == ["idrid-train5-test2-48px-seed1"]
    assert {split: len(records) for split, records in splits.items()} == {"train": 4, "val": 1, "test": 2}
    assert all(record.path.is_relative_to(tree) for records in splits.values() for record in records)
    with Image.open(splits["test"][0].path) as image:
        assert image.size == (48, 32)  # IDRiD's 4288 x 2848 aspect
    written = {p: p.stat().st_mtime_ns for p in tree.rglob("*")}
    again = SyntheticFundusDataModule(tmp_path / "synthetic", **settings).split_records()
    assert {p: p.stat().st_mtime_ns for p in tree.rglob("*")} == written
    assert again == splits
