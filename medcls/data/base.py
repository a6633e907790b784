"""What every medcls data module shares, and what the model and the report ask of one: tasks, class counts, loaders."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from medcls.errors import ConfigError


class TaskDataModule(LightningDataModule):
    """A data module whose batches are dicts: ``"image"``, one class-index tensor per task, ``"id"``.

    Subclasses set ``tasks`` (task name -> number of classes, linked into the model) and ``input_shape``,
    implement :meth:`class_counts`, and, in ``setup``, set the datasets ``train_set``, ``val_set`` and
    ``test_set``. ``predict`` runs over the test set. Settings are checked as the module is built: an
    impossible one is a :class:`~medcls.errors.ConfigError` naming its option (``--data.batch_size``),
    before anything is read or written.

    What the model and the evaluation report ask of a data module, beyond ``tasks``, is what this class
    defines: ``class_names``, ``ordinal_tasks``, ``binary_views``, ``input_shape``, :meth:`group_of`,
    :meth:`class_counts`, :meth:`class_weights` and :meth:`denormalise`. A label may be
    :data:`~medcls.data.readers.records.MISSING_LABEL` (-1) where a kept image is unlabelled for a task:
    the loss and the metrics of that task leave it out.

    Args:
        batch_size: Images per training batch.
        eval_batch_size: Images per validation, test and prediction batch (default: ``batch_size``).
        num_workers: Loader worker processes (0 loads in the main process).
        augment: Augment the training images; ``false`` serves them as validation images are served (as in the
            lecture's sanity check of overfitting two batches).
    """

    tasks: dict[str, int]
    input_shape: tuple[int, int, int]
    """Channels, height, width of the images served to the net (a read-only property of each data module)."""
    binary_views: dict[str, tuple[str, int]] = {}
    """Binary questions of graded tasks, name -> (task, lowest positive grade); linked into the model."""
    ordinal_tasks: list[str] = []
    """The tasks whose classes are ordered (grades): they get a quadratic weighted kappa; linked into the model."""

    def __init__(
        self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0, augment: bool = True
    ) -> None:
        super().__init__()
        for option, value in (("--data.batch_size", batch_size), ("--data.eval_batch_size", eval_batch_size)):
            if value is not None and value < 1:
                raise ConfigError(f"{option} is {value}; it must be at least 1.")
        if num_workers < 0:
            raise ConfigError(f"--data.num_workers is {num_workers}; use 0 (load in the main process) or more.")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.train_set: Dataset
        self.val_set: Dataset
        self.test_set: Dataset

    @property
    def class_names(self) -> dict[str, list[str]]:
        """Task -> the names of its classes, index = class index; linked into the model and kept in its checkpoint.

        By default the class indices themselves, ``"0"``, ``"1"``, ...
        """
        return {task: [str(k) for k in range(n)] for task, n in self.tasks.items()}

    def denormalise(self, images: Tensor) -> Tensor:
        """Served images (B x C x H x W) as they are shown to a person: values in [0, 1].

        By default each image is stretched from its own minimum to its maximum; data modules that know their
        normalisation invert it.
        """
        flat = images.detach().float().flatten(1)
        low, high = flat.min(1).values, flat.max(1).values
        scale = (high - low).clamp(min=1e-12)
        return ((images.float() - low.view(-1, 1, 1, 1)) / scale.view(-1, 1, 1, 1)).clamp(0, 1)

    def group_of(self, image_id: str) -> str:
        """The group of an image (images of a group are resampled together); by default the image itself."""
        return image_id

    def class_counts(self, task: str) -> Tensor:
        """Images per class of ``task`` in the training split, a float tensor of ``tasks[task]`` counts.

        Every medcls data module counts its classes; it may need ``setup("fit")`` to have run. Images
        unlabelled for the task are not counted.
        """
        raise NotImplementedError(f"{type(self).__name__} does not count the classes of its training split")

    def class_weights(self, task: str) -> Tensor:
        """Inverse-frequency weights N / (K n_c) of the K classes of ``task`` in the training split of N images.

        Every class present then weighs N / K in total; a class absent from the split gets N / K.
        """
        counts = self.class_counts(task)
        return counts.sum() / (len(counts) * counts.clamp(min=1))

    def _loader(self, dataset: Dataset, *, train: bool = False, sampler: Sampler | None = None) -> DataLoader:
        batch_size = self.batch_size if train else self.eval_batch_size
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            # A last training batch of one image breaks batch normalisation: leave that one image out of the epoch.
            drop_last=train and len(dataset) > 1 and len(dataset) % batch_size == 1,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.trainer is not None and self.trainer.strategy.root_device.type == "cuda",
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order."""
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        """Test batches in a fixed order."""
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        """The test set, in a fixed order, for ``medcls predict``."""
        return self._loader(self.test_set)
