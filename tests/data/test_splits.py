from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from medcls.data.readers.records import Record
from medcls.data.splits import stratified_group_kfold, stratified_holdout
from medcls.errors import ConfigError


def grade(record: Record) -> int:
    return record.labels["dr"]


def make_records(count: int = 200, *, pairs: int = 0, seed: int = 0) -> list[Record]:
    """Records with imbalanced DR grades (about 45/5/30/12/8 %); the first ``2 * pairs`` come in pairs."""
    rng = random.Random(seed)
    grades = rng.choices(range(5), weights=(45, 5, 30, 12, 8), k=count)
    return [
        Record(
            id=f"r{i:03d}", path=Path(f"r{i:03d}.jpg"), labels={"dr": g}, group=f"p{i // 2}" if i < 2 * pairs else ""
        )
        for i, g in enumerate(grades)
    ]


def ids(records: list[Record], indices: list[int]) -> set[str]:
    return {records[i].id for i in indices}


def assert_groups_whole(records: list[Record], parts: list[list[int]]) -> None:
    side = {}
    for number, part in enumerate(parts):
        for index in part:
            assert side.setdefault(records[index].group, number) == number, f"group {records[index].group} split"


def test_kfold_partitions_the_records() -> None:
    records = make_records()
    folds = stratified_group_kfold(records, 5, seed=0, stratify=grade)
    assert len(folds) == 5
    assert sorted(i for fold in folds for i in fold) == list(range(len(records)))
    assert all(fold == sorted(fold) for fold in folds)
    assert max(map(len, folds)) - min(map(len, folds)) <= 2


def test_kfold_balances_every_stratum() -> None:
    records = make_records()
    folds = stratified_group_kfold(records, 5, seed=0, stratify=grade)
    per_fold = [Counter(grade(records[i]) for i in fold) for fold in folds]
    for stratum, total in Counter(map(grade, records)).items():
        counts = [counts[stratum] for counts in per_fold]
        assert max(counts) - min(counts) <= 1, (stratum, total, counts)


def test_kfold_keeps_groups_in_one_fold() -> None:
    records = make_records(pairs=60)
    folds = stratified_group_kfold(records, 10, seed=3, stratify=grade)
    assert_groups_whole(records, folds)
    assert sorted(i for fold in folds for i in fold) == list(range(len(records)))
    assert max(map(len, folds)) - min(map(len, folds)) <= 2


def test_kfold_is_seeded_and_ignores_input_order() -> None:
    records = make_records(pairs=20)
    folds = stratified_group_kfold(records, 4, seed=7, stratify=grade)
    assert stratified_group_kfold(records, 4, seed=7, stratify=grade) == folds
    assert stratified_group_kfold(records, 4, seed=8, stratify=grade) != folds
    shuffled = random.Random(1).sample(records, len(records))
    again = stratified_group_kfold(shuffled, 4, seed=7, stratify=grade)
    assert [ids(shuffled, fold) for fold in again] == [ids(records, fold) for fold in folds]


def test_kfold_spreads_rare_strata() -> None:
    # Eight strata of one record each: too small for 4 folds, pooled and spread two per fold.
    records = make_records(40) + [Record(f"rare{i}", Path("x"), {"dr": 10 + i}) for i in range(8)]
    folds = stratified_group_kfold(records, 4, seed=0, stratify=grade)
    assert [sum(grade(records[i]) >= 10 for i in fold) for fold in folds] == [2, 2, 2, 2]


@pytest.mark.parametrize("num_folds", [1, 11])
def test_kfold_rejects_impossible_fold_counts(num_folds: int) -> None:
    with pytest.raises(ConfigError, match=r"^--data\.num_folds.*(fold|groups)"):
        stratified_group_kfold(make_records(20, pairs=10), num_folds, seed=0, stratify=grade)


@pytest.mark.parametrize(("size", "expected"), [(0.2, 40), (0.5, 100), (30, 30)])
def test_holdout_sizes_and_disjointness(size: float | int, expected: int) -> None:
    records = make_records()
    train, held = stratified_holdout(records, size, seed=0, stratify=grade)
    assert not set(train) & set(held)
    assert sorted(train + held) == list(range(len(records)))
    assert abs(len(held) - expected) <= 2


def test_holdout_is_stratified() -> None:
    records = make_records(400)
    _, held = stratified_holdout(records, 0.25, seed=0, stratify=grade)
    in_held = Counter(grade(records[i]) for i in held)
    for stratum, total in Counter(map(grade, records)).items():
        assert abs(in_held[stratum] - total / 4) <= 1, (stratum, total, in_held[stratum])


def test_holdout_keeps_groups_on_one_side() -> None:
    records = make_records(pairs=100)
    parts = list(stratified_holdout(records, 0.3, seed=5, stratify=grade))
    assert_groups_whole(records, parts)
    assert abs(len(parts[1]) - 60) <= 2


def test_holdout_is_seeded() -> None:
    records = make_records()
    split = stratified_holdout(records, 0.2, seed=1, stratify=grade)
    assert stratified_holdout(records, 0.2, seed=1, stratify=grade) == split
    assert stratified_holdout(records, 0.2, seed=2, stratify=grade) != split


def test_holdout_pools_rare_strata_instead_of_failing() -> None:
    # Ten classes of a single record: none can be split 80/20 alone; pooled, two are held out.
    records = make_records(50) + [Record(f"rare{i}", Path("x"), {"dr": 10 + i}) for i in range(10)]
    _, held = stratified_holdout(records, 0.2, seed=0, stratify=grade)
    assert sum(grade(records[i]) >= 10 for i in held) == 2


@pytest.mark.parametrize("size", [0, 0.0, 1.0, 1.5, 200, -3])
def test_holdout_rejects_bad_sizes(size: float | int) -> None:
    with pytest.raises(ConfigError, match=r"^--data\.val_size \(the hold-out size\)"):
        stratified_holdout(make_records(), size, seed=0, stratify=grade)
