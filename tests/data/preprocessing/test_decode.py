import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcls.data.preprocessing.decode import decode_image
from medcls.data.preprocessing.fundus import FundusPreprocessing
from tests.data.fundus_images import fundus_image


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
    decoded = [np.asarray(decode_image(path)) for path in sources]
    assert (decoded[1] == 255).mean() < 0.01  # not saturated: clipping made the whole disc white
    np.testing.assert_array_equal(decoded[1], decoded[0])
    # And so what a cache stores of them.
    preprocessed = [FundusPreprocessing(size=96)(path) for path in sources]
    assert (preprocessed[1] == 255).mean() < 0.01
    np.testing.assert_array_equal(preprocessed[1], preprocessed[0])


@pytest.mark.parametrize("saved_as", ["PNG", "TIFF"])
def test_12_bit_values_in_16_bit_files_span_black_to_white(tmp_path, saved_as):
    ramp = np.arange(4096, dtype=np.uint16).reshape(64, 64)  # a detector's 12 bits, stored in 16
    path = tmp_path / f"ramp.{saved_as.lower()}"
    Image.fromarray(ramp).save(path, saved_as)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    out = np.asarray(decode_image(path, "L"))
    np.testing.assert_array_equal(out, np.rint(ramp * (255 / 4095)).astype(np.uint8))
    assert (out == 255).mean() < 0.01  # clipped at 255, all but the darkest sixteenth would be white


def test_flat_16_bit_images_are_black(tmp_path):
    Image.fromarray(np.full((8, 8), 3000, dtype=np.uint16)).save(tmp_path / "flat.png")
    assert (np.asarray(decode_image(tmp_path / "flat.png", "L")) == 0).all()
