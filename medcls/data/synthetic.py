"""Procedural fundus photographs graded for DR and DME, written in the IDRiD and Messidor layouts.

The demo data and the test fixture of every fundus code path: no download, deterministic per
``(seed, index)``, and graded by construction. The lesions drawn follow the grading rules of
``reference/datasets.md``: the DR grade decides which red lesions, cotton-wool spots and new
vessels appear and how many; the DME grade decides whether there are hard exudates (so mild DR
with DME shows microaneurysms and exudates) and where they lie relative to the macula. Sizes are
in disc diameters, so the lesions scale with the image and stay visible at training resolution.

The generator needs only numpy and Pillow: the drawing is Pillow's C code, numpy computes the smooth background at
low resolution, which keeps a 512 px image in tens of milliseconds.
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from medcls.data.idrid import IDRiDDataModule
from medcls.data.records import Record
from medcls.errors import ConfigError

IDRID_DR_FREQUENCIES = (134, 20, 136, 74, 49)
IDRID_DME_FREQUENCIES = (177, 41, 195)
# Messidor's R3 pools international grades 3 and 4; the split between them is made up.
MESSIDOR_DR_FREQUENCIES = (546, 153, 247, 127, 127)
MESSIDOR_DME_FREQUENCIES = (974, 75, 151)
MESSIDOR_BASES = tuple(f"Base{department}{part}" for department in (1, 2, 3) for part in (1, 2, 3, 4))
MESSIDOR_COLUMNS = ("Image name", "Ophthalmologic department", "Retinopathy grade", "Risk of macular edema ")
IDRID_COLUMNS = ("Image name", "Retinopathy grade", "Risk of macular edema ")

_DEPARTMENTS = {1: "LaTIM - CHU de BREST", 2: "CHU de St Etienne", 3: "Service Ophtalmologie Lariboisière"}
# International grade -> Messidor's 0-3 scale.
_MESSIDOR_GRADE = (0, 1, 2, 3, 3)
# Random streams, kept apart so that, e.g., the anatomy of an image does not depend on its grade.
_LABELS, _ANATOMY, _LESIONS, _SPLIT, _NAMES = 1, 2, 3, 4, 5
# Inclusive (low, high) counts of microaneurysms, haemorrhages, cotton-wool spots and neovascular
# tufts per DR grade, chosen inside Messidor's count rules so that its scale grades them alike.
_LESION_COUNTS = {
    0: ((0, 0), (0, 0), (0, 0), (0, 0)),
    1: ((2, 5), (0, 0), (0, 0), (0, 0)),
    2: ((6, 14), (1, 4), (0, 0), (0, 0)),
    3: ((15, 30), (6, 14), (2, 5), (0, 0)),
    4: ((15, 30), (5, 12), (1, 4), (2, 4)),
}
# Multipliers (out of 255) for what darkens the fundus, colours for what covers it.
_VEIN, _ARTERY, _NEW_VESSEL = (150, 80, 95), (185, 118, 115), (135, 62, 78)
_MICROANEURYSM, _HAEMORRHAGE = (135, 48, 55), (150, 50, 55)
_EXUDATE, _COTTON_WOOL = (250, 228, 120), (242, 232, 212)
# Wider images are drawn at this width and upsampled.
_MAX_DRAW_WIDTH = 1536


@dataclass(frozen=True)
class FundusGeometry:
    """Where things are in one synthetic fundus image, in pixels (x to the right, y down).

    Attributes:
        fov_center: Centre of the circular field of view.
        fov_radius: Its radius; the circle is a little taller than the image, which clips it.
        disc_center: Centre of the optic disc.
        disc_radius: Half the disc's (horizontal) diameter, the unit of the DME rule.
        macula_center: Centre of the macula (the fovea).
        eye: ``"right"`` puts the disc on the image's right, as in a photograph of a right eye.
        exudates: Centres of the hard exudates drawn.
        microaneurysms: How many microaneurysms were drawn.
        haemorrhages: How many haemorrhages were drawn.
        cotton_wool_spots: How many cotton-wool spots were drawn.
        neovascular_tufts: How many tufts of new vessels were drawn.
    """

    fov_center: tuple[float, float]
    fov_radius: float
    disc_center: tuple[float, float]
    disc_radius: float
    macula_center: tuple[float, float]
    eye: Literal["left", "right"]
    exudates: tuple[tuple[float, float], ...] = ()
    microaneurysms: int = 0
    haemorrhages: int = 0
    cotton_wool_spots: int = 0
    neovascular_tufts: int = 0

    @property
    def disc_diameter(self) -> float:
        """The disc diameter in pixels."""
        return 2.0 * self.disc_radius

    def dme_grade(self) -> int:
        """Grade DME from the exudates drawn, by the IDRiD/Messidor rule.

        Returns:
            0 without hard exudates; 2 if the nearest lies within one disc diameter of the macula
            centre; 1 otherwise.
        """
        if not self.exudates:
            return 0
        nearest = min(math.dist(centre, self.macula_center) for centre in self.exudates)
        return 2 if nearest <= self.disc_diameter else 1


def draw_fundus(
    seed: int, index: int, size: tuple[int, int] = (512, 340), dr: int = 0, dme: int = 0
) -> tuple[Image.Image, FundusGeometry]:
    """Draw one synthetic fundus photograph with the lesions of the given grades.

    The anatomy (field of view, illumination, disc, vessels, macula) depends on ``(seed, index)``
    only, so the same pair drawn at another grade shows the same eye with other lesions. Images
    wider than 1536 px are drawn at that width and upsampled.

    Args:
        seed: Non-negative seed of the data set.
        index: Non-negative index of the image within it.
        size: ``(width, height)`` in pixels.
        dr: DR grade on the international scale, 0 (none) to 4 (proliferative).
        dme: DME grade, 0 (no hard exudates) to 2 (exudates within one disc diameter of the macula).

    Returns:
        The RGB image and where its parts and lesions were drawn.

    Raises:
        ValueError: If a grade is out of range, or DME is graded in an eye without DR lesions.
    """
    if dr not in _LESION_COUNTS or dme not in (0, 1, 2):
        raise ValueError(f"grades out of range: dr={dr} (0-4), dme={dme} (0-2)")
    if dr == 0 and dme > 0:
        raise ValueError("DR grade 0 has no lesions at all, so its DME grade must be 0")
    # Big images are drawn at a capped size and upsampled: a fundus photograph is no sharper, and
    # the full-size blurs would dominate the time.
    scale = min(1.0, _MAX_DRAW_WIDTH / size[0])
    canvas = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    anatomy = _rng(seed, _ANATOMY, index)
    geometry = _anatomy(anatomy, *canvas)
    image = _background(anatomy, geometry, canvas)
    _draw_disc(image, anatomy, geometry)
    shade = Image.new("RGB", canvas, "white")
    vessels = _vessel_tree(anatomy, geometry)
    draw = ImageDraw.Draw(shade)
    for points, widths, colour in vessels:
        _polyline(draw, points, widths, colour)
    bright = []
    if dr > 0:
        geometry, bright = _draw_lesions(_rng(seed, _LESIONS, index), geometry, shade, vessels, dr, dme)
    image = ImageChops.multiply(image, shade.filter(ImageFilter.GaussianBlur(max(0.5, 0.01 * geometry.disc_diameter))))
    for colour, mask in bright:
        image = Image.composite(Image.new("RGB", canvas, colour), image, mask)
    image = _field_of_view(image, geometry)
    if canvas == tuple(size):
        return image, geometry
    return image.resize(size, Image.Resampling.BICUBIC), _rescale(geometry, size[0] / canvas[0], size[1] / canvas[1])


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
    rng = _rng(seed, _LABELS)
    dr = rng.permutation(_quota(count, p_dr))
    dme = np.zeros(count, dtype=int)
    sick = np.flatnonzero(dr > 0)
    dme[sick] = rng.permutation(_quota(len(sick), p_dme))
    return [(int(a), int(b)) for a, b in zip(dr, dme, strict=True)]


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

    The layout, the names and the label files are those of the real distribution (see
    ``reference/datasets.md``): numbering restarts per split, the last header has a trailing
    space, rows carry trailing empty columns and the file ends with a blank row. The tree is built
    in a hidden sibling folder and renamed into place when complete, so an existing
    ``B. Disease Grading`` is complete and is left as it is.

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
    splits = (
        ("a. Training Set", "a. IDRiD_Disease Grading_Training Labels.csv", train),
        ("b. Testing Set", "b. IDRiD_Disease Grading_Testing Labels.csv", test),
    )

    def build(tree: Path) -> None:
        for split, (folder, label_file, count) in enumerate(splits):
            stream = _derived_seed(seed, _SPLIT, split)
            images = tree / "1. Original Images" / folder
            images.mkdir(parents=True)
            rows = []
            for index, (dr, dme) in enumerate(sample_labels(stream, count)):
                name = f"IDRiD_{index + 1:03d}"
                draw_fundus(stream, index, size, dr, dme)[0].save(images / f"{name}.jpg", quality=quality)
                rows.append((name, dr, dme))
            truths = tree / "2. Groundtruths"
            truths.mkdir(exist_ok=True)
            with open(truths / label_file, "w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file)
                writer.writerow([*IDRID_COLUMNS, "", "", ""])
                writer.writerows([*row, "", "", ""] for row in rows)
                writer.writerow([""] * (len(IDRID_COLUMNS) + 3))

    return _build_atomically(Path(root) / "B. Disease Grading", build)


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
    write_sheet = _sheet_writer(fmt)

    def build(tree: Path) -> None:
        stream = _derived_seed(seed, _SPLIT, 2)
        labels = sample_labels(
            stream,
            len(MESSIDOR_BASES) * per_base,
            dr_frequencies=MESSIDOR_DR_FREQUENCIES,
            dme_frequencies=MESSIDOR_DME_FREQUENCIES,
        )
        names = _rng(stream, _NAMES)
        serials = names.choice(np.arange(10000, 100000), size=len(labels), replace=False)
        days = names.integers(0, 400, size=len(labels))
        for base_index, base in enumerate(MESSIDOR_BASES):
            department = int(base[4])
            (tree / base).mkdir()
            rows = []
            for index in range(base_index * per_base, (base_index + 1) * per_base):
                dr, dme = labels[index]
                date = datetime.date(2005, 10, 17) + datetime.timedelta(days=int(days[index]))
                name = f"{date:%Y%m%d}_{serials[index]:05d}_{department:02d}00_PP.tif"
                draw_fundus(stream, index, size, dr, dme)[0].save(tree / base / name, format="TIFF")
                rows.append((name, _DEPARTMENTS[department], _MESSIDOR_GRADE[dr], dme))
            write_sheet(tree / f"Annotation_{base}.{fmt}", [MESSIDOR_COLUMNS, *sorted(rows)])

    return _build_atomically(Path(root) / "Messidor", build)


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(keys)))


def _derived_seed(*keys: int) -> int:
    return int(_rng(*keys).integers(2**62))


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


def _anatomy(rng: np.random.Generator, width: int, height: int) -> FundusGeometry:
    # The circle is a bit taller than the image, as the camera's mask clips it.
    radius = min(width, height) * rng.uniform(0.50, 0.54)
    cx = width / 2 + rng.uniform(-0.015, 0.015) * width
    cy = height / 2 + rng.uniform(-0.01, 0.01) * height
    disc_radius = radius * rng.uniform(0.11, 0.13)
    eye = "right" if rng.random() < 0.5 else "left"
    side = 1 if eye == "right" else -1
    spacing = 2.5 * 2 * disc_radius * rng.uniform(0.92, 1.08)
    mid_x = cx + rng.uniform(-0.05, 0.05) * radius
    disc_y = cy + rng.uniform(-0.04, 0.04) * radius
    return FundusGeometry(
        fov_center=(cx, cy),
        fov_radius=radius,
        disc_center=(mid_x + side * spacing / 2, disc_y),
        disc_radius=disc_radius,
        # The fovea sits a little below the disc.
        macula_center=(mid_x - side * spacing / 2, disc_y + rng.uniform(0.0, 0.3) * disc_radius),
        eye=eye,
    )


def _background(rng: np.random.Generator, g: FundusGeometry, size: tuple[int, int]) -> Image.Image:
    """The fundus without vessels and lesions: smooth, so computed small and upsampled."""
    width, height = size
    scale = min(1.0, 192 / width)
    small_w, small_h = max(8, round(width * scale)), max(8, round(height * scale))
    y, x = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    x = (x + 0.5) * width / small_w
    y = (y + 0.5) * height / small_h
    u, v = (x - g.fov_center[0]) / g.fov_radius, (y - g.fov_center[1]) / g.fov_radius
    d2 = u * u + v * v
    gradient = rng.uniform(-0.1, 0.1, 2)
    illumination = 1.05 - rng.uniform(0.35, 0.6) * d2 * np.sqrt(np.sqrt(d2)) + gradient[0] * u + gradient[1] * v
    for _ in range(3):
        bx, by = rng.uniform(-0.7, 0.7, 2)
        illumination += rng.uniform(-0.08, 0.08) * np.exp(-((u - bx) ** 2 + (v - by) ** 2) / rng.uniform(0.1, 0.5))
    dd = g.disc_diameter
    to_disc = ((x - g.disc_center[0]) ** 2 + (y - g.disc_center[1]) ** 2) / dd**2
    to_macula = ((x - g.macula_center[0]) ** 2 + (y - g.macula_center[1]) ** 2) / dd**2
    illumination += 0.15 * np.exp(-to_disc / 1.2)
    illumination *= 1 - rng.uniform(0.25, 0.4) * np.exp(-to_macula / 0.4) - 0.1 * np.exp(-to_macula / 0.03)
    illumination *= 1 + 0.03 * rng.standard_normal(illumination.shape, dtype=np.float32)
    red = rng.uniform(190, 225)
    colour = np.array([red, red * rng.uniform(0.36, 0.5), red * rng.uniform(0.1, 0.22)]) * rng.normal(1, 0.06, 3)
    # The floor keeps the whole field of view visibly lit, however the random terms add up.
    rgb = np.clip(np.maximum(illumination, 0.3)[..., None] * colour, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC)


def _draw_disc(image: Image.Image, rng: np.random.Generator, g: FundusGeometry) -> None:
    """Paint the optic disc and its paler cup; only the patch around the disc is touched."""
    r = g.disc_radius
    box = tuple(round(c) for c in (g.disc_center[0] - 2 * r, g.disc_center[1] - 2 * r))
    box = (*box, box[0] + round(4 * r) + 1, box[1] + round(4 * r) + 1)
    patch = image.crop(box)
    cx, cy = g.disc_center[0] - box[0], g.disc_center[1] - box[1]
    tall = r * rng.uniform(1.02, 1.12)
    toward_macula = math.copysign(0.2 * r, g.macula_center[0] - g.disc_center[0])
    cup = r * rng.uniform(0.35, 0.55)
    for (x, y, rx, ry), blur, colour, alpha in (
        ((cx, cy, r, tall), 0.12, (250, 200, 135), 230),
        ((cx + toward_macula, cy, cup, cup * 1.1), 0.25, (255, 238, 200), 210),
    ):
        mask = Image.new("L", patch.size, 0)
        ImageDraw.Draw(mask).ellipse((x - rx, y - ry, x + rx, y + ry), fill=alpha)
        mask = mask.filter(ImageFilter.GaussianBlur(max(0.5, blur * r)))
        patch = Image.composite(Image.new("RGB", patch.size, colour), patch, mask)
    image.paste(patch, box[:2])


_Vessel = tuple[np.ndarray, np.ndarray, tuple[int, int, int]]


def _vessel_tree(rng: np.random.Generator, g: FundusGeometry) -> list[_Vessel]:
    """Random-walk vessels leaving the disc, branching and thinning as they go.

    Returns:
        One ``(points, widths, colour)`` per branch, points as an ``(n, 2)`` array.
    """
    dd = g.disc_diameter
    step, min_width = 0.25 * dd, 0.02 * dd
    steps = np.arange(int(2 * g.fov_radius / step) + 2)
    toward = 1 if g.macula_center[0] > g.disc_center[0] else -1
    # (angle, width, colour, depth, angle to bend towards or None); the start point comes below.
    stack: list = []
    for colour, width, spread in ((_VEIN, 0.1 * dd, 0.45), (_ARTERY, 0.08 * dd, 0.25)):
        for up in (-1, 1):
            # The temporal arcades leave the disc vertically, then turn towards the macula's side,
            # passing above and below it.
            bend = rng.uniform(0.2, 0.45)
            arcade = up * (bend if toward > 0 else math.pi - bend)
            stack.append((up * (math.pi / 2 - toward * spread), width, colour, 0, arcade))
            stack.append((up * (math.pi / 2 + toward * rng.uniform(0.3, 0.9)), 0.75 * width, colour, 0, None))
    stack += [(a, 0.05 * dd, _ARTERY, 1, None) for a in rng.uniform(-math.pi, math.pi, rng.integers(2, 5))]
    # Vessels emerge around the rim of the cup rather than all from one point.
    stack = [
        (np.add(g.disc_center, 0.3 * g.disc_radius * np.array([math.cos(a), math.sin(a)])), a, *rest)
        for a, *rest in stack
    ]
    branches = []
    while stack:
        start, angle, width, colour, depth, target = stack.pop()
        angles = angle + np.cumsum(rng.normal(0, 0.08, len(steps)))
        if target is not None:
            angles += _wrap(target - angle) * (1 - 0.88 ** (steps + 1))
        points = start + np.cumsum(step * np.stack([np.cos(angles), np.sin(angles)], axis=1), axis=0)
        forks = (rng.random(len(steps)) < 0.1) & (depth < 3)
        # A vessel thins as it goes, and more at each fork.
        widths = width * 0.985**steps * 0.85 ** np.cumsum(forks)
        ends = (
            (_distance(points, g.fov_center) > g.fov_radius)
            | (_distance(points, g.macula_center) < 0.35 * dd)  # the fovea has no vessels
            | (widths < min_width)
        )
        stop = int(np.argmax(ends)) if ends.any() else len(steps) - 1
        at = np.flatnonzero(forks[:stop])
        turns = rng.uniform(0.4, 1.0, len(at)) * rng.choice((-1, 1), len(at))
        thinning = rng.uniform(0.65, 0.9, len(at))
        stack += [
            (points[i], angles[i] + t, widths[i] * k, colour, depth + 1, None)
            for i, t, k in zip(at, turns, thinning, strict=True)
        ]
        branches.append((np.vstack([start, points[: stop + 1]]), np.r_[width, widths[: stop + 1]], colour))
    return branches


def _polyline(draw: ImageDraw.ImageDraw, points: np.ndarray, widths: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Draw a tapering line: one polyline per run of equal whole-pixel width."""
    pixels = np.maximum(1, np.rint(widths)).astype(int)
    cuts = [0, *(np.flatnonzero(np.diff(pixels)) + 1), len(points)]
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        # Each run starts at the previous run's last point, so that they join.
        run = points[max(start - 1, 0) : stop]
        if len(run) > 1:
            draw.line(run.ravel().tolist(), fill=colour, width=int(pixels[start]), joint="curve")


def _draw_lesions(
    rng: np.random.Generator,
    g: FundusGeometry,
    shade: Image.Image,
    vessels: list[_Vessel],
    dr: int,
    dme: int,
) -> tuple[FundusGeometry, list[tuple[tuple[int, int, int], Image.Image]]]:
    """Darken ``shade`` with the red lesions; return the geometry and the pale lesions' masks.

    Returns:
        The geometry with the lesions recorded, and ``(colour, mask)`` pairs to composite over the
        image, cotton-wool spots before exudates.
    """
    dd, radius = g.disc_diameter, g.fov_radius
    n_ma, n_h, n_cws, n_nv = (int(rng.integers(low, high + 1)) for low, high in _LESION_COUNTS[dr])
    draw = ImageDraw.Draw(shade)
    for x, y in _places(rng, g, n_ma, g.macula_center, 0.0, 0.6 * radius):
        r = max(0.5, rng.uniform(0.045, 0.075) * dd)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_MICROANEURYSM)
    largest = 0.3 if dr == 2 else 0.45
    for x, y in _places(rng, g, n_h, g.macula_center, 0.0, 0.8 * radius):
        draw.polygon(_blob(rng, x, y, rng.uniform(0.12, largest) * dd), fill=_HAEMORRHAGE)
    for centre in _tuft_places(rng, g, vessels, n_nv):
        _draw_tuft(draw, rng, centre, dd)
    bright = []
    if n_cws:
        # Cotton-wool spots are fuzzy: drawn small, blurred there and upsampled.
        f = min(1.0, 16 / dd)
        mask = Image.new("L", (max(1, round(shade.width * f)), max(1, round(shade.height * f))), 0)
        pen = ImageDraw.Draw(mask)
        for x, y in _places(rng, g, n_cws, g.disc_center, dd, 3.5 * dd) * f:
            pen.polygon(_blob(rng, x, y, rng.uniform(0.25, 0.45) * dd * f), fill=int(rng.integers(150, 210)))
        bright.append((_COTTON_WOOL, mask.filter(ImageFilter.GaussianBlur(0.12 * dd * f)).resize(shade.size)))
    exudates = _exudate_centres(rng, g, dme)
    if len(exudates):
        mask = Image.new("L", shade.size, 0)
        pen = ImageDraw.Draw(mask)
        for x, y in exudates:
            pen.polygon(_blob(rng, x, y, max(0.7, rng.uniform(0.04, 0.1) * dd), 12), fill=int(rng.integers(190, 256)))
        bright.append((_EXUDATE, mask.filter(ImageFilter.GaussianBlur(max(0.3, 0.01 * dd)))))
    return (
        replace(
            g,
            exudates=tuple((float(x), float(y)) for x, y in exudates),
            microaneurysms=n_ma,
            haemorrhages=n_h,
            cotton_wool_spots=n_cws,
            neovascular_tufts=n_nv,
        ),
        bright,
    )


def _places(
    rng: np.random.Generator,
    g: FundusGeometry,
    count: int,
    around: tuple[float, float],
    r_min: float,
    r_max: float,
    keep: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``count`` points spread evenly over a ring around ``around``, well inside the field and off the disc."""
    found = np.empty((0, 2))
    for _ in range(100):
        if len(found) >= count:
            return found[:count]
        tries = 4 * (count - len(found)) + 8
        distance = np.sqrt(rng.uniform(r_min**2, r_max**2, tries))
        angle = rng.uniform(0, 2 * math.pi, tries)
        points = np.asarray(around) + distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        ok = (_distance(points, g.fov_center) < 0.92 * g.fov_radius) & (
            _distance(points, g.disc_center) > 2 * g.disc_radius
        )
        if keep is not None:
            ok &= keep(points)
        found = np.vstack([found, points[ok]])
    raise RuntimeError(f"found no room for {count} lesions around {around} in {g}")


def _exudate_centres(rng: np.random.Generator, g: FundusGeometry, dme: int) -> np.ndarray:
    """Clusters of hard exudates placed so that the DME rule gives ``dme``, with a margin."""
    if dme == 0:
        return np.empty((0, 2))
    dd = g.disc_diameter

    def outside(points: np.ndarray) -> np.ndarray:
        return _distance(points, g.macula_center) > 1.25 * dd

    clusters = []
    for cluster in range(int(rng.integers(1, 4))):
        near = dme == 2 and cluster == 0
        (centre,) = _places(rng, g, 1, g.macula_center, *((0.15 * dd, 0.75 * dd) if near else (1.5 * dd, 3.5 * dd)))
        spread = _places(rng, g, int(rng.integers(3, 12)), tuple(centre), 0.0, 0.4 * dd, None if near else outside)
        clusters += [centre[None], spread]
    return np.concatenate(clusters)


def _tuft_places(rng: np.random.Generator, g: FundusGeometry, vessels: list[_Vessel], count: int) -> np.ndarray:
    """New vessels grow on the disc (NVD) or from a vessel elsewhere (NVE)."""
    if count == 0:
        return np.empty((0, 2))
    points = np.concatenate([p for p, _, _ in vessels])
    from_disc = _distance(points, g.disc_center) / g.disc_diameter
    inside = _distance(points, g.fov_center) < 0.85 * g.fov_radius
    candidates = points[(from_disc > 1.5) & (from_disc < 4.0) & inside]
    places = candidates[rng.choice(len(candidates), count, replace=len(candidates) < count)]
    if rng.random() < 0.5:
        places[0] = g.disc_center
    return places


def _draw_tuft(draw: ImageDraw.ImageDraw, rng: np.random.Generator, centre: np.ndarray, dd: float) -> None:
    """A tangle of fine, tortuous new vessels in a patch about one disc diameter wide."""
    radius = rng.uniform(0.45, 0.7) * dd
    width = max(1, round(0.035 * dd))
    for _ in range(int(rng.integers(18, 28))):
        steps = int(rng.integers(8, 16))
        angles = rng.uniform(-math.pi, math.pi) + np.cumsum(rng.normal(0, 0.7, steps))
        start = rng.uniform(-0.6, 0.6, 2) * radius
        moves = 0.1 * dd * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        offsets = np.vstack([start, start + np.cumsum(moves, axis=0)])
        # A vessel that wanders off is shrunk into the patch, which keeps the tangle dense.
        offsets *= radius / max(radius, np.linalg.norm(offsets, axis=1).max())
        draw.line((centre + offsets).ravel().tolist(), fill=_NEW_VESSEL, width=width, joint="curve")


def _blob(rng: np.random.Generator, x: float, y: float, radius: float, corners: int = 24) -> list[float]:
    """A smooth, irregular, elongated and tilted polygon about ``radius`` across, as flat coordinates."""
    angles = np.linspace(0, 2 * math.pi, corners, endpoint=False)
    # A few low harmonics make the outline lumpy but smooth.
    harmonics = np.arange(2, 5)[:, None]
    lumps = rng.uniform(0, 0.12, (3, 1)) * np.cos(harmonics * angles + rng.uniform(0, 2 * math.pi, (3, 1)))
    radii = radius * (1 + lumps.sum(axis=0))
    stretch, tilt = math.sqrt(rng.uniform(1.0, 1.8)), rng.uniform(0, math.pi)
    u, v = radii * np.cos(angles) * stretch, radii * np.sin(angles) / stretch
    outline = np.stack([x + u * math.cos(tilt) - v * math.sin(tilt), y + u * math.sin(tilt) + v * math.cos(tilt)], 1)
    return outline.ravel().tolist()


def _field_of_view(image: Image.Image, g: FundusGeometry) -> Image.Image:
    """Black out everything outside the circular field of view."""
    (cx, cy), r = g.fov_center, g.fov_radius
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    return Image.composite(image, Image.new("RGB", image.size), mask)


def _rescale(g: FundusGeometry, fx: float, fy: float) -> FundusGeometry:
    """The geometry of an image drawn at one size and resized by ``fx``, ``fy``."""

    def point(p: tuple[float, float]) -> tuple[float, float]:
        return (p[0] * fx, p[1] * fy)

    return replace(
        g,
        fov_center=point(g.fov_center),
        fov_radius=g.fov_radius * fx,
        disc_center=point(g.disc_center),
        disc_radius=g.disc_radius * fx,
        macula_center=point(g.macula_center),
        exudates=tuple(point(p) for p in g.exudates),
    )


def _distance(points: np.ndarray, to: tuple[float, float]) -> np.ndarray:
    return np.hypot(points[:, 0] - to[0], points[:, 1] - to[1])


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _sheet_writer(fmt: str) -> Callable[[Path, list[Sequence]], None]:
    """The function writing a Messidor sheet in ``fmt``; fails now if its library is missing."""
    if fmt == "csv":

        def write_csv(path: Path, rows: list[Sequence]) -> None:
            with open(path, "w", newline="", encoding="utf-8") as file:
                csv.writer(file).writerows(rows)

        return write_csv
    if fmt == "xls":
        try:
            import xlwt
        except ImportError as error:
            raise ImportError(
                "writing Excel 97 (.xls) sheets needs xlwt: pip install xlwt (or use fmt='csv')"
            ) from error

        def write_xls(path: Path, rows: list[Sequence]) -> None:
            book = xlwt.Workbook(encoding="utf-8")
            sheet = book.add_sheet("Feuil1")
            for i, row in enumerate(rows):
                for j, value in enumerate(row):
                    sheet.write(i, j, value)
            book.save(str(path))

        return write_xls
    if fmt == "xlsx":
        import openpyxl  # here, not at the top: it takes 0.2 s to import, for .xlsx sheets only

        def write_xlsx(path: Path, rows: list[Sequence]) -> None:
            book = openpyxl.Workbook()
            book.active.title = "Feuil1"
            for row in rows:
                book.active.append(list(row))
            book.save(path)

        return write_xlsx
    raise ValueError(f"unknown sheet format {fmt!r}: use 'xls', 'xlsx' or 'csv'")


def _build_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build`` on a fresh hidden sibling of ``target``, then rename it into place.

    Only that rename creates ``target``, so an existing one is complete (or is not ours, e.g. real
    data) and is left alone. Two processes racing both build; the first rename wins.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex}")
    partial.mkdir()
    try:
        build(partial)
        try:
            os.replace(partial, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


class SyntheticFundusDataModule(IDRiDDataModule):
    """Synthetic fundus photographs graded for DR (0-4) and DME (0-2): the built-in demo data.

    On first use it writes an IDRiD-layout tree (deterministic, IDRiD-like class imbalance) under
    ``root`` and from then on reads it through the real IDRiD reader, cache and splits, exactly as
    :class:`~medcls.data.idrid.IDRiDDataModule` reads the real data set.

    Args:
        root: Folder of the generated trees; each setting of the generator gets its own sub-folder.
        train: Number of training images (the validation split is carved from them), at least 2.
        test: Number of test images, at least 1.
        width: Image width in pixels, at least 16; the height keeps IDRiD's 4288 x 2848 aspect.
        seed: Seed of the generator.
        val_size: Fraction (or number) of the training images held out for validation.
        split_seed: Seed of the validation split.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.base.FundusDataModule`.
    """

    def __init__(
        self,
        root: str | Path = ".cache/medcls/synthetic",
        train: int = 400,
        test: int = 100,
        width: int = 512,
        seed: int = 0,
        val_size: int | float = 0.2,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        for option, value, least in (("--data.train", train, 2), ("--data.test", test, 1), ("--data.width", width, 16)):
            if value < least:
                raise ConfigError(f"{option} is {value}; the synthetic data set needs at least {least}.")
        if seed < 0:
            raise ConfigError(f"--data.seed is {seed}; the generator's seed must be 0 or more.")
        tree = Path(root) / f"idrid-train{train}-test{test}-{width}px-seed{seed}"
        super().__init__(tree, val_size=val_size, split_seed=split_seed, **kwargs)
        self.generator = {"train": train, "test": test, "size": (width, round(width * 2848 / 4288)), "seed": seed}

    def split_records(self) -> dict[str, list[Record]]:
        """Generate the tree if it is not there yet, then read and split it like IDRiD."""
        write_idrid_tree(self.root, **self.generator)
        return super().split_records()
