"""Fundus photographs as records: the record-based data module with the fundus preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.cached import CachedImageDataModule
from medcls.data.preprocessing.fundus import FundusPreprocessing


class FundusDataModule(CachedImageDataModule):
    """Fundus photographs listed as records: field of view cropped and resized once into a cache, split, loaded.

    Subclasses set ``label_tasks`` (every task the data set labels; before calling this class's
    ``__init__``, which checks the settings naming tasks against it) and read their data set in
    :meth:`split_records`. ``prepare_data`` builds the cache (field of view cropped, resized once, by
    :class:`~medcls.data.preprocessing.fundus.FundusPreprocessing`; rank 0 only under DDP); training reads
    only the cache. The assignment of every image to train/val/test is written to ``splits.csv`` in the
    run's log dir.

    Args:
        root: The data set's folder, as distributed.
        image_size: Side of the square cached images, in pixels.
        contrast: Ben Graham's contrast normalisation (subtract the local average colour).
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.cached.CachedImageDataModule`.
    """

    def __init__(self, root: str | Path, image_size: int = 512, contrast: bool = False, **kwargs: Any) -> None:
        super().__init__(root, FundusPreprocessing(size=image_size, contrast=contrast), **kwargs)
