from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np
import pytest

from medcls.synthetic import FundusGeometry, draw_fundus, sample_labels

SIZE = (144, 96)


def pixels(seed: int, index: int, dr: int = 0, dme: int = 0, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.asarray(draw_fundus(seed, index, size, dr, dme)[0])


def messidor_grade(g: FundusGeometry) -> int:
    """Messidor's DR grade from lesion counts: microaneurysms, haemorrhages, new vessels."""
    ma, h, nv = g.microaneurysms, g.haemorrhages, g.neovascular_tufts
    if ma == 0 and h == 0:
        return 0
    if 0 < ma <= 5 and h == 0:
        return 1
    if (5 < ma < 15 or 0 < h < 5) and nv == 0:
        return 2
    return 3


def test_drawing_is_deterministic_per_seed_and_index():
    first, again = draw_fundus(3, 5, SIZE, 3, 2), draw_fundus(3, 5, SIZE, 3, 2)
    assert first[0].mode == "RGB" and first[0].size == SIZE
    assert np.array_equal(np.asarray(first[0]), np.asarray(again[0]))
    assert first[1] == again[1]
    assert not np.array_equal(pixels(3, 5, 3, 2), pixels(4, 5, 3, 2))
    assert not np.array_equal(pixels(3, 5, 3, 2), pixels(3, 6, 3, 2))


def test_grade_zero_draws_no_lesions_and_the_anatomy_does_not_depend_on_the_grade():
    for index in range(4):
        healthy_image, healthy = draw_fundus(1, index, SIZE, 0, 0)
        assert healthy.exudates == ()
        assert (healthy.microaneurysms, healthy.haemorrhages, healthy.cotton_wool_spots, healthy.neovascular_tufts) == (
            0,
            0,
            0,
            0,
        )
        for dr, dme in ((1, 0), (2, 1), (4, 2)):
            image, sick = draw_fundus(1, index, SIZE, dr, dme)
            anatomy = ("fov_center", "fov_radius", "disc_center", "disc_radius", "macula_center", "eye")
            assert all(getattr(sick, name) == getattr(healthy, name) for name in anatomy)
            assert not np.array_equal(np.asarray(image), np.asarray(healthy_image))


def test_lesions_follow_the_dr_and_dme_grading_rules():
    counts = Counter()
    for index, (dr, dme) in enumerate(sample_labels(11, 60)):
        g = draw_fundus(11, index, (128, 85), dr, dme)[1]
        counts[dr, dme] += 1
        # DME read back from where the exudates are: nearest one to the macula, in disc diameters.
        assert g.dme_grade() == dme
        if g.exudates:
            nearest = min(math.dist(e, g.macula_center) for e in g.exudates) / g.disc_diameter
            assert (nearest <= 1) == (dme == 2)
        # Which lesions, and how many, as the international scale and Messidor's count rule say.
        assert messidor_grade(g) == (0, 1, 2, 3, 3)[dr]
        assert (g.microaneurysms > 0) == (dr > 0)
        assert (g.haemorrhages > 0) == (dr >= 2)
        assert (g.cotton_wool_spots > 0) == (dr >= 3)
        assert (g.neovascular_tufts > 0) == (dr == 4)
    assert {dr for dr, _ in counts} == {0, 1, 2, 3, 4}
    assert {dme for _, dme in counts} == {0, 1, 2}


def test_exudates_lie_inside_the_field_of_view_and_off_the_disc():
    for index in range(6):
        g = draw_fundus(2, index, SIZE, 3, 1 + index % 2)[1]
        assert g.exudates
        for e in g.exudates:
            assert math.dist(e, g.fov_center) < g.fov_radius
            assert math.dist(e, g.disc_center) > g.disc_radius


def test_grade_arguments_are_checked():
    with pytest.raises(ValueError, match="DR grade 0"):
        draw_fundus(0, 0, SIZE, 0, 1)
    with pytest.raises(ValueError, match="out of range"):
        draw_fundus(0, 0, SIZE, 5, 0)


@pytest.mark.parametrize("size", [(144, 96), (96, 96), (1800, 1196)])
def test_field_of_view_is_a_clipped_circle_on_black(size):
    width, height = size
    image, g = draw_fundus(7, 2, size, 4, 2)
    array = np.asarray(image)
    y, x = np.mgrid[0:height, 0:width]
    distance = np.hypot(x + 0.5 - g.fov_center[0], y + 0.5 - g.fov_center[1])
    # Drawn big images are resized, which softens the edge by a pixel or two.
    margin = 1.5 if max(size) <= 1536 else 3.5
    assert (array[distance > g.fov_radius + margin] == 0).all()
    assert (array[distance < g.fov_radius - margin][:, 0] > 0).all()
    assert 2 * g.fov_radius >= min(size)  # the circle is clipped by the frame
    assert abs(g.fov_center[0] - width / 2) < 0.05 * width


def test_disc_and_macula_sit_on_a_horizontal_line_two_and_a_half_disc_diameters_apart():
    eyes = set()
    for index in range(12):
        g = draw_fundus(5, index, SIZE)[1]
        dx = g.macula_center[0] - g.disc_center[0]
        assert 2.2 < math.hypot(dx, g.macula_center[1] - g.disc_center[1]) / g.disc_diameter < 2.8
        assert abs(g.macula_center[1] - g.disc_center[1]) < 0.5 * g.disc_diameter
        assert (dx < 0) == (g.eye == "right")
        eyes.add(g.eye)
    assert eyes == {"left", "right"}


def test_disc_is_bright_and_macula_dark():
    image, g = draw_fundus(9, 1, (384, 255))
    grey = np.asarray(image.convert("L"), dtype=float)

    def mean_around(centre: tuple[float, float], radius: float) -> float:
        y, x = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
        return grey[np.hypot(x - centre[0], y - centre[1]) < radius].mean()

    fundus = mean_around(g.fov_center, 0.8 * g.fov_radius)
    assert mean_around(g.disc_center, 0.5 * g.disc_radius) > fundus + 30
    assert mean_around(g.macula_center, 0.3 * g.disc_radius) < fundus


def test_report_draw_time_at_512_px():
    draw_fundus(0, 0, (512, 340), 4, 2)
    start = time.perf_counter()
    for index in range(5):
        draw_fundus(0, index, (512, 340), index, min(index, 2))
    print(f"\ndraw_fundus 512x340: {(time.perf_counter() - start) / 5 * 1000:.1f} ms per image")
