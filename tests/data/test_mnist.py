from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from medcls.data import MNISTDataModule
from medcls.data.mnist import write_idx
from medcls.errors import ConfigError, DataError
from tests.conftest import square_digits, write_mnist

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def ready(root: Path, **kwargs) -> MNISTDataModule:
    data = MNISTDataModule(root, val_size=100, **kwargs)
    data.prepare_data()
    data.setup("fit")
    data.setup("test")
    return data


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_reads_idx_files_into_batches(tmp_path: Path, compress: bool) -> None:
    root = write_mnist(tmp_path, train=600, test=100, compress=compress)
    data = ready(root, batch_size=32)
    assert data.tasks == {"digit": 10}
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (500, 100, 100)
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (32, 1, 28, 28) and batch["image"].dtype == torch.float32
    assert batch["digit"].dtype == torch.int64 and len(batch["id"]) == 32
    images, labels = square_digits(100, seed=1)  # what write_mnist wrote as the test split
    sample = data.test_set[7]
    assert sample["id"] == "test/00007" and sample["digit"] == labels[7]
    torch.testing.assert_close(sample["image"][0], (torch.from_numpy(images[7]) / 255 - 0.1307) / 0.3081)


def test_validation_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    root = write_mnist(tmp_path)
    first, again, other = ready(root), ready(root), ready(root, split_seed=1)
    train_ids, val_ids = set(first.train_set.ids), set(first.val_set.ids)
    assert not train_ids & val_ids and len(train_ids | val_ids) == 600
    assert first.val_set.ids == again.val_set.ids
    assert set(other.val_set.ids) != val_ids
    assert not {i for i in val_ids} & set(first.test_set.ids)


def test_missing_files_give_one_error_naming_them(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        MNISTDataModule(tmp_path).prepare_data()
    message = str(error.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "set data.download true" in message
    assert all(name in message for name in FILES)


def test_failed_download_gives_one_error_without_network_traceback(tmp_path: Path, monkeypatch) -> None:
    def offline(self) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://...: <urlopen error>")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(DataError, match="Put the four files .* the download failed") as error:
        MNISTDataModule(tmp_path, download=True).prepare_data()
    assert error.value.__cause__ is None and error.value.__context__ is None


def test_wrong_header_names_the_file(tmp_path: Path) -> None:
    root = write_mnist(tmp_path)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x08\x03" + labels.read_bytes()[4:])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is not an MNIST IDX file \(header 0x00000803"):
        MNISTDataModule(root).prepare_data()


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
        MNISTDataModule(root).prepare_data()


def test_images_of_another_size_are_named(tmp_path: Path) -> None:
    root = write_mnist(tmp_path)
    write_idx(root / "MNIST" / "raw" / "t10k-images-idx3-ubyte", np.zeros((100, 32, 32), dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte holds images of 32 x 32 pixels, not MNIST's 28 x 28"):
        MNISTDataModule(root).prepare_data()


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
        MNISTDataModule(root).prepare_data()
    labels[[7, 9]] = [10, 255]
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: label 7 is 10, not a digit 0-9 \(2 such labels\)"):
        MNISTDataModule(root).prepare_data()


def test_validation_size_names_the_option_and_its_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--data\.val_size is 0; the training images held out must be at least 1"):
        MNISTDataModule(tmp_path, val_size=0)
    root = write_mnist(tmp_path, train=600)
    data = MNISTDataModule(root, val_size=600)
    data.prepare_data()
    data.setup("test")  # testing needs no validation split: any size will do
    assert len(data.test_set) == 100
    with pytest.raises(ConfigError, match=r"--data\.val_size is 600; .* must be from 1 to 599\."):
        data.setup("fit")
    with pytest.raises(ConfigError, match=r"--data\.std is 0"):
        MNISTDataModule(root, std=0)


def test_input_shape_is_one_grey_channel_of_28_by_28(mnist_root: Path) -> None:
    data = ready(mnist_root)
    assert data.input_shape == (1, 28, 28) == tuple(data.train_set[0]["image"].shape)


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    root = write_mnist(tmp_path, compress=True)
    packed = root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:20])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is not a readable gzip file"):
        MNISTDataModule(root).prepare_data()
    assert sorted(p.name for p in packed.parent.iterdir() if p.name.startswith(".")) == []


def test_augmented_training_digits_move_and_keep_a_black_background(tmp_path: Path) -> None:
    root = write_mnist(tmp_path, train=300, test=20)
    plain, augmented = ready(root), ready(root, augment=True)
    torch.manual_seed(0)
    original, moved = plain.train_set[0]["image"], augmented.train_set[0]["image"]
    assert moved.shape == original.shape and not torch.equal(moved, original)
    black = (0 - 0.1307) / 0.3081
    assert moved[0, 0, 0] == pytest.approx(black) and moved.min() == pytest.approx(black)  # filled, not grey
    assert torch.equal(augmented.val_set[0]["image"], plain.val_set[0]["image"])  # validation never augmented


def test_synthetic_digits_are_learnable_shapes_in_mnist_files(tmp_path: Path) -> None:
    from medcls.data.mnist import synthetic_digits, write_synthetic_mnist

    data = ready(write_synthetic_mnist(tmp_path, train=400, test=50), batch_size=400)
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
