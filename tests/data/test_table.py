from collections import Counter
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.trainer.states import TrainerFn

from medcls.data import FolderDataModule, TableDataModule
from medcls.data.preprocessing import FundusPreprocessing, PlainPreprocessing, XRayPreprocessing
from medcls.data.readers.idrid import read_idrid
from medcls.errors import ConfigError
from tests.data.own_images import write_class_folders, write_png_table


def table_data(root: Path, table: Path, **kwargs) -> TableDataModule:
    options = {"preprocessing": XRayPreprocessing(size=32), "input_size": 24, "batch_size": 4,
               "preprocess_workers": 1, "cache_dir": root / "cache"}  # fmt: skip
    return TableDataModule(table, root, kwargs.pop("label_columns", ["diagnosis"]), **(options | kwargs))


def ready(data: TableDataModule, stage: str = "fit") -> TableDataModule:
    data.prepare_data()
    data.setup(stage)
    return data


def patients(records) -> set[str]:
    return {record.group for record in records}


def test_named_labels_become_sorted_classes_and_grey_images_stay_one_channel(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 24)
    data = ready(table_data(tmp_path, table, group_column="patient"))
    assert data.tasks == {"diagnosis": 2}
    assert data.class_names == {"diagnosis": ["normal", "tuberculosis"]} and data.ordinal_tasks == []
    assert data.input_shape == (1, 24, 24)
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 1, 24, 24) and batch["diagnosis"].dtype == torch.long
    # a patient's two images never straddle two splits; every image is in exactly one
    splits = {name: patients(records) for name, records in data.splits.items()}
    assert (
        not splits["train"] & splits["val"]
        and not splits["train"] & splits["test"]
        and not splits["val"] & splits["test"]
    )
    assert sum(len(records) for records in data.splits.values()) == 24


def test_given_class_names_choose_the_order_and_the_table_is_then_not_needed_to_build(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 8)
    named = {"diagnosis": ["tuberculosis", "normal"]}
    data = ready(table_data(tmp_path, table, class_names=named, test_size=2, val_size=2))
    assert data.class_names == named
    first = data.splits["train"][0]
    assert first.labels["diagnosis"] == (0 if "tuberculosis" in str(_label_of(table, first.id)) else 1)
    table.unlink()
    assert table_data(tmp_path, table, class_names=named).tasks == {"diagnosis": 2}


def _label_of(table: Path, image_id: str) -> str:
    for line in table.read_text().splitlines()[1:]:
        image, diagnosis, *_ = line.split(",")
        if image == image_id:
            return diagnosis
    raise KeyError(image_id)


def test_a_split_column_gives_the_splits(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 24, split=True)
    data = ready(table_data(tmp_path, table, group_column="patient", split_column="split"))
    sizes = {name: len(records) for name, records in data.splits.items()}
    assert sizes == {"train": 12, "val": 6, "test": 6}


def test_without_a_val_split_validation_is_carved_from_train_by_whole_patients(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 24, split=True)
    text = table.read_text().replace(",val", ",train")
    table.write_text(text)
    data = ready(table_data(tmp_path, table, group_column="patient", split_column="split", val_size=4))
    assert len(data.splits["test"]) == 6 and len(data.splits["val"]) == 4 and len(data.splits["train"]) == 14
    assert not patients(data.splits["train"]) & patients(data.splits["val"])


def test_k_fold_deals_every_image_to_exactly_one_test_fold(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 24)
    tested = []
    for fold in range(3):
        data = table_data(tmp_path, table, group_column="patient", num_folds=3, fold=fold)
        splits = data.split_records()
        tested += [record.id for record in splits["test"]]
        assert not patients(splits["test"]) & patients(splits["train"] + splits["val"])
    assert sorted(tested) == sorted(f"images/xr{i:03d}.png" for i in range(24))


def test_train_fraction_keeps_a_seeded_stratified_part_and_leaves_val_and_test_alone(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 40)
    full = table_data(tmp_path, table, group_column="patient")._split()
    half = table_data(tmp_path, table, group_column="patient", train_fraction=0.5)._split()
    again = table_data(tmp_path, table, group_column="patient", train_fraction=0.5)._split()
    eight = table_data(tmp_path, table, group_column="patient", train_fraction=8)._split()
    assert half == again and half["val"] == full["val"] and half["test"] == full["test"]
    assert abs(len(half["train"]) - len(full["train"]) / 2) <= 1 and len(eight["train"]) == 8  # whole patients
    assert {r.id for r in half["train"]} < {r.id for r in full["train"]}
    assert set(Counter(r.labels["diagnosis"] for r in eight["train"]).values()) == {4}  # stratified
    assert not patients(half["train"]) & patients(half["val"])
    with pytest.raises(ConfigError, match="--data.train_fraction is 1000 images, but the training split has only"):
        table_data(tmp_path, table, train_fraction=1000)._split()
    with pytest.raises(ConfigError, match=r"--data.train_fraction is 1.5; give a fraction"):
        table_data(tmp_path, table, train_fraction=1.5)


def test_an_empty_split_is_refused_for_the_stage_that_needs_it(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 8, split=True)
    table.write_text(table.read_text().replace(",train", ",test").replace(",val", ",test"))
    data = table_data(tmp_path, table, split_column="split")
    ready(data, "test")  # the whole table as a test set: a model trained elsewhere is tested on it
    with pytest.raises(ConfigError, match="the train split of .* holds no images, and 'medcls fit' needs some"):
        data.setup("fit")


def test_predict_images_are_preprocessed_as_training_images_without_the_training_data(tmp_path: Path) -> None:
    table = write_png_table(tmp_path / "hospital", 8)
    new = write_png_table(tmp_path / "new", 6)
    data = table_data(
        tmp_path, table, class_names={"diagnosis": ["normal", "tuberculosis"]}, predict_images=new.parent / "images"
    )
    table.unlink()

    trainer = Trainer(accelerator="cpu", logger=False)
    trainer.state.fn = TrainerFn.PREDICTING
    data.trainer = trainer
    ready(data, "predict")
    batch = next(iter(data.predict_dataloader()))
    assert batch.keys() == {"image", "id"} and batch["image"].shape[1:] == (1, 24, 24)
    assert [data.predict_set[i]["id"] for i in range(6)] == [f"xr{i:03d}.png" for i in range(6)]


def test_colour_preprocessing_serves_three_channels(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 8)
    data = table_data(tmp_path, table, preprocessing=PlainPreprocessing(size=32), test_size=2, val_size=2)
    assert data.input_shape == (3, 24, 24)
    assert ready(data).train_set[0]["image"].shape == (3, 24, 24)


def test_masked_labels_are_kept_uncounted_and_drawn_as_average_images(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 24)
    lines = table.read_text().splitlines()
    lines = [lines[0] + ",view"] + [line + (",PA" if i % 3 else ",AP") for i, line in enumerate(lines[1:])]
    for i in range(1, 7):  # six images graded for the view only
        lines[i] = lines[i].replace(",normal,", ",,").replace(",tuberculosis,", ",,")
    table.write_text("\n".join(lines) + "\n")
    both = {"label_columns": ["diagnosis", "view"], "group_column": "patient"}
    dropped = table_data(tmp_path, table, **both)._split()
    masked = ready(table_data(tmp_path, table, **both, missing_labels="mask", balance="diagnosis"))
    assert sum(map(len, dropped.values())) == 18 and sum(map(len, masked.splits.values())) == 24
    train = masked.splits["train"]
    unlabelled = [record for record in train if record.labels["diagnosis"] == -1]
    assert unlabelled and masked.class_counts("diagnosis").sum() == len(train) - len(unlabelled)
    weights = masked.train_dataloader().sampler.weights
    labels = torch.tensor([record.labels["diagnosis"] for record in train])
    expected = masked.class_weights("diagnosis")[labels.clamp(min=0)].double()
    torch.testing.assert_close(weights, torch.where(labels >= 0, expected, 1.0))


def test_a_csv_of_fundus_photographs_with_patient_ids_is_graded_with_the_fundus_preprocessing(
    synthetic_idrid: Path, tmp_path: Path
) -> None:
    photographs = [record for split in read_idrid(synthetic_idrid).values() for record in split]
    table = tmp_path / "fundus.csv"
    lines = ["image,dr,patient"] + [
        f"{record.path.relative_to(synthetic_idrid)},{record.labels['dr']},patient{i // 2}"
        for i, record in enumerate(photographs)
    ]
    table.write_text("\n".join(lines) + "\n")
    data = TableDataModule(
        table, synthetic_idrid, ["dr"], group_column="patient", ordinal_tasks=["dr"], test_size=8, val_size=8,
        preprocessing=FundusPreprocessing(size=48), input_size=32, preprocess_workers=1, cache_dir=tmp_path / "cache",
    )  # fmt: skip
    assert data.ordinal_tasks == ["dr"] and data.input_shape == (3, 32, 32)
    assert data.tasks["dr"] == 1 + max(record.labels["dr"] for record in photographs)  # classes "0" to the highest
    ready(data)
    assert next(iter(data.train_dataloader()))["image"].shape[1:] == (3, 32, 32)
    assert not patients(data.splits["train"]) & patients(data.splits["test"])


def test_all_as_test_makes_the_whole_data_set_the_test_split(tmp_path: Path) -> None:
    table = write_png_table(tmp_path, 12, split=True)
    data = table_data(tmp_path, table, split_column="split", all_as_test=True)
    splits = data._split()
    assert not splits["train"] and not splits["val"] and len(splits["test"]) == 12
    with pytest.raises(ConfigError, match="the train split .* holds no images.*--data.all_as_test"):
        ready(data, "fit")


def test_unset_preprocessing_is_the_xray_one_for_tables_and_the_plain_one_for_folders(tmp_path: Path) -> None:
    table = write_png_table(tmp_path / "table", 8)
    data = TableDataModule(table, table.parent, ["diagnosis"], cache_dir=tmp_path / "cache")
    assert data.preprocessing == XRayPreprocessing() and data.input_shape == (1, 224, 224)
    folders = FolderDataModule(write_class_folders(tmp_path / "folders", 8), cache_dir=tmp_path / "cache")
    assert folders.preprocessing == PlainPreprocessing() and folders.input_shape == (3, 224, 224)
