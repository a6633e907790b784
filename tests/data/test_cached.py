from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision.transforms import v2

from medcls.data import IDRiDDataModule
from medcls.data.preprocessing.fundus import FundusPreprocessing
from medcls.errors import ConfigError, DataError


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

    monkeypatch.setattr(FundusPreprocessing, "__call__", no_decoding)
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
    with pytest.raises(ConfigError, match=r"--data\.balance names the task 'grade'; choose one of \['dme', 'dr'\]"):
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
    with pytest.raises(
        ConfigError, match=r"--data\.select_tasks names \['drr'\]; this data set labels \['dme', 'dr'\]"
    ):
        IDRiDDataModule(synthetic_idrid, select_tasks=["drr"])


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


def test_on_the_device_workers_serve_cached_pixels_and_the_batch_is_transformed_after_transfer(
    synthetic_idrid: Path, tmp_path: Path
) -> None:
    on_workers = idrid(synthetic_idrid, tmp_path, batch_size=8)
    on_device = idrid(synthetic_idrid, tmp_path, batch_size=8, transforms_on="device")
    served, batch = next(iter(on_device.val_dataloader())), next(iter(on_device.train_dataloader()))
    assert served["image"].dtype == torch.uint8 and served["image"].shape[1:] == (64, 64, 3)  # as cached
    on_device.trainer = SimpleNamespace(training=False)
    evaluated = on_device.on_after_batch_transfer(served, 0)["image"]
    torch.testing.assert_close(evaluated, next(iter(on_workers.val_dataloader()))["image"])
    on_device.trainer = SimpleNamespace(training=True)
    cached = batch["image"].clone()
    trained = on_device.on_after_batch_transfer(batch, 0)["image"]
    assert trained.shape == (8, 3, 48, 48) and trained.dtype == torch.float32
    assert not torch.allclose(trained, on_device.batch_transforms["eval"](cached.permute(0, 3, 1, 2)))  # augmented


def test_each_process_augments_on_the_device_with_a_random_stream_of_its_own(
    synthetic_idrid: Path, tmp_path: Path
) -> None:
    data = idrid(synthetic_idrid, tmp_path, batch_size=4, transforms_on="device")
    batch = next(iter(data.train_dataloader()))

    def augmented(rank: int) -> torch.Tensor:
        torch.manual_seed(0)  # the run's seed, the same in every process
        on_rank = idrid(synthetic_idrid, tmp_path, batch_size=4, transforms_on="device")
        on_rank.trainer = SimpleNamespace(training=True, global_rank=rank)
        return on_rank.on_after_batch_transfer(dict(batch), 0)["image"]

    assert torch.equal(augmented(0), augmented(0)) and not torch.equal(augmented(0), augmented(1))


def test_a_transform_the_device_cannot_batch_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--data\.train_transforms: RandomAffine cannot run on whole batches"):
        IDRiDDataModule(tmp_path / "nowhere", transforms_on="device", train_transforms=[v2.RandomAffine(5)])
    with pytest.raises(ConfigError, match=r"--data\.transforms_on is 'gpu'; choose 'workers' or 'device'\."):
        IDRiDDataModule(tmp_path / "nowhere", transforms_on="gpu")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"image_size": 16}, r"--data\.image_size \(the cache's image size\) is 16; it must be at least 32\."),
        ({"cache_format": "png"}, r"--data\.cache_format is 'png'; choose 'jpeg' or 'memmap'\."),
        ({"select_tasks": []}, r"--data\.select_tasks is empty; this data set labels \['dme', 'dr'\]\."),
        ({"select_tasks": ["dme"], "balance": "dr"}, r"--data\.balance names the task 'dr'; choose one of \['dme'\]"),
        ({"binary_views": {"severe": ("drr", 3)}}, r"--data\.binary_views: severe is \[drr, 3\]; name a task of"),
        (
            {"binary_views": {"severe": ("dr", 5)}},
            r"--data\.binary_views: severe is \[dr, 5\]; .* from 1 to the task's",
        ),
        ({"val_size": 1.5}, r"--data\.val_size \(the hold-out size\) is 1\.5: give a fraction between 0 and 1"),
        ({"batch_size": 0}, r"--data\.batch_size is 0; it must be at least 1\."),
        ({"eval_batch_size": 0}, r"--data\.eval_batch_size is 0; it must be at least 1\."),
        ({"num_workers": -1}, r"--data\.num_workers is -1; use 0 \(load in the main process\) or more\."),
        ({"preprocess_workers": -2}, r"--data\.preprocess_workers is -2; use 0 \(one per CPU\) or more\."),
        ({"input_size": 0}, r"--data\.input_size is 0; it must be at least 1\."),
    ],
)
def test_impossible_settings_name_their_option_before_anything_is_read(
    tmp_path: Path, settings: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        IDRiDDataModule(tmp_path / "nowhere", cache_dir=tmp_path / "cache", **settings)
    assert "\n" not in str(error.value) and list(tmp_path.iterdir()) == []


def test_a_validation_size_above_the_images_names_the_option(synthetic_idrid: Path, tmp_path: Path) -> None:
    data = IDRiDDataModule(synthetic_idrid, cache_dir=tmp_path, val_size=30)
    with pytest.raises(ConfigError, match=r"--data\.val_size \(the hold-out size\) is 30: .* below the 30 images"):
        data.prepare_data()
    assert list(tmp_path.iterdir()) == []  # refused before the cache is built


def test_input_shape_is_what_the_eval_pipeline_serves(synthetic_idrid: Path, tmp_path: Path) -> None:
    assert IDRiDDataModule(synthetic_idrid, input_size=299).input_shape == (3, 299, 299)
    custom = [v2.Grayscale(), v2.CenterCrop((40, 56)), v2.ToDtype(torch.float32, scale=True)]
    data = idrid(synthetic_idrid, tmp_path, eval_transforms=custom)
    assert data.input_shape == (1, 40, 56) == tuple(data.val_set[0]["image"].shape)
    with pytest.raises(ConfigError, match=r"--data\.eval_transforms fails on a 3 x 512 x 512 uint8 image \(\w+Error: "):
        _ = IDRiDDataModule(synthetic_idrid, eval_transforms=[v2.Normalize([0.5], [0.5])]).input_shape


def test_class_counts_and_groups_come_from_the_records(synthetic_idrid: Path, tmp_path: Path) -> None:
    data = idrid(synthetic_idrid, tmp_path)
    counts = Counter(r.labels["dme"] for r in data.splits["train"])
    assert data.class_counts("dme").tolist() == [counts[c] for c in range(3)]
    record = data.splits["val"][0]
    assert data.group_of(record.id) == record.group and data.group_of("elsewhere/1") == "elsewhere/1"
