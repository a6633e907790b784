import io
import json
import multiprocessing as mp
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from medcls.data.cache import CacheSettings, build_cache
from medcls.data.preprocessing import PlainPreprocessing, Preprocessing, XRayPreprocessing
from medcls.data.preprocessing.fundus import FundusPreprocessing
from medcls.errors import DataError
from tests.data.fundus_images import write_sources
from tests.data.preprocessing.dicom_files import write_dicom


@pytest.fixture
def count_loads(monkeypatch):
    """Count (and optionally sabotage) the per-image preprocessing done by serial builds."""
    calls = []
    real = FundusPreprocessing.__call__

    def install(fail_at: int | None = None):
        def counting(self, path, **kwargs):
            calls.append(path)
            if fail_at is not None and len(calls) == fail_at:
                raise RuntimeError("simulated crash")
            return real(self, path, **kwargs)

        monkeypatch.setattr(FundusPreprocessing, "__call__", counting)
        calls.clear()
        return calls

    return install


def test_cache_reused_without_decoding(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 3)
    calls = count_loads()
    preprocessing = FundusPreprocessing(size=64)
    first = build_cache(sources, tmp_path / "cache", preprocessing, workers=1, progress=False)
    assert len(calls) == 3
    calls.clear()
    second = build_cache(sources, tmp_path / "cache", preprocessing, workers=1, progress=False)
    assert calls == [] and second.root == first.root
    assert len(second) == 3 and second.sources == [p.resolve() for p in sources] and second.skipped == []
    assert second.index_of(sources[2]) == 2 and sources[1] in second and tmp_path not in second
    np.testing.assert_array_equal(second.read(1), first.read(1))
    assert second.read(1).shape == (64, 64, 3)
    manifest = json.loads((first.root / "manifest.json").read_text())
    assert manifest["preprocessing"] == {"name": "FundusPreprocessing", "fields": {"size": 64, "contrast": False}}
    assert manifest["settings"] == {"format": "jpeg", "jpeg_quality": 95}
    assert manifest["sources"] == [str(p.resolve()) for p in sources]


@dataclass(frozen=True)
class OtherFundusPreprocessing(FundusPreprocessing):
    """A preprocessing of another name: its class name is part of the cache key."""


def test_cache_rebuilt_when_settings_or_files_change(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 3)
    calls = count_loads()
    cache_dir = tmp_path / "cache"
    roots = {build_cache(sources, cache_dir, FundusPreprocessing(size=64), workers=1, progress=False).root}

    def rebuilt(paths, preprocessing=None, settings=None):
        calls.clear()
        preprocessing = preprocessing or FundusPreprocessing(size=64)
        root = build_cache(paths, cache_dir, preprocessing, settings, workers=1, progress=False).root
        assert len(calls) == len(paths) and root not in roots
        roots.add(root)

    rebuilt(sources, FundusPreprocessing(size=48))
    rebuilt(sources, FundusPreprocessing(size=64, contrast=True))
    rebuilt(sources, OtherFundusPreprocessing(size=64))  # the same fields, another class
    rebuilt(sources, settings=CacheSettings(jpeg_quality=80))
    stat = sources[0].stat()
    os.utime(sources[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    rebuilt(sources)
    extra = write_sources(tmp_path / "more", 1)
    rebuilt(sources + extra)
    rebuilt(sources[1:])
    rebuilt(list(reversed(sources)))


def test_cache_without_manifest_is_not_trusted(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 2)
    calls = count_loads()
    cache = build_cache(sources, tmp_path / "cache", FundusPreprocessing(size=64), workers=1, progress=False)
    (cache.root / "manifest.json").unlink()
    calls.clear()
    again = build_cache(sources, tmp_path / "cache", FundusPreprocessing(size=64), workers=1, progress=False)
    assert len(calls) == 2 and again.root == cache.root and (cache.root / "manifest.json").is_file()


def test_failed_build_leaves_nothing_and_next_build_completes(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 4)
    cache_dir = tmp_path / "cache"
    calls = count_loads(fail_at=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_cache(
            sources, cache_dir, FundusPreprocessing(size=64), CacheSettings(format="memmap"), workers=1, progress=False
        )
    assert list(cache_dir.iterdir()) == []
    calls = count_loads()
    cache = build_cache(
        sources, cache_dir, FundusPreprocessing(size=64), CacheSettings(format="memmap"), workers=1, progress=False
    )
    assert len(calls) == 4 and len(cache) == 4
    assert [p.name for p in cache_dir.iterdir()] == [cache.root.name]


def test_a_concurrent_build_that_finished_first_is_used(tmp_path, monkeypatch):
    sources = write_sources(tmp_path / "src", 2)
    cache_dir = tmp_path / "cache"
    real = FundusPreprocessing.__call__
    finished = {}

    def racing(self, path, **kwargs):
        if not finished:  # another process builds the same cache while this one is at its first image
            monkeypatch.setattr(FundusPreprocessing, "__call__", real)
            other = build_cache(sources, cache_dir, self, workers=1, progress=False)
            finished["manifest"] = (other.root / "manifest.json").stat().st_ino
        return real(self, path, **kwargs)

    monkeypatch.setattr(FundusPreprocessing, "__call__", racing)
    cache = build_cache(sources, cache_dir, FundusPreprocessing(size=64), workers=1, progress=False)
    assert [p.name for p in cache_dir.iterdir()] == [cache.root.name]  # this build's partial folder is gone
    assert (cache.root / "manifest.json").stat().st_ino == finished["manifest"]  # the other's, kept
    assert len(cache) == 2 and cache.read(1).shape == (64, 64, 3)


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork to kill a build cheaply")
def test_killed_build_is_not_trusted_and_its_leftovers_are_removed(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 4)
    cache_dir = tmp_path / "cache"
    real = FundusPreprocessing.__call__

    def build_and_die():
        calls = []

        def dying(self, path, **kwargs):
            calls.append(path)
            if len(calls) == 3:
                os._exit(3)  # killed mid-build: no cleanup runs
            return real(self, path, **kwargs)

        FundusPreprocessing.__call__ = dying
        build_cache(sources, cache_dir, FundusPreprocessing(size=64), workers=1, progress=False)

    # A forked child shares this process's imports, so it starts at once.
    child = mp.get_context("fork").Process(target=build_and_die)
    child.start()
    child.join(60)
    assert child.exitcode == 3
    (leftover,) = cache_dir.iterdir()
    assert ".partial-" in leftover.name and not (leftover / "manifest.json").exists()

    calls = count_loads()
    cache = build_cache(sources, cache_dir, FundusPreprocessing(size=64), workers=1, progress=False)
    assert len(calls) == 4 and len(cache) == 4
    assert [p.name for p in cache_dir.iterdir()] == [cache.root.name]
    assert leftover.name.startswith(f".{cache.root.name}.partial-")


@pytest.fixture
def corrupt_sources(tmp_path) -> tuple[list[Path], list[Path]]:
    good = write_sources(tmp_path / "src", 3)
    truncated = tmp_path / "src" / "truncated.jpg"
    truncated.write_bytes(good[0].read_bytes()[:-2000])
    garbage = tmp_path / "src" / "garbage.jpg"
    garbage.write_bytes(b"this is not a JPEG at all" * 50)
    return [good[0], truncated, good[1], garbage, good[2]], [truncated, garbage]


def test_corrupt_images_raise_a_data_error_naming_them(tmp_path, corrupt_sources):
    sources, bad = corrupt_sources
    with pytest.raises(DataError) as error:
        build_cache(sources, tmp_path / "cache", FundusPreprocessing(size=64), workers=1, progress=False)
    message = str(error.value)
    assert "truncated.jpg" in message and "garbage.jpg" in message and "skip_corrupt" in message
    assert "img_00.jpg" not in message


def test_skip_corrupt_lists_the_skipped_images(tmp_path, corrupt_sources, count_loads, caplog):
    sources, bad = corrupt_sources
    cache_dir = tmp_path / "cache"
    cache = build_cache(sources, cache_dir, FundusPreprocessing(size=64), workers=1, skip_corrupt=True, progress=False)
    good = [p.resolve() for p in sources if p not in bad]
    assert cache.sources == good and len(cache) == 3
    assert cache.skipped == [p.resolve() for p in bad]
    assert "truncated.jpg" in caplog.text and "garbage.jpg" in caplog.text
    manifest = json.loads((cache.root / "manifest.json").read_text())
    assert list(manifest["skipped"]) == [str(p.resolve()) for p in bad]
    assert cache.index_of(sources[2]) == 1 and bad[0] not in cache
    with pytest.raises(KeyError, match="skipped"):
        cache.index_of(bad[0])
    assert cache.read(2).shape == (64, 64, 3)

    # Reused, without decoding; and still refused without skip_corrupt.
    calls = count_loads()
    again = build_cache(sources, cache_dir, FundusPreprocessing(size=64), workers=1, skip_corrupt=True, progress=False)
    assert calls == [] and again.skipped == cache.skipped
    with pytest.raises(DataError, match="garbage.jpg"):
        build_cache(sources, cache_dir, FundusPreprocessing(size=64), workers=1, progress=False)
    assert calls == []


def test_missing_and_repeated_sources_are_data_errors(tmp_path):
    sources = write_sources(tmp_path / "src", 2)
    with pytest.raises(DataError, match="nowhere.jpg"):
        build_cache(
            [*sources, tmp_path / "nowhere.jpg"], tmp_path / "cache", FundusPreprocessing(size=64), progress=False
        )
    with pytest.raises(DataError, match="img_00.jpg"):
        build_cache([*sources, sources[0]], tmp_path / "cache", FundusPreprocessing(size=64), progress=False)


def test_jpeg_and_memmap_agree_and_memmap_cache_pickles(tmp_path):
    sources = write_sources(tmp_path / "src", 4)
    jpeg = build_cache(sources, tmp_path / "cache", FundusPreprocessing(size=96), workers=1, progress=False)
    # Two worker processes write their rows into the shared memory-mapped array.
    memmap = build_cache(
        sources,
        tmp_path / "cache",
        FundusPreprocessing(size=96),
        CacheSettings(format="memmap"),
        workers=2,
        progress=True,
    )
    assert (memmap.root / "images.npy").is_file() and not list(memmap.root.glob("*.jpg"))
    assert np.load(memmap.root / "images.npy", mmap_mode="r").shape == (4, 96, 96, 3)
    for i, source in enumerate(sources):
        exact = FundusPreprocessing(size=96)(source)
        np.testing.assert_array_equal(memmap.read(i), exact)
        assert np.abs(jpeg.read(i).astype(int) - exact).mean() < 2

    row = memmap.read(3)
    assert row.flags.writeable
    payload = pickle.dumps(memmap)
    assert len(payload) < 5000  # paths only, not the array
    clone = pickle.loads(payload)
    np.testing.assert_array_equal(clone.read(3), row)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(jpeg)).read(0), jpeg.read(0))


def test_settings_are_validated():
    with pytest.raises(ValueError, match="format"):
        CacheSettings(format="png")
    with pytest.raises(ValueError, match="jpeg_quality"):
        CacheSettings(jpeg_quality=0)
    with pytest.raises(ValueError, match="size"):
        FundusPreprocessing(size=8)


def test_unreadable_images_are_reported_on_one_line(tmp_path):
    good = write_sources(tmp_path / "src", 1)
    bad = []
    for i in range(5):
        bad.append(tmp_path / "src" / f"broken_{i}.jpg")
        bad[-1].write_bytes(b"not an image")
    with pytest.raises(DataError) as error:
        build_cache(good + bad, tmp_path / "cache", FundusPreprocessing(size=64), workers=1, progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"5 fundus image(s) could not be read: {bad[0].resolve()}: cannot decode this image (")
    assert all(f"broken_{i}.jpg" in message for i in range(3)) and "broken_3" not in message
    (manifest,) = (tmp_path / "cache").glob("*/manifest.json")
    assert f"; and 2 more (all listed in {manifest})." in message
    assert message.endswith("Replace them with intact copies, or pass --data.skip_corrupt true to leave them out.")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_two_lines_in_a_log(tmp_path, monkeypatch, capsys):
    sources = write_sources(tmp_path / "src", 3)
    build_cache(sources, tmp_path / "cache", FundusPreprocessing(size=48), workers=1, progress=True)
    log = capsys.readouterr().err
    assert "\r" not in log
    assert re.fullmatch(
        r"Building the fundus cache .+: 3 images, FundusPreprocessing\(size=48, contrast=False\), "
        r"CacheSettings\(format='jpeg', jpeg_quality=95\)\.\n"
        r"Preprocessed 3 fundus images in \d+\.\d s\.\n",
        log,
    ), log
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    build_cache(sources, tmp_path / "cache", FundusPreprocessing(size=40), workers=1, progress=True)
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue() and "Preprocessed" not in terminal.getvalue()
    build_cache(sources, tmp_path / "cache", FundusPreprocessing(size=36), workers=1, progress=False)
    monkeypatch.undo()
    assert terminal.getvalue().count("3/3") == 1 and capsys.readouterr().err == ""


# Builds a cache with 2 forked workers, each image taking 0.3 s (4.5 s in all), in a process the test kills.
_KILLED_BUILD = """
import multiprocessing, sys, time, types
from pathlib import Path
import medcls

# medcls.data's __init__ imports every data module (Lightning, torchvision): start-up that the cache does not need.
package = types.ModuleType("medcls.data")
package.__path__ = [str(Path(medcls.__file__).parent / "data")]
sys.modules["medcls.data"] = package
from medcls.data.cache import build_cache
from medcls.data.preprocessing.fundus import FundusPreprocessing

multiprocessing.set_start_method("fork")  # the start method whose workers used to outlive their parent
real = FundusPreprocessing.__call__

def slow(*args, **kwargs):
    time.sleep(0.3)
    return real(*args, **kwargs)

FundusPreprocessing.__call__ = slow
build_cache([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]), FundusPreprocessing(), workers=2, progress=False)
"""


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``, from /proc."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (one that exited but that nobody has reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(
    not Path("/proc/self/stat").exists() or "fork" not in mp.get_all_start_methods(), reason="needs /proc and fork"
)
def test_workers_exit_when_the_building_process_is_killed(tmp_path):
    sources = write_sources(tmp_path / "src", 30, size=(120, 90))
    cache_dir = tmp_path / "cache"
    build = subprocess.Popen(
        [sys.executable, "-c", _KILLED_BUILD, str(cache_dir), *map(str, sources)], cwd=Path(__file__).parents[2]
    )
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 or not list(cache_dir.glob(".*.partial-*/*.jpg")):
            assert build.poll() is None and time.monotonic() < deadline, "the build did not start its workers"
            workers = _children(build.pid)
            time.sleep(0.05)
    finally:
        build.kill()
        build.wait()
    try:
        deadline = time.monotonic() + 5
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_running, workers)), "the workers outlived the build"
    finally:
        for pid in filter(_running, workers):  # leave no orphan behind when the test fails
            os.kill(pid, signal.SIGKILL)


def write_radiographs(folder: Path, count: int) -> list[Path]:
    """``count`` 16-bit grey sources, 120 x 90, alternately DICOM and PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 4096, (90, 120), dtype=np.uint16)
        if i % 2:
            paths.append(write_dicom(folder / f"xray_{i}.dcm", pixels, bits_stored=12))
        else:
            Image.fromarray(pixels).save(folder / f"xray_{i}.png")
            paths.append(folder / f"xray_{i}.png")
    return paths


def test_grey_caches_keep_one_channel_in_both_formats(tmp_path):
    sources = write_radiographs(tmp_path / "src", 3)
    preprocessing = XRayPreprocessing(size=48)
    jpeg = build_cache(sources, tmp_path / "cache", preprocessing, workers=1, progress=False)
    memmap = build_cache(sources, tmp_path / "cache", preprocessing, CacheSettings(format="memmap"), workers=2,
                         progress=False)  # fmt: skip
    assert jpeg.channels == memmap.channels == 1
    assert np.load(memmap.root / "images.npy", mmap_mode="r").shape == (3, 48, 48, 1)
    with Image.open(jpeg.root / "000000.jpg") as stored:
        assert stored.mode == "L"
    for i, source in enumerate(sources):
        exact = preprocessing(source)
        assert exact.shape == (48, 48, 1) and jpeg.read(i).shape == memmap.read(i).shape == (48, 48, 1)
        np.testing.assert_array_equal(memmap.read(i), exact)
        assert np.abs(jpeg.read(i).astype(int) - exact).mean() < 4  # noise compresses worst of all
    assert json.loads((jpeg.root / "manifest.json").read_text())["channels"] == 1
    colour = build_cache(sources, tmp_path / "cache", XRayPreprocessing(size=48, grey=False), workers=1,
                         progress=False)  # fmt: skip
    assert colour.channels == 3 and colour.read(0).shape == (48, 48, 3)


def test_every_setting_and_the_class_of_a_plain_preprocessing_key_the_cache(tmp_path):
    sources = write_radiographs(tmp_path / "src", 2)

    def root(preprocessing):
        return build_cache(sources, tmp_path / "cache", preprocessing, workers=1, progress=False).root

    first = root(XRayPreprocessing(size=32))
    assert root(XRayPreprocessing(size=32, fit="pad", grey=True)) == first  # the same settings: reused
    others = [XRayPreprocessing(size=32, fit="crop"), XRayPreprocessing(size=32, grey=False),
              PlainPreprocessing(size=32, grey=True)]  # fmt: skip
    assert len({first, *map(root, others)}) == 4


def test_messages_name_the_kind_of_images(tmp_path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not an image at all" * 10)
    good = write_radiographs(tmp_path / "src", 1)
    for preprocessing, named in [
        (XRayPreprocessing(size=32), "1 x-ray image(s)"),
        (PlainPreprocessing(32), "1 image(s)"),
    ]:
        with pytest.raises(DataError, match=re.escape(f"{named} could not be read: {broken}: not a DICOM file")):
            build_cache([*good, broken], tmp_path / "cache", preprocessing, workers=1, progress=False)
    with pytest.raises(DataError, match="^No images to cache"):
        build_cache([], tmp_path / "cache", PlainPreprocessing(32), progress=False)


@dataclass(frozen=True)
class ColourClaimingGrey(Preprocessing):
    """Says one channel, makes three: a bug the cache stops at instead of storing."""

    kind: ClassVar[str] = "image"
    mirror_invariant: ClassVar[bool] = True
    channels: ClassVar[int] = 1

    size: int = 32

    def __call__(self, path: Path) -> np.ndarray:
        return np.zeros((self.size, self.size, 3), dtype=np.uint8)


def test_images_not_of_the_declared_shape_stop_the_build(tmp_path):
    sources = write_radiographs(tmp_path / "src", 1)
    with pytest.raises(TypeError, match=r"ColourClaimingGrey made a uint8 array of shape \(32, 32, 3\) of .*xray_0"):
        build_cache(sources, tmp_path / "cache", ColourClaimingGrey(), workers=1, progress=False)
