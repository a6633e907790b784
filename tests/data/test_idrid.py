from __future__ import annotations

from pathlib import Path

from medcls.data.readers.idrid import read_idrid
from tests.data.trees import IDRID_TEST, IDRID_TRAIN, make_idrid


def test_data_module_carves_a_seeded_validation_split_from_training(tmp_path: Path) -> None:
    from medcls.data import IDRiDDataModule

    make_idrid(tmp_path, train=IDRID_TRAIN * 5, test=IDRID_TEST)
    splits = IDRiDDataModule(tmp_path, val_size=0.25).split_records()
    official = read_idrid(tmp_path)
    assert [r.id for r in splits["test"]] == [r.id for r in official["test"]]
    train, val = {r.id for r in splits["train"]}, {r.id for r in splits["val"]}
    assert not train & val and train | val == {r.id for r in official["train"]} and len(val) == 10
    assert [r.id for r in IDRiDDataModule(tmp_path, val_size=0.25).split_records()["val"]] == [
        r.id for r in splits["val"]
    ]
    assert {r.id for r in IDRiDDataModule(tmp_path, val_size=0.25, split_seed=1).split_records()["val"]} != val
