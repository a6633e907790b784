"""Data modules: what ``--data`` takes, and the readers, caches and transforms under them."""

from medcls.data.aptos import APTOSDataModule
from medcls.data.base import TaskDataModule
from medcls.data.eyepacs import EyePACSDataModule
from medcls.data.folder import FolderDataModule
from medcls.data.fundus import FundusDataModule
from medcls.data.idrid import IDRiDDataModule
from medcls.data.messidor import MessidorDataModule
from medcls.data.messidor2 import Messidor2DataModule
from medcls.data.mnist import MNISTDataModule
from medcls.data.synthetic import SyntheticFundusDataModule
from medcls.data.table import TableDataModule
from medcls.data.tuberculosis import TuberculosisDataModule

__all__ = [
    "APTOSDataModule",
    "EyePACSDataModule",
    "FolderDataModule",
    "FundusDataModule",
    "IDRiDDataModule",
    "MNISTDataModule",
    "Messidor2DataModule",
    "MessidorDataModule",
    "SyntheticFundusDataModule",
    "TableDataModule",
    "TaskDataModule",
    "TuberculosisDataModule",
]
