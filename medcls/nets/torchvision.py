"""The lecture's classic CNNs from torchvision, classifier replaced by one linear head per task."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn
from torchvision import models

from medcls.errors import ConfigError
from medcls.nets.checks import check_positive, check_probability
from medcls.nets.weights import load_fitting_weights, read_weights

WEIGHTS_OPTION = "--model.net.weights"


class _Arch(NamedTuple):
    build: Callable[..., nn.Module]
    classifier: str  # dotted path of the Linear that maps the pooled features to the ImageNet classes
    stem: str  # dotted path of the first convolution, the only layer that sees the input channels
    aux: tuple[str, ...] = ()  # state-dict key prefixes of the auxiliary classifiers, which the trunk leaves out


# GoogLeNet and Inception-v3: no auxiliary classifiers (they only help ImageNet training), no built-in dropout
# before fc (``dropout`` of the net takes its place), and no ImageNet re-normalisation of the input
# (``transform_input`` assumes RGB); init_weights=True silences torchvision's warning about its default.
_inception = {"aux_logits": False, "init_weights": True, "transform_input": False, "dropout": 0.0}
_ARCHS: dict[str, _Arch] = {
    "alexnet": _Arch(models.alexnet, "classifier.6", "features.0"),
    "vgg16": _Arch(models.vgg16, "classifier.6", "features.0"),
    "googlenet": _Arch(partial(models.googlenet, **_inception), "fc", "conv1.conv", ("aux1.", "aux2.")),
    "inception_v3": _Arch(partial(models.inception_v3, **_inception), "fc", "Conv2d_1a_3x3.conv", ("AuxLogits.",)),
    "resnet18": _Arch(models.resnet18, "fc", "conv1"),
    "resnet50": _Arch(models.resnet50, "fc", "conv1"),
}


class TorchvisionNet(nn.Module):
    """A torchvision classic CNN, built without downloading, its ImageNet classifier replaced by a head per task.

    The trunk returns the pooled feature vector: 4096-d for AlexNet and VGG16 (their hidden fully-connected
    layers stay, only the last Linear goes), 1024 for GoogLeNet, 2048 for Inception-v3 and ResNet50, 512 for
    ResNet18. Inputs must be at least 63 px for AlexNet, 32 for VGG-16, 15 for GoogLeNet and 75 (299 as in the
    paper) for Inception-v3; smaller ones fail in the forward pass with a RuntimeError.

    Args:
        tasks: Task name -> number of classes; one linear head each, on the pooled features.
        name: The torchvision architecture.
        in_chans: Input channels (1 for grey images). Other than 3, the first convolution is replaced; with
            ``weights`` it starts from the RGB kernels summed over their colour channels and divided by
            ``in_chans``, so an image with ``in_chans`` equal channels g gets the response the RGB net gives
            to the grey RGB image (g, g, g).
        weights: A local state dict of the torchvision model (``torch.save(model.state_dict(), path)``, e.g.
            ImageNet weights downloaded beforehand, or ``.safetensors``), or a dict holding it under ``"state_dict"``
            (see :func:`medcls.nets.weights.read_weights`). Missing and unexpected keys are logged as warnings; a
            file that does not fit the architecture is an error.
        dropout: Dropout before the heads.

    Raises:
        ConfigError: ``name``, ``in_chans`` or ``dropout`` is impossible.
        CheckpointError: The ``weights`` file is missing or cannot be read, holds no state dict, or none of its keys
            or a key's shape does not fit.
    """

    # The options that load weights files, and the values that load none (see ``without_weights_files``).
    weights_options: ClassVar[dict[str, Any]] = {"weights": None}

    def __init__(
        self,
        tasks: Mapping[str, int],
        name: Literal["alexnet", "vgg16", "googlenet", "inception_v3", "resnet18", "resnet50"] = "resnet18",
        in_chans: int = 3,
        weights: str | Path | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if name not in _ARCHS:
            raise ConfigError(f"--model.net.name must be one of {', '.join(_ARCHS)}; got {name!r}.")
        check_positive(in_chans, "--model.net.in_chans")
        check_probability(dropout, "--model.net.dropout")
        arch = _ARCHS[name]
        self.trunk = arch.build(weights=None)
        # Load before the first convolution is replaced, so the file's RGB kernels still fit.
        if weights is not None:
            _load(self.trunk, Path(weights), name, ignored=(f"{arch.classifier}.", *arch.aux))
        self.feature_dim: int = self.trunk.get_submodule(arch.classifier).in_features
        _replace(self.trunk, arch.classifier, nn.Identity())
        if in_chans != 3:
            rgb = self.trunk.get_submodule(arch.stem)
            _replace(self.trunk, arch.stem, _stem(rgb, in_chans, pretrained=weights is not None))
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({task: nn.Linear(self.feature_dim, n) for task, n in tasks.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits per task."""
        features = self.dropout(self.trunk(x))
        return {task: head(features) for task, head in self.heads.items()}


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def _stem(rgb: nn.Conv2d, in_chans: int, pretrained: bool) -> nn.Conv2d:
    conv = nn.Conv2d(
        in_chans,
        rgb.out_channels,
        rgb.kernel_size,
        rgb.stride,
        rgb.padding,
        rgb.dilation,
        rgb.groups,
        bias=rgb.bias is not None,
    )
    if pretrained:
        with torch.no_grad():
            conv.weight.copy_(rgb.weight.sum(dim=1, keepdim=True).expand_as(conv.weight) / in_chans)
            if rgb.bias is not None:
                conv.bias.copy_(rgb.bias)
    return conv


def _load(model: nn.Module, path: Path, name: str, ignored: tuple[str, ...]) -> None:
    """Load a torchvision state dict, leaving out (and not reporting) keys under the ``ignored`` prefixes.

    The replaced classifier is ignored, so the file may come from a model with any number of classes.
    """
    state = {key: value for key, value in read_weights(path, WEIGHTS_OPTION).items() if not key.startswith(ignored)}
    load_fitting_weights(model, state, path, f"torchvision {name}", WEIGHTS_OPTION, expected_missing=ignored)
