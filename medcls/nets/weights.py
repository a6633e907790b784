"""Weights files: reading them, loading what fits into a net, leaving them out where a checkpoint has the weights."""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from timm.models import clean_state_dict
from torch import Tensor, nn

from medcls.errors import CheckpointError, summarise_error

log = logging.getLogger(__name__)

# Where training scripts nest the state dict in a file, by preference: timm's EMA weights first, as timm reads them.
_NESTING_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


def read_weights(path: Path, option: str) -> dict[str, Tensor]:
    """The state dict in a weights file, read offline.

    The file is a ``.safetensors`` file or a ``torch.save`` pickle of tensors only: the state dict itself, or a
    dict holding it under ``state_dict_ema``, ``model_ema`` (preferred), ``state_dict`` or ``model``, as timm's
    reader takes them (which gives no message naming the file). The prefixes of DDP-wrapped and compiled models
    (``module.``, ``_orig_mod.``) are removed.

    Args:
        path: The weights file.
        option: The option that named the file (e.g. ``--model.net.pretrained``), for the messages.

    Raises:
        CheckpointError: The file is missing or cannot be read, or it holds no state dict of tensors.
    """
    if not path.is_file():
        raise CheckpointError(f"Weights file {path} not found; give {option} the path of an existing weights file.")
    try:
        if path.suffix == ".safetensors":
            contents = load_file(path)
        else:
            contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"Cannot read weights file {path} ({option}): {summarise_error(error)}. Is it truncated, or not a "
            "weights file? Save it again with torch.save(model.state_dict(), path) or as .safetensors."
        ) from error
    if isinstance(contents, Mapping):
        contents = next((contents[key] for key in _NESTING_KEYS if isinstance(contents.get(key), Mapping)), contents)
    if not isinstance(contents, Mapping) or not contents:
        held = "an empty dict" if isinstance(contents, Mapping) else f"a {type(contents).__name__}"
        raise CheckpointError(
            f"Weights file {path} holds {held}, not a state dict; give {option} a file saved with "
            "torch.save(model.state_dict(), path)."
        )
    if other := next(((key, value) for key, value in contents.items() if not isinstance(value, Tensor)), None):
        key, value = other
        raise CheckpointError(
            f"Weights file {path} holds {key!r} of type {type(value).__name__}, not a tensor; give {option} a file of "
            "weights only, saved with torch.save(model.state_dict(), path)."
        )
    return clean_state_dict(dict(contents))  # timm's: without the prefixes of DDP and torch.compile


def load_fitting_weights(
    module: nn.Module,
    state: Mapping[str, Tensor],
    path: Path,
    arch: str,
    option: str,
    expected_missing: tuple[str, ...] = (),
) -> None:
    """Load ``state`` (read from ``path``) into ``module`` if it fits; log missing and unexpected keys.

    Args:
        module: The network (or trunk) to load into.
        state: The file's state dict, already cleaned of keys the module is not meant to receive.
        path: The file, named in every message.
        arch: The architecture's name, for the messages.
        option: The option that named the file (e.g. ``--model.net.weights``), for the messages.
        expected_missing: Key prefixes the file is not expected to provide (e.g. a classifier replaced later).

    Raises:
        CheckpointError: If no key is shared, or a shared key has another shape: the file is of another architecture.
    """
    own = module.state_dict()
    remedy = f"Is this a file of another architecture? Give {option} weights of {arch}."
    if not own.keys() & state.keys():
        raise CheckpointError(
            f"Weights file {path} does not fit {arch}: none of its {len(state)} keys, e.g. {list(state)[:3]}, is a "
            f"key of {arch}, e.g. {list(own)[:3]}. {remedy}"
        )
    wrong = [key for key in own if key in state and state[key].shape != own[key].shape]
    if wrong:
        key = wrong[0]
        raise CheckpointError(
            f"Weights file {path} does not fit {arch}: {key} is {tuple(state[key].shape)} in the file but "
            f"{tuple(own[key].shape)} in {arch} ({len(wrong)} keys of mismatched shape). {remedy}"
        )
    result = module.load_state_dict(state, strict=False)
    if missing := [key for key in result.missing_keys if not key.startswith(expected_missing)]:
        log.warning("%s: %d keys missing in %s, left as initialised: %s", path, len(missing), arch, ", ".join(missing))
    if unexpected := result.unexpected_keys:
        log.warning(
            "%s: %d unexpected keys, not loaded into %s: %s", path, len(unexpected), arch, ", ".join(unexpected)
        )


def without_weights_files(net_config: Mapping[str, Any]) -> dict[str, Any]:
    """A net's config as a checkpoint stores it, with the options that load weights files set to load nothing.

    A checkpoint holds the trained weights, so rebuilding its net needs neither the weights file it was first
    built from (which may have moved since) nor a download. The options are the net class's ``weights_options``
    (e.g. ``{"pretrained": False}``); classes without that attribute load no files and keep their config.

    Args:
        net_config: ``{"class_path": ..., "init_args": {...}}``, as LightningCLI stores a net in
            ``checkpoint["hyper_parameters"]["net"]``.

    Returns:
        A deep copy of ``net_config`` whose ``init_args`` hold the class's ``weights_options``.

    Raises:
        CheckpointError: The config names no importable class.
    """
    config = copy.deepcopy(dict(net_config))
    try:
        module_name, class_name = config["class_path"].rsplit(".", 1)
        net_class = getattr(importlib.import_module(module_name), class_name)
    except (KeyError, ValueError, ImportError, AttributeError) as error:
        raise CheckpointError(
            f"The checkpoint's net {config.get('class_path')!r} cannot be imported ({type(error).__name__}: {error}); "
            "was it written by another version of medcls, or with a net from a module not installed here?"
        ) from error
    config["init_args"] = {**config.get("init_args", {}), **getattr(net_class, "weights_options", {})}
    return config
