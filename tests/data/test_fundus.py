from pathlib import Path

from jsonargparse import ArgumentParser

from medcls.data import FundusDataModule, IDRiDDataModule
from medcls.data.cache import CacheSettings
from medcls.data.preprocessing.fundus import FundusPreprocessing

# The options configs, checkpoints and --help know the fundus data modules by.
OPTIONS = [
    "root", "cache_dir", "image_size", "contrast", "cache_format", "skip_corrupt", "preprocess_workers", "input_size",
    "train_transforms", "eval_transforms", "transforms_on", "select_tasks", "binary_views", "balance", "train_fraction",
    "train_fraction_seed", "all_as_test", "predict_images", "batch_size", "eval_batch_size", "num_workers", "augment",
]  # fmt: skip


def test_the_command_line_takes_every_option_of_the_fundus_data_modules() -> None:
    parser = ArgumentParser()
    parser.add_class_arguments(FundusDataModule, "data")  # as LightningCLI does, following **kwargs to the base
    assert sorted(parser.parse_args(["--data.root", "x"]).data.keys()) == sorted(OPTIONS)


def test_image_size_and_contrast_choose_the_fundus_preprocessing(synthetic_idrid: Path, tmp_path: Path) -> None:
    data = IDRiDDataModule(
        synthetic_idrid, cache_dir=tmp_path, image_size=64, contrast=True, cache_format="memmap", preprocess_workers=1
    )
    assert data.preprocessing == FundusPreprocessing(size=64, contrast=True)
    assert data.cache_settings == CacheSettings(format="memmap")
    assert data.input_shape == (3, 224, 224)
    data.prepare_data()
    data.setup("fit")
    cache = data.train_set.cache
    assert cache.preprocessing == {"name": "FundusPreprocessing", "fields": {"size": 64, "contrast": True}}
    record = data.splits["train"][0]
    assert (cache.read(cache.index_of(record.path)) == FundusPreprocessing(size=64, contrast=True)(record.path)).all()
