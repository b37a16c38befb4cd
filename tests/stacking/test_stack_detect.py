"""Star detection and HFR: what autofocus and the night report rely on."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from runner.errors import StackingError
from runner.stacking.detect import detect_stars, measure_hfr
from runner.stacking.synthetic import gaussian_star_image

GAUSS_HFR_PER_SIGMA = 1.1774  # sqrt(2 ln 2): half the flux of a 2-D Gaussian lies within this·σ


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.5, 4.0])
def test_hfr_and_fwhm_of_gaussian_stars_match_theory_within_3_percent(sigma: float) -> None:
    image, _ = gaussian_star_image((384, 384), sigma, n_stars=49, seed=3)
    stars = detect_stars(image)
    hfr, fwhm = stars.median_hfr(), stars.median_fwhm()
    assert hfr is not None and fwhm is not None
    assert hfr == pytest.approx(GAUSS_HFR_PER_SIGMA * sigma, rel=0.03)
    assert fwhm == pytest.approx(2 * GAUSS_HFR_PER_SIGMA * sigma, rel=0.03)
    # the per-frame measure (a different, GIL-friendly star finder) agrees with the full one
    before = image.copy()
    assert measure_hfr(image) == pytest.approx(GAUSS_HFR_PER_SIGMA * sigma, rel=0.03)
    np.testing.assert_array_equal(image, before)  # and leaves the caller's frame alone


@pytest.mark.parametrize("psf", ["gaussian", "moffat"])
def test_hfr_grows_strictly_with_defocus(psf: str) -> None:
    sigmas = [0.9, 1.3, 1.8, 2.6, 3.6, 5.0]
    hfrs = []
    for s in sigmas:
        image, _ = gaussian_star_image((320, 320), s, n_stars=36, seed=5, psf=psf)  # type: ignore[arg-type]
        h = measure_hfr(image)
        assert h is not None
        hfrs.append(h)
    assert all(b > a * 1.1 for a, b in itertools.pairwise(hfrs)), hfrs


def test_centroids_are_within_a_few_hundredths_of_a_pixel() -> None:
    image, truth = gaussian_star_image((384, 384), 1.5, n_stars=49, seed=8)
    stars = detect_stars(image)
    assert len(stars) == len(truth)
    d = np.hypot(stars.x[:, None] - truth[None, :, 0], stars.y[:, None] - truth[None, :, 1])
    # every star found once, each at its own true position
    assert sorted(d.argmin(axis=1).tolist()) == list(range(len(truth)))
    rms = float(np.sqrt(np.mean(d.min(axis=1) ** 2)))
    assert rms < 0.03


def test_stars_come_brightest_first_and_max_stars_keeps_the_brightest() -> None:
    image, _ = gaussian_star_image((384, 384), 1.5, n_stars=49, seed=2)
    everything = detect_stars(image)
    top = detect_stars(image, max_stars=10)
    assert np.all(np.diff(everything.flux) <= 0)
    assert len(top) == 10
    np.testing.assert_allclose(top.flux, everything.flux[:10])


def test_a_starless_frame_has_no_hfr() -> None:
    rng = np.random.default_rng(0)
    sky = rng.normal(1000.0, 10.0, (256, 256)).astype(np.float32)
    assert len(detect_stars(sky)) == 0
    assert measure_hfr(sky) is None


def test_frames_read_back_from_fits_are_measured_like_in_memory_ones(tmp_path: Path) -> None:
    image, _ = gaussian_star_image((256, 256), 2.0, n_stars=25, seed=4)
    frame = np.clip(image + 500, 0, 65535).astype(np.uint16)
    path = tmp_path / "light.fits"
    fits.PrimaryHDU(frame).writeto(path)
    with fits.open(path) as hdul:
        data = hdul[0].data  # big-endian, as astropy returns it
    assert measure_hfr(data) == pytest.approx(measure_hfr(frame))
    assert measure_hfr(data) == pytest.approx(GAUSS_HFR_PER_SIGMA * 2.0, rel=0.03)


def test_a_saturated_star_does_not_count_towards_hfr() -> None:
    image, truth = gaussian_star_image((256, 256), 2.0, n_stars=25, seed=6)
    frame = np.clip(image + 500, 0, 65535)
    x, y = (round(v) for v in truth[0])
    frame[y - 3 : y + 4, x - 3 : x + 4] = 65535  # a clipped, flat-topped core
    stars = detect_stars(frame.astype(np.uint16))
    brightest = int(np.argmax(stars.flux))
    assert np.isnan(stars.hfr[brightest])
    assert stars.median_hfr() == pytest.approx(GAUSS_HFR_PER_SIGMA * 2.0, rel=0.03)
    # most stars clipped, so that counting them would move the median: measure_hfr skips them
    clipped = np.clip(image + 500, 0, 65535)
    for tx, ty in truth[:18]:
        cx, cy = round(tx), round(ty)
        clipped[cy - 3 : cy + 4, cx - 3 : cx + 4] = 65535
    assert measure_hfr(clipped.astype(np.uint16)) == pytest.approx(
        GAUSS_HFR_PER_SIGMA * 2.0, rel=0.03
    )


def test_a_one_dimensional_array_is_refused() -> None:
    with pytest.raises(StackingError):
        detect_stars(np.zeros(1000))
