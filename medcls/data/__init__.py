"""Data modules: what ``--data`` takes, and the readers, caches and transforms under them."""

from medcls.data.base import TaskDataModule
from medcls.data.folder import FolderDataModule
from medcls.data.fundus import FundusDataModule
from medcls.data.idrid import IDRiDDataModule
from medcls.data.messidor import MessidorDataModule
from medcls.data.mnist import MNISTDataModule
from medcls.data.synthetic import SyntheticFundusDataModule
from medcls.data.table import TableDataModule

__all__ = [
    "FolderDataModule",
    "FundusDataModule",
    "IDRiDDataModule",
    "MNISTDataModule",
    "MessidorDataModule",
    "SyntheticFundusDataModule",
    "TableDataModule",
    "TaskDataModule",
]
