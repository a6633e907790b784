import io
import json
import multiprocessing as mp
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from medcls.data import fundus
from medcls.data.fundus import (
    CacheSettings,
    build_cache,
    crop_to_field_of_view,
    find_field_of_view,
    load_fundus,
    normalise_contrast,
)
from medcls.errors import DataError


def fundus_image(width: int, height: int, cx: float, cy: float, radius: float, seed: int = 0) -> Image.Image:
    """A black canvas with a textured reddish disc, darker towards its rim; pixel (i, j) covers [i, i+1)."""
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[:height, :width]
    d2 = ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2) / radius**2
    shade = 1 - 0.4 * np.clip(d2, 0, 1)
    disc = np.array([210.0, 95.0, 45.0]) * shade[..., None] + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.where(d2[..., None] <= 1, np.clip(disc, 0, 255), 0).astype(np.uint8))


def write_sources(folder: Path, count: int, *, size: tuple[int, int] = (300, 220)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:02d}.jpg"
        fundus_image(*size, cx=size[0] / 2 + 3 * i, cy=size[1] / 2, radius=0.45 * size[0], seed=i).save(
            path, quality=92
        )
        paths.append(path)
    return paths


@pytest.fixture
def count_loads(monkeypatch):
    """Count (and optionally sabotage) the per-image preprocessing done by serial builds."""
    calls = []
    real = fundus.load_fundus

    def install(fail_at: int | None = None):
        def counting(path, settings, **kwargs):
            calls.append(path)
            if fail_at is not None and len(calls) == fail_at:
                raise RuntimeError("simulated crash")
            return real(path, settings, **kwargs)

        monkeypatch.setattr(fundus, "load_fundus", counting)
        calls.clear()
        return calls

    return install


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> tuple[Path, tuple[int, int, int]]:
    """A 4288 x 2848 IDRiD-sized JPEG with a textured disc clipped at top and bottom."""
    width, height, cx, cy, radius = 4288, 2848, 2144, 1424, 1800
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8))
    texture = noise.filter(ImageFilter.GaussianBlur(2)).resize((width, height), Image.Resampling.BILINEAR)
    disc = Image.blend(Image.new("RGB", (width, height), (200, 90, 40)), texture, 0.3)
    mask = Image.new("L", (width, height), 0)
    # Pillow's ellipse covers pixels x0..x1 inclusive, i.e. [x0, x1 + 1) in continuous coordinates.
    ImageDraw.Draw(mask).ellipse((cx - radius, cy - radius, cx + radius - 1, cy + radius - 1), fill=255)
    path = tmp_path_factory.mktemp("big") / "IDRiD_001.jpg"
    Image.composite(disc, Image.new("RGB", (width, height)), mask).save(path, quality=90)
    return path, (cx, cy, radius)


GEOMETRIES = [
    pytest.param((400, 400, 200, 200, 150), id="centred"),
    pytest.param((500, 360, 230.5, 190, 140), id="off-centre"),
    pytest.param((600, 400, 300, 200, 240), id="clipped"),
    pytest.param((600, 400, 320.3, 210.7, 231.2), id="clipped-off-centre"),
    pytest.param((240, 200, 120, 100, 110), id="small-clipped"),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("via_jpeg", [False, True], ids=["png", "jpeg"])
def test_field_of_view_found(tmp_path, geometry, via_jpeg):
    width, height, cx, cy, radius = geometry
    path = tmp_path / ("image.jpg" if via_jpeg else "image.png")
    fundus_image(width, height, cx, cy, radius).save(path, **({"quality": 85} if via_jpeg else {}))
    fov = find_field_of_view(Image.open(path))
    assert fov.cx == pytest.approx(cx, abs=1.0)
    assert fov.cy == pytest.approx(cy, abs=1.0)
    assert fov.radius == pytest.approx(radius, abs=1.0)


def test_field_of_view_accepts_arrays_and_ignores_specks():
    image = np.asarray(fundus_image(500, 360, 250, 180, 200)).copy()
    image[5:9, 5:60] = 255  # a burnt-in label in the black corner
    fov = find_field_of_view(image)
    assert (fov.cx, fov.cy, fov.radius) == pytest.approx((250, 180, 200), abs=1.0)


def test_field_of_view_through_draft_decoding(big_jpeg):
    path, (cx, cy, radius) = big_jpeg
    with Image.open(path) as image:
        image.draft("RGB", (512, 512))
        scale = 4288 / image.width
        assert scale > 1
        fov = find_field_of_view(image.convert("RGB"))
    assert (fov.cx * scale, fov.cy * scale, fov.radius * scale) == pytest.approx((cx, cy, radius), abs=4)


def test_blank_image_is_a_data_error(tmp_path):
    path = tmp_path / "black.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(ValueError, match="no field of view"):
        find_field_of_view(Image.open(path))
    with pytest.raises(DataError, match="black.png"):
        load_fundus(path, CacheSettings(size=64))


@pytest.mark.parametrize("geometry", [(600, 400, 300, 200, 240), (500, 400, 210, 220, 150)])
def test_output_is_square_with_the_circle_centred(tmp_path, geometry):
    path = tmp_path / "image.png"
    fundus_image(*geometry).save(path)
    out = load_fundus(path, CacheSettings(size=128))
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    fov = find_field_of_view(out)
    assert (fov.cx, fov.cy, fov.radius) == pytest.approx((64, 64, 64), abs=1.0)
    assert out[0, 0].max() == 0 and out[-1, -1].max() == 0  # corners: outside the circle
    assert out[64, 64, 0] > 150  # centre: the reddish disc


def test_crop_pads_a_clipped_circle_with_black():
    image = fundus_image(600, 400, 300, 200, 240)  # circle 480 high in a 400 high frame
    out = np.asarray(crop_to_field_of_view(image, find_field_of_view(image), 240))
    assert out.shape == (240, 240, 3)
    # The box starts 40 source pixels (20 output pixels) above the frame and ends as far below: black.
    assert out[:17, 120].max() == 0 and out[-17:, 120].max() == 0  # 3 pixels' room for Lanczos ringing
    assert out[21, 120, 0] > 50 and out[-22, 120, 0] > 50


def test_draft_is_faster_and_close_to_full_decoding(big_jpeg):
    path, _ = big_jpeg
    settings = CacheSettings(size=512)
    timings = {}
    for draft in (True, False):
        load_fundus(path, settings, draft=draft)  # warm the file cache
        start = time.perf_counter()
        out = load_fundus(path, settings, draft=draft)
        timings[draft] = time.perf_counter() - start
        assert out.shape == (512, 512, 3)
        if draft:
            drafted = out
    print(
        f"\nload_fundus 4288x2848 JPEG -> 512: draft {timings[True] * 1e3:.0f} ms, full {timings[False] * 1e3:.0f} ms"
    )
    assert np.abs(drafted.astype(int) - out).mean() < 3


def test_contrast_normalisation(tmp_path):
    path = tmp_path / "image.png"
    fundus_image(600, 400, 300, 200, 240).save(path)
    plain = load_fundus(path, CacheSettings(size=128))
    normalised = load_fundus(path, CacheSettings(size=128, contrast=True))
    assert not np.array_equal(plain, normalised)
    grid = np.arange(128) + 0.5 - 64
    distance = np.sqrt(grid[:, None] ** 2 + grid[None, :] ** 2)
    assert (normalised[distance > 0.9 * 64] == 128).all()  # the rim and the surround: mid-grey
    inside = normalised[distance < 0.8 * 64].astype(float)
    # The colour cast and the shading are gone: every channel hovers around 128, the texture is kept.
    assert np.abs(plain[distance < 0.8 * 64].mean(axis=0) - 128).max() > 50
    assert np.abs(inside.mean(axis=0) - 128).max() < 10
    assert inside.std(axis=0).min() > 4
    np.testing.assert_array_equal(normalise_contrast(plain), normalised)


def test_cache_reused_without_decoding(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 3)
    calls = count_loads()
    settings = CacheSettings(size=64)
    first = build_cache(sources, tmp_path / "cache", settings, workers=1, progress=False)
    assert len(calls) == 3
    calls.clear()
    second = build_cache(sources, tmp_path / "cache", settings, workers=1, progress=False)
    assert calls == [] and second.root == first.root
    assert len(second) == 3 and second.sources == [p.resolve() for p in sources] and second.skipped == []
    assert second.index_of(sources[2]) == 2 and sources[1] in second and tmp_path not in second
    np.testing.assert_array_equal(second.read(1), first.read(1))
    assert second.read(1).shape == (64, 64, 3)
    manifest = json.loads((first.root / "manifest.json").read_text())
    assert manifest["settings"]["size"] == 64 and manifest["sources"] == [str(p.resolve()) for p in sources]


def test_cache_rebuilt_when_settings_or_files_change(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 3)
    calls = count_loads()
    cache_dir = tmp_path / "cache"
    roots = {build_cache(sources, cache_dir, CacheSettings(size=64), workers=1, progress=False).root}

    def rebuilt(paths, settings=None):
        calls.clear()
        root = build_cache(paths, cache_dir, settings or CacheSettings(size=64), workers=1, progress=False).root
        assert len(calls) == len(paths) and root not in roots
        roots.add(root)

    rebuilt(sources, CacheSettings(size=48))
    rebuilt(sources, CacheSettings(size=64, contrast=True))
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
    cache = build_cache(sources, tmp_path / "cache", CacheSettings(size=64), workers=1, progress=False)
    (cache.root / "manifest.json").unlink()
    calls.clear()
    again = build_cache(sources, tmp_path / "cache", CacheSettings(size=64), workers=1, progress=False)
    assert len(calls) == 2 and again.root == cache.root and (cache.root / "manifest.json").is_file()


def test_failed_build_leaves_nothing_and_next_build_completes(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 4)
    cache_dir = tmp_path / "cache"
    calls = count_loads(fail_at=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_cache(sources, cache_dir, CacheSettings(size=64, format="memmap"), workers=1, progress=False)
    assert list(cache_dir.iterdir()) == []
    calls = count_loads()
    cache = build_cache(sources, cache_dir, CacheSettings(size=64, format="memmap"), workers=1, progress=False)
    assert len(calls) == 4 and len(cache) == 4
    assert [p.name for p in cache_dir.iterdir()] == [cache.root.name]


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork to kill a build cheaply")
def test_killed_build_is_not_trusted_and_its_leftovers_are_removed(tmp_path, count_loads):
    sources = write_sources(tmp_path / "src", 4)
    cache_dir = tmp_path / "cache"
    real = fundus.load_fundus

    def build_and_die():
        calls = []

        def dying(path, settings, **kwargs):
            calls.append(path)
            if len(calls) == 3:
                os._exit(3)  # killed mid-build: no cleanup runs
            return real(path, settings, **kwargs)

        fundus.load_fundus = dying
        build_cache(sources, cache_dir, CacheSettings(size=64), workers=1, progress=False)

    # A forked child shares this process's imports, so it starts at once.
    child = mp.get_context("fork").Process(target=build_and_die)
    child.start()
    child.join(60)
    assert child.exitcode == 3
    (leftover,) = cache_dir.iterdir()
    assert ".tmp-" in leftover.name and not (leftover / "manifest.json").exists()

    calls = count_loads()
    cache = build_cache(sources, cache_dir, CacheSettings(size=64), workers=1, progress=False)
    assert len(calls) == 4 and len(cache) == 4
    assert [p.name for p in cache_dir.iterdir()] == [cache.root.name]
    assert leftover.name.startswith(cache.root.name)


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
        build_cache(sources, tmp_path / "cache", CacheSettings(size=64), workers=1, progress=False)
    message = str(error.value)
    assert "truncated.jpg" in message and "garbage.jpg" in message and "skip_corrupt" in message
    assert "img_00.jpg" not in message


def test_skip_corrupt_lists_the_skipped_images(tmp_path, corrupt_sources, count_loads, caplog):
    sources, bad = corrupt_sources
    cache_dir = tmp_path / "cache"
    cache = build_cache(sources, cache_dir, CacheSettings(size=64), workers=1, skip_corrupt=True, progress=False)
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
    again = build_cache(sources, cache_dir, CacheSettings(size=64), workers=1, skip_corrupt=True, progress=False)
    assert calls == [] and again.skipped == cache.skipped
    with pytest.raises(DataError, match="garbage.jpg"):
        build_cache(sources, cache_dir, CacheSettings(size=64), workers=1, progress=False)
    assert calls == []


def test_missing_and_repeated_sources_are_data_errors(tmp_path):
    sources = write_sources(tmp_path / "src", 2)
    with pytest.raises(DataError, match="nowhere.jpg"):
        build_cache([*sources, tmp_path / "nowhere.jpg"], tmp_path / "cache", CacheSettings(size=64), progress=False)
    with pytest.raises(DataError, match="img_00.jpg"):
        build_cache([*sources, sources[0]], tmp_path / "cache", CacheSettings(size=64), progress=False)


def test_jpeg_and_memmap_agree_and_memmap_cache_pickles(tmp_path):
    sources = write_sources(tmp_path / "src", 4)
    jpeg = build_cache(sources, tmp_path / "cache", CacheSettings(size=96), workers=1, progress=False)
    # Two worker processes write their rows into the shared memory-mapped array.
    memmap = build_cache(sources, tmp_path / "cache", CacheSettings(size=96, format="memmap"), workers=2, progress=True)
    assert (memmap.root / "images.npy").is_file() and not list(memmap.root.glob("*.jpg"))
    assert np.load(memmap.root / "images.npy", mmap_mode="r").shape == (4, 96, 96, 3)
    for i, source in enumerate(sources):
        exact = load_fundus(source, CacheSettings(size=96))
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
    with pytest.raises(ValueError, match="size"):
        CacheSettings(size=8)


def write_png_48_bit(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one): signature, IHDR, one IDAT, IEND."""
    height, width, _ = rgb.shape
    scanlines = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "saved_as", "mode"),
    [
        ("grey16.png", "PNG", "I;16"),
        ("grey16.tif", "TIFF", "I;16"),
        ("grey16.jpg", "PNG", "I;16"),  # Pillow goes by the content, not the name
        ("grey32.tif", "TIFF", "I"),
        ("rgb48.png", "PNG", "RGB"),  # Pillow keeps the high byte of each 16-bit sample
    ],
)
def test_wide_images_are_scaled_to_8_bits_not_clipped(tmp_path, name, saved_as, mode):
    # An 8-bit fundus spanning 0..255, and the same at 16 bits a sample (v * 257 spans 0..65535).
    original = np.asarray(fundus_image(400, 300, 200, 150, 140).convert("RGB" if mode == "RGB" else "L"))
    original = np.rint((original - original.min()) * (255 / np.ptp(original))).astype(np.uint8)
    Image.fromarray(original).save(tmp_path / "original.png")
    wide = original.astype(np.uint32) * 257
    if mode == "RGB":
        write_png_48_bit(tmp_path / name, wide)
    else:
        Image.fromarray(wide.astype(np.uint16 if mode == "I;16" else np.int32)).save(tmp_path / name, saved_as)
    with Image.open(tmp_path / name) as image:
        assert image.mode == mode and (mode == "RGB" or image.getextrema() == (0, 65535))
    sources = [tmp_path / "original.png", tmp_path / name]
    cache = build_cache(sources, tmp_path / "cache", CacheSettings(size=96, format="memmap"), workers=1, progress=False)
    assert (cache.read(1) == 255).mean() < 0.01  # not saturated: clipping made the whole disc white
    np.testing.assert_array_equal(cache.read(1), cache.read(0))


def test_unreadable_images_are_reported_on_one_line(tmp_path):
    good = write_sources(tmp_path / "src", 1)
    bad = []
    for i in range(5):
        bad.append(tmp_path / "src" / f"broken_{i}.jpg")
        bad[-1].write_bytes(b"not an image")
    with pytest.raises(DataError) as error:
        build_cache(good + bad, tmp_path / "cache", CacheSettings(size=64), workers=1, progress=False)
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
    build_cache(sources, tmp_path / "cache", CacheSettings(size=48), workers=1, progress=True)
    log = capsys.readouterr().err
    assert "\r" not in log
    assert re.fullmatch(
        r"Building the fundus cache .+: 3 images, CacheSettings\(size=48.*\)\.\n"
        r"Preprocessed 3 fundus images in \d+\.\d s\.\n",
        log,
    ), log
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    build_cache(sources, tmp_path / "cache", CacheSettings(size=40), workers=1, progress=True)
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue() and "Preprocessed" not in terminal.getvalue()
    build_cache(sources, tmp_path / "cache", CacheSettings(size=36), workers=1, progress=False)
    monkeypatch.undo()
    assert terminal.getvalue().count("3/3") == 1 and capsys.readouterr().err == ""


# Builds a cache with 2 forked workers, each image taking 0.3 s (4.5 s in all), in a process the test kills.
_KILLED_BUILD = """
import multiprocessing, sys, time, types
from pathlib import Path
import medcls

# medcls.data's __init__ imports torch and Lightning, seconds of start-up that the cache does not need.
package = types.ModuleType("medcls.data")
package.__path__ = [str(Path(medcls.__file__).parent / "data")]
sys.modules["medcls.data"] = package
from medcls.data import fundus

multiprocessing.set_start_method("fork")  # the start method whose workers used to outlive their parent
real = fundus.load_fundus

def slow(*args, **kwargs):
    time.sleep(0.3)
    return real(*args, **kwargs)

fundus.load_fundus = slow
fundus.build_cache([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]), workers=2, progress=False)
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
        while len(workers) < 2 or not list(cache_dir.glob("*.tmp-*/*.jpg")):
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
