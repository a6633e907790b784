"""Data modules: what ``--data`` takes, and the readers, caches and transforms under them."""

from medcls.data.base import TaskDataModule
from medcls.data.fundus import FundusDataModule
from medcls.data.idrid import IDRiDDataModule
from medcls.data.messidor import MessidorDataModule
from medcls.data.mnist import MNISTDataModule
from medcls.data.synthetic import SyntheticFundusDataModule

__all__ = [
    "FundusDataModule",
    "IDRiDDataModule",
    "MNISTDataModule",
    "MessidorDataModule",
    "SyntheticFundusDataModule",
    "TaskDataModule",
]
