"""Synthetic IDRiD and Messidor folders, in the layouts and with the quirks of the real distributions.

The folder, file and column names are the readers' own (:mod:`medcls.data.readers.idrid`,
:mod:`medcls.data.readers.messidor`), so what is written here is what the readers expect of real data.
"""

from __future__ import annotations

import csv
import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from medcls.data.readers import idrid, messidor
from medcls.io import atomic_directory
from medcls.synthetic import streams
from medcls.synthetic.fundus import draw_fundus
from medcls.synthetic.labels import MESSIDOR_DME_FREQUENCIES, MESSIDOR_DR_FREQUENCIES, sample_labels
from medcls.synthetic.sheets import sheet_writer

_DEPARTMENTS = {1: "LaTIM - CHU de BREST", 2: "CHU de St Etienne", 3: "Service Ophtalmologie Lariboisière"}
# International grade -> Messidor's 0-3 scale.
_MESSIDOR_GRADE = (0, 1, 2, 3, 3)
# The stream of Messidor's images, apart from those of IDRiD's splits (0 and 1).
_MESSIDOR_STREAM = 2


def write_idrid_tree(
    root: Path,
    *,
    train: int = 40,
    test: int = 12,
    size: tuple[int, int] = (512, 340),
    seed: int = 0,
    quality: int = 90,
) -> Path:
    """Write a synthetic IDRiD "B. Disease Grading" folder under ``root``, quirks included.

    The layout, the names and the label files are those of the real distribution: numbering
    restarts per split, the last header has a trailing space, rows carry trailing empty columns
    and the file ends with a blank row. The tree is built in a hidden sibling folder and renamed
    into place when complete, so an existing ``B. Disease Grading`` is complete and is left as it is.

    Args:
        root: Folder to hold ``B. Disease Grading``.
        train: Number of training images.
        test: Number of test images.
        size: ``(width, height)`` of the images; the default keeps IDRiD's 4288 x 2848 aspect.
        seed: Non-negative seed; the two splits draw from disjoint streams.
        quality: JPEG quality.

    Returns:
        The ``B. Disease Grading`` folder.
    """
    tree = Path(root) / idrid.FOLDER
    if tree.exists():
        return tree
    counts = {"train": train, "test": test}
    with atomic_directory(tree) as partial:
        for split_index, (split, (folder, label_file)) in enumerate(idrid.SPLITS.items()):
            stream = streams.derived_seed(seed, streams.SPLIT, split_index)
            images = partial / idrid.IMAGES / folder
            images.mkdir(parents=True)
            rows = []
            for index, (dr, dme) in enumerate(sample_labels(stream, counts[split])):
                name = f"IDRiD_{index + 1:03d}"
                draw_fundus(stream, index, size, dr, dme)[0].save(images / f"{name}.jpg", quality=quality)
                rows.append((name, dr, dme))
            truths = partial / idrid.LABELS
            truths.mkdir(exist_ok=True)
            with open(truths / label_file, "w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file)
                writer.writerow([*idrid.HEADER, "", "", ""])
                writer.writerows([*row, "", "", ""] for row in rows)
                writer.writerow([""] * (len(idrid.HEADER) + 3))
    return tree


def write_messidor_tree(
    root: Path,
    *,
    per_base: int = 5,
    size: tuple[int, int] = (480, 320),
    seed: int = 0,
    fmt: Literal["xls", "xlsx", "csv"] = "xls",
) -> Path:
    """Write a synthetic Messidor folder under ``root``: 12 sub-bases with one sheet each.

    ``Messidor/BaseXX/`` holds TIFF images named like ``20051019_38557_0100_PP.tif``;
    ``Messidor/Annotation_BaseXX.<fmt>`` beside it lists them with Messidor's columns (the
    trailing space of ``"Risk of macular edema "`` included) and its 0-3 DR scale. Class
    proportions follow Messidor's. Built and renamed into place like :func:`write_idrid_tree`.

    Args:
        root: Folder to hold ``Messidor``.
        per_base: Images per sub-base.
        size: ``(width, height)`` of the images.
        seed: Non-negative seed.
        fmt: Sheet format: ``"xls"`` (Excel 97, as distributed; needs ``xlwt``, a development
            dependency), ``"xlsx"`` or ``"csv"``.

    Returns:
        The ``Messidor`` folder.

    Raises:
        ValueError: If ``fmt`` is unknown.
        ImportError: If ``fmt`` is ``"xls"`` and xlwt is not installed.
    """
    write_sheet = sheet_writer(fmt)
    tree = Path(root) / "Messidor"
    if tree.exists():
        return tree
    stream = streams.derived_seed(seed, streams.SPLIT, _MESSIDOR_STREAM)
    labels = sample_labels(
        stream,
        len(messidor.BASES) * per_base,
        dr_frequencies=MESSIDOR_DR_FREQUENCIES,
        dme_frequencies=MESSIDOR_DME_FREQUENCIES,
    )
    names = streams.rng(stream, streams.NAMES)
    serials = names.choice(np.arange(10000, 100000), size=len(labels), replace=False)
    days = names.integers(0, 400, size=len(labels))
    with atomic_directory(tree) as partial:
        for base_index, base in enumerate(messidor.BASES):
            department = int(base[4])
            (partial / base).mkdir()
            rows = []
            for index in range(base_index * per_base, (base_index + 1) * per_base):
                dr, dme = labels[index]
                date = datetime.date(2005, 10, 17) + datetime.timedelta(days=int(days[index]))
                name = f"{date:%Y%m%d}_{serials[index]:05d}_{department:02d}00_PP.tif"
                draw_fundus(stream, index, size, dr, dme)[0].save(partial / base / name, format="TIFF")
                rows.append((name, _DEPARTMENTS[department], _MESSIDOR_GRADE[dr], dme))
            write_sheet(partial / f"{messidor.SHEET.format(base=base)}.{fmt}", [messidor.HEADER, *sorted(rows)])
    return tree
