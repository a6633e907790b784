"""Fixtures shared across the test suite: small data sets written in the real layouts."""

from __future__ import annotations

import os

# Before torch loads OpenMP: idle threads sleep instead of spinning. On a busy machine (2 cores shared with other
# jobs) spinning threads that wait for a preempted one burn the cores, and made the suite several times slower.
# The children the tests start (medcls commands, notebook kernels, DDP processes) inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import numpy as np
import pytest

from medcls.data import MNISTDataModule
from medcls.synthetic.digits import write_idx


def square_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 grey 'digits': class d lights a 6x6 square at one of ten places, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        row, column = divmod(int(label), 5)
        image[3 + 12 * row : 9 + 12 * row, 1 + 5 * column : 7 + 5 * column] = 255
    return images, labels


def write_mnist(root: Path, *, train: int = 600, test: int = 100, compress: bool = False) -> Path:
    """Write the four MNIST files of square digits in torchvision's layout under ``root``."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = square_digits(count, seed)
        write_idx(raw / f"{split}-images-idx3-ubyte", images, compress=compress)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels, compress=compress)
    return root


def ready_mnist(root: Path, **kwargs) -> MNISTDataModule:
    """The MNIST data module of ``root`` (100 validation digits), prepared and set up for every stage."""
    data = MNISTDataModule(root, val_size=100, **kwargs)
    data.prepare_data()
    data.setup("fit")
    data.setup("test")
    return data


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """A small synthetic MNIST (600 training, 100 test images) in torchvision's layout."""
    return write_mnist(tmp_path / "mnist")


def tutorial_args(mnist_root: Path) -> list[str]:
    """The tutorial config on the small MNIST in ``mnist_root``, one epoch, without progress bar."""
    return [
        "--config", str(Path(__file__).parents[1] / "configs/mnist/tutorial.yaml"),
        "--data.root", str(mnist_root), "--data.download", "false", "--data.val_size", "100",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "2",
    ]  # fmt: skip


@pytest.fixture
def tutorial(mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tutorial config on the small MNIST, one epoch, run from an empty folder (``tmp_path / "run"``)."""
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    return tutorial_args(mnist_root)


@pytest.fixture(scope="session")
def tutorial_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of one fit of ``tutorial`` (one epoch, the same small MNIST), trained once per session.

    Shared by every test that asks for it: copy it (``shutil.copytree``) before writing to it or next to it.
    """
    from medcls.cli import main

    folder = tmp_path_factory.mktemp("tutorial_run")
    mnist = write_mnist(folder / "mnist")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        main(["fit", *tutorial_args(mnist)])
    return folder / "runs" / "mnist-tutorial" / "version_0"


@pytest.fixture(scope="session")
def synthetic_idrid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic IDRiD tree (30 training, 10 test images of 160x106 px), written once per session."""
    from medcls.synthetic import write_idrid_tree

    return write_idrid_tree(tmp_path_factory.mktemp("idrid"), train=30, test=10, size=(160, 106), seed=3)
