from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medcls.data.readers.folder import read_folder
from medcls.errors import ConfigError, DataError
from tests.data.trees import image_bytes


def write_images(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(image_bytes("PNG"))


def test_a_folder_per_class(tmp_path: Path) -> None:
    write_images(tmp_path, "normal/b.png", "normal/more/a.JPG", "tuberculosis/c.dcm", "effusion/d.tiff")
    # What tools leave beside the data: neither classes nor images.
    write_images(tmp_path, ".ipynb_checkpoints/x.png", "normal/.ipynb_checkpoints/b-checkpoint.png", "normal/._b.png")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "normal" / "notes.txt").write_text("not an image")
    (tmp_path / "README.md").write_text("beside the class folders")
    data = read_folder(tmp_path, task="finding")
    assert data.class_names == {"finding": ["effusion", "normal", "tuberculosis"]}
    assert [(r.id, dict(r.labels)) for r in data.records] == [
        ("effusion/d.tiff", {"finding": 0}),
        ("normal/b.png", {"finding": 1}),
        ("normal/more/a.JPG", {"finding": 1}),
        ("tuberculosis/c.dcm", {"finding": 2}),
    ]
    assert [r.path for r in data.records] == [tmp_path / r.id for r in data.records]
    assert data.given_splits is None


def test_given_class_names_set_the_order_and_must_be_the_folders(tmp_path: Path) -> None:
    write_images(tmp_path, "normal/a.png", "pneumonia/b.png")
    data = read_folder(tmp_path, class_names=["pneumonia", "normal"])
    assert data.class_names == {"label": ["pneumonia", "normal"]}
    assert [(r.id, r.labels["label"]) for r in data.records] == [("normal/a.png", 1), ("pneumonia/b.png", 0)]
    with pytest.raises(DataError) as error:
        read_folder(tmp_path, class_names=["normal", "covid"])
    for part in (f"{tmp_path}: the class folders are not the --data.class_names", "missing ['covid']", "['pneumonia']"):
        assert part in str(error.value)
    with pytest.raises(ConfigError, match=r"--data.class_names: task 'label' has the class names \['normal'\]"):
        read_folder(tmp_path, class_names=["normal"])


def test_split_folders_give_the_splits(tmp_path: Path) -> None:
    write_images(tmp_path, "train/normal/a.png", "train/sick/b.png", "test/normal/c.png", "test/sick/d.png")
    write_images(tmp_path, "val/sick/e.png", ".cache/normal/x.png")  # val may lack a class
    data = read_folder(tmp_path)
    assert data.class_names == {"label": ["normal", "sick"]}
    assert [(r.id, r.labels["label"]) for r in data.records] == [
        ("test/normal/c.png", 0),
        ("test/sick/d.png", 1),
        ("train/normal/a.png", 0),
        ("train/sick/b.png", 1),
        ("val/sick/e.png", 1),
    ]
    assert data.given_splits == {
        "test/normal/c.png": "test",
        "test/sick/d.png": "test",
        "train/normal/a.png": "train",
        "train/sick/b.png": "train",
        "val/sick/e.png": "val",
    }


def test_a_folder_with_train_and_others_is_a_folder_per_class(tmp_path: Path) -> None:
    write_images(tmp_path, "train/a.png", "test/b.png", "extra/c.png")
    assert read_folder(tmp_path).class_names == {"label": ["extra", "test", "train"]}


def test_a_class_only_val_or_test_has_is_refused(tmp_path: Path) -> None:
    write_images(tmp_path, "train/normal/a.png", "train/sick/b.png", "val/normal/c.png", "val/covid/d.png")
    with pytest.raises(DataError) as error:
        read_folder(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / 'val'}: class folder(s) covid missing from {tmp_path / 'train'};")


def test_a_class_folder_without_images_is_named(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_images(root, "train/normal/a.png", "train/sick/b.png", "test/normal/c.png", "test/sick/.d.png")
    with pytest.raises(DataError) as error:
        read_folder(root)
    assert str(error.value).startswith(f"{root / 'test' / 'sick'}: a class folder without images")
    shutil.rmtree(root / "test" / "sick")
    shutil.rmtree(root / "test" / "normal")
    with pytest.raises(DataError) as error:
        read_folder(root)
    assert str(error.value).startswith(f"{root / 'test'} holds no class folder")


def test_too_few_classes_and_no_folder_are_refused(tmp_path: Path) -> None:
    write_images(tmp_path, "only/a.png", ".hidden/b.png")
    with pytest.raises(DataError) as error:
        read_folder(tmp_path)
    assert str(error.value).startswith(f"{tmp_path} has 1 class folder(s) ['only']; expected one sub-folder")
    with pytest.raises(DataError, match=r"nowhere is not a folder"):
        read_folder(tmp_path / "nowhere")
