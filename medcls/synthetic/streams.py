"""The fundus generator's random streams: one per purpose, seeded by integer keys.

Kept apart so that, e.g., the anatomy of an image does not depend on its grade, and the labels of a
set do not depend on how its images are drawn.
"""

from __future__ import annotations

import numpy as np

LABELS, ANATOMY, LESIONS, SPLIT, NAMES = 1, 2, 3, 4, 5
"""The first key of each stream: the grades of a set, an image's anatomy, its lesions, a split, file names."""


def rng(*keys: int) -> np.random.Generator:
    """The random generator seeded by ``keys`` (non-negative integers), the same for the same keys."""
    return np.random.default_rng(np.random.SeedSequence(list(keys)))


def derived_seed(*keys: int) -> int:
    """A non-negative seed drawn from the stream of ``keys``, to seed a whole set of streams in turn."""
    return int(rng(*keys).integers(2**62))
