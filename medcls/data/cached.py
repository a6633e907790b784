"""Data modules over records: read and split a data set, preprocess it once into a cache, serve it transformed."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from torchvision.transforms import v2

from medcls.data.base import TaskDataModule
from medcls.data.batch_transforms import BatchPipeline
from medcls.data.cache import CacheSettings, ImageCache, build_cache
from medcls.data.preprocessing import Preprocessing
from medcls.data.readers.records import MISSING_LABEL, Record
from medcls.data.readers.table import read_unlabelled
from medcls.data.splits import holdout
from medcls.data.transforms import default_eval_transforms, default_train_transforms
from medcls.errors import ConfigError, summarise_error
from medcls.io import atomic_write

SPLITS = ("train", "val", "test")


class CachedImageDataset(Dataset):
    """Records served from the preprocessing cache through a transform pipeline, as batch dicts.

    Args:
        records: The images of this split.
        cache: The cache holding every record's image.
        transform: Maps a uint8 C x H x W tensor to the network's input; None serves the cached uint8 image as it
            is stored, H x W x C, for pipelines run on whole batches on the device (a batch of them then collates
            with one plain copy per image, not a transposition).
        tasks: The labels served with each image.
    """

    def __init__(
        self,
        records: Sequence[Record],
        cache: ImageCache,
        transform: Callable[[Tensor], Tensor] | None,
        tasks: Sequence[str],
    ) -> None:
        self.records = list(records)
        self.tasks = list(tasks)
        self.rows = [cache.index_of(record.path) for record in self.records]
        self.cache = cache
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image = torch.from_numpy(self.cache.read(self.rows[index]))
        if self.transform is not None:
            image = self.transform(image.permute(2, 0, 1))
        return {"image": image, **{task: record.labels[task] for task in self.tasks}, "id": record.id}


class CachedImageDataModule(TaskDataModule):
    """Images listed as records: preprocessed once into a cache, split, augmented, loaded.

    Subclasses choose the ``preprocessing``, set ``label_tasks`` (every task the data set labels; before
    calling this class's ``__init__``, which checks the settings naming tasks against it), optionally
    ``label_class_names`` and ``label_ordinal`` (the tasks of ordered classes), and read their data set in
    :meth:`split_records`. ``prepare_data`` builds the cache (rank 0 only under DDP); training reads only
    the cache. The assignment of every image to train/val/test is written to ``splits.csv`` in the run's
    log dir.

    ``medcls predict`` runs over the test split, or over ``predict_images``: a folder of images (all image
    files under it) or a table of them, with no labels needed, preprocessed as the training images were.

    Args:
        root: The data set's folder, as distributed.
        preprocessing: Turns each image file into the pixels cached (its settings are part of the cache key).
        cache_dir: Where preprocessed images are cached (a changed setting or file rebuilds).
        cache_format: ``jpeg`` (compact) or ``memmap`` (a uint8 array: no decoding at all, fastest).
        skip_corrupt: Leave unreadable images out (listed in the log) instead of stopping.
        preprocess_workers: Processes building the cache (0: one per CPU).
        input_size: Side of the network's input; used by the default pipelines.
        train_transforms: Training pipeline, ``torchvision.transforms.v2`` transforms applied to a uint8
            C x H x W tensor (default: random resized crop to ``input_size``, flips, ImageNet normalisation).
        eval_transforms: Validation/test pipeline (default: resize to ``input_size``, ImageNet normalisation).
        transforms_on: Where the pipelines run. ``workers``: on each image, in the loader's worker processes.
            ``device``: on whole batches, on the accelerator, after the batch is copied there; the workers then
            only read and collate the cached uint8 images, so that a few CPU cores keep a fast GPU busy. Each
            image still gets random parameters of its own (kornia draws them), from the same distribution.
        select_tasks: Learn only these of the data set's tasks (e.g. ``[dr]`` for a DR-only model); default all.
        binary_views: The binary questions of graded tasks to evaluate, name -> [task, lowest positive grade]
            (e.g. ``{severe_dr: [dr, 3]}``); default: the data set's own (IDRiD: referable DR, DME present).
        balance: Draw training images with a class-balanced sampler over this task.
        train_fraction: Train on a part of the training split only: a fraction in (0, 1] or a number of images,
            drawn seeded, stratified on the labels and by whole groups; validation and test stay as they are (the
            "how much data do I need" study).
        train_fraction_seed: Seed of that draw.
        all_as_test: Make every image of the data set a test image (no training or validation images): to test a
            model trained on another data set of the same tasks on the whole of this one.
        predict_images: What ``medcls predict`` runs over, instead of the test split: a folder (every image file
            under it, ids = paths relative to it) or a table (``.csv``, ``.tsv``, ``.xlsx``, ``.xls``) whose column
            ``image`` lists image files relative to the table's folder.
        batch_size: Images per training batch.
        eval_batch_size: Images per validation, test and prediction batch.
        num_workers: Loader worker processes.
        augment: Apply ``train_transforms`` to the training images; ``false`` applies ``eval_transforms``.
    """

    label_tasks: dict[str, int]
    label_views: dict[str, tuple[str, int]] = {}
    label_class_names: dict[str, list[str]] = {}
    label_ordinal: tuple[str, ...] = ()
    predict_image_column: str = "image"
    """The column of a ``predict_images`` table that lists the images."""

    def __init__(
        self,
        root: str | Path,
        preprocessing: Preprocessing,
        cache_dir: str | Path = ".cache/medcls",
        cache_format: Literal["jpeg", "memmap"] = "jpeg",
        skip_corrupt: bool = False,
        preprocess_workers: int = 0,
        input_size: int = 224,
        train_transforms: list[nn.Module] | None = None,
        eval_transforms: list[nn.Module] | None = None,
        transforms_on: Literal["workers", "device"] = "workers",
        select_tasks: list[str] | None = None,
        binary_views: dict[str, tuple[str, int]] | None = None,
        balance: str | None = None,
        train_fraction: float | int | None = None,
        train_fraction_seed: int = 0,
        all_as_test: bool = False,
        predict_images: str | Path | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        augment: bool = True,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, augment)
        if preprocess_workers < 0:
            raise ConfigError(f"--data.preprocess_workers is {preprocess_workers}; use 0 (one per CPU) or more.")
        if input_size < 1:
            raise ConfigError(f"--data.input_size is {input_size}; it must be at least 1.")
        self.root = Path(root)
        self.preprocessing = preprocessing
        self.cache_dir = Path(cache_dir)
        self.cache_settings = CacheSettings(format=cache_format)
        self.skip_corrupt = skip_corrupt
        self.preprocess_workers = preprocess_workers
        channels, mirror = preprocessing.channels, preprocessing.mirror_invariant
        self.train_transform = v2.Compose(train_transforms or default_train_transforms(input_size, channels, mirror))
        self.eval_transform = v2.Compose(eval_transforms or default_eval_transforms(input_size, channels))
        if transforms_on not in ("workers", "device"):
            raise ConfigError(f"--data.transforms_on is {transforms_on!r}; choose 'workers' or 'device'.")
        self.transforms_on = transforms_on
        self.batch_transforms: dict[str, BatchPipeline] = {}
        self._augmentation_rng_state: Tensor | None = None
        if transforms_on == "device":
            self.batch_transforms = {
                "train": BatchPipeline(self.train_transform.transforms, "--data.train_transforms"),
                "eval": BatchPipeline(self.eval_transform.transforms, "--data.eval_transforms"),
            }
        self.tasks = self._chosen_tasks(select_tasks)
        self.binary_views = self._chosen_views(binary_views)
        if balance is not None and balance not in self.tasks:
            raise ConfigError(f"--data.balance names the task {balance!r}; choose one of {sorted(self.tasks)}.")
        self.balance = balance
        _check_train_fraction(train_fraction)
        self.train_fraction = train_fraction
        self.train_fraction_seed = train_fraction_seed
        self.all_as_test = all_as_test
        self.predict_images = None if predict_images is None else Path(predict_images)
        self.splits: dict[str, list[Record]] = {}
        self.groups: dict[str, str] = {}
        self.predict_set: Dataset

    def _chosen_tasks(self, select_tasks: list[str] | None) -> dict[str, int]:
        """The tasks learnt: ``select_tasks`` of the data set's ``label_tasks``, in the data set's order."""
        if select_tasks is None:
            return dict(self.label_tasks)
        unknown = set(select_tasks) - self.label_tasks.keys()
        if unknown or not select_tasks:
            named = f"names {sorted(unknown)}" if unknown else "is empty"
            raise ConfigError(f"--data.select_tasks {named}; this data set labels {sorted(self.label_tasks)}.")
        return {task: n for task, n in self.label_tasks.items() if task in select_tasks}

    def _chosen_views(self, chosen: dict[str, tuple[str, int]] | None) -> dict[str, tuple[str, int]]:
        """The binary views (the chosen ones, else the data set's ``label_views``) of the tasks learnt."""
        views = self.label_views if chosen is None else chosen
        views = {name: (task, int(grade)) for name, (task, grade) in views.items()}
        for name, (task, grade) in views.items():
            if task not in self.label_tasks or not 1 <= grade < self.label_tasks[task]:
                raise ConfigError(
                    f"--data.binary_views: {name} is [{task}, {grade}]; name a task of {sorted(self.label_tasks)} "
                    "and its lowest positive grade, from 1 to the task's number of classes - 1."
                )
        return {name: view for name, view in views.items() if view[0] in self.tasks}

    @property
    def class_names(self) -> dict[str, list[str]]:
        """Task -> class names: the data set's own where it names its classes, else the class indices."""
        return {task: self.label_class_names.get(task, [str(k) for k in range(n)]) for task, n in self.tasks.items()}

    @property
    def ordinal_tasks(self) -> list[str]:
        """The tasks learnt whose classes are ordered (grades)."""
        return [task for task in self.tasks if task in self.label_ordinal]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Channels, height, width of the images served to the net: what the eval pipeline makes of a cached image.

        Found by running ``eval_transforms`` on a black uint8 image of the cache's size and channels, which holds
        for any pipeline and costs one transform.

        Raises:
            ConfigError: If the pipeline fails on that image or does not return one C x H x W image.
        """
        size, channels = self.preprocessing.size, self.preprocessing.channels
        image = f"{channels} x {size} x {size} uint8 image"
        try:
            shape = tuple(self.eval_transform(torch.zeros(channels, size, size, dtype=torch.uint8)).shape)
        except Exception as error:  # a configured pipeline can raise anything; all mean it does not fit
            raise ConfigError(f"--data.eval_transforms fails on a {image} ({summarise_error(error)}).") from error
        if len(shape) != 3:
            raise ConfigError(
                f"--data.eval_transforms turns a {image} into shape {list(shape)}, not channels x height x width."
            )
        return shape

    def denormalise(self, images: Tensor) -> Tensor:
        """Served images as they are shown to a person: the training pipeline's last ``Normalize`` undone.

        Without a ``Normalize`` in the pipeline, each image is stretched from its minimum to its maximum.
        """
        pipeline = self.train_transform if self.augment else self.eval_transform
        normalisations = [t for t in pipeline.transforms if isinstance(t, v2.Normalize)]
        if not normalisations:
            return super().denormalise(images)
        mean, std = (torch.tensor(v, dtype=images.dtype, device=images.device) for v in
                     (normalisations[-1].mean, normalisations[-1].std))  # fmt: skip
        return (images * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)).clamp(0, 1)

    def split_records(self) -> dict[str, list[Record]]:
        """Read the data set and split it: ``{"train": [...], "val": [...], "test": [...]}``."""
        raise NotImplementedError

    def _cache(self, records: Sequence[Record], *, progress: bool) -> ImageCache:
        return build_cache(
            [record.path for record in records],
            self.cache_dir,
            self.preprocessing,
            self.cache_settings,
            workers=self.preprocess_workers,
            skip_corrupt=self.skip_corrupt,
            progress=progress,
        )

    def _predicting_images(self) -> bool:
        """Whether this run predicts ``predict_images`` (which needs nothing of the data set itself)."""
        return (
            self.predict_images is not None
            and self.trainer is not None
            and self.trainer.state.fn == TrainerFn.PREDICTING
        )

    def _split(self) -> dict[str, list[Record]]:
        """The data set's splits, the training split reduced to ``train_fraction``; or all of it as test."""
        splits = self.split_records()
        if self.all_as_test:
            return {"train": [], "val": [], "test": [record for split in SPLITS for record in splits[split]]}
        if self.train_fraction is not None:
            train = splits["train"]
            if isinstance(self.train_fraction, int) and self.train_fraction > len(train):
                raise ConfigError(
                    f"--data.train_fraction is {self.train_fraction} images, but the training split has only "
                    f"{len(train)}; give at most {len(train)}, or a fraction."
                )
            if self.train_fraction not in (1.0, len(train)):
                seed = self.train_fraction_seed
                _, splits["train"] = holdout(train, self.train_fraction, seed=seed, option="--data.train_fraction")
        return splits

    def prepare_data(self) -> None:
        """Read and validate the data set (or the images to predict), and build the preprocessing cache (on rank 0)."""
        if self._predicting_images():
            self._cache(read_unlabelled(self.predict_images, self.predict_image_column), progress=True)
            return
        self.splits = self._split()
        if self.trainer is not None:
            self._check_splits(self.trainer.state.fn.value)  # before the cache is built
        self._cache([record for split in SPLITS for record in self.splits[split]], progress=True)

    def _check_splits(self, stage: str) -> None:
        """Refuse empty splits that ``stage`` needs: train and val to fit, val to validate, test to test or predict."""
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage, ()):
            if not self.splits[split]:
                raise ConfigError(
                    f"the {split} split of {self.root} holds no images, and 'medcls {stage}' needs some; check the "
                    "data's split settings (a split column, split folders, --data.val_size, --data.test_size, "
                    "--data.all_as_test)."
                )

    def setup(self, stage: str) -> None:
        """Split the records and open the cache (which decodes nothing when it is up to date).

        Raises:
            ConfigError: If a split this stage needs (train and val to fit, val to validate, test to test) is empty.
        """
        if self._predicting_images():
            records = read_unlabelled(self.predict_images, self.predict_image_column)
            cache = self._cache(records, progress=False)
            left_out = set(cache.skipped)
            records = [record for record in records if record.path.resolve() not in left_out]
            self.predict_set = CachedImageDataset(records, cache, self._worker_transform(train=False), [])
            return
        self.splits = self._split()
        cache = self._cache([record for split in SPLITS for record in self.splits[split]], progress=False)
        if cache.skipped:
            left_out = set(cache.skipped)
            self.splits = {s: [r for r in rs if r.path.resolve() not in left_out] for s, rs in self.splits.items()}
        self._check_splits(stage)
        self.groups = {record.id: record.group for records in self.splits.values() for record in records}
        tasks = list(self.tasks)
        train, evaluate = self._worker_transform(train=True), self._worker_transform(train=False)
        self.train_set = CachedImageDataset(self.splits["train"], cache, train, tasks)
        self.val_set = CachedImageDataset(self.splits["val"], cache, evaluate, tasks)
        self.test_set = CachedImageDataset(self.splits["test"], cache, evaluate, tasks)
        self.predict_set = self.test_set
        if self.trainer is not None and self.trainer.logger is not None:
            log_dir = self.trainer.log_dir  # a collective call under DDP: on every process
            if self.trainer.is_global_zero:
                self.write_splits(Path(log_dir) / "splits.csv")

    def _worker_transform(self, *, train: bool) -> v2.Compose | None:
        """The pipeline the loader workers run on each image: none when the pipelines run on the device."""
        if self.transforms_on == "device":
            return None
        return self.train_transform if train and self.augment else self.eval_transform

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """With ``transforms_on: device``, transform the batch's uint8 images where they now are.

        The loaders then serve the cached images as they are stored, B x H x W x C; they become B x C x H x W
        here (in channels-last memory, which convolutions on a GPU prefer). Training batches get the training
        pipeline (unless ``augment`` is off), all others the evaluation one.
        """
        if self.transforms_on == "workers":
            return batch
        images = batch["image"].permute(0, 3, 1, 2)
        if self.trainer is not None and self.trainer.training and self.augment:
            with self._augmentation_stream():
                batch["image"] = self.batch_transforms["train"](images)
        else:
            batch["image"] = self.batch_transforms["eval"](images)
        return batch

    @contextmanager
    def _augmentation_stream(self) -> Iterator[None]:
        """Draw the device augmentation's random parameters from a stream of this process's own.

        Seeded from the run's seed and the process's rank: under DDP, where every process has the same seed,
        each GPU's images then get parameters of their own, as each loader worker's do.
        """
        if self._augmentation_rng_state is None:
            rank = getattr(self.trainer, "global_rank", 0)
            self._augmentation_rng_state = torch.Generator().manual_seed(torch.initial_seed() + rank).get_state()
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._augmentation_rng_state)
            yield
            self._augmentation_rng_state = torch.get_rng_state()

    def group_of(self, image_id: str) -> str:
        """The group of an image, as its reader defined it (e.g. both images of a duplicate pair)."""
        return self.groups.get(image_id, image_id)

    def write_splits(self, path: Path) -> None:
        """Write which split every image is in, with its group and labels."""

        def write(file: Any) -> None:
            writer = csv.writer(file)
            writer.writerow(["id", "split", "group", *self.tasks])
            for split in SPLITS:
                for record in self.splits[split]:
                    labels = (record.labels[t] for t in self.tasks)
                    writer.writerow(
                        [record.id, split, record.group, *("" if y == MISSING_LABEL else y for y in labels)]
                    )

        atomic_write(path, write)

    def class_counts(self, task: str) -> Tensor:
        """Images per class of ``task`` in the training split (read in ``prepare_data`` or ``setup``).

        Images unlabelled for the task are not counted.
        """
        counts = Counter(record.labels[task] for record in self.splits["train"])
        return torch.tensor([counts[c] for c in range(self.tasks[task])], dtype=torch.float)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; class-balanced draws with ``balance``."""
        if self.balance is None:
            return super().train_dataloader()
        # Images unlabelled for the task are drawn as often as an average image (weight 1).
        weights = torch.cat([self.class_weights(self.balance), torch.ones(1)])
        labels = torch.tensor([record.labels[self.balance] for record in self.splits["train"]])
        sampler = WeightedRandomSampler(weights[labels].double(), num_samples=len(labels), replacement=True)
        return self._loader(self.train_set, train=True, sampler=sampler)

    def predict_dataloader(self) -> DataLoader:
        """The test split, or the ``predict_images``, in a fixed order, for ``medcls predict``."""
        return self._loader(self.predict_set)


def _check_train_fraction(fraction: float | int | None) -> None:
    if fraction is None:
        return
    if isinstance(fraction, int) and fraction < 1 or not isinstance(fraction, int) and not 0 < fraction <= 1:
        raise ConfigError(
            f"--data.train_fraction is {fraction}; give a fraction of the training split in (0, 1] (e.g. 0.25) or a "
            "number of images (at least 1)."
        )
