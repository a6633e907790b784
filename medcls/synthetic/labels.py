"""Grades for a synthetic data set: consistent ``(dr, dme)`` pairs in a real data set's proportions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medcls.synthetic import streams

IDRID_DR_FREQUENCIES = (134, 20, 136, 74, 49)
"""IDRiD's training images per DR grade 0-4."""
IDRID_DME_FREQUENCIES = (177, 41, 195)
"""IDRiD's training images per DME grade 0-2."""
MESSIDOR_DR_FREQUENCIES = (546, 153, 247, 127, 127)
"""Messidor's images per international DR grade 0-4: its R3 pools grades 3 and 4; the split between them is made up."""
MESSIDOR_DME_FREQUENCIES = (974, 75, 151)
"""Messidor's images per DME grade 0-2."""


def sample_labels(
    seed: int,
    count: int,
    *,
    dr_frequencies: Sequence[float] = IDRID_DR_FREQUENCIES,
    dme_frequencies: Sequence[float] = IDRID_DME_FREQUENCIES,
) -> list[tuple[int, int]]:
    """Draw ``count`` consistent ``(dr, dme)`` grade pairs in the given proportions, shuffled.

    Each grade gets its share of ``count`` (largest remainders), so even a small set has the
    intended imbalance. DR comes first; images of DR grade 0 have no lesions, hence DME 0, and the
    DME proportions are renormalised over the others so that the overall DME shares hold.

    Args:
        seed: Non-negative seed.
        count: How many pairs.
        dr_frequencies: Relative frequencies of DR grades 0-4 (IDRiD's training counts by default).
        dme_frequencies: Relative frequencies of DME grades 0-2.

    Returns:
        One ``(dr, dme)`` pair per image.
    """
    p_dr = _proportions(dr_frequencies, 5, "dr_frequencies")
    p_dme = _proportions(dme_frequencies, 3, "dme_frequencies")
    # Every DR-0 image uses up a share of DME 0; the rest of DME 0 goes to images with lesions.
    p_dme[0] = max(p_dme[0] - p_dr[0], 0.0)
    p_dme = p_dme / p_dme.sum() if p_dme.sum() > 0 else np.array([1.0, 0.0, 0.0])
    rng = streams.rng(seed, streams.LABELS)
    dr = rng.permutation(_quota(count, p_dr))
    dme = np.zeros(count, dtype=int)
    sick = np.flatnonzero(dr > 0)
    dme[sick] = rng.permutation(_quota(len(sick), p_dme))
    return [(int(a), int(b)) for a, b in zip(dr, dme, strict=True)]


def _proportions(frequencies: Sequence[float], length: int, name: str) -> np.ndarray:
    p = np.asarray(frequencies, dtype=float)
    if p.shape != (length,) or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"{name} must be {length} non-negative numbers, not all zero; got {frequencies!r}")
    return p / p.sum()


def _quota(count: int, p: np.ndarray) -> np.ndarray:
    """Class indices, sorted, each class ``count * p`` times rounded by largest remainder."""
    exact = count * p
    counts = np.floor(exact).astype(int)
    order = np.argsort(counts - exact, kind="stable")
    counts[order[: count - counts.sum()]] += 1
    return np.repeat(np.arange(len(p)), counts)
