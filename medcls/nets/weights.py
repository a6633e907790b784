"""Loading a weights file into a network: refuse what does not fit, report what is missing or left over."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

log = logging.getLogger(__name__)


def load_fitting_weights(
    module: nn.Module, state: Mapping[str, Tensor], path: Path, arch: str, expected_missing: tuple[str, ...] = ()
) -> None:
    """Load ``state`` (read from ``path``) into ``module`` if it fits; log missing and unexpected keys.

    Args:
        module: The network (or trunk) to load into.
        state: The file's state dict, already cleaned of keys the module is not meant to receive.
        path: The file, named in every message.
        arch: The architecture's name, for the messages.
        expected_missing: Key prefixes the file is not expected to provide (e.g. a classifier replaced later).

    Raises:
        ValueError: If no key is shared, or a shared key has another shape: the file is of another architecture.
    """
    own = module.state_dict()
    if not own.keys() & state.keys():
        raise ValueError(
            f"Weights file {path} does not fit {arch}: none of its {len(state)} keys, e.g. {list(state)[:3]}, is a "
            f"key of {arch}, e.g. {list(own)[:3]}. Is this a checkpoint of another architecture?"
        )
    wrong = [key for key in own if key in state and state[key].shape != own[key].shape]
    if wrong:
        key = wrong[0]
        raise ValueError(
            f"Weights file {path} does not fit {arch}: {key} is {tuple(state[key].shape)} in the file but "
            f"{tuple(own[key].shape)} in {arch} ({len(wrong)} keys of mismatched shape). Is this a checkpoint of "
            "another architecture?"
        )
    result = module.load_state_dict(state, strict=False)
    if missing := [key for key in result.missing_keys if not key.startswith(expected_missing)]:
        log.warning("%s: %d keys missing in %s, left as initialised: %s", path, len(missing), arch, ", ".join(missing))
    if unexpected := result.unexpected_keys:
        log.warning(
            "%s: %d unexpected keys, not loaded into %s: %s", path, len(unexpected), arch, ", ".join(unexpected)
        )
