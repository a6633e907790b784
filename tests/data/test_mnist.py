from collections import Counter
from pathlib import Path

import pytest
import torch
from torchvision.datasets import MNIST

from medcls.data import MNISTDataModule
from medcls.errors import ConfigError, DataError
from tests.conftest import ready_mnist, square_digits, write_mnist

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_reads_idx_files_into_batches(tmp_path: Path, compress: bool) -> None:
    root = write_mnist(tmp_path, train=600, test=100, compress=compress)
    data = ready_mnist(root, batch_size=32)
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
    first, again, other = ready_mnist(root), ready_mnist(root), ready_mnist(root, split_seed=1)
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
    data = ready_mnist(mnist_root)
    assert data.input_shape == (1, 28, 28) == tuple(data.train_set[0]["image"].shape)


def test_augmented_training_digits_move_and_keep_a_black_background(tmp_path: Path) -> None:
    root = write_mnist(tmp_path, train=300, test=20)
    plain, augmented = ready_mnist(root), ready_mnist(root, augment=True)
    torch.manual_seed(0)
    original, moved = plain.train_set[0]["image"], augmented.train_set[0]["image"]
    assert moved.shape == original.shape and not torch.equal(moved, original)
    black = (0 - 0.1307) / 0.3081
    assert moved[0, 0, 0] == pytest.approx(black) and moved.min() == pytest.approx(black)  # filled, not grey
    assert torch.equal(augmented.val_set[0]["image"], plain.val_set[0]["image"])  # validation never augmented


def test_prepare_data_checks_the_files_in_full(tmp_path: Path) -> None:
    root = write_mnist(tmp_path)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is truncated"):
        MNISTDataModule(root).prepare_data()


def test_class_counts_are_the_digits_of_the_training_split(tmp_path: Path) -> None:
    data = ready_mnist(write_mnist(tmp_path))
    counts = data.class_counts("digit")
    served = Counter(int(data.train_set[i]["digit"]) for i in range(len(data.train_set)))
    assert counts.dtype == torch.float32 and counts.tolist() == [served[d] for d in range(10)]
    assert counts.sum() == len(data.train_set) == 500
    torch.testing.assert_close(data.class_weights("digit"), 500 / (10 * counts.clamp(min=1)))
