from pathlib import Path

import numpy as np
import pytest

from medcls.data.readers.mnist import MNIST_FILES, check_mnist, gunzip_mnist
from medcls.errors import DataError
from medcls.synthetic.digits import write_idx
from tests.conftest import square_digits, write_mnist


def test_the_four_files_of_torchvision_s_layout() -> None:
    assert list(MNIST_FILES) == [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
    ]  # fmt: skip


def test_intact_files_pass_and_gzipped_ones_are_unpacked(tmp_path: Path) -> None:
    raw = write_mnist(tmp_path, compress=True) / "MNIST" / "raw"
    gunzip_mnist(raw)
    assert all((raw / name).is_file() and (raw / f"{name}.gz").is_file() for name in MNIST_FILES)
    check_mnist(raw)


def test_wrong_header_names_the_file(tmp_path: Path) -> None:
    root = write_mnist(tmp_path)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x08\x03" + labels.read_bytes()[4:])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is not an MNIST IDX file \(header 0x00000803"):
        check_mnist(root / "MNIST" / "raw")


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("train-images-idx3-ubyte", lambda data: b"", r"train-images-idx3-ubyte is empty \(0 bytes\)"),
        (
            "t10k-images-idx3-ubyte",
            lambda data: data[:-100],
            r"t10k-images-idx3-ubyte is truncated: its header promises 100 images of 28 x 28, 78416 bytes, "
            r"but the file has 78316 bytes; replace it with the original file\.",
        ),
        (
            "train-labels-idx1-ubyte",
            lambda data: data + b"\x00",
            r"train-labels-idx1-ubyte is longer than its header says: its header promises 600 labels, 608 bytes, but "
            r"the file has 609 bytes",
        ),
        ("t10k-labels-idx1-ubyte", lambda data: data[:6], r"t10k-labels-idx1-ubyte is truncated: 6 bytes, less than"),
    ],
    ids=["empty", "truncated", "padded", "header-cut"],
)
def test_damaged_idx_files_are_named_with_their_sizes(tmp_path: Path, name: str, damage, message: str) -> None:
    root = write_mnist(tmp_path)
    path = root / "MNIST" / "raw" / name
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=message):
        check_mnist(root / "MNIST" / "raw")


def test_images_of_another_size_are_named(tmp_path: Path) -> None:
    root = write_mnist(tmp_path)
    write_idx(root / "MNIST" / "raw" / "t10k-images-idx3-ubyte", np.zeros((100, 32, 32), dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte holds images of 32 x 32 pixels, not MNIST's 28 x 28"):
        check_mnist(root / "MNIST" / "raw")


def test_labels_must_match_the_images_and_be_digits(tmp_path: Path) -> None:
    root = write_mnist(tmp_path)
    raw = root / "MNIST" / "raw"
    labels = square_digits(600, seed=0)[1]
    write_idx(raw / "train-labels-idx1-ubyte", labels[:599])
    with pytest.raises(
        DataError,
        match=rf"{raw / 'train-images-idx3-ubyte'} holds 600 images but {raw / 'train-labels-idx1-ubyte'} holds "
        r"599 labels; replace both",
    ):
        check_mnist(root / "MNIST" / "raw")
    labels[[7, 9]] = [10, 255]
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: label 7 is 10, not a digit 0-9 \(2 such labels\)"):
        check_mnist(root / "MNIST" / "raw")


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    root = write_mnist(tmp_path, compress=True)
    packed = root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:20])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is not a readable gzip file"):
        gunzip_mnist(packed.parent)
    assert sorted(p.name for p in packed.parent.iterdir() if p.name.startswith(".")) == []
