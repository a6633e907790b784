"""Procedural fundus photographs, graded for DR and DME by construction.

The demo data and the test fixture of every fundus code path: no download, deterministic per
``(seed, index)``. The lesions follow the grading rules of IDRiD and Messidor. DR, on the
international scale: mild (1) shows microaneurysms only, moderate (2) adds haemorrhages, severe (3)
more of both and cotton-wool spots, proliferative (4) new vessels; their counts also keep to
Messidor's rule (0: no microaneurysm or haemorrhage; 1: at most 5 microaneurysms, no haemorrhage;
2: 6-14 microaneurysms or 1-4 haemorrhages, no new vessels; 3: more, or new vessels), so its 0-3
scale grades them alike. DME, the risk of macular edema of both: 0 without hard exudates, 1 if
they all lie farther than one disc diameter from the centre of the macula, 2 if one lies within
it; so mild DR with DME shows microaneurysms and exudates. Sizes are in disc diameters, so the
lesions scale with the image and stay visible at training resolution.

The generator needs only numpy and Pillow: the drawing is Pillow's C code, numpy computes the smooth
background at low resolution, which keeps a 512 px image in tens of milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from medcls.synthetic import streams
from medcls.synthetic.lesions import LESION_COUNTS, distances, draw_lesions

# Multipliers (out of 255) of the fundus under the vessels.
_VEIN, _ARTERY = (150, 80, 95), (185, 118, 115)
# Wider images are drawn at this width and upsampled.
_MAX_DRAW_WIDTH = 1536

Vessel = tuple[np.ndarray, np.ndarray, tuple[int, int, int]]
"""One branch of the vessel tree: its points as an ``(n, 2)`` array, its width at each, its colour."""


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
    if dr not in LESION_COUNTS or dme not in (0, 1, 2):
        raise ValueError(f"grades out of range: dr={dr} (0-4), dme={dme} (0-2)")
    if dr == 0 and dme > 0:
        raise ValueError("DR grade 0 has no lesions at all, so its DME grade must be 0")
    # Big images are drawn at a capped size and upsampled: a fundus photograph is no sharper, and
    # the full-size blurs would dominate the time.
    scale = min(1.0, _MAX_DRAW_WIDTH / size[0])
    canvas = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    anatomy = streams.rng(seed, streams.ANATOMY, index)
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
        geometry, bright = draw_lesions(streams.rng(seed, streams.LESIONS, index), geometry, shade, vessels, dr, dme)
    image = ImageChops.multiply(image, shade.filter(ImageFilter.GaussianBlur(max(0.5, 0.01 * geometry.disc_diameter))))
    for colour, mask in bright:
        image = Image.composite(Image.new("RGB", canvas, colour), image, mask)
    image = _field_of_view(image, geometry)
    if canvas == tuple(size):
        return image, geometry
    return image.resize(size, Image.Resampling.BICUBIC), _rescale(geometry, size[0] / canvas[0], size[1] / canvas[1])


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


def _vessel_tree(rng: np.random.Generator, g: FundusGeometry) -> list[Vessel]:
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
            (distances(points, g.fov_center) > g.fov_radius)
            | (distances(points, g.macula_center) < 0.35 * dd)  # the fovea has no vessels
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


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi
