from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from medcls.data.preprocessing import XRayPreprocessing
from medcls.data.tuberculosis import TuberculosisDataModule, label_and_set
from medcls.errors import ConfigError
from medcls.synthetic.chest import write_montgomery_tree, write_shenzhen_tree

SHENZHEN, MONTGOMERY = 40, 20


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 Shenzhen radiographs (20 tuberculous) and 20 Montgomery ones (8 tuberculous), 48 px."""
    root = tmp_path_factory.mktemp("tuberculosis")
    write_shenzhen_tree(root, SHENZHEN, size=48, seed=1)
    write_montgomery_tree(root, MONTGOMERY, size=48, seed=1, masks=False)
    return root


def test_one_binary_task_of_named_classes_on_grey_radiographs(root: Path) -> None:
    data = TuberculosisDataModule(root)
    assert data.tasks == {"tb": 2} and data.binary_views == {}
    assert data.class_names == {"tb": ["normal", "tuberculosis"]} and data.ordinal_tasks == []
    assert isinstance(data.preprocessing, XRayPreprocessing) and data.preprocessing.size == 512
    assert data.preprocessing.channels == 1 and not data.preprocessing.mirror_invariant
    assert data.input_shape == (1, 224, 224)


def test_splits_are_lakhanis_proportions_stratified_on_label_and_set(root: Path) -> None:
    splits = TuberculosisDataModule(root).split_records()
    total = SHENZHEN + MONTGOMERY
    sizes = {split: len(records) for split, records in splits.items()}
    assert sum(sizes.values()) == total
    for split, share in (("train", 0.68), ("val", 0.171), ("test", 0.149)):
        assert abs(sizes[split] - share * total) <= 1, sizes
    ids = [r.id for records in splits.values() for r in records]
    assert len(set(ids)) == total
    strata = Counter(label_and_set(r) for records in splits.values() for r in records)
    for split, records in splits.items():
        counts = Counter(label_and_set(r) for r in records)
        assert set(counts) == set(strata), (split, counts)  # both labels of both sets in every split
        for stratum, n in counts.items():
            assert abs(n - strata[stratum] * sizes[split] / total) <= 1.5, (split, stratum, counts)


def test_splits_are_seeded(root: Path) -> None:
    def test_ids(**kwargs: int) -> list[str]:
        return [r.id for r in TuberculosisDataModule(root, **kwargs).split_records()["test"]]

    assert test_ids() == test_ids(split_seed=0)
    assert test_ids() != test_ids(split_seed=1)
    counted = TuberculosisDataModule(root, test_size=12, val_size=6).split_records()
    sizes = {split: len(records) for split, records in counted.items()}
    assert sizes["test"] == 12 and abs(sizes["val"] - 6) <= 1  # stratification may cost a whole radiograph


def test_montgomery_alone_from_the_common_root_or_its_own_folder(root: Path) -> None:
    splits = TuberculosisDataModule(root, sets=["montgomery"]).split_records()
    ids = sorted(r.id for records in splits.values() for r in records)
    assert len(ids) == MONTGOMERY and all(i.startswith("montgomery/MCUCXR_") for i in ids)
    alone = TuberculosisDataModule(root / "MontgomerySet", sets=["montgomery"]).split_records()
    assert {split: [r.id for r in records] for split, records in alone.items()} == {
        split: [r.id for r in records] for split, records in splits.items()
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"val_size": 0.5, "test_size": 0.5}, "--data.val_size 0.5 and --data.test_size 0.5 leave no radiograph"),
        ({"test_size": 1.2}, "--data.test_size"),
        ({"sets": []}, "--data.sets is empty"),
        ({"sets": ["padchest"]}, r"--data.sets names \['padchest'\]"),
    ],
)
def test_impossible_settings_are_refused(root: Path, settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TuberculosisDataModule(root, **settings)


def test_twelve_bit_radiographs_are_cached_grey_from_their_range(root: Path, tmp_path: Path) -> None:
    data = TuberculosisDataModule(
        root, sets=["montgomery"], preprocessing=XRayPreprocessing(size=32), input_size=32,
        cache_dir=tmp_path / "cache", preprocess_workers=1, eval_transforms=[nn.Identity()],
    )  # fmt: skip
    data.prepare_data()
    data.setup("test")
    images = [data.test_set[i]["image"] for i in range(len(data.test_set))]
    assert {(image.dtype, tuple(image.shape)) for image in images} == {(torch.uint8, (1, 32, 32))}
    # Clipped to 8 bits instead, the 12-bit values would be white but for the air around the body.
    middle = [image[:, :, 8:24] for image in images]  # the chest: the portrait radiographs are padded left and right
    assert all(pixels.min() < 100 and pixels.max() > 200 for pixels in middle)
    assert {data.test_set[i]["tb"] for i in range(len(data.test_set))} == {0, 1}
