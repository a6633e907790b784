"""The fundus training loader's images per second from each cache format, against decoding the originals."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from medcls.data.cache import CacheSettings, build_cache
from medcls.data.cached import CachedImageDataset
from medcls.data.preprocessing.fundus import FundusPreprocessing
from medcls.data.readers.idrid import read_idrid
from medcls.data.readers.records import Record
from medcls.data.transforms import default_train_transforms
from medcls.synthetic import write_idrid_tree


class Originals(Dataset):
    """The uncached baseline: decode each full-size original, then the same transforms.

    Args:
        records: The images.
        transform: The training pipeline.
    """

    def __init__(self, records: list[Record], transform: v2.Compose) -> None:
        self.records, self.transform = records, transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        with Image.open(self.records[index].path) as image:
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
        return {"image": self.transform(pixels), **self.records[index].labels}


def images_per_second(dataset: Dataset, workers: int, epochs: int) -> float:
    """Images per second of ``epochs`` shuffled passes over ``dataset`` in batches of 16; worker start-up not timed."""
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    next(iter(loader))
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    return epochs * len(dataset) / (time.perf_counter() - start)


def loader_rates(
    images: int, workers: int, epochs: int, size: tuple[int, int] = (4288, 2848), cache_size: int = 512
) -> tuple[dict[str, float], dict[str, float]]:
    """Images per second of the training loader (random resized crop 224, flips, normalisation) from each source.

    Writes ``images`` synthetic fundus photographs of ``size`` (IDRiD's by default) in a temporary folder, then
    times the loader over the full-size originals (one pass) and over each cache format (``epochs`` passes).

    Args:
        images: Synthetic photographs to write.
        workers: Loader (and cache build) processes.
        epochs: Passes over the cached images.
        size: ``(width, height)`` of the photographs.
        cache_size: Side of the cached images.

    Returns:
        Source name (``full-size originals``, ``512 px jpeg cache``, ``512 px memmap cache``) -> images per second
        of the loader; cache format -> images per second of the cache's build.
    """
    transform = v2.Compose(default_train_transforms(224))
    with tempfile.TemporaryDirectory() as scratch:
        tree = write_idrid_tree(Path(scratch), train=images, test=1, size=size, seed=0)
        records = read_idrid(tree)["train"]
        rates = {"full-size originals": images_per_second(Originals(records, transform), workers, 1)}
        builds = {}
        for cache_format in ("jpeg", "memmap"):
            start = time.perf_counter()
            cache = build_cache(
                [record.path for record in records], Path(scratch) / "cache", FundusPreprocessing(size=cache_size),
                CacheSettings(format=cache_format), workers=workers, progress=False,
            )  # fmt: skip
            builds[cache_format] = len(records) / (time.perf_counter() - start)
            dataset = CachedImageDataset(records, cache, transform, ["dr", "dme"])
            rates[f"{cache_size} px {cache_format} cache"] = images_per_second(dataset, workers, epochs)
    return rates, builds
