"""Image pipelines: lists of ``torchvision.transforms.v2`` transforms, composed with ``Compose``.

Data modules take ``train_transforms`` and ``eval_transforms`` as lists in YAML (``class_path`` /
``init_args`` per transform); ``configs/transforms/`` holds presets to stack. The pipelines get a uint8
C x H x W tensor and return what the network sees (float, normalised).
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
from torch import nn
from torchvision.transforms import v2

from medcls.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# For grey images: the means of ImageNet's three channels' means and stds.
IMAGENET_GREY_MEAN = (0.449,)
IMAGENET_GREY_STD = (0.226,)
# Training rotates images that must not be mirrored by up to this many degrees either way instead: a patient is
# never quite straight, and the black corners it brings stay small.
_ROTATION_DEGREES = 5


def imagenet_statistics(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's mean and std per channel for images of 1 (grey) or 3 (RGB) channels.

    Raises:
        ValueError: If ``channels`` is neither 1 nor 3.
    """
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        return IMAGENET_GREY_MEAN, IMAGENET_GREY_STD
    raise ValueError(f"images of {channels} channels have no ImageNet statistics; only 1 (grey) and 3 (RGB) do")


def to_normalised_float(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> list[nn.Module]:
    """The end of every pipeline: uint8 -> float in [0, 1] -> normalised with one mean and std per channel."""
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def default_train_transforms(size: int, channels: int = 3, mirror: bool = True) -> list[nn.Module]:
    """CANet's training recipe scaled to ``size``: random resized crop, flips (or a slight rotation), normalisation.

    Args:
        size: Side of the square images the network gets.
        channels: Channels of the images: 1 (grey) or 3 (RGB); chooses the normalisation.
        mirror: Flip images horizontally and vertically at random; ``False`` (for images whose mirror image is
            implausible, such as chest radiographs) rotates them by a few degrees instead.
    """
    crop = v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True)
    normalise = to_normalised_float(*imagenet_statistics(channels))
    if mirror:
        return [crop, v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), *normalise]
    return [v2.RandomRotation(_ROTATION_DEGREES), crop, *normalise]


def default_eval_transforms(size: int, channels: int = 3) -> list[nn.Module]:
    """Resize the (square) image to ``size``, ImageNet normalisation for its ``channels`` (1 or 3)."""
    return [v2.Resize(size, antialias=True), v2.CenterCrop(size), *to_normalised_float(*imagenet_statistics(channels))]


class TimmNormalize(v2.Normalize):
    """Normalise with the mean and std the pretrained weights of a timm model expect.

    timm's registry holds them (no download): ImageNet's for most CNNs, 0.5 for many ViTs and Inception-v3.
    In a YAML pipeline, in place of ``Normalize``, after ``ToDtype(torch.float32, scale=True)``::

        - class_path: medcls.data.transforms.TimmNormalize
          init_args: {model: resnet50}

    Args:
        model: A ``timm.list_models(pretrained=True)`` name, with or without a pretrained tag (``resnet50``,
            ``resnet50.tv_in1k``); the same as the net's.
        channels: 1 for grey images (a net with ``in_chans: 1``, whose first convolution timm sums over the RGB
            kernels): the mean of the weights' three means and stds.

    Raises:
        ConfigError: timm has no pretrained weights of that name, or ``channels`` is neither 1 nor 3.
    """

    def __init__(self, model: str, channels: int = 3) -> None:
        # An unknown pretrained tag of a known architecture raises, an unknown architecture gives None.
        try:
            cfg = timm.get_pretrained_cfg(model)
        except RuntimeError:
            cfg = None
        if cfg is None:
            raise ConfigError(
                f"TimmNormalize in the data's transforms: timm has no pretrained weights {model!r}; name one of "
                "timm.list_models(pretrained=True), the same as the net's."
            )
        if channels not in (1, 3):
            raise ConfigError(f"TimmNormalize in the data's transforms: channels is {channels}; give 1 (grey) or 3.")
        mean, std = list(cfg.mean), list(cfg.std)
        if channels == 1:
            mean, std = [sum(mean) / 3], [sum(std) / 3]
        super().__init__(mean, std)
        self.model = model
