import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from medcls.data.preprocessing.fundus import (
    FundusPreprocessing,
    crop_to_field_of_view,
    find_field_of_view,
    normalise_contrast,
)
from medcls.errors import ConfigError, DataError
from tests.data.fundus_images import fundus_image


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
        FundusPreprocessing(size=64)(path)


@pytest.mark.parametrize("geometry", [(600, 400, 300, 200, 240), (500, 400, 210, 220, 150)])
def test_output_is_square_with_the_circle_centred(tmp_path, geometry):
    path = tmp_path / "image.png"
    fundus_image(*geometry).save(path)
    out = FundusPreprocessing(size=128)(path)
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
    preprocessing = FundusPreprocessing(size=512)
    timings = {}
    for draft in (True, False):
        preprocessing(path, draft=draft)  # warm the file cache
        start = time.perf_counter()
        out = preprocessing(path, draft=draft)
        timings[draft] = time.perf_counter() - start
        assert out.shape == (512, 512, 3)
        if draft:
            drafted = out
    print(
        f"\nFundusPreprocessing 4288x2848 JPEG -> 512: draft {timings[True] * 1e3:.0f} ms, "
        f"full {timings[False] * 1e3:.0f} ms"
    )
    assert np.abs(drafted.astype(int) - out).mean() < 3


def test_contrast_normalisation(tmp_path):
    path = tmp_path / "image.png"
    fundus_image(600, 400, 300, 200, 240).save(path)
    plain = FundusPreprocessing(size=128)(path)
    normalised = FundusPreprocessing(size=128, contrast=True)(path)
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


def test_size_is_validated_naming_the_option():
    with pytest.raises(
        ConfigError, match=r"--data\.image_size \(the cache's image size\) is 8; it must be at least 32"
    ):
        FundusPreprocessing(size=8)


def test_preprocessing_is_a_small_picklable_value(tmp_path):
    preprocessing = FundusPreprocessing(size=64, contrast=True)
    clone = pickle.loads(pickle.dumps(preprocessing))  # as it travels into the cache's worker processes
    assert clone == preprocessing and hash(clone) == hash(preprocessing) and clone.size == 64
    assert FundusPreprocessing.kind == "fundus"
    path = tmp_path / "image.png"
    fundus_image(400, 300, 200, 150, 140).save(path)
    np.testing.assert_array_equal(clone(path), preprocessing(path))
