"""Files and folders written atomically: a reader sees the old one or the complete new one, never a partial one."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from medcls.errors import CheckpointError, summarise_error

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

_PARTIAL = ".partial-"  # in the name of a folder being built, followed by <host>-<pid>-<random>


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


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG atomically and free it (pyplot keeps its figures open otherwise)."""
    import matplotlib.pyplot as plt  # here: matplotlib takes a while to import, and only figures need it

    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=dpi), mode="wb")
    plt.close(figure)


@contextmanager
def atomic_directory(target: str | Path, *, replace: Callable[[Path], bool] = lambda _: False) -> Iterator[Path]:
    """Build a folder in a fresh hidden sibling of ``target``, renamed into place when the block ends.

    Only that rename creates ``target``, so a ``target`` that exists is complete. If the block raises, or
    ``target`` appeared meanwhile (a concurrent build that finished first, or anything else in the way that
    ``replace`` does not condemn), the partial folder is removed and ``target`` left as it is. Folders that
    builds on this host left behind when they were killed are removed first.

    Args:
        target: The folder to create.
        replace: Called with a ``target`` that is in the way; ``True`` deletes it and puts the new one there.

    Yields:
        The partial folder to fill.

    Raises:
        OSError: If something other than a folder is in the way (a file named like ``target``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_builds(target.parent)
    partial = target.with_name(f".{target.name}{_PARTIAL}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    partial.mkdir()
    try:
        yield partial
        try:
            os.replace(partial, target)
        except OSError:
            if not target.is_dir():  # not a build that finished first: something this cannot make sense of
                raise
            if replace(target):
                shutil.rmtree(target)
                os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def remove_abandoned_builds(folder: Path) -> None:
    """Delete the partial folders in ``folder`` that :func:`atomic_directory` builds of dead processes left."""
    host = socket.gethostname()
    for path in folder.iterdir():
        _, sep, owner = path.name.partition(_PARTIAL)
        owner_host, _, pid = owner.rsplit("-", 1)[0].rpartition("-")
        if sep and owner_host == host and pid.isdigit() and not _alive(int(pid)):
            log.info("Removing %s, left by an interrupted build.", path)
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (assumed so where that cannot be asked)."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        pass
    return True


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
