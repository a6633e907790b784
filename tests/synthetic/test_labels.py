from __future__ import annotations

from collections import Counter

import pytest

from medcls.synthetic import sample_labels


def test_sample_labels_is_deterministic_consistent_and_proportional():
    labels = sample_labels(0, 413)
    assert labels == sample_labels(0, 413)
    assert labels != sample_labels(1, 413)
    assert all(dme == 0 for dr, dme in labels if dr == 0)
    dr_counts, dme_counts = Counter(dr for dr, _ in labels), Counter(dme for _, dme in labels)
    assert [dr_counts[k] for k in range(5)] == [134, 20, 136, 74, 49]
    assert [dme_counts[k] for k in range(3)] == [177, 41, 195]
    small = Counter(dr for dr, _ in sample_labels(2, 40))
    for grade, frequency in enumerate((134, 20, 136, 74, 49)):
        assert abs(small[grade] - 40 * frequency / 413) <= 1


def test_sample_labels_custom_frequencies():
    labels = sample_labels(0, 100, dr_frequencies=(1, 0, 0, 0, 1), dme_frequencies=(0, 0, 1))
    assert Counter(labels) == {(0, 0): 50, (4, 2): 50}
    # Only DME 0 asked for: the images with lesions get DME 0 too.
    assert {dme for _, dme in sample_labels(0, 20, dme_frequencies=(1, 0, 0))} == {0}
    with pytest.raises(ValueError, match="dr_frequencies"):
        sample_labels(0, 10, dr_frequencies=(1, 2, 3))
