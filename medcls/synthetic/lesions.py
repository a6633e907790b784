"""The lesions of diabetic retinopathy and macular edema, drawn onto a synthetic fundus.

Which lesions and how many follow from the grades as :mod:`medcls.synthetic.fundus` describes; the
red ones darken the fundus with the vessels, the pale ones (cotton-wool spots, hard exudates) are
composited over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

if TYPE_CHECKING:
    from medcls.synthetic.fundus import FundusGeometry, Vessel

LESION_COUNTS: dict[int, tuple[tuple[int, int], ...]] = {
    0: ((0, 0), (0, 0), (0, 0), (0, 0)),
    1: ((2, 5), (0, 0), (0, 0), (0, 0)),
    2: ((6, 14), (1, 4), (0, 0), (0, 0)),
    3: ((15, 30), (6, 14), (2, 5), (0, 0)),
    4: ((15, 30), (5, 12), (1, 4), (2, 4)),
}
"""DR grade -> inclusive (low, high) counts of microaneurysms, haemorrhages, cotton-wool spots and tufts of new
vessels, chosen inside Messidor's count rules so that its scale grades them alike."""
# Multipliers (out of 255) for what darkens the fundus, colours for what covers it.
_NEW_VESSEL = (135, 62, 78)
_MICROANEURYSM, _HAEMORRHAGE = (135, 48, 55), (150, 50, 55)
_EXUDATE, _COTTON_WOOL = (250, 228, 120), (242, 232, 212)


def draw_lesions(
    rng: np.random.Generator,
    g: FundusGeometry,
    shade: Image.Image,
    vessels: list[Vessel],
    dr: int,
    dme: int,
) -> tuple[FundusGeometry, list[tuple[tuple[int, int, int], Image.Image]]]:
    """Darken ``shade`` with the red lesions; return the geometry and the pale lesions' masks.

    Args:
        rng: The image's lesion stream.
        g: The image's anatomy.
        shade: The multipliers of the fundus, the vessels already in.
        vessels: The vessel tree, where new vessels may grow.
        dr: DR grade, 1 to 4.
        dme: DME grade, 0 to 2.

    Returns:
        The geometry with the lesions recorded, and ``(colour, mask)`` pairs to composite over the
        image, cotton-wool spots before exudates.
    """
    dd, radius = g.disc_diameter, g.fov_radius
    n_ma, n_h, n_cws, n_nv = (int(rng.integers(low, high + 1)) for low, high in LESION_COUNTS[dr])
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
        ok = (distances(points, g.fov_center) < 0.92 * g.fov_radius) & (
            distances(points, g.disc_center) > 2 * g.disc_radius
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
        return distances(points, g.macula_center) > 1.25 * dd

    clusters = []
    for cluster in range(int(rng.integers(1, 4))):
        near = dme == 2 and cluster == 0
        (centre,) = _places(rng, g, 1, g.macula_center, *((0.15 * dd, 0.75 * dd) if near else (1.5 * dd, 3.5 * dd)))
        spread = _places(rng, g, int(rng.integers(3, 12)), tuple(centre), 0.0, 0.4 * dd, None if near else outside)
        clusters += [centre[None], spread]
    return np.concatenate(clusters)


def _tuft_places(rng: np.random.Generator, g: FundusGeometry, vessels: list[Vessel], count: int) -> np.ndarray:
    """New vessels grow on the disc (NVD) or from a vessel elsewhere (NVE)."""
    if count == 0:
        return np.empty((0, 2))
    points = np.concatenate([p for p, _, _ in vessels])
    from_disc = distances(points, g.disc_center) / g.disc_diameter
    inside = distances(points, g.fov_center) < 0.85 * g.fov_radius
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


def distances(points: np.ndarray, to: tuple[float, float]) -> np.ndarray:
    """The distance of each of the ``(n, 2)`` ``points`` to the point ``to``."""
    return np.hypot(points[:, 0] - to[0], points[:, 1] - to[1])
