"""The fundus training loader's images per second: transforms in the workers or on the device, from each cache."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from medcls.data.batch_transforms import BatchPipeline
from medcls.data.cache import CacheSettings, build_cache
from medcls.data.cached import CachedImageDataset
from medcls.data.preprocessing.fundus import FundusPreprocessing
from medcls.data.readers.idrid import read_idrid
from medcls.data.readers.records import Record
from medcls.data.transforms import default_train_transforms
from medcls.synthetic import write_idrid_tree

INPUT_SIZE = 224


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


@dataclass(frozen=True)
class CacheRates:
    """Images per second from one cache.

    Attributes:
        workers_transform: The loader with the training pipeline in its workers (``transforms_on: workers``).
        reading: The loader's reading side alone, as ``transforms_on: device`` runs it: cache read, collate, and
            pinning where there is a CUDA device.
        device_transform: The training pipeline on whole batches on the device (the GPU if there is one, else the
            CPU), the batches already there.
    """

    workers_transform: float
    reading: float
    device_transform: float


def images_per_second(dataset: Dataset, workers: int, epochs: int, batch_size: int) -> float:
    """Images per second of ``epochs`` shuffled passes over ``dataset``; worker start-up is not timed.

    The loader is the data modules' own: persistent workers, and pinned memory where there is a CUDA device.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())  # fmt: skip
    next(iter(loader))
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    return epochs * len(dataset) / (time.perf_counter() - start)


def batch_transform_rate(cache_size: int, batch_size: int, batches: int = 8) -> float:
    """Images per second of the training pipeline on whole ``cache_size`` batches on the device."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipeline = BatchPipeline(default_train_transforms(INPUT_SIZE), "--data.train_transforms")
    batch = torch.randint(0, 256, (batch_size, 3, cache_size, cache_size), dtype=torch.uint8, device=device)
    pipeline(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(batches):
        pipeline(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batches * batch_size / (time.perf_counter() - start)


def loader_rates(
    images: int,
    workers: int,
    epochs: int,
    cache_sizes: tuple[int, ...] = (256, 512),
    batch_size: int = 64,
    size: tuple[int, int] = (4288, 2848),
    pass_images: int = 2048,
) -> tuple[float, dict[str, CacheRates]]:
    """Images per second of the training loader (random resized crop 224, flips, normalisation) from each source.

    Writes ``images`` synthetic fundus photographs of ``size`` (IDRiD's by default) in a temporary folder, times
    the loader over the full-size originals (one pass), then, for each cache size and format, the loader with the
    pipeline in the workers, its reading side alone, and the pipeline on the device (``epochs`` passes each).

    Args:
        images: Synthetic photographs to write.
        workers: Loader (and cache build) processes.
        epochs: Timed passes over each cache.
        cache_sizes: Sides of the cached images.
        batch_size: Images per batch.
        size: ``(width, height)`` of the photographs.
        pass_images: Images per pass: the photographs are served repeatedly (from the page cache, as a cache that
            fits in memory is), so that a pass lasts long enough to time at thousands of images per second.

    Returns:
        Images per second over the full-size originals; ``"<side> px <format>"`` -> the rates from that cache.
    """
    transform = v2.Compose(default_train_transforms(INPUT_SIZE))
    with tempfile.TemporaryDirectory() as scratch:
        records = read_idrid(write_idrid_tree(Path(scratch), train=images, test=1, size=size, seed=0))["train"]
        originals = images_per_second(Originals(records, transform), workers, 1, batch_size)
        served = records * -(-pass_images // len(records))
        rates = {}
        for cache_size in cache_sizes:
            device_rate = batch_transform_rate(cache_size, batch_size)
            for cache_format in ("jpeg", "memmap"):
                cache = build_cache(
                    [record.path for record in records], Path(scratch) / "cache", FundusPreprocessing(size=cache_size),
                    CacheSettings(format=cache_format), workers=workers, progress=False,
                )  # fmt: skip
                rates[f"{cache_size} px {cache_format}"] = CacheRates(
                    workers_transform=images_per_second(
                        CachedImageDataset(served, cache, transform, ["dr", "dme"]), workers, epochs, batch_size
                    ),
                    reading=images_per_second(
                        CachedImageDataset(served, cache, None, ["dr", "dme"]), workers, epochs, batch_size
                    ),
                    device_transform=device_rate,
                )
    return originals, rates
