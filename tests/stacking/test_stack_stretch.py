"""Preview stretch and histograms (seed 004's stretch and histogram endpoints)."""

from __future__ import annotations

import numpy as np
import pytest

from runner.errors import StackingError
from runner.stacking.stretch import StretchParams, histogram, stretch


@pytest.fixture
def faint_sky() -> np.ndarray:
    """A linear stack: dim sky near the bottom of the range and a few bright stars."""
    rng = np.random.default_rng(0)
    img = rng.normal(1000.0, 5.0, (200, 200)).astype(np.float32)
    img[50, 50] = img[120, 80] = 60000.0
    return img


def test_auto_stretch_lifts_the_sky_to_a_quarter_grey_without_clipping_stars(
    faint_sky: np.ndarray,
) -> None:
    out = stretch(faint_sky, StretchParams(auto=True))
    assert float(np.median(out)) == pytest.approx(0.25, abs=0.02)
    assert out[50, 50] == pytest.approx(1.0)
    assert float(np.mean(out == 0.0)) < 0.01  # black point below almost all the sky


def test_colour_is_stretched_per_channel_so_the_sky_comes_out_neutral() -> None:
    rng = np.random.default_rng(1)
    img = np.stack(
        [rng.normal(level, 4.0, (100, 100)) for level in (800.0, 1200.0, 2000.0)], axis=-1
    ).astype(np.float32)
    img[10, 10] = 50000.0
    out = stretch(img)
    medians = [float(np.median(out[..., c])) for c in range(3)]
    assert max(medians) - min(medians) < 0.02


def test_manual_stretch_applies_black_and_white_points_then_gamma() -> None:
    ramp = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(1, -1)
    out = stretch(ramp, StretchParams(auto=False, low=0.2, high=0.6, gamma=0.5))[0]
    assert out[20] == 0.0 and out[60] == pytest.approx(1.0) and out[90] == pytest.approx(1.0)
    assert out[40] == pytest.approx(0.5**0.5, abs=1e-6)


@pytest.mark.parametrize("low, high, gamma", [(0.5, 0.5, 1.0), (-0.1, 0.5, 1.0), (0, 1, 0)])
def test_impossible_stretch_settings_are_refused(low: float, high: float, gamma: float) -> None:
    with pytest.raises(StackingError):
        StretchParams(auto=False, low=low, high=high, gamma=gamma)


def test_histograms_have_256_bins_that_sum_to_one(faint_sky: np.ndarray) -> None:
    mono = histogram(faint_sky)
    assert mono["type"] == "mono" and len(mono["Y"]) == 256
    assert sum(mono["Y"]) == pytest.approx(1.0)
    assert mono["range"]["Y"] == [pytest.approx(float(faint_sky.min())), 60000.0]
    rgb = histogram(np.stack([faint_sky] * 3, axis=-1))
    assert rgb["type"] == "rgb" and all(len(rgb[c]) == 256 for c in "RGB")
