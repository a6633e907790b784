"""Any timm backbone with one linear head per task on its pooled features, and offline pretrained weights."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
from timm.data import resolve_data_config
from timm.models import adapt_input_conv, load_state_dict
from torch import Tensor, nn

from medcls.nets.weights import load_fitting_weights


class TimmNet(nn.Module):
    """A timm model by name, classifier removed, with a linear head per task.

    Args:
        tasks: Task name -> number of classes; one head each, on the pooled features.
        name: A ``timm.list_models()`` name, e.g. ``resnet50``, ``efficientnet_b0``, ``resnet10t``; with a
            pretrained tag (``resnet50.tv_in1k``) ``pretrained: true`` takes those weights.
        in_chans: Input channels (1 for grey images). Pretrained RGB weights are adapted: for grey input the
            first convolution gets the RGB kernels summed.
        pretrained: ``false``: random initialisation. ``true``: timm downloads the weights from the Hugging Face
            hub (needs network access). A path: a local weights file, read offline: a state dict of the timm
            model saved with ``torch.save`` (``.pth``, ``.pt``, ``.bin``, or nested under ``state_dict`` or
            ``model``) or a ``.safetensors`` file, e.g. the ``model.safetensors`` of a timm model on the hub,
            downloaded beforehand. Its classifier is left out; missing and unexpected keys are logged.
        drop_rate: Dropout before the heads.

    Raises:
        FileNotFoundError: ``pretrained`` names no file.
        ValueError: The ``pretrained`` file cannot be read or does not fit the architecture.
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        name: str = "resnet18",
        in_chans: int = 3,
        pretrained: bool | str = False,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        self.trunk = timm.create_model(name, pretrained=pretrained is True, num_classes=0, in_chans=in_chans)
        if isinstance(pretrained, str):
            load_trunk_weights(self.trunk, pretrained)
        self.dropout = nn.Dropout(drop_rate)
        # Models with a conv head after the feature map (MobileNetV3) pool to head_hidden_size, not num_features.
        width = getattr(self.trunk, "head_hidden_size", None) or self.trunk.num_features
        self.heads = nn.ModuleDict({task: nn.Linear(width, n) for task, n in tasks.items()})

    @property
    def data_config(self) -> dict[str, Any]:
        """What the trunk's pretrained weights expect of the input: ``mean``, ``std``, ``input_size``..."""
        return resolve_data_config({}, model=self.trunk)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits per task."""
        features = self.dropout(self.trunk(x))
        return {task: head(features) for task, head in self.heads.items()}


def load_trunk_weights(trunk: nn.Module, source: str | Path) -> None:
    """Load a local weights file into a timm model built without its classifier (``num_classes=0``), offline.

    The file is a state dict of the same timm architecture: ``.pth``, ``.pt`` or ``.bin`` from ``torch.save``
    (the state dict itself, or nested under ``state_dict`` or ``model``; timm's EMA weights are preferred when
    present), or ``.safetensors``. The classifier's weights are dropped, so the file may come from a model
    trained for any number of classes. RGB weights are adapted to the trunk's input channels as timm does
    (grey: the first convolution's kernels summed over RGB). Keys of the trunk the file lacks keep their
    initial values, keys the trunk lacks are ignored; both are logged as warnings.

    Args:
        trunk: A model from ``timm.create_model(..., num_classes=0)``; its ``pretrained_cfg`` names the classifier
            and the first convolution.
        source: The weights file.

    Raises:
        FileNotFoundError: ``source`` names no file.
        ValueError: The file cannot be read, or it does not fit ``trunk``: no key in common, or a tensor of another
            shape.
    """
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {path} not found.")
    state = _read(path)
    cfg = trunk.pretrained_cfg
    for classifier in _names(cfg.get("classifier")):
        state.pop(f"{classifier}.weight", None)
        state.pop(f"{classifier}.bias", None)
    for conv in _names(cfg.get("first_conv")):
        _adapt_input_conv(trunk, conv, state)
    load_fitting_weights(trunk, state, path, cfg.get("architecture", type(trunk).__name__))


def _read(path: Path) -> dict[str, Tensor]:
    """The state dict in ``path``, through timm's reader (safetensors, torch pickles, DDP prefixes)."""
    # timm's errors for an unreadable file do not name it, and for a corrupt pickle wrongly blame "unsafe globals".
    try:
        return load_state_dict(str(path), weights_only=True)
    except Exception as err:
        raise ValueError(f"Cannot read weights file {path}: {err}") from err


def _names(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """A ``pretrained_cfg`` entry that names one module or several (distilled ViTs have two classifiers)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _adapt_input_conv(trunk: nn.Module, name: str, state: dict[str, Tensor]) -> None:
    """Fit the file's first convolution to the trunk's input channels, in place."""
    key = f"{name}.weight"
    if key not in state:
        return
    own = trunk.get_submodule(name).weight
    if state[key].shape[1] == own.shape[1]:
        return
    # Older timm models lack ``in_chans``; their conv's input channels are the same but for space-to-depth stems.
    in_chans = getattr(trunk, "in_chans", own.shape[1])
    # Weights other than RGB stay as they are, for the shape check to name the mismatch.
    with contextlib.suppress(NotImplementedError):
        state[key] = adapt_input_conv(in_chans, state[key])
