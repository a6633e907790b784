import gzip
from pathlib import Path

import numpy as np

from medcls.synthetic.digits import synthetic_digits, write_idx, write_synthetic_mnist
from tests.conftest import ready_mnist


def test_synthetic_digits_are_learnable_shapes_in_mnist_files(tmp_path: Path) -> None:
    data = ready_mnist(write_synthetic_mnist(tmp_path, train=400, test=50), batch_size=400)
    assert (len(data.train_set) + len(data.val_set), len(data.test_set)) == (400, 50)
    images, labels = synthetic_digits(2000, seed=3)
    assert images.shape == (2000, 28, 28) and images.dtype == np.uint8 and set(labels) == set(range(10))
    assert np.array_equal(images, synthetic_digits(2000, seed=3)[0])  # seeded
    # Shapes, not blobs: a nearest-class-mean classifier on raw pixels beats chance by far, yet is not perfect.
    train, test = slice(0, 1500), slice(1500, None)
    means = np.stack([images[train][labels[train] == d].reshape(-1, 784).mean(0) for d in range(10)])
    distances = ((images[test].reshape(-1, 1, 784) - means[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) == labels[test]).mean()
    assert 0.3 < accuracy < 0.99


def test_idx_files_hold_the_array_after_their_header(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "cube-idx3-ubyte", array)
    data = path.read_bytes()
    assert data[:4] == b"\x00\x00\x08\x03" and [int.from_bytes(data[i : i + 4], "big") for i in (4, 8, 12)] == [2, 3, 4]
    assert data[16:] == array.tobytes()
    packed = write_idx(tmp_path / "cube-idx3-ubyte", array, compress=True)
    assert packed.name == "cube-idx3-ubyte.gz"
    assert gzip.decompress(packed.read_bytes()) == data
