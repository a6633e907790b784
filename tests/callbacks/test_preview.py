from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

import medcls.callbacks.preview
from medcls.callbacks import TrainingPreview
from medcls.data import TaskDataModule
from medcls.errors import ConfigError
from medcls.models import Classifier

MEAN, STD = 0.5, 0.25
NAMES = {"dr": ["none", "moderate", "severe"], "dme": ["absent", "present"]}

TRAIN_DR, TRAIN_DME = [0, 1, 2, -1, 1, 0, 2, 1], [1, -1, 0, 1, 0, 1, 1, 0]
TRAIN_TITLES = [
    "dr none\ndme present", "dr moderate\ndme ?", "dr severe\ndme absent", "dr ?\ndme present",
    "dr moderate\ndme absent", "dr none\ndme present", "dr severe\ndme present", "dr moderate\ndme absent",
]  # fmt: skip
TRAIN_RAW = 0.2 + 0.5 * torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(0))  # not spanning [0, 1]

VAL_DR, VAL_DR_PREDICTED = [0, 1, 2, 2, -1], [0, 2, 2, 1, 0]
VAL_DME, VAL_DME_PREDICTED = [1, -1, 0, 1, 0], [1, 1, 0, 0, 0]
EXPECTED_CONFUSION = {  # rows true, columns predicted; the images labelled -1 for a task are not counted
    "dr": [[1, 0, 0], [0, 0, 1], [0, 1, 1]],
    "dme": [[2, 0], [1, 1]],
}


class ReadsPixels(nn.Module):
    """Predicts what the image says: dr's logits are its first row's first three pixels, dme's its second row's."""

    def __init__(self, tasks: dict[str, int]) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))  # something to train: one bias on every logit changes no argmax

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return {"dr": image[:, 0, 0, :3] + self.bias, "dme": image[:, 0, 1, :2] + self.bias}


def val_raw() -> Tensor:
    """Validation images that ReadsPixels predicts as VAL_DR_PREDICTED and VAL_DME_PREDICTED."""
    raw = torch.full((len(VAL_DR), 1, 4, 4), 0.3)
    for image, dr, dme in zip(raw, VAL_DR_PREDICTED, VAL_DME_PREDICTED, strict=True):
        image[0, 0, dr] = image[0, 1, dme] = 0.9
    return raw


class Samples(Dataset):
    """Batch dicts of the given images (served as (raw - MEAN) / STD if ``normalise``) and labels."""

    def __init__(self, raw: Tensor, dr: list[int], dme: list[int], split: str, normalise: bool) -> None:
        self.images = (raw - MEAN) / STD if normalise else raw
        self.dr, self.dme, self.split = dr, dme, split

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "dr": self.dr[i], "dme": self.dme[i], "id": f"{self.split}/{i}"}


class Normalised(TaskDataModule):
    """Grey images served as (raw - MEAN) / STD; its denormalise undoes that."""

    tasks = {"dr": 3, "dme": 2}
    input_shape = (1, 4, 4)

    def __init__(self) -> None:
        super().__init__(batch_size=4)
        self.train_set = Samples(TRAIN_RAW, TRAIN_DR, TRAIN_DME, "train", normalise=True)
        self.val_set = Samples(val_raw(), VAL_DR, VAL_DME, "val", normalise=True)

    def denormalise(self, images: Tensor) -> Tensor:
        return images * STD + MEAN


class NoTaskDataModule(LightningDataModule):
    """The same images served as they are, by a data module that has no ``denormalise``."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(Samples(TRAIN_RAW, TRAIN_DR, TRAIN_DME, "train", normalise=False), batch_size=8)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(Samples(val_raw(), VAL_DR, VAL_DME, "val", normalise=False), batch_size=4)


class Unnamed(LightningModule):
    """A module that is no Classifier, so it names no classes."""

    def __init__(self) -> None:
        super().__init__()
        self.net = ReadsPixels({})

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self.net(batch["image"])["dr"].mean()

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return {"probabilities": {task: logits.softmax(1) for task, logits in self.net(batch["image"]).items()}}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(
    preview: TrainingPreview, logger: Logger, monkeypatch: pytest.MonkeyPatch, model: LightningModule | None = None,
    data: LightningDataModule | None = None,
) -> dict[str, list[Figure]]:  # fmt: skip
    """Fit two epochs of two batches after a sanity check (by default a Classifier naming its classes on Normalised).

    Returns the figures given to TensorBoard, by tag.
    """
    model = model or Classifier(ReadsPixels, Normalised.tasks, class_names=NAMES)
    drawn = defaultdict(list)
    if isinstance(logger, TensorBoardLogger):
        writer = type(logger.experiment)
        add_figure = writer.add_figure

        def recording(self, tag: str, figure: Figure, *args, **kwargs) -> None:
            drawn[tag].append(figure)
            add_figure(self, tag, figure, *args, **kwargs)

        monkeypatch.setattr(writer, "add_figure", recording)
    Trainer(
        accelerator="cpu", max_epochs=2, limit_train_batches=2, callbacks=[preview], logger=logger,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
    ).fit(model, datamodule=data or Normalised())  # fmt: skip
    return drawn


def logged_images(logger: TensorBoardLogger) -> dict[str, int]:
    """How many images each tag of the run's event file holds."""
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    return {tag: len(events.Images(tag)) for tag in events.Tags()["images"]}


def shown_images(figure: Figure) -> list[tuple[np.ndarray, str]]:
    """The pixels and title of every image of a grid (one axes: the images in order, each with its text)."""
    (ax,) = figure.axes
    return [(image.get_array(), text.get_text()) for image, text in zip(ax.images, ax.texts, strict=True)]


def matching(pixels: np.ndarray, images: Tensor) -> int:
    """The index of the one grey image (N x 1 x H x W) that the shown pixels are."""
    (index,) = [i for i, image in enumerate(images) if np.allclose(pixels, image[0].numpy(), atol=1e-6)]
    return index


def test_the_first_batch_is_logged_once_as_the_net_receives_it_denormalised_and_titled_by_class_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = TensorBoardLogger(tmp_path)
    drawn = fit(TrainingPreview(images=3), logger, monkeypatch)
    assert logged_images(logger)["train/first_batch"] == 1
    (grid,) = drawn["train/first_batch"]
    shown = shown_images(grid)
    assert len(shown) == 3  # of a batch of 4
    for pixels, title in shown:
        assert pixels.shape == (4, 4)  # one channel, drawn grey over [0, 1]
        assert pixels.min() >= 0 and pixels.max() <= 1
        assert title == TRAIN_TITLES[matching(pixels, TRAIN_RAW)]
    assert grid.axes[0].images[0].get_cmap().name == "gray"
    assert grid.axes[0].images[0].get_clim() == (0, 1)


@pytest.mark.parametrize(("every_n_epochs", "epochs_drawn"), [(1, 2), (2, 1), (0, 0)])
def test_validation_epochs_log_their_confusion_matrices_without_the_unlabelled_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every_n_epochs: int, epochs_drawn: int
) -> None:
    logger = TensorBoardLogger(tmp_path)
    drawn = fit(TrainingPreview(confusion_every_n_epochs=every_n_epochs), logger, monkeypatch)
    logged = logged_images(logger)
    for task, expected in EXPECTED_CONFUSION.items():
        assert logged.get(f"val/confusion/{task}", 0) == epochs_drawn  # the sanity check's validation not among them
        assert len(drawn[f"val/confusion/{task}"]) == epochs_drawn
        for figure in drawn[f"val/confusion/{task}"]:
            ax = figure.axes[0]
            np.testing.assert_array_equal(ax.images[0].get_array(), expected)
            assert [label.get_text() for label in ax.get_xticklabels()] == NAMES[task]


def test_without_tensorboard_nothing_is_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs) -> None:
        raise AssertionError("drew a figure without a TensorBoard logger")

    monkeypatch.setattr(medcls.callbacks.preview, "image_grid", refuse)
    monkeypatch.setattr(medcls.callbacks.preview, "confusion_figure", refuse)
    fit(TrainingPreview(), CSVLogger(tmp_path), monkeypatch)
    assert not list(tmp_path.rglob("events.out.tfevents*"))


def test_without_class_names_or_a_medcls_data_module_indices_name_the_classes_and_images_are_stretched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = fit(TrainingPreview(), TensorBoardLogger(tmp_path), monkeypatch, Unnamed(), NoTaskDataModule())
    (grid,) = drawn["train/first_batch"]
    shown = shown_images(grid)
    assert len(shown) == len(TRAIN_RAW)
    low, high = TRAIN_RAW.amin((1, 2, 3), keepdim=True), TRAIN_RAW.amax((1, 2, 3), keepdim=True)
    for pixels, title in shown:
        index = matching(pixels, (TRAIN_RAW - low) / (high - low))
        dr, dme = ("?" if label < 0 else label for label in (TRAIN_DR[index], TRAIN_DME[index]))
        assert title == f"dr {dr}\ndme {dme}"
    confusion = drawn["val/confusion/dr"][-1].axes[0]
    assert [label.get_text() for label in confusion.get_xticklabels()] == ["0", "1", "2"]
    np.testing.assert_array_equal(confusion.images[0].get_array(), EXPECTED_CONFUSION["dr"])


@pytest.mark.parametrize("setting", ["images", "confusion_every_n_epochs"])
def test_negative_settings_are_refused_naming_the_option(setting: str) -> None:
    with pytest.raises(ConfigError, match=f"--preview.{setting} is -1"):
        TrainingPreview(**{setting: -1})
