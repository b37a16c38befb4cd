"""Registration: frames land on the reference to a tenth of a pixel, or are refused."""

from __future__ import annotations

import numpy as np
import pytest

from runner.errors import RegistrationError
from runner.stacking.debayer import debayer, luminance
from runner.stacking.register import Registration, find_transform, registration_stars
from runner.stacking.synthetic import Sensor, StarField, Transform

SHAPE = (512, 512)


def _alignment_error(reg: Registration, truth: Transform, shape: tuple[int, int]) -> float:
    """RMS distance, over a grid covering the frame, between where the found transform and
    the true one send the same frame pixel in the reference."""
    h, w = shape
    gx, gy = np.meshgrid(np.linspace(0, w - 1, 12), np.linspace(0, h - 1, 12))
    ref_pts = np.column_stack([gx.ravel(), gy.ravel()])
    frame_pts = truth.apply(ref_pts, shape)  # where each reference point appears in the frame
    back = reg.apply(frame_pts)
    return float(np.sqrt(np.mean(np.sum((back - ref_pts) ** 2, axis=1))))


@pytest.fixture(scope="module")
def sky() -> tuple[Sensor, StarField]:
    return Sensor(shape=SHAPE), StarField.random(SHAPE, 220, seed=5)


@pytest.mark.parametrize(
    "truth",
    [
        Transform(dx=3.37, dy=-5.81),
        Transform(dx=-14.2, dy=9.6, rotation_deg=0.7),
        Transform(dx=21.5, dy=-17.25, rotation_deg=180.0),  # meridian flip
        Transform(dx=-2.6, dy=4.1, rotation_deg=179.3, scale=1.0),
        Transform(dx=6.4, dy=2.2, rotation_deg=33.0, scale=1.015),
        Transform(dx=0.5, dy=-0.5, rotation_deg=-90.0, scale=0.985),
    ],
    ids=["shift", "shift+rot", "flip180", "flip+drift", "rot33+scale", "rot-90+scale"],
)
def test_registration_error_is_below_a_tenth_of_a_pixel(
    sky: tuple[Sensor, StarField], truth: Transform
) -> None:
    sensor, stars = sky
    reference = sensor.light(stars, seed=1).astype(np.float32)
    frame = sensor.light(stars, transform=truth, seed=2).astype(np.float32)
    reg = find_transform(registration_stars(frame).xy, registration_stars(reference).xy)
    assert reg.matches >= 30
    assert _alignment_error(reg, truth, SHAPE) <= 0.1


def test_colour_frames_register_on_their_luminance() -> None:
    sensor = Sensor(shape=SHAPE, bayer="GBRG")
    stars = StarField.random(SHAPE, 220, seed=6)
    truth = Transform(dx=-7.3, dy=11.9, rotation_deg=180.4)
    ref = luminance(debayer(sensor.light(stars, seed=1).astype(np.float32), "GBRG"))
    frame = luminance(
        debayer(sensor.light(stars, transform=truth, seed=2).astype(np.float32), "GBRG")
    )
    reg = find_transform(registration_stars(frame).xy, registration_stars(ref).xy)
    assert _alignment_error(reg, truth, SHAPE) <= 0.1


def test_a_frame_of_another_field_is_refused(sky: tuple[Sensor, StarField]) -> None:
    sensor, stars = sky
    elsewhere = StarField.random(SHAPE, 220, seed=99)
    ref = registration_stars(sensor.light(stars, seed=1).astype(np.float32))
    other = registration_stars(sensor.light(elsewhere, seed=2).astype(np.float32))
    with pytest.raises(RegistrationError):
        find_transform(other.xy, ref.xy)


def test_without_field_rotation_only_a_meridian_flip_may_rotate_the_field(
    sky: tuple[Sensor, StarField],
) -> None:
    sensor, stars = sky
    ref = registration_stars(sensor.light(stars, seed=1).astype(np.float32)).xy
    rotated = registration_stars(
        sensor.light(stars, transform=Transform(rotation_deg=40.0), seed=2).astype(np.float32)
    ).xy
    flipped = registration_stars(
        sensor.light(stars, transform=Transform(rotation_deg=181.0), seed=3).astype(np.float32)
    ).xy
    with pytest.raises(RegistrationError):
        find_transform(rotated, ref, rotation_limit_deg=5.0)
    assert abs(find_transform(flipped, ref, rotation_limit_deg=5.0).rotation_deg) > 175
    assert find_transform(rotated, ref).rotation_deg == pytest.approx(-40.0, abs=0.05)
