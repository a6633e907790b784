"""Image pipelines run on whole batches on the accelerator (``--data.transforms_on device``).

Loader workers then only read the cached uint8 images and collate them; the batch is copied to the device
(pinned, non-blocking) and transformed there, each image with random parameters of its own. A few CPU cores
can feed a fast GPU this way: decoding and augmenting every image in the workers cannot keep up.

The pipelines are the same ``torchvision.transforms.v2`` lists as the workers run, so one config serves both
places. The deterministic transforms (resize, crop, pad, normalise) run on the batch as they are, since v2
transforms take leading batch dimensions. Each random transform is replaced by its ``kornia.augmentation``
counterpart with the same settings: torchvision draws one set of random parameters per call, which would be
one per batch here, while kornia draws them per image, batched, on any device, with torchvision's sampling of
crops. The two places give the same distribution of images (``tests/data/test_batch_transforms.py`` checks it
statistically), not the same images: each draws from its own random stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms import v2

from medcls.errors import ConfigError

# Transforms without randomness: v2 applies them to a B x C x H x W batch as to one image.
_DETERMINISTIC = (v2.Resize, v2.CenterCrop, v2.Pad, v2.Normalize, v2.ToDtype, v2.Grayscale, nn.Identity)


class _ResizedCrop(K.RandomResizedCrop):
    """kornia's random resized crop (torchvision's sampling of crops, per image), resized the way torchvision resizes.

    kornia resizes without antialiasing, which makes a crop shrunk to half its size (a 512 px cache, a 224 px
    input) sharper and noisier than torchvision's; each crop is resized here with torchvision's own interpolation.
    """

    def __init__(self, size: tuple[int, int], scale: Sequence[float], ratio: Sequence[float], mode: str,
                 antialias: bool) -> None:  # fmt: skip
        super().__init__(size, scale=tuple(scale), ratio=tuple(ratio))
        self.mode, self.antialias = mode, antialias

    def apply_transform(
        self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any], transform: Tensor | None = None
    ) -> Tensor:
        # The crops' corners (x, y), clockwise from the top left; drawn on the host, so reading them costs no sync.
        corners = params["src"].long().tolist()
        crops = [
            F.interpolate(image[None, :, top : bottom + 1, left : right + 1], size=self.flags["size"], mode=self.mode,
                          align_corners=False, antialias=self.antialias)
            for image, ((left, top), _, (right, bottom), _) in zip(input, corners, strict=True)
        ]  # fmt: skip
        return torch.cat(crops)


def _check_defaults(transform: nn.Module, **defaults: Any) -> None:
    """Refuse settings of ``transform`` that its batched counterpart does not have."""
    for name, default in defaults.items():
        if getattr(transform, name) != default:
            raise ConfigError(
                f"{type(transform).__name__}({name}={getattr(transform, name)!r}) has no batched counterpart with "
                f"--data.transforms_on device; leave {name} at {default!r}, or use --data.transforms_on workers."
            )


def _mode(interpolation: str | v2.InterpolationMode) -> str:
    """The name of a torchvision interpolation, as kornia and ``F.interpolate`` take it."""
    return v2.InterpolationMode(interpolation).value


def _resized_crop(t: v2.RandomResizedCrop) -> nn.Module:
    return _ResizedCrop(t.size, t.scale, t.ratio, _mode(t.interpolation), bool(t.antialias))


def _crop(t: v2.RandomCrop) -> nn.Module:
    _check_defaults(t, padding=None, pad_if_needed=False)
    return K.RandomCrop(t.size, p=1.0)


def _rotation(t: v2.RandomRotation) -> nn.Module:
    _check_defaults(t, expand=False, center=None, fill=0)
    return K.RandomRotation(tuple(t.degrees), resample=_mode(t.interpolation), align_corners=False, p=1.0)


def _colour_jitter(t: v2.ColorJitter) -> nn.Module:
    # v2 keeps each unset factor as None; kornia's 0 means the same: unchanged.
    ranges = {name: getattr(t, name) or 0.0 for name in ("brightness", "contrast", "saturation", "hue")}
    return K.ColorJitter(**ranges, p=1.0)


# Random torchvision transform -> its batched, per-image kornia counterpart.
_RANDOM: dict[type, Callable[[Any], nn.Module]] = {
    v2.RandomResizedCrop: _resized_crop,
    v2.RandomCrop: _crop,
    v2.RandomHorizontalFlip: lambda t: K.RandomHorizontalFlip(p=t.p),
    v2.RandomVerticalFlip: lambda t: K.RandomVerticalFlip(p=t.p),
    v2.RandomRotation: _rotation,
    v2.ColorJitter: _colour_jitter,
    v2.RandomAutocontrast: lambda t: K.RandomAutoContrast(p=t.p),
    v2.RandomEqualize: lambda t: K.RandomEqualize(p=t.p),
    v2.RandomGrayscale: lambda t: K.RandomGrayscale(p=t.p),
}


class _OnFloats(nn.Module):
    """A kornia augmentation given images as it needs them: floats in [0, 1] (uint8 images are converted first)."""

    def __init__(self, augmentation: nn.Module) -> None:
        super().__init__()
        self.augmentation = augmentation

    def forward(self, images: Tensor) -> Tensor:  # noqa: D102
        if not images.is_floating_point():
            images = v2.functional.to_dtype(images, torch.float32, scale=True)
        return self.augmentation(images)


class BatchPipeline(nn.Module):
    """A ``torchvision.transforms.v2`` pipeline applied to a whole batch, each image with its own random parameters.

    The ``ToDtype(torch.float32, scale=True)`` of a pipeline does nothing once a random transform has turned the
    images into floats in [0, 1], as kornia needs them.

    Args:
        transforms: The pipeline, as the workers would run it on one image.
        option: The option the pipeline came from (``--data.train_transforms``), named in errors.

    Raises:
        ConfigError: A transform has no batched counterpart, or a setting of one has none.
    """

    def __init__(self, transforms: Sequence[nn.Module], option: str) -> None:
        super().__init__()
        steps = []
        for transform in transforms:
            kind = type(transform)
            if isinstance(transform, _DETERMINISTIC):
                steps.append(transform)
            elif kind in _RANDOM:
                try:
                    steps.append(_OnFloats(_RANDOM[kind](transform)))
                except ConfigError as error:
                    raise ConfigError(f"{option}: {error}") from error
            else:
                supported = sorted(t.__name__ for t in (*_DETERMINISTIC, *_RANDOM))
                raise ConfigError(
                    f"{option}: {kind.__name__} cannot run on whole batches (--data.transforms_on device); use "
                    f"--data.transforms_on workers, or only these transforms: {', '.join(supported)}."
                )
        self.steps = nn.Sequential(*steps)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Transform a B x C x H x W batch of uint8 images (on any device) into what the network gets."""
        return self.steps(images)
