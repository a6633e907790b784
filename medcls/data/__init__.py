"""Data modules: what ``--data`` takes, and the readers, caches and transforms under them."""

from medcls.data.base import TaskDataModule
from medcls.data.mnist import MNISTDataModule

__all__ = ["MNISTDataModule", "TaskDataModule"]
