"""Tuberculosis chest X-ray reader: the Shenzhen and Montgomery County sets as the NLM distributes them.

Each set unpacks into a folder of its own::

    ChinaSet_AllFiles/                          MontgomerySet/
      CXR_png/CHNCXR_0001_0.png ...               CXR_png/MCUCXR_0001_0.png ...
      ClinicalReadings/CHNCXR_0001_0.txt ...      ClinicalReadings/MCUCXR_0001_0.txt ...
                                                  ManualMask/leftMask/, ManualMask/rightMask/

A radiograph's label is the last digit of its file name, ``<PREFIX>_<4 digits>_<0 or 1>.png``: 0 normal,
1 tuberculosis; never the reading's text. Shenzhen numbers its 662 radiographs contiguously; Montgomery's
138 numbers have gaps (normals below 0104, tuberculosis above), which the reader takes as they come. Files
in ``CXR_png`` that are not PNGs (Windows' ``Thumbs.db``) or are hidden (macOS's ``._CHNCXR_0001_0.png``
copies) are left out, with a log line. The lung masks are not read. Montgomery stores 12-bit values in
16-bit PNGs, which :func:`~medcls.data.preprocessing.decode.decode_image` scales from their range.

The clinical readings (sex, age, the radiologist's finding) are not needed for the labels; those missing
are logged, and :func:`read_clinical_readings` parses them for analyses by sex or age, whatever their
irregular spelling (``male 45yrs``, ``femal 32yrs``, ``female24yrs``, ``male 16month``; Montgomery's
``Patient's Sex: F`` / ``Patient's Age: 027Y``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from medcls.data.readers.records import Record
from medcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SetName = Literal["shenzhen", "montgomery"]
SET_NAMES: tuple[SetName, ...] = get_args(SetName)

TUBERCULOSIS_TASKS: dict[str, int] = {"tb": 2}
"""Task name -> number of classes: normal (0) or tuberculosis (1)."""
CLASS_NAMES = ("normal", "tuberculosis")
"""The class names of the task ``tb``, by class index."""

IMAGES, READINGS, MASKS = "CXR_png", "ClinicalReadings", "ManualMask"
"""A set folder's sub-folders: the radiographs, one reading per radiograph, Montgomery's lung masks."""


@dataclass(frozen=True)
class ChestSet:
    """One of the sets, as distributed.

    Attributes:
        title: Its name in messages.
        folders: The names its folder goes by, the distributed one first.
        prefix: The first part of its file names, e.g. ``CHNCXR`` in ``CHNCXR_0001_0.png``.
    """

    title: str
    folders: tuple[str, ...]
    prefix: str


SETS: dict[SetName, ChestSet] = {
    # The archive is ChinaSet_AllFiles.zip; the folder is also met renamed without its suffix.
    "shenzhen": ChestSet("Shenzhen", ("ChinaSet_AllFiles", "ChinaSet"), "CHNCXR"),
    "montgomery": ChestSet("Montgomery County", ("MontgomerySet",), "MCUCXR"),
}

_IMAGE_NAME = re.compile(r"([A-Za-z]+)_(\d{4})_(\d)")  # matched against the file's stem


def check_sets(sets: Sequence[str]) -> None:
    """Refuse a choice of sets (``--data.sets``) that is empty, repeats one or names an unknown one.

    Raises:
        ConfigError: If so.
    """
    unknown = [name for name in sets if name not in SETS]
    if not sets or unknown or len(set(sets)) < len(sets):
        problem = f"names {unknown}" if unknown else "is empty" if not sets else f"repeats a set: {list(sets)}"
        raise ConfigError(f"--data.sets {problem}; choose one or both of {', '.join(SET_NAMES)}.")


def read_tuberculosis(root: Path, sets: Sequence[SetName] = SET_NAMES) -> list[Record]:
    """Read and validate the radiographs of the Shenzhen and/or Montgomery County sets.

    A set's folder is found under ``root`` by its name (Shenzhen's ``ChinaSet_AllFiles`` or ``ChinaSet``,
    Montgomery's ``MontgomerySet``), also where unzipping into a folder of that name nested it in itself
    (``ChinaSet_AllFiles/ChinaSet_AllFiles/``). Where only one set is read, ``root`` may be that set's own
    folder, the one holding ``CXR_png``.

    Args:
        root: The folder holding the sets' folders, or the one set's folder.
        sets: The sets to read, ``shenzhen`` and/or ``montgomery``.

    Returns:
        One record per radiograph, set by set in the order of ``sets``, each set in the order of its numbers,
        with labels ``{"tb": 0 or 1}`` and ids ``"<set>/<file stem>"`` (``shenzhen/CHNCXR_0001_0``); every
        radiograph its own group (each is one patient's).

    Raises:
        ConfigError: If ``sets`` is empty, repeats a set or names an unknown one.
        DataError: If a set's folder is not found, its ``CXR_png`` is missing or holds no PNG, or a PNG in it
            is misnamed, named as the other set's, labelled neither 0 nor 1, or numbered as another.
    """
    check_sets(sets)
    root = Path(os.path.abspath(root))
    alone = len(sets) == 1
    return [record for name in sets for record in _read_set(name, find_set_folder(root, name, alone=alone))]


def find_set_folder(root: Path, name: SetName, *, alone: bool = False) -> Path:
    """The folder of the set ``name`` under ``root`` (see :func:`read_tuberculosis`); ``root`` itself if ``alone``.

    Raises:
        DataError: If none is found; the message names where it was looked for.
    """
    chest_set = SETS[name]
    if alone and (root / IMAGES).is_dir():
        return root
    for folder_name in chest_set.folders:
        folder = root / folder_name
        if folder.is_dir():
            nested = folder / folder_name
            return nested if nested.is_dir() and not (folder / IMAGES).exists() else folder
    looked = " or ".join(str(root / folder_name) for folder_name in chest_set.folders)
    hint = (
        f"; {root} itself holds {IMAGES}, as one set's own folder does: read only that set (--data.sets)"
        if (root / IMAGES).is_dir()
        else f"; point the root at the folder holding {chest_set.folders[0]}, or leave {name} out of --data.sets"
    )
    raise DataError(f"the {chest_set.title} set is not under {root}: looked for {looked}{hint}.")


def _read_set(name: SetName, folder: Path) -> list[Record]:
    chest_set = SETS[name]
    images = folder / IMAGES
    example = f"{chest_set.prefix}_0001_0.png"
    if not images.is_dir():
        raise DataError(f"{images} not found: it holds the {chest_set.title} set's radiographs ({example}, ...).")
    found: dict[str, tuple[Path, int]] = {}  # number -> (file, label)
    ignored = []
    for path in sorted(images.iterdir()):
        if path.name.startswith(".") or path.suffix.casefold() != ".png" or not path.is_file():
            ignored.append(path.name)
            continue
        number, label = _number_and_label(path, chest_set)
        if number in found:
            first, first_label = found[number]
            labels = f"labelled {first_label} there and {label} here" if label != first_label else "twice"
            raise DataError(
                f"{path}: radiograph {number} of the {chest_set.title} set is also {first.name} ({labels}); "
                "one patient's radiograph has one file: remove the wrong one."
            )
        found[number] = (path, label)
    if ignored:
        shown = ", ".join(ignored[:5]) + (", ..." if len(ignored) > 5 else "")
        log.info("%s: left out what is not a PNG radiograph (%d): %s", images, len(ignored), shown)
    if not found:
        raise DataError(f"{images} holds no PNG radiograph; expected {example}, ...")
    records = [
        Record(id=f"{name}/{path.stem}", path=path, labels={"tb": label}) for _, (path, label) in sorted(found.items())
    ]
    positives = sum(record.labels["tb"] for record in records)
    log.info(
        "%s set: %d radiographs (%d normal, %d tuberculosis) in %s",
        chest_set.title, len(records), len(records) - positives, positives, images,
    )  # fmt: skip
    _log_missing_readings(folder / READINGS, [record.path.stem for record in records])
    return records


def _number_and_label(path: Path, chest_set: ChestSet) -> tuple[str, int]:
    """The number and the label digit of a radiograph's file name, checked."""
    match = _IMAGE_NAME.fullmatch(path.stem)
    prefix = match[1] if match else None
    other = next((s for s in SETS.values() if s is not chest_set and s.prefix == prefix), None)
    if other is not None:
        raise DataError(
            f"{path}: a radiograph of the {other.title} set ({other.prefix}_...) among the {chest_set.title} set's; "
            "keep each set in its own folder."
        )
    if match is None or match[1] != chest_set.prefix:
        raise DataError(
            f"{path}: not a {chest_set.title} radiograph's name; expected {chest_set.prefix}_<4 digits>_<label>.png "
            f"with label 0 (normal) or 1 (tuberculosis), e.g. {chest_set.prefix}_0001_0.png."
        )
    if match[3] not in ("0", "1"):
        raise DataError(
            f"{path}: label digit {match[3]}; the last digit of the name must be 0 (normal) or 1 (tuberculosis)."
        )
    return match[2], int(match[3])


def _log_missing_readings(readings: Path, stems: list[str]) -> None:
    if not readings.is_dir():
        log.info("%s not found: no clinical readings (they are not needed)", readings)
        return
    present = {path.stem for path in readings.glob("*.txt")}
    missing = [stem for stem in stems if stem not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        log.info("%s: %d of %d radiographs have no clinical reading: %s", readings, len(missing), len(stems), shown)


@dataclass(frozen=True)
class ClinicalReading:
    """What a radiograph's clinical reading says.

    Attributes:
        sex: ``"F"``, ``"M"``, ``"O"`` (Montgomery's other), or None where the reading does not say.
        age: In years (months and days as fractions of one), or None where the reading does not say.
        finding: The radiologist's reading after the sex and age, e.g. ``normal``.
    """

    sex: Literal["F", "M", "O"] | None
    age: float | None
    finding: str


# Shenzhen's first line: sex and age, spelt freely ("female24yrs", "male 16month").
_SHENZHEN_PATIENT = re.compile(r"\s*([a-z]+)[\s,:]*(\d+(?:\.\d+)?)\s*([a-z]*)[\s.,]*", re.IGNORECASE)
_MONTGOMERY_SEX = re.compile(r"^\s*patient'?s\s+sex\s*:\s*([a-z]?).*$", re.IGNORECASE | re.MULTILINE)
_MONTGOMERY_AGE = re.compile(r"^\s*patient'?s\s+age\s*:\s*(\d*)\s*([a-z]?).*$", re.IGNORECASE | re.MULTILINE)
_YEARS_PER_UNIT = {"y": 1.0, "m": 1 / 12, "w": 7 / 365.25, "d": 1 / 365.25}  # by the unit's first letter


def parse_clinical_reading(text: str) -> ClinicalReading:
    """Parse one clinical reading, in Shenzhen's or Montgomery's way; what cannot be made out is None.

    Args:
        text: The reading file's text.

    Returns:
        The sex, the age and the finding.
    """
    sex_match, age_match = _MONTGOMERY_SEX.search(text), _MONTGOMERY_AGE.search(text)
    if sex_match or age_match:
        sex = sex_match[1].upper() if sex_match and sex_match[1].upper() in ("F", "M", "O") else None
        age = _years(age_match[1], age_match[2] or "y") if age_match else None
        finding = _MONTGOMERY_AGE.sub("", _MONTGOMERY_SEX.sub("", text))
        return ClinicalReading(sex, age, " ".join(finding.split()))  # type: ignore[arg-type]
    first, _, rest = text.strip().partition("\n")
    patient = _SHENZHEN_PATIENT.fullmatch(first)
    if patient is None:
        return ClinicalReading(None, None, " ".join(text.split()))
    word = patient[1].casefold()
    sex = "F" if word.startswith("f") else "M" if word.startswith("m") else None
    return ClinicalReading(sex, _years(patient[2], patient[3] or "y"), " ".join(rest.split()))


def _years(number: str, unit: str) -> float | None:
    per_unit = _YEARS_PER_UNIT.get(unit[:1].casefold())
    return float(number) * per_unit if number and per_unit is not None else None


def read_clinical_readings(root: Path, sets: Sequence[SetName] = SET_NAMES) -> dict[str, ClinicalReading]:
    """Parse the clinical readings of the sets, found as :func:`read_tuberculosis` finds them.

    A reading that cannot be read is logged and left out; none fails.

    Args:
        root: The folder holding the sets' folders, or the one set's folder.
        sets: The sets whose readings to read.

    Returns:
        Radiograph id (``shenzhen/CHNCXR_0001_0``, as in the records) -> its reading.

    Raises:
        ConfigError: If ``sets`` is empty, repeats a set or names an unknown one.
        DataError: If a set's folder is not found.
    """
    check_sets(sets)
    root = Path(os.path.abspath(root))
    readings: dict[str, ClinicalReading] = {}
    for name in sets:
        for path in sorted((find_set_folder(root, name, alone=len(sets) == 1) / READINGS).glob("*.txt")):
            try:
                text = path.read_bytes().decode("utf-8-sig", errors="replace")
            except OSError as error:
                log.warning("%s: cannot read this clinical reading (%s); left out", path, error)
                continue
            readings[f"{name}/{path.stem}"] = parse_clinical_reading(text)
    return readings
