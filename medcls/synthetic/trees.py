"""Synthetic fundus data set folders, in the layouts and with the quirks of the real distributions.

IDRiD, Messidor, EyePACS (Kaggle DR 2015), APTOS 2019 and Messidor-2. The folder, file and column names are
the readers' own (:mod:`medcls.data.readers.idrid`, :mod:`~medcls.data.readers.messidor`,
:mod:`~medcls.data.readers.eyepacs`, :mod:`~medcls.data.readers.aptos`, :mod:`~medcls.data.readers.messidor2`),
so what is written here is what the readers expect of real data.
"""

from __future__ import annotations

import csv
import datetime
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from medcls.data.readers import aptos, eyepacs, idrid, messidor, messidor2
from medcls.io import atomic_directory
from medcls.synthetic import streams
from medcls.synthetic.fundus import draw_fundus
from medcls.synthetic.labels import MESSIDOR_DME_FREQUENCIES, MESSIDOR_DR_FREQUENCIES, sample_labels
from medcls.synthetic.sheets import sheet_writer

_DEPARTMENTS = {1: "LaTIM - CHU de BREST", 2: "CHU de St Etienne", 3: "Service Ophtalmologie Lariboisière"}
# International grade -> Messidor's 0-3 scale.
_MESSIDOR_GRADE = (0, 1, 2, 3, 3)
# The streams of each data set's images, apart from those of IDRiD's splits (0 and 1).
_MESSIDOR_STREAM = 2
_EYEPACS_STREAMS = {"train": 3, "test": 4}
_APTOS_STREAM = 5
_MESSIDOR2_STREAM = 6
# Images per DR grade 0-4: EyePACS' training set, APTOS 2019's, Messidor-2's adjudicated grades (as one copy of
# messidor_data.csv, 1744 gradable images, counts them).
_EYEPACS_DR_FREQUENCIES = (25810, 2443, 5292, 873, 708)
_APTOS_DR_FREQUENCIES = (1805, 370, 999, 193, 295)
_MESSIDOR2_DR_FREQUENCIES = (1017, 270, 347, 75, 35)


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


def write_eyepacs_tree(
    root: Path, train: int, test: int = 0, size: tuple[int, int] = (512, 340), seed: int = 0
) -> Path:
    """Write a synthetic EyePACS (Kaggle DR 2015) folder under ``root``, as Kaggle distributes it.

    ``train/`` holds ``<patient>_left.jpeg`` and ``<patient>_right.jpeg`` (patient numbers with gaps, as in
    the real set; with an odd count the last patient has one eye), ``trainLabels.csv`` lists them as
    ``image,level`` with names WITHOUT extension. With ``test`` images, ``test/`` and
    ``retinopathy_solution.csv`` (``image,level,Usage``, about a fifth ``Public``) follow, their patients apart
    from the training ones. Grades follow EyePACS' heavy imbalance. Built and renamed into place like
    :func:`write_idrid_tree`.

    Args:
        root: Folder to hold ``diabetic-retinopathy-detection``.
        train: Number of training images.
        test: Number of test images (0: no test folder, as before the solution was released).
        size: ``(width, height)`` of the images.
        seed: Non-negative seed; the two splits draw from disjoint streams.

    Returns:
        The ``diabetic-retinopathy-detection`` folder, the root the EyePACS reader takes.
    """
    tree = Path(root) / "diabetic-retinopathy-detection"
    if tree.exists():
        return tree
    counts = {"train": train, "test": test}
    patients = {split: -(-count // 2) for split, count in counts.items()}  # two eyes each, rounded up
    total = sum(patients.values())
    # Patient numbers with gaps, dealt at random to the two splits, as Kaggle's are.
    names = streams.rng(seed, streams.NAMES, _EYEPACS_STREAMS["train"])
    numbers = names.choice(np.arange(1, 4 * total + 10), size=total, replace=False)
    numbered = {"train": sorted(numbers[: patients["train"]]), "test": sorted(numbers[patients["train"] :])}
    with atomic_directory(tree) as partial:
        for split, count in counts.items():
            if not count:
                continue
            folder, label_file = eyepacs.SPLITS[split]
            stream = streams.derived_seed(seed, streams.SPLIT, _EYEPACS_STREAMS[split])
            (partial / folder).mkdir()
            eyes = [f"{number}_{eye}" for number in numbered[split] for eye in ("left", "right")][:count]
            labels = sample_labels(stream, count, dr_frequencies=_EYEPACS_DR_FREQUENCIES)
            rows = []
            for index, (name, (dr, dme)) in enumerate(zip(eyes, labels, strict=True)):
                draw_fundus(stream, index, size, dr, dme)[0].save(partial / folder / f"{name}.jpeg", quality=90)
                rows.append([name, dr])
            header = list(eyepacs.HEADER)
            if split == "test":
                header.append(eyepacs.USAGE)
                public = streams.rng(stream, streams.NAMES).random(count) < 0.2
                rows = [[*row, "Public" if shown else "Private"] for row, shown in zip(rows, public, strict=True)]
            _write_csv(partial / label_file, [header, *rows])
    return tree


def write_aptos_tree(root: Path, train: int, size: tuple[int, int] = (512, 384), seed: int = 0) -> Path:
    """Write a synthetic APTOS 2019 folder under ``root``: the labelled training images, as Kaggle distributes them.

    ``train_images/<id_code>.png`` (12 hex digits) listed in ``train.csv`` (``id_code,diagnosis``), in APTOS'
    class proportions. The known quirk is there: the last image listed is a byte-for-byte copy of the first,
    under another id and with the same grade. Built and renamed into place like :func:`write_idrid_tree`.

    Args:
        root: Folder to hold ``aptos2019-blindness-detection``.
        train: Number of training images, the copy included (none below 2).
        size: ``(width, height)`` of the images.
        seed: Non-negative seed.

    Returns:
        The ``aptos2019-blindness-detection`` folder, the root the APTOS reader takes.
    """
    tree = Path(root) / "aptos2019-blindness-detection"
    if tree.exists():
        return tree
    stream = streams.derived_seed(seed, streams.SPLIT, _APTOS_STREAM)
    labels = sample_labels(stream, train, dr_frequencies=_APTOS_DR_FREQUENCIES)
    codes = [streams.rng(stream, streams.NAMES, index).bytes(6).hex() for index in range(train)]
    with atomic_directory(tree) as partial:
        images = partial / aptos.IMAGES
        images.mkdir()
        rows = []
        for index, (code, (dr, dme)) in enumerate(zip(codes, labels, strict=True)):
            if index == train - 1 and index > 0:  # the copy of the first image
                shutil.copyfile(images / f"{codes[0]}.png", images / f"{code}.png")
                dr = rows[0][1]
            else:
                draw_fundus(stream, index, size, dr, dme)[0].save(images / f"{code}.png")
            rows.append([code, dr])
        _write_csv(partial / aptos.LABELS, [list(aptos.HEADER), *rows])
    return tree


def write_messidor2_tree(root: Path, exams: int, size: tuple[int, int] = (480, 320), seed: int = 0) -> Path:
    """Write a synthetic Messidor-2 folder under ``root``, as ADCIS distributes it, with Krause et al.'s grades beside.

    ``IMAGES/`` holds two images per exam: Messidor-1's exams as ``.tif`` (``20051019_38557_0100_PP.tif``),
    the others, Brest's, as ``.JPG`` (``IM000013.JPG``). ``messidor-2.csv`` lists the exams (``left;right``,
    semicolon-separated, with a blank row among them); ``messidor_data.csv`` grades each image, naming it
    with the wrong extension as the real file does (``.png`` for ``.tif``, ``.jpg`` for ``.JPG``). The last
    image is ungradable: ``adjudicated_gradable`` 0, both grades empty. DR grades follow Messidor-2's
    proportions, the DME risk Messidor's, referable DME being its grade 2 (exudates within one disc diameter).
    Built and renamed into place like :func:`write_idrid_tree`.

    Args:
        root: Folder to hold ``messidor-2``.
        exams: Number of exams (two images each).
        size: ``(width, height)`` of the images.
        seed: Non-negative seed.

    Returns:
        The ``messidor-2`` folder, the root the Messidor-2 reader takes.
    """
    tree = Path(root) / "messidor-2"
    if tree.exists():
        return tree
    stream = streams.derived_seed(seed, streams.SPLIT, _MESSIDOR2_STREAM)
    labels = sample_labels(
        stream, 2 * exams, dr_frequencies=_MESSIDOR2_DR_FREQUENCIES, dme_frequencies=MESSIDOR_DME_FREQUENCIES
    )
    names = streams.rng(stream, streams.NAMES)
    serials = names.choice(np.arange(10000, 100000), size=2 * exams, replace=False)
    days = names.integers(0, 400, size=2 * exams)
    brest = 12 + np.cumsum(names.integers(2, 6, size=exams))  # the right eye's number; the left eye's is next
    with atomic_directory(tree) as partial:
        images = partial / messidor2.IMAGES
        images.mkdir()
        pairs, grades = [], []
        for exam in range(exams):
            from_messidor1 = exam % 2 == 0
            if from_messidor1:
                date = datetime.date(2005, 10, 17) + datetime.timedelta(days=int(days[2 * exam]))
                files = [f"{date:%Y%m%d}_{serials[2 * exam + eye]:05d}_0{exam % 3 + 1}00_PP.tif" for eye in (0, 1)]
            else:
                files = [f"IM{brest[exam] + eye:06d}.JPG" for eye in (1, 0)]
            pairs.append(files)
            for eye, name in enumerate(files):
                index = 2 * exam + eye
                dr, dme = labels[index]
                image = draw_fundus(stream, index, size, dr, dme)[0]
                image.save(images / name, format="TIFF" if from_messidor1 else "JPEG")
                listed = name.replace(".tif", ".png").replace(".JPG", ".jpg")
                grades.append([listed, dr, int(dme == 2), 1])
        grades[-1][1:] = ["", "", 0]
        _write_csv(partial / messidor2.GRADES, [list(messidor2.GRADES_HEADER), *grades])
        blank = [""] * len(messidor2.EXAMS_HEADER)
        exam_rows = [*pairs[: exams // 2], blank, *pairs[exams // 2 :]]
        _write_csv(partial / messidor2.EXAMS, [list(messidor2.EXAMS_HEADER), *exam_rows], delimiter=";")
    return tree


def _write_csv(path: Path, rows: list[list[object]], delimiter: str = ",") -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file, delimiter=delimiter, lineterminator="\n").writerows(rows)
