"""Seeded, grouped, stratified splits of records: a hold-out set, or k folds.

Both splits deal whole groups (all records sharing :attr:`Record.group`) into bins with target
fractions of the data, the idea behind scikit-learn's ``StratifiedGroupKFold``:

- Groups are dealt biggest first; among groups of equal size the order is a seeded shuffle of
  the sorted group names, so where a record lands depends on the seed and on the records, never
  on the order in which they come.
- Each group goes to the bin that most lacks the strata it brings, measured per record as
  ``sum over its strata s of n_s * (count[bin, s] - fraction[bin] * total[s]) / group size``;
  among the bins within one record of that, to the one furthest below its share of records
  (then to the first: the training side). Stratum counts thus stay within about one record of
  their targets, and sizes as close to theirs as whole groups and that allow.
- A stratum too small to give every bin one record (fewer than ``1 / smallest fraction``
  members: under 10 for 10 folds, under 5 for a 20 % hold-out) is pooled with the other rare
  strata, so rare classes are spread as a whole instead of all landing in the biggest bin.

A size or a number of folds that cannot split the records is a :class:`~medcls.errors.ConfigError`
named after the data modules' options, ``--data.val_size`` and ``--data.num_folds``, which is where
these settings come from; the data modules check what they can in their constructors with
:func:`check_holdout_size` and :func:`check_folds`.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence

from medcls.data.readers.records import Record
from medcls.errors import ConfigError

Stratify = Callable[[Record], Hashable]

_RARE = object()  # the pooled stratum of the rare strata; equal to no user key


def joint_labels(record: Record) -> tuple[int, ...]:
    """The stratum of all of a record's labels together, e.g. its (DR, DME) grade pair."""
    return tuple(record.labels.values())


def check_holdout_size(size: float | int, count: int | None = None, option: str = "--data.val_size") -> None:
    """Refuse a hold-out size (``--data.val_size``) that cannot split ``count`` records, or any number.

    Args:
        size: A fraction in (0, 1), or a number of records (an int).
        count: The number of records to split; None checks only what holds for any number.
        option: The setting the size comes from, named in the error.

    Raises:
        ConfigError: If ``size`` is out of range.
    """
    if isinstance(size, int):
        if size < 1 or (count is not None and size >= count):
            below = "" if count is None else f" and below the {count} images it is taken from"
            raise ConfigError(f"{option} (the hold-out size) is {size}: a number of images must be at least 1{below}.")
    elif not 0 < size < 1:
        raise ConfigError(
            f"{option} (the hold-out size) is {size}: give a fraction between 0 and 1 (e.g. 0.2) "
            "or a whole number of images."
        )


def check_folds(num_folds: int, fold: int = 0) -> None:
    """Refuse a number of cross-validation folds (``--data.num_folds``) below 2, or a test fold not among them.

    Raises:
        ConfigError: If ``num_folds`` is below 2 or ``fold`` is not in ``0 .. num_folds - 1``.
    """
    if num_folds < 2:
        raise ConfigError(f"--data.num_folds is {num_folds}; cross-validation needs at least 2 folds.")
    if not 0 <= fold < num_folds:
        raise ConfigError(
            f"--data.fold is {fold}; the test fold must be between 0 and {num_folds - 1} "
            f"(--data.num_folds {num_folds})."
        )


def check_split_sizes(
    val_size: float | int, test_size: float | int, num_folds: int | None = None, fold: int = 0
) -> None:
    """Refuse impossible ``--data.val_size``, ``--data.test_size``, ``--data.num_folds`` or ``--data.fold``.

    Raises:
        ConfigError: As :func:`check_holdout_size` and :func:`check_folds` do.
    """
    check_holdout_size(val_size)
    check_holdout_size(test_size, option="--data.test_size")
    if num_folds is not None:
        check_folds(num_folds, fold)


def stratified_holdout(
    records: Sequence[Record], size: float | int, *, seed: int, stratify: Stratify, option: str = "--data.val_size"
) -> tuple[list[int], list[int]]:
    """Split records into a training part and a held-out part, by groups, stratified.

    Args:
        records: The records to split.
        size: The held-out part: a fraction in (0, 1), or a number of records (an int).
        seed: Same seed and same records, same split.
        stratify: The stratum of a record, e.g. ``lambda r: (r.labels["dr"], r.labels["dme"])``.
        option: The setting the size comes from, named in the errors.

    Returns:
        The indices (into ``records``, ascending) of the training and of the held-out records.

    Raises:
        ConfigError: If ``size`` is out of range or the records' groups cannot fill both parts.
    """
    check_holdout_size(size, len(records), option)
    if isinstance(size, int):
        size = size / len(records)
    train, held = _deal(records, (1 - size, size), seed=seed, stratify=stratify, option=option)
    return train, held


def stratified_group_kfold(
    records: Sequence[Record], num_folds: int, *, seed: int, stratify: Stratify
) -> list[list[int]]:
    """Assign every record to one of ``num_folds`` folds, by groups, stratified.

    Args:
        records: The records to split.
        num_folds: At least 2, at most the number of groups.
        seed: Same seed and same records, same folds.
        stratify: The stratum of a record, e.g. ``lambda r: r.labels["dr"]``.

    Returns:
        One list of indices (into ``records``, ascending) per fold.

    Raises:
        ConfigError: If ``num_folds`` is below 2 or above the number of groups.
    """
    check_folds(num_folds)
    return _deal(records, (1 / num_folds,) * num_folds, seed=seed, stratify=stratify, option="--data.num_folds")


def _deal(
    records: Sequence[Record], fractions: Sequence[float], *, seed: int, stratify: Stratify, option: str
) -> list[list[int]]:
    """Deal the groups of ``records`` into bins of the given target fractions (see module doc).

    ``option`` is the setting that asked for these bins, named in the error if they cannot all be filled.
    """
    members: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        members[record.group].append(index)
    if len(members) < len(fractions):
        raise ConfigError(
            f"{option}: cannot split {len(members)} groups of images (an image, or images kept together) "
            f"into {len(fractions)} non-empty parts; change {option} or add images."
        )

    strata = _pool_rare([stratify(record) for record in records], min(fractions))
    totals = Counter(strata)
    order = sorted(members)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda group: len(members[group]), reverse=True)  # stable: keeps the shuffle among equals

    bins: list[list[int]] = [[] for _ in fractions]
    counts: list[Counter[Hashable]] = [Counter() for _ in fractions]
    for group in order:
        indices = members[group]
        brought = Counter(strata[index] for index in indices)
        surplus = [
            sum(n * (counts[b][s] - fraction * totals[s]) for s, n in brought.items()) / len(indices)
            for b, fraction in enumerate(fractions)
        ]
        # Bins within one record of the neediest are as good for the strata: fill the emptiest.
        # (The epsilon keeps float rounding from admitting a bin a whole record fuller.)
        close = [b for b in range(len(bins)) if surplus[b] < min(surplus) + 1 - 1e-9]
        best = min(close, key=lambda b: len(bins[b]) - fractions[b] * len(records))
        bins[best].extend(indices)
        counts[best].update(brought)

    if not all(bins):
        raise ConfigError(
            f"{option}: the groups of these {len(records)} images are too uneven to fill {len(bins)} parts; "
            f"change {option} or add images."
        )
    return [sorted(part) for part in bins]


def _pool_rare(keys: list[Hashable], smallest_fraction: float) -> list[Hashable]:
    """Replace the strata too small to reach every bin by one pooled stratum."""
    sizes = Counter(keys)
    return [key if sizes[key] * smallest_fraction >= 1 - 1e-9 else _RARE for key in keys]


def holdout(
    records: Sequence[Record], size: float | int, *, seed: int, option: str, stratify: Stratify = joint_labels
) -> tuple[list[Record], list[Record]]:
    """:func:`stratified_holdout` of records, as records: the kept ones and the held-out ones (``size`` of them)."""
    kept, held = stratified_holdout(records, size, seed=seed, stratify=stratify, option=option)
    return [records[i] for i in kept], [records[i] for i in held]


def train_val_test(
    records: Sequence[Record],
    *,
    test_size: float | int,
    val_size: float | int,
    seed: int,
    num_folds: int | None = None,
    fold: int = 0,
    stratify: Stratify = joint_labels,
) -> dict[str, list[Record]]:
    """The test split (a ``test_size`` hold-out, or fold ``fold`` of ``num_folds``), then ``val_size`` of the rest.

    Both seeded, stratified and by whole groups; the sizes are ``--data.test_size`` and ``--data.val_size``.
    """
    if num_folds is None:
        rest, test = holdout(records, test_size, seed=seed, option="--data.test_size", stratify=stratify)
    else:
        folds = stratified_group_kfold(records, num_folds, seed=seed, stratify=stratify)
        test = [records[i] for i in folds[fold]]
        rest = [records[i] for k, part in enumerate(folds) if k != fold for i in part]
    train, val = holdout(rest, val_size, seed=seed, option="--data.val_size", stratify=stratify)
    return {"train": train, "val": val, "test": test}
