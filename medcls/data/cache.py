"""The on-disk image cache: pixels made once by a preprocessing, stored under a key, read back fast.

Full-size photographs decode at ~100 images/s on 16 cores while a ResNet-50 at 512 px trains at ~900
images/s, so training reads only a cache built once by :func:`build_cache`, which calls the
:class:`~medcls.data.preprocessing.Preprocessing` it is given on every source file.

The cache lives in ``cache_dir/<key>/``, the key hashing the storage settings, the preprocessing's class
name and fields, and every source file's path, size and modification time, so any change rebuilds it and
an unchanged set is reused without decoding anything. A build fills a hidden sibling folder that is
renamed into place once complete (:func:`~medcls.io.atomic_directory`), with ``manifest.json`` written
last: a build killed part-way leaves nothing a later run trusts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image
from tqdm import tqdm

from medcls.data.preprocessing import Preprocessing
from medcls.errors import ConfigError, DataError
from medcls.io import atomic_directory

logger = logging.getLogger(__name__)

# Part of every cache key: bump it when the key or the stored layout changes, so that old caches are rebuilt.
_VERSION = 3
_MANIFEST = "manifest.json"
_ARRAY = "images.npy"
# How many unreadable images the error message names; the manifest lists them all.
_NAMED_UNREADABLE = 3
# How often a build's worker checks that the process that started it is still there.
_PARENT_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class CacheSettings:
    """How a cache stores its images; every field is part of the cache key.

    The data modules' ``--data.cache_format`` is ``format``; the error about it names that option.

    Attributes:
        format: ``"jpeg"``: one JPEG per image (compact; grey for one channel); ``"memmap"``: one uint8 ``.npy``
            array of shape N x size x size x channels, read through a memory map (fastest: no decoding at all).
        jpeg_quality: Quality of the cached JPEGs (``format="jpeg"`` only).

    Raises:
        ConfigError: If ``format`` is out of range.
        ValueError: If ``jpeg_quality`` is (not a command-line option).
    """

    format: Literal["jpeg", "memmap"] = "jpeg"
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.format not in ("jpeg", "memmap"):
            raise ConfigError(f"--data.cache_format is {self.format!r}; choose 'jpeg' or 'memmap'.")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"CacheSettings.jpeg_quality is {self.jpeg_quality}; it must be in 1..100.")


class ImageCache:
    """A finished cache of preprocessed images, as :func:`build_cache` returns it.

    It pickles without any pixels, so it travels cheaply into DataLoader workers: the memory map of
    a ``"memmap"`` cache is opened lazily, once per process.

    Attributes:
        root: The cache's folder, ``cache_dir/<key>``.
        settings: How it stores its images.
        preprocessing: The preprocessing it was built with, ``{"name": class name, "fields": {...}}``.
        channels: Channels of its images: 1 (grey) or 3 (RGB), the preprocessing's.
        sources: The cached source files (resolved), in the order given; index ``i`` is image ``i``.
        skipped: Source files that could not be read and are not in the cache.
    """

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.settings = CacheSettings(**manifest["settings"])
        self.preprocessing: dict[str, Any] = manifest["preprocessing"]
        self.channels: int = manifest["channels"]
        self.sources = [Path(p) for p in manifest["sources"]]
        self.skipped = [Path(p) for p in manifest["skipped"]]
        self._errors: list[str] = list(manifest["skipped"].values())
        self._rows: list[int] = manifest["rows"]
        self._index = {path: i for i, path in enumerate(self.sources)}
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sources)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and Path(path).resolve() in self._index

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def index_of(self, path: str | os.PathLike[str]) -> int:
        """Return the index of a source file in the cache.

        Raises:
            KeyError: If the file is not in the cache (not a source, or skipped as unreadable).
        """
        resolved = Path(path).resolve()
        if resolved not in self._index:
            why = "it was skipped as unreadable" if resolved in self.skipped else "it is not one of its sources"
            raise KeyError(f"{path} is not in the image cache {self.root}: {why}")
        return self._index[resolved]

    def read(self, i: int) -> np.ndarray:
        """Return image ``i`` as a writable size x size x channels uint8 array (one channel keeps its axis).

        A memmap cache returns a copy-on-write view of the file: no copy is made unless the array is written to,
        and writing never changes the cache.
        """
        row = self._rows[i]
        if self.settings.format == "memmap":
            if self._array is None:
                self._array = np.load(self.root / _ARRAY, mmap_mode="c")
            return self._array[row]
        with Image.open(self.root / f"{row:06d}.jpg") as image:
            pixels = np.array(image)
        return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def build_cache(
    sources: Sequence[Path],
    cache_dir: Path,
    preprocessing: Preprocessing,
    settings: CacheSettings | None = None,
    *,
    workers: int = 0,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> ImageCache:
    """Preprocess image files into ``cache_dir``, or reuse the cache built for the same input.

    Reusing only stats the sources; it decodes nothing. An unreadable source does not stop the
    build: the cache is completed without it (so that retrying with ``skip_corrupt=True`` costs
    nothing), and then the error is raised unless ``skip_corrupt`` is set. Worker processes exit
    on their own within a second of the building process's death, however it died.

    Args:
        sources: The image files, in the order the cache indexes them.
        cache_dir: Parent folder of all caches; created if needed.
        preprocessing: Turns each file into the pixels stored (pickled into the worker processes).
        settings: How to store them (default: :class:`CacheSettings` defaults).
        workers: Worker processes; 0 means one per CPU, 1 builds in this process.
        skip_corrupt: Leave unreadable images out (listed in the manifest and in
            :attr:`ImageCache.skipped`, with a warning) instead of raising.
        progress: Report the build's progress on stderr: a progress bar on a terminal, else (a log
            file) one line as the build starts and one as it ends.

    Returns:
        The cache.

    Raises:
        DataError: If a source is missing, listed twice, or (without ``skip_corrupt``) unreadable.
    """
    settings = settings or CacheSettings()
    kind = preprocessing.kind
    paths = [Path(p).resolve() for p in sources]
    if not paths:
        raise DataError(f"No {_images(kind)} to cache: the source list is empty.")
    if len(set(paths)) < len(paths):
        twice = sorted({str(p) for p in paths if paths.count(p) > 1})
        named = ", ".join(twice)
        raise DataError(f"{_images(kind).capitalize()} listed more than once: {named}; list each image once.")
    key = _cache_key(paths, preprocessing, settings)
    root = Path(cache_dir) / key
    cache = _open(root, key)
    if cache is None:
        cache = _build(paths, root, key, preprocessing, settings, workers or os.cpu_count() or 1, progress)
    else:  # said once, where the cache is prepared (under DDP every process opens it again in setup)
        logger.log(logging.INFO if progress else logging.DEBUG, "Reusing the %s cache %s (%d images).", kind, root,
                   len(cache))  # fmt: skip
    if cache.skipped:
        named = "; ".join(cache._errors[:_NAMED_UNREADABLE])
        if len(cache.skipped) > _NAMED_UNREADABLE:
            named += f"; and {len(cache.skipped) - _NAMED_UNREADABLE} more"
        if not skip_corrupt:
            raise DataError(
                f"{len(cache.skipped)} {_images(kind, plural='(s)')} could not be read: {named} (all listed in "
                f"{root / _MANIFEST}). Replace them with intact copies, or pass --data.skip_corrupt true "
                "to leave them out."
            )
        logger.warning(
            "Left %d unreadable %s out of the cache (all listed in %s): %s",
            len(cache.skipped),
            _images(kind, plural="(s)"),
            root / _MANIFEST,
            named,
        )
    return cache


def _images(kind: str, *, plural: str = "s") -> str:
    """How messages name images of a kind: ``"fundus images"``, and just ``"images"`` for the kind ``"image"``."""
    return ("image" if kind == "image" else f"{kind} image") + plural


def _describe(preprocessing: Preprocessing) -> dict[str, Any]:
    """The preprocessing as the key and the manifest record it: class name and fields."""
    return {"name": type(preprocessing).__name__, "fields": asdict(preprocessing)}


def _cache_key(paths: list[Path], preprocessing: Preprocessing, settings: CacheSettings) -> str:
    """Hash the settings, the preprocessing and each file's path, size and mtime: stat only, no decoding."""
    described = [_VERSION, asdict(settings), _describe(preprocessing)]
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
    for path in paths:
        try:
            stat = path.stat()
        except OSError as exc:
            raise DataError(
                f"{path}: cannot read this {_images(preprocessing.kind, plural='')} ({exc.strerror}); check the path."
            ) from exc
        digest.update(f"\n{path}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _open(root: Path, key: str) -> ImageCache | None:
    """Return the cache in ``root`` if its manifest is complete and matches ``key``, else None."""
    try:
        manifest = json.loads((root / _MANIFEST).read_text())
        if manifest["version"] != _VERSION or manifest["key"] != key:
            return None
        return ImageCache(root, manifest)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _build(
    paths: list[Path],
    root: Path,
    key: str,
    preprocessing: Preprocessing,
    settings: CacheSettings,
    workers: int,
    progress: bool,
) -> ImageCache:
    """Build the cache in a partial sibling of ``root``, renamed into place when complete.

    Something already in the way is a concurrent build of the same cache that finished first (kept, and
    used) or a folder without a valid manifest, which is never trusted (replaced).
    """
    with atomic_directory(root, replace=lambda found: _open(found, key) is None) as partial:
        if settings.format == "memmap":
            # Only creates the file: workers write their rows through maps of their own.
            shape = (len(paths), *_image_shape(preprocessing))
            open_memmap(partial / _ARRAY, mode="w+", dtype=np.uint8, shape=shape)
        tasks = [(row, path, preprocessing, settings, partial) for row, path in enumerate(paths)]
        with ExitStack() as stack:
            if workers > 1 and len(paths) > 1:
                pool = ProcessPoolExecutor(min(workers, len(paths)), initializer=_exit_with_parent)
                results = stack.enter_context(pool).map(_build_one, tasks)
            else:
                results = map(_build_one, tasks)
            reported = _with_progress(results, len(tasks), root, preprocessing, settings, progress)
            errors = dict(zip(paths, reported, strict=True))
        rows = [row for row, path in enumerate(paths) if errors[path] is None]
        manifest = {
            "version": _VERSION,
            "key": key,
            "settings": asdict(settings),
            "preprocessing": _describe(preprocessing),
            "channels": preprocessing.channels,
            "sources": [str(paths[row]) for row in rows],
            "rows": rows,
            "skipped": {str(path): error for path, error in errors.items() if error is not None},
        }
        (partial / _MANIFEST).write_text(json.dumps(manifest, indent=1))
    # Ours, or the concurrent build's that was kept: the same key, so the same images.
    return ImageCache(root, json.loads((root / _MANIFEST).read_text()))


def _with_progress(
    results: Iterable[str | None],
    total: int,
    root: Path,
    preprocessing: Preprocessing,
    settings: CacheSettings,
    progress: bool,
) -> Iterable[str | None]:
    """Yield the results, reporting progress on stderr: a bar on a terminal, else a line at each end.

    A log file would otherwise fill with the bar's carriage-return redraws.
    """
    kind = preprocessing.kind
    if not progress:
        logger.debug("Building the %s cache %s: %d images, %s, %s.", kind, root, total, preprocessing, settings)
        yield from results
        return
    print(f"Building the {kind} cache {root}: {total} images, {preprocessing}, {settings}.", file=sys.stderr,
          flush=True)  # fmt: skip
    if sys.stderr.isatty():
        with tqdm(results, total=total, desc=f"Preprocessing {_images(kind)}", unit="img") as bar:
            yield from bar
    else:
        start = time.perf_counter()
        yield from results
        elapsed = time.perf_counter() - start
        print(f"Preprocessed {total} {_images(kind)} in {elapsed:.1f} s.", file=sys.stderr, flush=True)


def _exit_with_parent() -> None:
    """Make this worker process exit soon after the process that started it dies (killed, say).

    Workers otherwise wait for tasks forever: forked ones hold the write end of their own task
    queue, so they never see it close. A parent's death shows as a new parent process id (the
    orphan is adopted) on every POSIX system, no kernel-specific signal needed. (Under the
    ``forkserver`` start method the parent is the fork server, which exits when its starter does.)
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _build_one(task: tuple[int, Path, Preprocessing, CacheSettings, Path]) -> str | None:
    """Preprocess one source into row ``row`` of the cache being built; return why it failed, or None.

    A top-level function, so that worker processes can unpickle it under any start method. Workers
    write their own outputs rather than sending arrays back for the parent to encode.
    """
    row, path, preprocessing, settings, out = task
    try:
        image = preprocessing(path)
    except DataError as exc:
        return str(exc)
    if image.shape != _image_shape(preprocessing) or image.dtype != np.uint8:
        raise TypeError(
            f"{type(preprocessing).__name__} made a {image.dtype} array of shape {image.shape} of {path}; a cache "
            f"stores uint8 arrays of shape {_image_shape(preprocessing)} (size x size x channels)."
        )
    if settings.format == "memmap":
        np.load(out / _ARRAY, mmap_mode="r+")[row] = image
    else:
        pixels = image[..., 0] if preprocessing.channels == 1 else image  # Pillow saves H x W as a grey JPEG
        # 4:4:4 chroma: small red lesions on a red background live mostly in the colour channels.
        Image.fromarray(pixels).save(out / f"{row:06d}.jpg", quality=settings.jpeg_quality, subsampling=0)
    return None


def _image_shape(preprocessing: Preprocessing) -> tuple[int, int, int]:
    """The shape of every image the preprocessing makes: size x size x channels."""
    return preprocessing.size, preprocessing.size, preprocessing.channels
