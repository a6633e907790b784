import shutil
from pathlib import Path

from medcls.data import FolderDataModule
from medcls.data.preprocessing import XRayPreprocessing
from tests.data.own_images import write_class_folders


def folder_data(root: Path, **kwargs) -> FolderDataModule:
    options = {"preprocessing": XRayPreprocessing(size=32), "input_size": 24, "cache_dir": root.parent / "cache"}
    return FolderDataModule(root, **(options | kwargs))


def test_a_folder_per_class_is_one_task_of_the_sorted_folder_names(tmp_path: Path) -> None:
    data = folder_data(write_class_folders(tmp_path / "cxr", 20), task="finding", ordinal=True)
    assert data.tasks == {"finding": 2} and data.class_names == {"finding": ["normal", "tuberculosis"]}
    assert data.ordinal_tasks == ["finding"]
    splits = data.split_records()
    assert {name: len(records) for name, records in splits.items()} == {"train": 13, "val": 3, "test": 4}
    assert splits["test"][0].id.split("/")[0] in ("normal", "tuberculosis")  # ids: paths relative to the root


def test_split_folders_give_the_splits_and_class_names_the_order(tmp_path: Path) -> None:
    root = tmp_path / "cxr"
    for split, count in (("train", 12), ("test", 6)):
        write_class_folders(tmp_path / split, count)
        shutil.move(tmp_path / split, root / split)
    data = folder_data(root, class_names=["tuberculosis", "normal"], val_size=4)
    assert data.class_names == {"label": ["tuberculosis", "normal"]}
    splits = data.split_records()
    assert {name: len(records) for name, records in splits.items()} == {"train": 8, "val": 4, "test": 6}
    assert all(record.id.startswith("test/") for record in splits["test"])
    assert all(record.labels["label"] == (record.id.split("/")[1] == "normal") for record in splits["test"])
