"""The contract every preprocessing satisfies: a frozen dataclass of settings that maps one file to square pixels."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar

import numpy as np


class Preprocessing(abc.ABC):
    """One image file -> the ``size`` x ``size`` x ``channels`` uint8 pixels a cache stores and training reads.

    Subclasses are frozen dataclasses: their fields are their settings and, with the class name, part of the key
    of every cache built with them, so a changed setting rebuilds the cache. They are pickled into the cache's
    worker processes, so they hold settings only, never pixels or open files. In a config::

        preprocessing:
          class_path: medcls.data.preprocessing.XRayPreprocessing   # or just XRayPreprocessing
          init_args: {size: 512, fit: pad}

    Attributes:
        kind: What the images show, for messages: ``"x-ray"`` -> ``"2 x-ray image(s) could not be read"``.
        mirror_invariant: Whether a mirrored image is as plausible as the original (left and right eyes: yes; a
            chest X-ray, its heart on the left: no). The default training pipeline flips images only if so.
        size: Side of the square images it returns, in pixels: a dataclass field (or a property) of every subclass.
            Declared here, not as an abstract property, so that a subclass may make it a field without a default.
    """

    kind: ClassVar[str]
    mirror_invariant: ClassVar[bool]
    size: int

    @property
    @abc.abstractmethod
    def channels(self) -> int:
        """Channels of the images it returns: 1 (grey) or 3 (RGB)."""

    @abc.abstractmethod
    def __call__(self, path: Path) -> np.ndarray:
        """Decode and preprocess one file.

        Args:
            path: The image file.

        Returns:
            A ``size`` x ``size`` x ``channels`` uint8 array (height, width, channels; one channel keeps its axis).

        Raises:
            DataError: If the file cannot be read or preprocessed; the message names it.
        """
