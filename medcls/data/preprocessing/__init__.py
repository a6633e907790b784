"""Preprocessings: one image file -> the pixels a cache stores, and the contract they all satisfy.

A config chooses one by class name (``class_path: XRayPreprocessing``, ``init_args: {size: 512}``):

- :class:`~medcls.data.preprocessing.base.Preprocessing`: the contract, an abstract base class of frozen
  dataclasses whose fields key the cache.
- :class:`~medcls.data.preprocessing.fundus.FundusPreprocessing`: fundus photographs, the field of view cropped
  and resized, optionally contrast-normalised.
- :class:`~medcls.data.preprocessing.plain.PlainPreprocessing`: any image resized to a square, its aspect ratio
  kept (padded or centre-cropped), in colour or grey.
- :class:`~medcls.data.preprocessing.plain.XRayPreprocessing`: the same for radiographs: grey, never mirrored.

Every one decodes through :func:`~medcls.data.preprocessing.decode.decode_image`: any image file, DICOM included
(:mod:`~medcls.data.preprocessing.dicom`), to 8 bits.
"""

from medcls.data.preprocessing.base import Preprocessing
from medcls.data.preprocessing.fundus import FundusPreprocessing
from medcls.data.preprocessing.plain import PlainPreprocessing, XRayPreprocessing

__all__ = ["FundusPreprocessing", "PlainPreprocessing", "Preprocessing", "XRayPreprocessing"]
