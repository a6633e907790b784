r"""Readers: a data set's folder, as its owners distribute it, into validated :class:`Record`\ s.

A reader only reads and validates (MNIST's reader checks its four IDX files in full, which torchvision then
reads); splitting, caching and loading are the data modules' work.
"""

from medcls.data.readers.records import Record, resolve_inside

__all__ = ["Record", "resolve_inside"]
