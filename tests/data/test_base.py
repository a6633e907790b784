from collections import Counter
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

import medcls.data.fundus
from medcls.data import IDRiDDataModule
from medcls.errors import DataError


def idrid(root: Path, cache: Path, **kwargs) -> IDRiDDataModule:
    data = IDRiDDataModule(root, cache_dir=cache, image_size=64, input_size=48, preprocess_workers=1, **kwargs)
    data.prepare_data()
    data.setup("fit")
    return data


def test_batches_follow_the_data_contract(synthetic_idrid: Path, tmp_path: Path) -> None:
    data = idrid(synthetic_idrid, tmp_path, batch_size=8)
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (8, 3, 48, 48) and batch["image"].dtype == torch.float32
    assert -3 < batch["image"].mean() < 3  # normalised, not 0-255
    assert batch["dr"].dtype == torch.int64 and batch["dme"].dtype == torch.int64
    assert all(i.startswith("train/IDRiD_") for i in batch["id"])
    val = next(iter(data.val_dataloader()))
    assert val["image"].shape[1:] == (3, 48, 48)


def test_second_setup_reads_the_cache_without_decoding(synthetic_idrid: Path, tmp_path: Path, monkeypatch) -> None:
    idrid(synthetic_idrid, tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(medcls.data.fundus, "load_fundus", no_decoding)
    data = idrid(synthetic_idrid, tmp_path)
    assert data.train_set[0]["image"].shape == (3, 48, 48)


def test_transforms_from_config_replace_the_defaults(synthetic_idrid: Path, tmp_path: Path) -> None:
    pipeline = [v2.Resize(32), v2.ToDtype(torch.float32, scale=True)]
    data = idrid(synthetic_idrid, tmp_path, train_transforms=pipeline, eval_transforms=pipeline)
    image = data.train_set[0]["image"]
    assert image.shape == (3, 32, 32) and image.min() >= 0 and image.max() <= 1


def test_class_weights_and_balanced_sampler_use_the_training_split(synthetic_idrid: Path, tmp_path: Path) -> None:
    data = idrid(synthetic_idrid, tmp_path, balance="dr", batch_size=10)
    counts = Counter(r.labels["dr"] for r in data.splits["train"])
    expected = torch.tensor([len(data.splits["train"]) / (5 * max(counts[c], 1)) for c in range(5)])
    torch.testing.assert_close(data.class_weights("dr"), expected)
    torch.manual_seed(0)
    drawn = Counter(int(y) for _ in range(40) for y in next(iter(data.train_dataloader()))["dr"])
    present = [c for c in range(5) if counts[c]]
    share = [drawn[c] / sum(drawn.values()) for c in present]
    assert max(share) - min(share) < 0.1  # about 1/len(present) each, whatever the imbalance
    with pytest.raises(ValueError, match="balance names the task 'grade'"):
        idrid(synthetic_idrid, tmp_path, balance="grade")


def test_splits_file_lists_every_image_once(synthetic_idrid: Path, tmp_path: Path) -> None:
    data = idrid(synthetic_idrid, tmp_path)
    data.write_splits(tmp_path / "splits.csv")
    lines = (tmp_path / "splits.csv").read_text().splitlines()
    assert lines[0] == "id,split,group,dr,dme"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == len({row[0] for row in rows}) == 40
    assert Counter(row[1] for row in rows) == {"train": 24, "val": 6, "test": 10}


def test_corrupt_image_is_named_or_skipped(synthetic_idrid: Path, tmp_path: Path) -> None:
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(synthetic_idrid, tree)
    broken = tree / "1. Original Images" / "a. Training Set" / "IDRiD_004.jpg"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(DataError, match="IDRiD_004.jpg"):
        idrid(tree, tmp_path / "cache")
    data = idrid(tree, tmp_path / "cache", skip_corrupt=True)
    kept = [r.id for split in data.splits.values() for r in split]
    assert "train/IDRiD_004" not in kept and len(kept) == 39


def test_select_tasks_serves_only_those_labels(synthetic_idrid: Path, tmp_path: Path) -> None:
    data = idrid(synthetic_idrid, tmp_path, select_tasks=["dme"])
    assert data.tasks == {"dme": 3}
    sample = data.train_set[0]
    assert "dme" in sample and "dr" not in sample
    with pytest.raises(ValueError, match=r"select_tasks names \['drr'\]; this data set labels \['dme', 'dr'\]"):
        _ = IDRiDDataModule(synthetic_idrid, select_tasks=["drr"]).tasks


def test_binary_views_follow_the_selected_tasks(synthetic_idrid: Path) -> None:
    assert IDRiDDataModule(synthetic_idrid).binary_views == {"referable_dr": ("dr", 2), "dme_present": ("dme", 1)}
    assert IDRiDDataModule(synthetic_idrid, select_tasks=["dme"]).binary_views == {"dme_present": ("dme", 1)}
    chosen = IDRiDDataModule(synthetic_idrid, binary_views={"severe_dr": ("dr", 3)})
    assert chosen.binary_views == {"severe_dr": ("dr", 3)}


def test_without_augmentation_training_images_are_served_like_validation_images(
    synthetic_idrid: Path, tmp_path: Path
) -> None:
    augmented = idrid(synthetic_idrid, tmp_path)
    plain = idrid(synthetic_idrid, tmp_path, augment=False)
    torch.manual_seed(0)
    assert not torch.equal(augmented.train_set[0]["image"], augmented.train_set[0]["image"])  # random each time
    assert torch.equal(plain.train_set[0]["image"], plain.train_set[0]["image"])
    assert plain.train_set.transform is plain.val_set.transform
