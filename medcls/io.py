"""Files written atomically: a reader sees the old file or the complete new one, never a partial one."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from medcls.errors import CheckpointError, summarise_error


def atomic_write(path: str | Path, write: Callable[[IO], None], mode: str = "w") -> Path:
    """Write a file through ``write`` into a temporary sibling, then rename it into place.

    Args:
        path: The file to (re)place.
        write: Called with the open temporary file.
        mode: ``"w"`` for text (UTF-8, universal newlines), ``"wb"`` for bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, mode, **({"encoding": "utf-8", "newline": ""} if "b" not in mode else {})) as file:
            write(file)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic with :func:`atomic_write` for local paths.

    Lightning's own writes a temporary file in the system's temporary folder and moves it into place: a copy,
    which a killed process leaves half-written, wherever that folder is on another file system.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` through a temporary file in the same folder."""
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own way
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_write(path, lambda file: torch.save(checkpoint, file), mode="wb")


def load_checkpoint(path: str | Path, *, role: str = "", option: str = "--ckpt_path") -> dict[str, Any]:
    """Read a checkpoint's contents (memory-mapped where it is a zip archive: tensors are read when used).

    Args:
        path: The checkpoint.
        role: What the file is to the command (e.g. ``ensemble member``), for the messages.
        option: The option that named it, for the messages.

    Raises:
        CheckpointError: If there is no such file, or it is no readable Lightning checkpoint.
    """
    path = Path(path)
    named = f"{role} {path}" if role else str(path)
    if not path.is_file():
        raise CheckpointError(f"no {role or 'checkpoint'} at {path}; check {option}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:
        raise CheckpointError(
            f"{named} is not a readable checkpoint ({summarise_error(error)}); check {option}."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{named} is not a Lightning checkpoint (no state_dict); check {option}: pass a checkpoint medcls wrote."
        )
    return checkpoint
