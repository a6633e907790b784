"""Preprocessings: one image file -> the pixels a cache stores, and the contract they all satisfy.

A preprocessing is a small frozen dataclass: its fields are its settings, and they, with its class
name, are part of the key of every cache built with it, so that a changed setting rebuilds the cache.
Calling it on a file returns the image as training will read it. It is pickled into the cache's worker
processes, so it holds settings only, never pixels or open files.

- :mod:`~medcls.data.preprocessing.decode`: any image file to 8 bits (shared by every preprocessing).
- :mod:`~medcls.data.preprocessing.fundus`: :class:`~medcls.data.preprocessing.fundus.FundusPreprocessing`,
  the field of view cropped and resized, optionally contrast-normalised.
"""

from __future__ import annotations

from dataclasses import Field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np


class Preprocessing(Protocol):
    """What a cache needs of a preprocessing: a dataclass of settings that maps a file to square pixels."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    """Present on every dataclass: its fields go into the cache key."""
    kind: ClassVar[str]
    """What the images show, for messages: ``"fundus"`` -> ``"2 fundus image(s) could not be read"``."""

    @property
    def size(self) -> int:
        """Side of the square images it returns, in pixels."""
        ...

    def __call__(self, path: Path) -> np.ndarray:
        """Decode and preprocess one file into a ``size`` x ``size`` x 3 uint8 array.

        Raises:
            DataError: If the file cannot be read or preprocessed; the message names it.
        """
        ...
