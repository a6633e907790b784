"""Synthetic frontal chest radiographs, normal or with tuberculosis, written as Shenzhen and Montgomery are.

A radiograph is drawn bright where the body is dense: a grey body against dark air, two dark lung fields,
the mediastinum and the heart shadow bright between them (the heart bulging into the patient's left lung,
the image's right), posterior ribs as curved bright bands and the clavicles across the apices, then uneven
exposure and noise. Tuberculosis adds what post-primary tuberculosis shows: patchy nodular opacities around
a consolidation in an upper lobe, sometimes in both, sometimes with a cavity (a dark hole in a bright
wall). The opacities cover a good part of a lobe, so a small CNN learns them at 64 to 128 px.

Each image is deterministic per ``(seed, index)``; its anatomy and noise do not depend on its label, so the
tuberculous version of an image differs from the normal one only where the opacities are. numpy computes
everything on a grid of at most 1024 px (larger images are upsampled), which keeps a 256 px image in milliseconds.

The tree writers take the layouts and names from the reader, :mod:`~medcls.data.readers.tuberculosis`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from medcls.data.readers import tuberculosis
from medcls.io import atomic_directory
from medcls.synthetic import streams

Side = Literal["right", "left"]
"""A lung, the patient's: the right lung is on the image's left."""

_MAX_DRAW_SIDE = 1024  # larger images are drawn at this size and upsampled: a radiograph's shadows are smooth
_SHENZHEN_TB_SHARE = 336 / 662
_MONTGOMERY_TB_SHARE = 58 / 138
_MONTGOMERY_NUMBERS = {0: range(1, 104), 1: range(104, 400)}  # label -> the numbers it is given, with gaps
_MONTGOMERY_ASPECT = 4020 / 4892  # width / height of its (portrait) radiographs
_SET_STREAMS = {"shenzhen": 0, "montgomery": 1}  # so that the two sets of one seed draw different images


def _positives(count: int, share: float) -> int:
    """How many of ``count`` radiographs are tuberculous in a set's proportion, leaving both classes one at least."""
    return min(count - 1, max(1, round(count * share)))


MONTGOMERY_MAX_COUNT = max(
    count for count in range(2, 400) if count - _positives(count, _MONTGOMERY_TB_SHARE) <= len(_MONTGOMERY_NUMBERS[0])
)
"""The most radiographs a synthetic Montgomery set holds: its numbering leaves the normals 103 numbers."""


@dataclass(frozen=True, eq=False)  # arrays have no truth value to compare by
class ChestRadiograph:
    """One synthetic radiograph and what was drawn on it.

    Attributes:
        image: Height x width float32 values in [0, 1], bright where dense.
        right_lung: Where the patient's right lung is (the image's left), a boolean mask.
        left_lung: Where the patient's left lung is.
        opacities: The lungs with tuberculous opacities (in their upper lobes); none in a normal radiograph.
        cavity: Whether one of them surrounds a cavity.
    """

    image: np.ndarray
    right_lung: np.ndarray
    left_lung: np.ndarray
    opacities: tuple[Side, ...] = ()
    cavity: bool = False


def draw_chest(
    seed: int, index: int, size: tuple[int, int] = (256, 256), tuberculosis: bool = False
) -> ChestRadiograph:
    """Draw one frontal chest radiograph.

    Args:
        seed: Non-negative seed of the data set.
        index: Non-negative index of the image within it.
        size: ``(width, height)`` in pixels; the anatomy fits the shorter side, centred.
        tuberculosis: Draw tuberculous opacities in an upper lobe (or both).

    Returns:
        The image, its lungs and its lesions.
    """
    width, height = size
    scale = min(1.0, _MAX_DRAW_SIDE / max(size))
    canvas = (max(1, round(width * scale)), max(1, round(height * scale)))
    anatomy = streams.rng(seed, streams.ANATOMY, index)
    rows, columns = np.mgrid[0 : canvas[1], 0 : canvas[0]].astype(np.float32)
    unit = min(canvas)  # coordinates in shorter sides from the centre: x to the image's right, y down
    x, y = (columns + 0.5 - canvas[0] / 2) / unit, (rows + 0.5 - canvas[1] / 2) / unit

    body = _soft(1 - np.hypot(x / anatomy.uniform(0.44, 0.49), (y - 0.1) / 0.8), 25)
    middle = _soft(anatomy.uniform(0.055, 0.07) - np.abs(x - anatomy.uniform(-0.01, 0.01)), 150) * _soft(0.12 - y, 40)
    heart = _soft(1 - np.hypot((x - 0.07) / anatomy.uniform(0.15, 0.18), (y - 0.12) / anatomy.uniform(0.11, 0.13)), 12)
    mediastinum = np.maximum(middle, heart)
    lungs = {side: _lung(anatomy, x, y, side) * (1 - mediastinum) for side in ("right", "left")}
    lung = lungs["right"] + lungs["left"]
    density = (
        0.04
        + body * (0.5 + 0.12 * np.clip(y, 0, None))  # the abdomen below the diaphragm is denser
        + 0.16 * mediastinum
        - 0.36 * lung
        + _ribs(anatomy, x, y) * body * (0.04 + 0.06 * lung)
    )
    gain, offset, gamma = anatomy.uniform(0.85, 1.1), anatomy.uniform(-0.04, 0.04), anatomy.uniform(0.8, 1.25)
    low = Image.fromarray(anatomy.normal(0, 0.025, (6, 6)).astype(np.float32), "F")
    unevenness = np.asarray(low.resize(canvas, Image.Resampling.BICUBIC))
    noise = anatomy.normal(0, 0.012, density.shape).astype(np.float32)

    opacities: tuple[Side, ...] = ()
    cavity = False
    if tuberculosis:
        lesions = streams.rng(seed, streams.LESIONS, index)
        first: Side = "right" if lesions.random() < 0.5 else "left"
        opacities = (first, "left" if first == "right" else "right") if lesions.random() < 0.3 else (first,)
        cavity = lesions.random() < 0.35
        for number, side in enumerate(opacities):  # the second lung, if any, less affected and without a cavity
            extent, hollow = (1.0, cavity) if number == 0 else (0.6, False)
            density = density + lungs[side] * _opacity(lesions, x, y, side, extent=extent, cavity=hollow)

    image = (np.clip(density, 0, 1) ** gamma) * gain + offset + unevenness + noise
    if canvas != tuple(size):
        image = _resize(image, size)
        lungs = {side: _resize(mask, size) for side, mask in lungs.items()}
    return ChestRadiograph(
        image=np.clip(image, 0, 1).astype(np.float32),
        right_lung=lungs["right"] > 0.5,
        left_lung=lungs["left"] > 0.5,
        opacities=opacities,
        cavity=cavity,
    )


def _soft(signed: np.ndarray, sharpness: float) -> np.ndarray:
    """A soft-edged mask: 1 where ``signed`` is well above 0, 0 well below, a sigmoid between."""
    return 0.5 + 0.5 * np.tanh(0.5 * sharpness * signed)  # the logistic function, without overflowing


def _lung_frame(side: Side) -> tuple[float, float, float, float]:
    """A lung's nominal centre ``(x, y)`` and half width and height, before each image's jitter."""
    # The right lung is wider and shorter than the left, which the heart crowds and the liver does not lift.
    return (-0.21, -0.03, 0.16, 0.28) if side == "right" else (0.21, -0.02, 0.15, 0.3)


def _lung(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, side: Side) -> np.ndarray:
    """A lung field: an ellipse narrowing to the apex, its base domed by the diaphragm."""
    cx, cy, half_width, half_height = (value + rng.uniform(-0.015, 0.015) for value in _lung_frame(side))
    height_fraction = (y - cy) / half_height
    taper = np.clip(0.8 + 0.3 * height_fraction, 0.45, 1.05)
    distance = np.hypot((x - cx) / (half_width * taper), height_fraction)
    return _soft(1 - distance, 14)


def _ribs(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Posterior ribs (bands falling from the spine outwards) and the clavicles, 1 on a bone's axis."""
    reach = np.abs(x)
    bones = np.zeros_like(x)
    spacing, top, width = rng.uniform(0.05, 0.06), rng.uniform(-0.34, -0.3), rng.uniform(0.009, 0.012)
    for rib in range(10):
        curve = top + rib * spacing + 2.4 * (reach - 0.1) ** 2
        bones = np.maximum(bones, np.exp(-(((y - curve) / width) ** 2)))
    clavicle = -0.37 - 0.1 * (reach - 0.05)
    bones = np.maximum(bones, np.exp(-(((y - clavicle) / (1.4 * width)) ** 2)) * _soft(0.33 - reach, 60))
    return bones * _soft(0.43 - reach, 60) * _soft(reach - 0.02, 60)


def _opacity(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, side: Side, *, extent: float, cavity: bool
) -> np.ndarray:
    """Patchy nodules and a consolidation in the upper lobe of ``side``, around a cavity if asked."""
    cx, cy, half_width, half_height = _lung_frame(side)
    # The upper lobe: the upper half of the lung, towards its lateral and upper (apical) part.
    centre = (cx + rng.uniform(-0.35, 0.35) * half_width, cy - rng.uniform(0.45, 0.65) * half_height)
    spread = (0.45 * half_width * extent, 0.22 * half_height * extent)
    added = np.zeros_like(x)
    for _ in range(rng.integers(6, 12)):
        nx, ny = centre[0] + rng.normal(0, spread[0]), centre[1] + rng.normal(0, spread[1])
        radius = rng.uniform(0.02, 0.04)
        added += rng.uniform(0.14, 0.26) * np.exp(-((x - nx) ** 2 + (y - ny) ** 2) / (2 * radius**2))
    consolidation = rng.uniform(0.06, 0.09) * extent
    distance = np.hypot(x - centre[0], y - centre[1])
    added += rng.uniform(0.14, 0.22) * np.exp(-(distance**2) / (2 * consolidation**2))
    added = np.minimum(added, 0.4)
    if cavity:  # air in the hole, as dark as the lung, inside a thick bright wall
        hole = rng.uniform(0.02, 0.03)
        added = added * _soft(distance - hole, 400) + 0.15 * np.exp(-(((distance - hole) / 0.01) ** 2))
    return added


def _resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(values.astype(np.float32), "F").resize(size, Image.Resampling.BICUBIC))


def write_shenzhen_tree(root: Path, count: int, size: int = 256, seed: int = 0) -> Path:
    """Write a synthetic Shenzhen set under ``root``, as ``ChinaSet_AllFiles.zip`` unpacks.

    ``ChinaSet_AllFiles/CXR_png/`` holds ``count`` 8-bit grey ``size`` x ``size`` PNGs numbered contiguously,
    the normals first (``CHNCXR_0001_0.png``, ...) and then the tuberculous ones, in Shenzhen's proportion
    (336 of 662), and Windows' ``Thumbs.db``; ``ClinicalReadings/`` one reading each, sex and age spelt as
    irregularly as Shenzhen's (``male 45yrs``, ``femal 32yrs``, ``female24yrs``, ``male 16month``), then the
    finding. The tree is built in a hidden sibling folder and renamed into place when complete, so an existing
    ``ChinaSet_AllFiles`` is complete and is left as it is.

    Args:
        root: Folder to hold ``ChinaSet_AllFiles``.
        count: Number of radiographs, 2 to 9999.
        size: Side of the images, in pixels.
        seed: Non-negative seed.

    Returns:
        The ``ChinaSet_AllFiles`` folder.

    Raises:
        ValueError: If ``count`` is out of range.
    """
    if not 2 <= count <= 9999:
        raise ValueError(f"a Shenzhen set has 2 to 9999 radiographs (4-digit numbers); asked for {count}")
    positives = _positives(count, _SHENZHEN_TB_SHARE)
    labels = [0] * (count - positives) + [1] * positives
    chest_set = tuberculosis.SETS["shenzhen"]
    tree = Path(root) / chest_set.folders[0]
    if tree.exists():
        return tree
    stream = streams.derived_seed(seed, streams.SPLIT, _SET_STREAMS["shenzhen"])
    people = streams.rng(stream, streams.NAMES)
    with atomic_directory(tree) as partial:
        images, readings = partial / tuberculosis.IMAGES, partial / tuberculosis.READINGS
        images.mkdir()
        readings.mkdir()
        for index, label in enumerate(labels):
            stem = f"{chest_set.prefix}_{index + 1:04d}_{label}"
            chest = draw_chest(stream, index, (size, size), tuberculosis=bool(label))
            Image.fromarray(np.rint(chest.image * 255).astype(np.uint8), "L").save(images / f"{stem}.png")
            (readings / f"{stem}.txt").write_text(f"{_shenzhen_patient(people)}\n{_finding(chest, 'field')}\n")
        # Windows' thumbnail cache, as in the real CXR_png: an OLE file (its signature, then nothing of note).
        (images / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(56))
    return tree


def write_montgomery_tree(root: Path, count: int, size: int = 256, seed: int = 0, masks: bool = True) -> Path:
    """Write a synthetic Montgomery County set under ``root``, as ``NLM-MontgomeryCXRSet.zip`` unpacks.

    ``MontgomerySet/CXR_png/`` holds ``count`` portrait PNGs, ``size`` tall and 4020 / 4892 of that wide like
    the originals, storing 12-bit values (up to 4095) in 16 bits; tuberculous in Montgomery's proportion (58
    of 138); numbered with gaps, the normals below 0104 (``MCUCXR_0001_0.png``, ...) and the tuberculous ones
    from 0104 to 0399. ``ClinicalReadings/`` holds one reading each (``Patient's Sex: F``, sometimes ``O``;
    ``Patient's Age: 027Y``; the finding); ``ManualMask/leftMask/`` and ``rightMask/`` the lung masks (0 and
    255; the patient's left lung is on the image's right). Built and renamed into place like
    :func:`write_shenzhen_tree`.

    Args:
        root: Folder to hold ``MontgomerySet``.
        count: Number of radiographs, 2 to :data:`MONTGOMERY_MAX_COUNT` (178: the numbering holds 103 normals).
        size: Height of the images, in pixels.
        seed: Non-negative seed.
        masks: Write the lung masks.

    Returns:
        The ``MontgomerySet`` folder.

    Raises:
        ValueError: If ``count`` is out of range.
    """
    if not 2 <= count <= MONTGOMERY_MAX_COUNT:
        raise ValueError(
            f"a Montgomery set has 2 to {MONTGOMERY_MAX_COUNT} radiographs (normals numbered 0001-0103); "
            f"asked for {count}"
        )
    positives = _positives(count, _MONTGOMERY_TB_SHARE)
    chest_set = tuberculosis.SETS["montgomery"]
    tree = Path(root) / chest_set.folders[0]
    if tree.exists():
        return tree
    stream = streams.derived_seed(seed, streams.SPLIT, _SET_STREAMS["montgomery"])
    people = streams.rng(stream, streams.NAMES)
    numbered = sorted(
        (int(number), label)
        for label, amount in ((0, count - positives), (1, positives))
        for number in people.choice(_MONTGOMERY_NUMBERS[label], size=amount, replace=False)
    )
    shape = (max(1, round(size * _MONTGOMERY_ASPECT)), size)
    with atomic_directory(tree) as partial:
        images, readings = partial / tuberculosis.IMAGES, partial / tuberculosis.READINGS
        images.mkdir()
        readings.mkdir()
        for index, (number, label) in enumerate(numbered):
            stem = f"{chest_set.prefix}_{number:04d}_{label}"
            chest = draw_chest(stream, index, shape, tuberculosis=bool(label))
            black, white = people.uniform(0, 300), people.uniform(3500, 4095)
            twelve_bit = np.rint(black + chest.image * (white - black)).astype(np.uint16)
            Image.fromarray(twelve_bit).save(images / f"{stem}.png")
            (readings / f"{stem}.txt").write_text(f"{_montgomery_patient(people)}\n{_finding(chest, 'lobe')}\n")
            if masks:
                for folder, lung in (("leftMask", chest.left_lung), ("rightMask", chest.right_lung)):
                    (partial / tuberculosis.MASKS / folder).mkdir(parents=True, exist_ok=True)
                    mask = Image.fromarray(lung.astype(np.uint8) * 255, "L")
                    mask.save(partial / tuberculosis.MASKS / folder / f"{stem}.png")
    return tree


def _shenzhen_patient(rng: np.random.Generator) -> str:
    """Sex and age as Shenzhen writes them, irregularly: ``male 45yrs``, ``femal 32yrs``, ``female24yrs``, ..."""
    female = rng.random() < 0.35
    sex = ("femal" if rng.random() < 0.15 else "female") if female else "male"
    infant = rng.random()
    if infant < 0.03:
        age = f"{rng.integers(1, 24)}month"
    elif infant < 0.05:
        age = f"{rng.integers(2, 90)}days"
    else:
        age = f"{rng.integers(16, 80)}{'yr' if rng.random() < 0.1 else 'yrs'}"
    return f"{sex}{'' if rng.random() < 0.2 else ' '}{age}"


def _montgomery_patient(rng: np.random.Generator) -> str:
    """Sex and age as Montgomery writes them: ``Patient's Sex: F`` (sometimes ``O``), ``Patient's Age: 027Y``."""
    sex = "O" if rng.random() < 0.05 else "F" if rng.random() < 0.5 else "M"
    return f"Patient's Sex: {sex}\nPatient's Age: {rng.integers(3, 90):03d}Y"


def _finding(chest: ChestRadiograph, zone: str) -> str:
    """The radiologist's finding: ``normal``, or where the opacities are (``zone``: Shenzhen's field, a lobe)."""
    if not chest.opacities:
        return "normal"
    where = f"both upper {zone}s" if len(chest.opacities) == 2 else f"{chest.opacities[0]} upper {zone}"
    return f"PTB, infiltrates in the {where}" + (", with a cavity" if chest.cavity else "")
