"""Any timm backbone with one linear head per task on its pooled features, and offline pretrained weights."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import timm
from timm.data import resolve_data_config
from timm.models import adapt_input_conv, get_pretrained_cfg, is_model_pretrained
from torch import Tensor, nn

from medcls.errors import CheckpointError, ConfigError, summarise_error
from medcls.nets.checks import check_positive, check_probability
from medcls.nets.weights import load_fitting_weights, read_weights

PRETRAINED_OPTION = "--model.net.pretrained"  # the option of every timm net that gives its trunk's weights


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
        ConfigError: ``name`` is no timm model, ``pretrained: true`` asks for weights timm does not have, or
            ``in_chans`` or ``drop_rate`` is impossible.
        CheckpointError: timm cannot download the weights, or the ``pretrained`` file is missing, cannot be read
            or does not fit the architecture.
    """

    # The options that load weights files, and the values that load none (see ``without_weights_files``).
    weights_options: ClassVar[dict[str, Any]] = {"pretrained": False}

    def __init__(
        self,
        tasks: Mapping[str, int],
        name: str = "resnet18",
        in_chans: int = 3,
        pretrained: bool | str | Path = False,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        check_probability(drop_rate, "--model.net.drop_rate")
        self.trunk = create_trunk(name, "--model.net.name", in_chans, pretrained)
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


def create_trunk(name: str, option: str, in_chans: int, pretrained: bool | str | Path, **kwargs: Any) -> nn.Module:
    """A timm model without its classifier (``num_classes=0``), with the weights ``pretrained`` asks for.

    Args:
        name: A ``timm.list_models()`` name, optionally with a pretrained tag (``resnet50.tv_in1k``).
        option: The option that gave ``name`` (e.g. ``--model.net.backbone``), for the messages.
        in_chans: Input channels.
        pretrained: ``false`` (random), ``true`` (timm downloads the weights) or the path of a local weights file
            (see :func:`load_trunk_weights`).
        kwargs: Further arguments of ``timm.create_model`` (e.g. ``global_pool=""``).

    Raises:
        ConfigError: ``name`` is no timm model or has an unknown tag (the message gives the closest names),
            ``pretrained: true`` for a model timm has no weights of, or ``in_chans`` below 1.
        CheckpointError: timm cannot download the weights (e.g. offline), or the weights file does not load.
    """
    check_positive(in_chans, "--model.net.in_chans")
    _check_timm_name(name, option)
    download = pretrained is True
    if download and not is_model_pretrained(name):
        raise ConfigError(
            f"{PRETRAINED_OPTION} true: timm has no pretrained weights for {name}; set {PRETRAINED_OPTION} false for "
            "random weights or to the path of a weights file, or pick a model timm.list_pretrained() lists."
        )
    try:
        trunk = timm.create_model(name, pretrained=download, num_classes=0, in_chans=in_chans, **kwargs)
    except OSError as error:  # only the download reads files: the hub's errors, offline or without the file
        cfg = get_pretrained_cfg(name)
        source = f"model.safetensors of {cfg.hf_hub_id} on the Hugging Face hub" if cfg.hf_hub_id else cfg.url
        raise CheckpointError(
            f"{PRETRAINED_OPTION} true: timm could not download the weights of {name} "
            f"({summarise_error(error)}). Offline, download them beforehand ({source}) and give "
            f"{PRETRAINED_OPTION} the file's path."
        ) from error
    if not isinstance(pretrained, bool):
        load_trunk_weights(trunk, pretrained)
    return trunk


def _check_timm_name(name: str, option: str) -> None:
    """Refuse a name timm does not know, suggesting the closest (``timm.create_model`` only says "Unknown model")."""
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f"did you mean {', '.join(close)}?" if close else "no timm model has a similar name."
        raise ConfigError(
            f"{option} {name!r} is not a timm model; {hint} List timm's models with timm.list_models('*resnet*')."
        )
    tags = timm.list_models(f"{arch}.*", include_tags=True)
    if tag and name not in tags:
        close = difflib.get_close_matches(name, tags, n=5) or tags[:5]
        hint = f"did you mean {', '.join(close)}?" if close else f"it has none; write {arch} alone."
        raise ConfigError(
            f"{option} {name!r}: timm has no pretrained tag {tag!r} for {arch}; {hint} List them with "
            f"timm.list_pretrained('{arch}.*')."
        )


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
        CheckpointError: The file is missing or cannot be read, holds no state dict, or does not fit ``trunk``: no
            key in common, or a tensor of another shape. The messages name the file and ``--model.net.pretrained``.
    """
    path = Path(source)
    state = read_weights(path, PRETRAINED_OPTION)
    cfg = trunk.pretrained_cfg
    for classifier in _names(cfg.get("classifier")):
        state.pop(f"{classifier}.weight", None)
        state.pop(f"{classifier}.bias", None)
    for conv in _names(cfg.get("first_conv")):
        _adapt_input_conv(trunk, conv, state)
    load_fitting_weights(trunk, state, path, cfg.get("architecture", type(trunk).__name__), PRETRAINED_OPTION)


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
