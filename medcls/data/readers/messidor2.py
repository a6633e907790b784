"""Messidor-2 as distributed, with the adjudicated grades of Krause et al. (2018), into validated records.

The layout, as ADCIS's download unpacks with Kaggle's grades put beside it::

    <root>/
      IMAGES/            1748 images: Messidor-1's .tif (20051020_43808_0100_PP.tif), Brest's .JPG (IM000012.JPG)
      messidor-2.csv     the examinations: header left;right, one row per exam (IM000013.JPG;IM000012.JPG)
      messidor_data.csv  image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable, one row per image

The images are looked for anywhere under the root (``IMAGES/`` as distributed, or wherever a copy put them;
hidden files left out), the two tables at the root. Quirks read as they come:

- ``image_id`` gives the images other extensions (``.png`` for the ``.tif`` files, ``.jpg`` for ``.JPG``), so
  images are matched on the name without its extension, in any case
  (:class:`~medcls.data.readers.eyepacs.ImagesByStem`); a name matching two files is refused.
- Ungradable images (``adjudicated_gradable`` 0, both grades empty) are left out; their number is logged.
- The exam file may hold blank rows (skipped) and names of images that are not graded (ignored, counted in
  the log); an exam with one name is an exam of one image. An image of no exam is a group of its own, logged.

Labels: ``dr`` (ICDR 0-4), ``dme`` (referable DME, 0/1) and ``referable``, Gulshan et al.'s referable DR:
moderate or worse DR, or referable DME (:func:`referable`).
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePath

from medcls.data.readers.graded import ImagesByStem, parse_grade, read_columns, stem_key
from medcls.data.readers.records import Record
from medcls.errors import DataError

log = logging.getLogger(__name__)

MESSIDOR2_TASKS: dict[str, int] = {"dr": 5, "dme": 2, "referable": 2}
"""Task name -> number of classes: ICDR DR grade, referable DME, referable DR (Gulshan et al.)."""

IMAGES = "IMAGES"
"""The images' folder as distributed (any folder under the root is searched)."""
GRADES = "messidor_data.csv"
"""Krause et al.'s adjudicated grades, one row per image."""
GRADES_HEADER = ("image_id", "adjudicated_dr_grade", "adjudicated_dme", "adjudicated_gradable")
EXAMS = "messidor-2.csv"
"""The examinations: the two images (one per eye) of each."""
EXAMS_HEADER = ("left", "right")
_IMAGE, _DR, _DME, _GRADABLE = GRADES_HEADER


def referable(dr: int, dme: int) -> int:
    """Gulshan et al.'s referable diabetic retinopathy: moderate or worse DR (grade >= 2), or referable DME."""
    return int(dr >= 2 or dme == 1)


def read_messidor2(root: Path) -> list[Record]:
    """Read and validate Messidor-2 and its adjudicated grades; group the images of each examination.

    Args:
        root: The folder holding ``messidor-2.csv``, ``messidor_data.csv`` and the images (``IMAGES/``).

    Returns:
        One record per gradable image, in grade-file order: id the image's file name without extension,
        labels ``{"dr": 0-4, "dme": 0-1, "referable": 0-1}``, group ``exam/<its images' names>`` (else the id).

    Raises:
        DataError: If a table is missing, empty or lacks a column; if a grade row names no image, an image
            missing, matching two files or listed twice, or has a grade that is no whole number in range (an
            empty one for a gradable image); or if an image is in two exams.
    """
    root = Path(root)
    for path, holds in ((root / GRADES, "the adjudicated grades of Krause et al."), (root / EXAMS, "the exams")):
        if not path.is_file():
            raise DataError(
                f"{path} not found: it holds {holds}. Point the root at the Messidor-2 folder as distributed "
                f"(holding {EXAMS} and {IMAGES}/), with {GRADES} put beside them."
            )
    images = ImagesByStem(root)
    grades = root / GRADES
    positions, rows = read_columns(grades, GRADES_HEADER)
    labelled: list[tuple[Path, dict[str, int]]] = []
    ungradable = 0
    for line, cells in rows:
        source = f"{grades}, line {line}"
        path = images.claim(cells[positions[_IMAGE]], grades, line)
        if not parse_grade(cells[positions[_GRADABLE]], _GRADABLE, 1, source):
            ungradable += 1
            continue
        dr = parse_grade(cells[positions[_DR]], _DR, 4, source)
        dme = parse_grade(cells[positions[_DME]], _DME, 1, source)
        labelled.append((path, {"dr": dr, "dme": dme, "referable": referable(dr, dme)}))
    images.log_unlisted(grades, "Messidor-2")

    exam_of, ignored = _read_exams(root / EXAMS, {stem_key(path.name) for path, _ in labelled})
    records = [
        Record(id=path.stem, path=path, labels=labels, group=exam_of.get(stem_key(path.name), ""))
        for path, labels in labelled
    ]
    alone = sum(record.group == record.id for record in records)
    log.log(
        logging.WARNING if alone else logging.INFO,
        "Messidor-2: %d gradable images in %d exams, ungradable images left out: %d; in no exam of %s (each a "
        "group of its own): %d; names there that are no gradable image (ignored): %d",
        len(records),
        len({record.group for record in records}) - alone,
        ungradable,
        EXAMS,
        alone,
        ignored,
    )
    return records


def _read_exams(exams: Path, graded: set[str]) -> tuple[dict[str, str], int]:
    """Map each graded image's key to its exam's group; count the names that are no graded image.

    Raises:
        DataError: If the file is empty or lacks a column, or an image is named in two exams.
    """
    positions, rows = read_columns(exams, EXAMS_HEADER)
    exam_of: dict[str, str] = {}
    line_of: dict[str, int] = {}
    ignored = 0
    for line, cells in rows:
        names = [cells[positions[column]] for column in EXAMS_HEADER if cells[positions[column]]]
        group = "exam/" + "+".join(PurePath(name).stem for name in names)
        for name in names:
            key = stem_key(name)
            if key in line_of:
                raise DataError(
                    f"{exams}, line {line}: image {name!r} is in two exams (also on line {line_of[key]}); "
                    "an image belongs to one exam."
                )
            line_of[key] = line
            if key in graded:
                exam_of[key] = group
            else:
                ignored += 1
    return exam_of, ignored
