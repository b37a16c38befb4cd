"""Triangles of stars are recognised whatever the camera does to them — rotate, shift, rescale,
mirror — and pair their vertices; flat or oversized triangles are left out."""

from __future__ import annotations

import numpy as np
import pytest

from runner.solve.triangles import all_triangles, similar


def _camera(xy: np.ndarray, angle: float, scale: float, shift: tuple[float, float],
            mirror: bool) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = xy @ np.array([[c, s], [-s, c]]) * scale + np.array(shift)
    if mirror:
        out[:, 1] = -out[:, 1]
    return out


@pytest.mark.parametrize("mirror", [False, True])
def test_a_triangle_seen_through_another_camera_is_found_with_its_vertices_paired(
    mirror: bool
) -> None:
    rng = np.random.default_rng(4)
    sky = rng.uniform(0, 2000, (30, 2))  # arcsec
    table = all_triangles(sky, min_longest=300, max_side=2500, min_height=50)
    image = _camera(sky[[3, 17, 25]], 0.7, 1 / 1.94, (400.0, 300.0), mirror)  # pixels
    det = all_triangles(image, 100, 2000, 10)
    assert len(det) == 1
    t = 0
    hits = similar(table, float(det.ratio_mid[t]), float(det.ratio_short[t]), 0.002,
                   float(det.longest[t]) * 1.6, float(det.longest[t]) * 2.3)
    assert hits.size >= 1
    truth = {0: 3, 1: 17, 2: 25}
    found = [h for h in hits if [int(v) for v in table.vertices[h]]
             == [truth[int(v)] for v in det.vertices[t]]]
    assert len(found) == 1
    # the same turn (clockwise or not) in both unless the image is mirrored
    assert bool(table.orientation[found[0]] == det.orientation[t]) is (not mirror)


def test_the_scale_window_rejects_a_triangle_of_the_right_shape_but_the_wrong_size() -> None:
    sky = np.array([[0.0, 0.0], [1000.0, 0.0], [300.0, 600.0]])
    table = all_triangles(sky, 100, 2000, 10)
    image = sky / 1.94
    det = all_triangles(image, 50, 2000, 5)
    kw = {"ratio_mid": float(det.ratio_mid[0]), "ratio_short": float(det.ratio_short[0]),
          "tolerance": 0.002}
    longest = float(det.longest[0])
    assert similar(table, **kw, longest_lo=longest * 1.8, longest_hi=longest * 2.1).size == 1
    assert similar(table, **kw, longest_lo=longest * 2.5, longest_hi=longest * 3.0).size == 0


def test_flat_and_oversized_triangles_are_left_out() -> None:
    flat = np.array([[0.0, 0.0], [1000.0, 0.0], [500.0, 3.0]])
    assert len(all_triangles(flat, 100, 2000, min_height=20)) == 0
    wide = np.array([[0.0, 0.0], [3000.0, 0.0], [1500.0, 900.0]])
    assert len(all_triangles(wide, 100, max_side=2000, min_height=20)) == 0
    assert len(all_triangles(wide, 100, max_side=4000, min_height=20)) == 1
