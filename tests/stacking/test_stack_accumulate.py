"""The stack: noise falls as 1/√N, transient trails vanish, memory does not grow."""

from __future__ import annotations

import numpy as np
import pytest

from runner.stacking.fitsio import FrameMeta
from runner.stacking.pipeline import Stacker, StackSettings
from runner.stacking.synthetic import Sensor, StarField, Trail, Transform

SHAPE = (256, 256)


def _dithers(n: int, seed: int = 0) -> list[Transform]:
    rng = np.random.default_rng(seed)
    return [
        Transform(dx=rng.uniform(-6, 6), dy=rng.uniform(-6, 6), rotation_deg=rng.uniform(-0.5, 0.5))
        for _ in range(n)
    ]


def _stack_with_truth(
    n: int, *, trail_at: int | None = None, reject: bool = True
) -> tuple[np.ndarray, np.ndarray, Stacker]:
    """The stack of ``n`` noisy dithered frames, and the same frames stacked noise-free with
    the transforms registration found — the exact expectation of the stack."""
    sensor = Sensor(shape=SHAPE, hot_fraction=0.0)
    stars = StarField.random(SHAPE, 90, seed=4)
    noisy = Stacker(StackSettings(reject=reject))
    clean = Stacker(StackSettings(reject=False))
    trail = Trail(x0=0.0, y0=100.0, angle_deg=12.0, brightness=1000.0)
    for i, tr in enumerate(_dithers(n)):
        meta = FrameMeta(exposure=10.0)
        raw = sensor.light(stars, transform=tr, seed=i, trail=trail if i == trail_at else None)
        result = noisy.process(raw, meta)
        assert result.stacked, result.reason
        ideal = sensor.light(stars, transform=tr, noise=False)
        assert result.matrix is not None
        clean.add_registered(ideal, meta, result.matrix, result.offset, result.noise)
    return noisy.result(), clean.result(), noisy


def _noise(stack: np.ndarray, truth: np.ndarray) -> float:
    diff = (stack - truth)[20:-20, 20:-20]  # well inside every dithered frame
    return float(np.std(diff))


def test_background_noise_falls_as_one_over_sqrt_n() -> None:
    small, small_truth, _ = _stack_with_truth(6)
    large, large_truth, _ = _stack_with_truth(24)
    ratio = _noise(large, large_truth) / _noise(small, small_truth)
    assert ratio == pytest.approx(np.sqrt(6 / 24), rel=0.10)


def test_a_satellite_trail_in_one_frame_of_twenty_is_gone_from_the_rejecting_stack() -> None:
    stack, truth, stacker = _stack_with_truth(20, trail_at=13)
    plain, plain_truth, _ = _stack_with_truth(20, trail_at=13, reject=False)
    sigma = _noise(stack, truth)
    # Without rejection the trail is plainly there: a line of pixels 8σ above the truth.
    trail = (plain - plain_truth) > 8 * sigma
    assert trail.sum() > 200
    # On the sky (a star's own shot noise is not the trail's), inside every dithered frame.
    trail &= truth < float(np.median(truth)) + 30.0
    trail[:16] = trail[-16:] = False
    trail[:, :16] = trail[:, -16:] = False
    residual = (stack - truth)[trail]
    assert abs(float(np.mean(residual))) < 0.5 * sigma
    assert float(np.max(np.abs(residual))) < 5 * sigma
    assert stacker.accumulator.rejected > trail.sum()


def test_memory_does_not_grow_with_the_number_of_frames() -> None:
    sensor = Sensor(shape=SHAPE, hot_fraction=0.0)
    stars = StarField.random(SHAPE, 90, seed=4)
    for reject in (True, False):
        stacker = Stacker(StackSettings(reject=reject))
        sizes = []
        for i, tr in enumerate(_dithers(40, seed=1)):
            assert stacker.process(sensor.light(stars, transform=tr, seed=i)).stacked
            if i + 1 in (8, 40):
                sizes.append(stacker.accumulator.nbytes())
        assert sizes[0] == sizes[1]
        assert sizes[0] <= 8 * SHAPE[0] * SHAPE[1] * 4  # a few float32 planes, no frame list


def test_the_warm_up_median_and_mad_skip_nan_as_numpy_does() -> None:
    """The κσ warm-up's fast median/MAD of five frames (registered frames have NaN borders)
    gives numpy's nanmedian numbers, pixel for pixel."""
    from runner.stacking.accumulate import _median_mad

    rng = np.random.default_rng(0)
    for share in (0.0, 0.02, 0.3, 1.0):
        stack = rng.normal(100, 10, (5, 16, 200)).astype(np.float32)
        stack[rng.random(stack.shape) < share] = np.nan
        stack[:, 3, :4] = np.nan  # a pixel no frame covers
        med, mad = _median_mad(stack)
        with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
            want = np.nanmedian(stack, axis=0)
            want_mad = np.nanmedian(np.abs(stack - want), axis=0)
        np.testing.assert_allclose(med, want, rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(mad, want_mad, rtol=1e-5, atol=1e-5, equal_nan=True)
