from __future__ import annotations

from pathlib import Path

import pytest

from medcls.errors import ConfigError
from tests.data.trees import make_messidor


def test_data_module_folds_cover_the_set_and_never_validate_on_test(tmp_path: Path) -> None:
    from medcls.data import MessidorDataModule

    make_messidor(tmp_path, per_base=5, errata=True)
    splits = [MessidorDataModule(tmp_path, num_folds=5, fold=k, val_size=0.2).split_records() for k in range(5)]
    everything = {r.id for r in splits[0]["train"] + splits[0]["val"] + splits[0]["test"]}
    tests = [{r.id for r in s["test"]} for s in splits]
    assert set().union(*tests) == everything and sum(map(len, tests)) == len(everything)
    for fold in splits:
        train, val, test = ({r.group for r in fold[part]} for part in ("train", "val", "test"))
        assert not (train & val or train & test or val & test)  # groups (duplicate pairs) never straddle
    again = MessidorDataModule(tmp_path, num_folds=5, fold=2, val_size=0.2).split_records()
    assert [r.id for r in again["val"]] == [r.id for r in splits[2]["val"]]
    assert MessidorDataModule(tmp_path, dr="grade", dme="binary").tasks == {"dr": 4, "dme": 2}
    with pytest.raises(ConfigError, match=r"--data.fold is 10; the test fold must be between 0 and 9"):
        MessidorDataModule(tmp_path, fold=10)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_folds": 1}, r"--data\.num_folds is 1; cross-validation needs at least 2 folds"),
        ({"fold": -1}, r"--data\.fold is -1; the test fold must be between 0 and 9 \(--data\.num_folds 10\)"),
        ({"val_size": 0}, r"--data\.val_size \(the hold-out size\) is 0: a number of images must be at least 1\."),
        ({"val_size": 1.0}, r"--data\.val_size \(the hold-out size\) is 1\.0: give a fraction between 0 and 1"),
        ({"dme": "present"}, r"--data\.dme: unknown label mode 'present'; choose 'grade' or 'binary'"),
        ({"duplicates": "keep"}, r"--data\.duplicates: unknown duplicates mode 'keep'"),
        ({"select_tasks": ["dme"], "balance": "dr"}, r"--data\.balance names the task 'dr'; choose one of \['dme'\]"),
    ],
)
def test_data_module_settings_are_refused_before_reading(tmp_path: Path, settings: dict, message: str) -> None:
    from medcls.data import MessidorDataModule

    with pytest.raises(ConfigError, match=message):
        MessidorDataModule(tmp_path / "nowhere", **settings)


def test_data_module_num_folds_above_the_groups_names_the_option(tmp_path: Path) -> None:
    from medcls.data import MessidorDataModule

    make_messidor(tmp_path, per_base=1, fmt="csv")  # 12 images
    with pytest.raises(ConfigError, match=r"--data\.num_folds: cannot split 12 groups of images .* into 20 non-empty"):
        MessidorDataModule(tmp_path, num_folds=20).split_records()


def test_data_module_binary_views_follow_the_label_modes(tmp_path: Path) -> None:
    from medcls.data import MessidorDataModule

    assert MessidorDataModule(tmp_path).binary_views == {"dme_present": ("dme", 1)}  # referable DR is binary
    assert MessidorDataModule(tmp_path, dr="grade", dme="binary").binary_views == {"referable_dr": ("dr", 2)}
