"""What every medcls data module shares: the tasks it labels and its data loaders."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset


class TaskDataModule(LightningDataModule):
    """A data module whose batches are dicts: ``"image"``, one class-index tensor per task, ``"id"``.

    Subclasses set ``tasks`` (task name -> number of classes, linked into the model) and, in ``setup``,
    the datasets ``train_set``, ``val_set`` and ``test_set``. ``predict`` runs over the test set.

    Args:
        batch_size: Images per training batch.
        eval_batch_size: Images per validation, test and prediction batch (default: ``batch_size``).
        num_workers: Loader worker processes (0 loads in the main process).
    """

    tasks: dict[str, int]

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.train_set: Dataset
        self.val_set: Dataset
        self.test_set: Dataset

    def _loader(self, dataset: Dataset, *, train: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
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
