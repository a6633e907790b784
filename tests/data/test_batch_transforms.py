"""The batched pipelines against the workers' per-image ones: the same distribution of images, per-image randomness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp
from torch import Tensor, nn
from torchvision.transforms import v2

from medcls.data.batch_transforms import BatchPipeline
from medcls.data.transforms import default_eval_transforms, default_train_transforms
from medcls.errors import ConfigError

SIDE = 36
IMAGES = 480
BATCH = 16  # like a training batch: kornia draws some parameters (colour jitter's order) once per batch
TO_FLOAT = v2.ToDtype(torch.float32, scale=True)


def coordinate_image(channels: int = 3, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Floats whose first channel is the x coordinate, second the y coordinate, third a fixed noise texture.

    Every geometric transform shows in the ramps (where the crop lies, how large, which way up), every colour
    transform in all three. Floats, so that neither side rounds to grey levels on the way.
    """
    ramp = torch.linspace(low, high, SIDE)
    texture = low + (high - low) * torch.rand(SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    return torch.stack([ramp.expand(SIDE, SIDE), ramp.view(-1, 1).expand(SIDE, SIDE), texture])[:channels]


def summaries(images: Tensor) -> np.ndarray:
    """Per image and channel: mean, std, right minus left column, bottom minus top row."""
    images = images.double()
    columns = images[..., -1].mean(-1) - images[..., 0].mean(-1)
    rows = images[..., -1, :].mean(-1) - images[..., 0, :].mean(-1)
    return torch.cat([images.mean((2, 3)), images.std((2, 3)), columns, rows], 1).numpy()


def smallest_p(transforms: list[nn.Module], image: Tensor, device_transforms: list[nn.Module] | None = None) -> float:
    """The smallest two-sample Kolmogorov-Smirnov p-value over the summaries of the workers' and the batched images.

    The summaries are dithered by half a grey level, far above float rounding (which would otherwise split
    point masses such as "not flipped" into two) and far below any real difference.
    """
    torch.manual_seed(0)
    workers = v2.Compose(transforms)
    one_by_one = torch.stack([workers(image) for _ in range(IMAGES)])
    batched = BatchPipeline(device_transforms or transforms, "--data.train_transforms")
    batch = image.expand(BATCH, -1, -1, -1).contiguous()
    together = torch.cat([batched(batch) for _ in range(IMAGES // BATCH)])
    dither = np.random.default_rng(0)
    a, b = (s + dither.uniform(-0.002, 0.002, s.shape) for s in (summaries(one_by_one), summaries(together)))
    return min(ks_2samp(a[:, k], b[:, k]).pvalue for k in range(a.shape[1]))


CASES = {
    "fundus default": (default_train_transforms(32)[:-1], coordinate_image()),
    "x-ray default (rotation, grey)": (
        default_train_transforms(32, channels=1, mirror=False)[:-1],
        coordinate_image(channels=1),
    ),  # fmt: skip
    "CANet (resize, crop)": (
        [v2.Resize(36), v2.RandomResizedCrop(32), v2.RandomHorizontalFlip(), TO_FLOAT],
        coordinate_image(),
    ),  # fmt: skip
    "crop shrunk (antialiased)": ([v2.RandomResizedCrop(16, scale=(0.6, 1.0)), TO_FLOAT], coordinate_image()),
    "random crop, vertical flip": ([v2.RandomCrop(30), v2.RandomVerticalFlip(0.3), TO_FLOAT], coordinate_image()),
    "colour jitter": ([v2.ColorJitter(0.3, 0.3, 0.3, 0.05), TO_FLOAT], coordinate_image()),
    "autocontrast": ([v2.RandomAutocontrast(), TO_FLOAT], coordinate_image(low=0.2, high=0.6)),
    "grayscale": ([v2.RandomGrayscale(0.3), TO_FLOAT], coordinate_image()),
}


@pytest.mark.parametrize("case", CASES)
def test_batches_get_the_distribution_of_images_the_workers_make(case: str) -> None:
    transforms, image = CASES[case]
    assert smallest_p(transforms, image) > 1e-3


def test_the_comparison_sees_a_different_distribution() -> None:
    """The check above has power: crops of 40 % to 100 % of the image instead of 60 % to 100 % are told apart."""
    wider = [v2.RandomResizedCrop(32, scale=(0.4, 1.0)), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), TO_FLOAT]
    assert smallest_p(default_train_transforms(32)[:-1], coordinate_image(), wider) < 1e-6


def test_each_image_of_a_batch_gets_its_own_parameters() -> None:
    torch.manual_seed(0)
    batch = (255 * coordinate_image()).to(torch.uint8).expand(BATCH, -1, -1, -1)
    out = BatchPipeline(default_train_transforms(32), "--data.train_transforms")(batch)
    assert out.shape == (BATCH, 3, 32, 32) and out.dtype == torch.float32
    assert len({tuple(image.flatten()[:64].tolist()) for image in out}) == BATCH


def test_deterministic_pipelines_give_the_workers_images() -> None:
    images = torch.randint(0, 256, (4, 3, 50, 50), dtype=torch.uint8)
    transforms = [*default_eval_transforms(32)[:2], v2.Pad(2), *default_eval_transforms(32)[2:]]
    batched = BatchPipeline(transforms, "--data.eval_transforms")(images)
    one_by_one = torch.stack([v2.Compose(transforms)(image) for image in images])
    torch.testing.assert_close(batched, one_by_one)


def test_a_transform_without_a_batched_counterpart_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"--data.train_transforms: RandomAffine cannot run on whole batches.*workers"
    ):
        BatchPipeline([v2.RandomAffine(10)], "--data.train_transforms")
    with pytest.raises(ConfigError, match=r"--data.train_transforms: RandomCrop\(padding=.*leave padding at None"):
        BatchPipeline([v2.RandomCrop(10, padding=4)], "--data.train_transforms")
