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


def to_normalised_float(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> list[nn.Module]:
    """The end of every pipeline: uint8 -> float in [0, 1] -> normalised."""
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def default_train_transforms(size: int) -> list[nn.Module]:
    """CANet's training recipe scaled to ``size``: random resized crop, both flips, ImageNet normalisation."""
    return [
        v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        *to_normalised_float(),
    ]


def default_eval_transforms(size: int) -> list[nn.Module]:
    """Resize the (square) image to ``size``, ImageNet normalisation."""
    return [v2.Resize(size, antialias=True), v2.CenterCrop(size), *to_normalised_float()]


class TimmNormalize(v2.Normalize):
    """Normalise with the mean and std the pretrained weights of a timm model expect.

    timm's registry holds them (no download): ImageNet's for most CNNs, 0.5 for many ViTs and Inception-v3.
    In a YAML pipeline, in place of ``Normalize``, after ``ToDtype(torch.float32, scale=True)``::

        - class_path: medcls.data.transforms.TimmNormalize
          init_args: {model: resnet50}

    Args:
        model: A ``timm.list_models(pretrained=True)`` name, with or without a pretrained tag (``resnet50``,
            ``resnet50.tv_in1k``); the same as the net's.

    Raises:
        ConfigError: timm has no pretrained weights of that name.
    """

    def __init__(self, model: str) -> None:
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
        super().__init__(list(cfg.mean), list(cfg.std))
        self.model = model
