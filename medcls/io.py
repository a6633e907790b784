"""Files written atomically: a reader sees the old file or the complete new one, never a partial one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO


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
