import pickle

import numpy as np
import pytest
from PIL import Image

from medcls.data.preprocessing import FundusPreprocessing, PlainPreprocessing, XRayPreprocessing
from medcls.errors import ConfigError, DataError
from tests.data.preprocessing.dicom_files import write_dicom


def test_pad_keeps_the_aspect_ratio_with_black_bands(tmp_path):
    Image.new("RGB", (200, 100), "white").save(tmp_path / "wide.png")
    out = PlainPreprocessing(size=64)(tmp_path / "wide.png")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    white_rows = np.flatnonzero((out == 255).all(axis=(1, 2)))
    np.testing.assert_array_equal(white_rows, np.arange(16, 48))  # 32 rows: 200 x 100 at 64 x 32, centred
    assert (out[:16] == 0).all() and (out[48:] == 0).all()
    Image.new("L", (100, 200), 255).save(tmp_path / "tall.png")
    tall = PlainPreprocessing(size=64, grey=True)(tmp_path / "tall.png")[..., 0]
    np.testing.assert_array_equal(np.flatnonzero((tall == 255).all(axis=0)), np.arange(16, 48))


def test_crop_keeps_the_centre_at_the_full_size(tmp_path):
    ramp = np.tile(np.arange(200, dtype=np.uint8), (100, 1))  # each column's value is its x
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    out = PlainPreprocessing(size=64, fit="crop", grey=True)(tmp_path / "ramp.png")
    assert out.shape == (64, 64, 1)
    # The middle 100 x 100 square: output column j shows x = 50 + (j + 0.5) * 100 / 64 - 0.5.
    expected = 50 + (np.arange(64) + 0.5) * (100 / 64) - 0.5
    assert np.abs(out[32, :, 0] - expected).max() <= 1
    assert (np.ptp(out[..., 0], axis=0) <= 1).all()  # every row alike: nothing padded


def test_grey_keeps_one_channel_and_colour_repeats_grey(tmp_path):
    Image.new("RGB", (80, 80), (200, 100, 50)).save(tmp_path / "orange.png")
    grey = PlainPreprocessing(size=32, grey=True)(tmp_path / "orange.png")
    assert grey.shape == (32, 32, 1) and (grey == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)).all()  # luma
    Image.new("L", (80, 80), 90).save(tmp_path / "grey.png")
    colour = PlainPreprocessing(size=32)(tmp_path / "grey.png")
    assert colour.shape == (32, 32, 3) and (colour == 90).all()


@pytest.mark.parametrize(
    ("preprocessing", "kind", "mirror_invariant", "channels"),
    [
        (PlainPreprocessing(), "image", True, 3),
        (PlainPreprocessing(grey=True), "image", True, 1),
        (XRayPreprocessing(), "x-ray", False, 1),
        (XRayPreprocessing(grey=False), "x-ray", False, 3),
        (FundusPreprocessing(), "fundus", True, 3),
    ],
)
def test_what_each_preprocessing_declares(preprocessing, kind, mirror_invariant, channels):
    declared = (preprocessing.kind, preprocessing.mirror_invariant, preprocessing.channels)
    assert declared == (kind, mirror_invariant, channels)
    assert preprocessing.size == 512
    clone = pickle.loads(pickle.dumps(preprocessing))  # as it travels into the cache's worker processes
    assert clone == preprocessing and hash(clone) == hash(preprocessing)


def test_xray_defaults_to_grey():
    assert XRayPreprocessing(size=256, fit="crop").grey and not PlainPreprocessing().grey


def test_a_dicom_radiograph_through_the_xray_preprocessing(tmp_path):
    stored = np.tile(np.linspace(0, 4095, 256), (128, 1)).astype(np.uint16)  # dark left, bright right
    path = write_dicom(tmp_path / "chest.dcm", stored, "MONOCHROME1", 12, WindowCenter=2048, WindowWidth=4096)
    out = XRayPreprocessing(size=64)(path)
    assert out.shape == (64, 64, 1)
    # 256 x 128 padded to 64 x 32 between two black bands; MONOCHROME1 shows its low values white.
    assert (out[:16] == 0).all() and (out[48:] == 0).all()
    band = out[16:48, :, 0].astype(int)
    assert band[:, 0].min() > 245 and band[:, -1].max() < 10 and (np.diff(band[16]) <= 1).all()


def test_unreadable_images_name_the_file(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="broken.png: cannot decode this image"):
        XRayPreprocessing(size=64)(broken)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"size": 0}, "--data.preprocessing.size is 0; it must be at least 1."),
        ({"fit": "stretch"}, "--data.preprocessing.fit is 'stretch'; choose 'pad' or 'crop'."),
    ],
)
@pytest.mark.parametrize("preprocessing", [PlainPreprocessing, XRayPreprocessing])
def test_settings_are_validated_naming_the_option(preprocessing, settings, message):
    with pytest.raises(ConfigError) as error:
        preprocessing(**settings)
    assert str(error.value) == message
