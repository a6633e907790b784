from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless, generate_uid

from medcls.data.preprocessing.decode import decode_image
from medcls.data.preprocessing.dicom import is_dicom
from medcls.errors import DataError
from tests.data.preprocessing.dicom_files import DIGITAL_XRAY, sample, write_dicom

# 16 bits, far above 255: a decoder that clipped to 8 bits would show it white.
RAMP = np.linspace(1000, 60000, 32 * 64).reshape(32, 64).astype(np.uint16)


def decoded(path: Path, mode: str = "L") -> np.ndarray:
    return np.asarray(decode_image(path, mode))


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM's linear window (PS3.3 C.11.2.1.2.1) onto 0..255, unrounded."""
    return np.clip(((values - (center - 0.5)) / (width - 1) + 0.5) * 255, 0, 255)


def test_monochrome2_without_window_spans_its_own_range(tmp_path):
    out = decoded(write_dicom(tmp_path / "ramp.dcm", RAMP))
    expected = (RAMP - 1000.0) * (255 / 59000)
    assert out[0, 0] == 0 and out[-1, -1] == 255
    assert np.abs(out - expected).max() <= 0.5 + 1e-3


def test_monochrome1_is_inverted_so_that_low_values_are_white(tmp_path):
    mono1 = decoded(write_dicom(tmp_path / "m1.dcm", RAMP, "MONOCHROME1")).astype(int)
    mono2 = decoded(write_dicom(tmp_path / "m2.dcm", RAMP)).astype(int)
    assert mono1[0, 0] == 255 and mono1[-1, -1] == 0
    assert (np.diff(mono1.ravel()) <= 0).all() and np.ptp(mono1) == 255  # the ramp runs from white to black
    assert np.abs(mono1 + mono2 - 255).max() <= 1


def test_window_clips_outside_and_scales_inside(tmp_path):
    ramp = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    out = decoded(write_dicom(tmp_path / "w.dcm", ramp, bits_stored=12, WindowCenter=2048, WindowWidth=1024))
    # The window shows 2048 - 0.5 - 511.5 = 1536 and below black, above 2048 - 0.5 + 511.5 = 2559 white.
    assert (out[ramp <= 1536] == 0).all() and (out[ramp > 2559] == 255).all()
    inside = (ramp > 1536) & (ramp <= 2559)
    assert np.abs(out[inside] - linear_window(ramp[inside], 2048, 1024)).max() <= 0.5 + 1e-3
    assert len(np.unique(out[inside])) == 256  # every grey level across the window


def test_window_applies_to_rescaled_values(tmp_path):
    stored = np.arange(0, 2048, 2, dtype=np.uint16).reshape(32, 32)
    hounsfield = 2.0 * stored - 1024
    path = write_dicom(tmp_path / "ct.dcm", stored, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1024,
                       WindowCenter=40, WindowWidth=400)  # fmt: skip
    out = decoded(path)
    assert np.abs(out - linear_window(hounsfield, 40, 400)).max() <= 0.5 + 1e-3
    # Soft tissue, -160 to 240 HU, spans the greys; stored values 432 to 632 would all be white without the rescale.
    tissue = (hounsfield > -160) & (hounsfield < 240)
    assert out[tissue].min() > 0 and out[tissue].max() < 255 and (out[hounsfield >= 240] == 255).all()


def test_a_voi_lut_is_preferred_to_the_window(tmp_path):
    ramp = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.add_new(0x00283006, "US", [int(v) for v in np.sqrt(np.arange(4096)) * 100])  # LUT Data: a square root
    path = write_dicom(tmp_path / "lut.dcm", ramp, bits_stored=12, VOILUTSequence=Sequence([lut]),
                       WindowCenter=100, WindowWidth=10)  # fmt: skip
    out = decoded(path)
    shown = np.floor(np.sqrt(ramp) * 100)
    assert np.abs(out - shown * (255 / shown.max())).max() <= 0.5 + 1e-3


def test_rle_compressed_decodes_as_uncompressed(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 65536, (48, 40), dtype=np.uint16)
    plain = write_dicom(tmp_path / "plain.dcm", pixels, WindowCenter=30000, WindowWidth=20000)
    rle = write_dicom(tmp_path / "rle.dcm", pixels, rle=True, WindowCenter=30000, WindowWidth=20000)
    assert pydicom.dcmread(rle).file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(decoded(rle), decoded(plain))
    assert 0 < decoded(rle).mean() < 255


def test_dicom_without_preamble_or_file_meta_read_by_its_name(tmp_path):
    original = write_dicom(tmp_path / "original.dcm", RAMP, WindowCenter=20000, WindowWidth=30000)
    no_preamble = tmp_path / "no_preamble.dcm"
    no_preamble.write_bytes(original.read_bytes()[132:])  # the file meta straight away
    bare = Dataset()  # a data set alone, as older systems wrote them: no file meta, no transfer syntax
    bare.SOPClassUID, bare.SOPInstanceUID = DIGITAL_XRAY, generate_uid()
    bare.set_pixel_data(RAMP, "MONOCHROME2", 16)
    bare.WindowCenter, bare.WindowWidth = 20000, 30000
    del bare.file_meta
    pydicom.dcmwrite(tmp_path / "bare.dcm", bare, implicit_vr=True, little_endian=True)
    assert (tmp_path / "bare.dcm").read_bytes()[:2] == b"\x08\x00"  # it starts with its first element
    for path in (no_preamble, tmp_path / "bare.dcm"):
        np.testing.assert_array_equal(decoded(path), decoded(original))
    # Without the preamble only the name says DICOM: under another it is no image at all.
    renamed = no_preamble.rename(tmp_path / "no_preamble.img")
    with pytest.raises(DataError, match="no_preamble.img: cannot decode this image"):
        decode_image(renamed)


def test_dicom_recognised_by_content_whatever_its_name(tmp_path):
    named_png = write_dicom(tmp_path / "scan.png", RAMP)
    Image.fromarray(RAMP).save(tmp_path / "ramp.png")
    assert is_dicom(named_png) and not is_dicom(tmp_path / "ramp.png") and not is_dicom(tmp_path / "missing.dcm")
    np.testing.assert_array_equal(decoded(named_png), decoded(tmp_path / "ramp.png"))  # both from their own range


def test_a_file_named_dcm_that_is_not_dicom(tmp_path):
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"<html>404 Not Found</html>" * 20)
    with pytest.raises(DataError, match=f"^{fake}: not a DICOM file"):
        decode_image(fake)


def test_pydicom_samples_ct_and_mr():
    ct = pydicom.dcmread(sample("CT_small.dcm"))
    hounsfield = apply_modality_lut(ct.pixel_array, ct)  # no window: shown over its own range
    out = decoded(sample("CT_small.dcm"))
    assert out.shape == (128, 128)
    assert np.abs(out - (hounsfield - hounsfield.min()) * (255 / np.ptp(hounsfield))).max() <= 0.5 + 1e-3
    mr = pydicom.dcmread(sample("MR_small.dcm"))
    assert (mr.WindowCenter, mr.WindowWidth) == (600, 1600)
    out = decoded(sample("MR_small.dcm"))
    assert np.abs(out - linear_window(mr.pixel_array, 600, 1600)).max() <= 0.5 + 1e-3
    np.testing.assert_array_equal(decoded(sample("MR_small_RLE.dcm")), out)


def test_pydicom_colour_samples_become_rgb():
    rgb = pydicom.dcmread(sample("SC_rgb_rle.dcm")).pixel_array
    np.testing.assert_array_equal(decoded(sample("SC_rgb_rle.dcm"), "RGB"), rgb)
    # The same picture at 16 bits a sample: scaled from its nominal range, not stretched.
    np.testing.assert_array_equal(decoded(sample("SC_rgb_rle_16bit.dcm"), "RGB"), rgb)
    # And stored as YBR: converted to RGB (up to YBR's rounding).
    assert np.abs(decoded(sample("SC_ybr_full_422_uncompressed.dcm"), "RGB").astype(int) - rgb).mean() < 1
    palette = pydicom.dcmread(sample("examples_palette.dcm"))
    colours = apply_color_lut(palette.pixel_array, palette)  # 16-bit palette entries
    assert np.abs(decoded(sample("examples_palette.dcm"), "RGB") - colours / 257).max() <= 0.5 + 1e-3
    assert decoded(sample("SC_rgb_rle.dcm")).ndim == 2  # and grey where grey is asked for


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("rtplan.dcm", "a DICOM file without pixel data (e.g. a report or structured set, or a file cut short); "
                       "remove it from the data"),
        ("SC_rgb_rle_2frame.dcm", "a DICOM file of 2 frames; medcls reads single images"),
        ("MR_truncated.dcm", "cannot read its pixel data, the file may be truncated or damaged"),
    ],
)  # fmt: skip
def test_pydicom_samples_refused_with_the_reason(name, reason):
    with pytest.raises(DataError) as error:
        decode_image(sample(name))
    assert str(error.value).startswith(f"{sample(name)}: {reason}")


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("JPEG-lossy.dcm", "cannot decode its JPEG Extended (Process 2 and 4)"),  # Pillow tries, but not 12 bits
        ("MR_small_jpeg_ls_lossless.dcm", "no decoder installed reads its JPEG-LS Lossless Image Compression"),
    ],
)
def test_compressed_pixel_data_without_a_decoder_names_what_to_install(name, syntax):
    try:
        pydicom.dcmread(sample(name)).pixel_array  # noqa: B018
    except Exception:
        pass
    else:
        pytest.skip(f"a decoder for {name} is installed")
    with pytest.raises(DataError) as error:
        decode_image(sample(name))
    message = str(error.value)
    assert message.startswith(f"{sample(name)}: {syntax}")
    assert "install" in message and "pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1" in message


def test_files_cut_short_are_refused_naming_them(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 4096, (64, 64), dtype=np.uint16)
    for rle in (False, True):
        whole = write_dicom(tmp_path / "whole.dcm", pixels, bits_stored=12, rle=rle).read_bytes()
        cut = tmp_path / f"cut_{'rle' if rle else 'plain'}.dcm"
        cut.write_bytes(whole[: len(whole) - 1000])
        with pytest.raises(DataError) as error:
            decode_image(cut)
        message = str(error.value)
        assert message.startswith(f"{cut}: ")
        # Uncompressed pixel data ends early; compressed, its fragments end inside the element, which pydicom drops.
        assert ("truncated" in message) if not rle else ("cut short" in message and "pydicom warned" in message)
