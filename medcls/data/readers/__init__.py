r"""Readers: a data set's folder, as its owners distribute it, into validated :class:`Record`\ s.

A reader only reads and validates (MNIST's reader checks its four IDX files in full, which torchvision then
reads); splitting, caching and loading are the data modules' work. Users' own data comes as a table
(:func:`read_table`), a folder per class (:func:`read_folder`), or images to predict (:func:`read_unlabelled`).
"""

from medcls.data.readers.folder import read_folder
from medcls.data.readers.records import MISSING_LABEL, Record, resolve_inside
from medcls.data.readers.table import IMAGE_EXTENSIONS, SPLIT_NAMES, LabelledImages, read_table, read_unlabelled

__all__ = [
    "IMAGE_EXTENSIONS",
    "MISSING_LABEL",
    "SPLIT_NAMES",
    "LabelledImages",
    "Record",
    "read_folder",
    "read_table",
    "read_unlabelled",
    "resolve_inside",
]
