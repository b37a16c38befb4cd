"""Star detection and PSF width (HFR, FWHM) — shared by registration, autofocus and the report.

``sep`` (the SExtractor core as a C library) does background estimation, thresholding,
deblending and windowed centroids; it is the fastest maintained option we measured and its
centroids are good to a few hundredths of a pixel on isolated stars. Widths are measured by us
on small stamps so that their definition is explicit:

* **HFR** — the radius containing half the star's flux inside ``4·r₀`` (``sep.flux_radius``).
* **FWHM** — the Gaussian-equivalent FWHM from the flux-weighted second moments inside the same
  aperture: ``2.3548·sqrt((σx² + σy²)/2)``.

Both are reported for the optical PSF: the pixel footprint is removed in quadrature (the sensor
integrates over a pixel, and ``flux_radius`` spreads each pixel's flux uniformly over it, so
the raw measure is the PSF convolved twice with a 1-px box: variance 1/12 per box per axis).
Without it a σ = 1 px Gaussian would read 8 % wide; with it the HFR of a Gaussian of width σ
is ``1.1774·σ`` to within about 1 %.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sep

from runner.errors import StackingError
from runner.stacking.starfind import find_bright_stars

FloatArray = npt.NDArray[np.float64]

# The pixel-footprint variance removed from the widths: one box from the sensor, one from
# flux_radius's uniform-pixel assumption (moments see only the sensor's).
_HFR_PIXEL_VAR = 2.0 / 12.0
_MOMENT_PIXEL_VAR = 1.0 / 12.0
_GAUSS_HFR_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))  # 1.1774
_GAUSS_FWHM_PER_SIGMA = 2.0 * _GAUSS_HFR_PER_SIGMA  # 2.3548
_RADIUS_CHUNK_AREA = 2000.0  # px² of apertures per sep.flux_radius call: ~2 ms of GIL

# sep keeps global buffers; a 4k×4k frame with extended nebulosity needs more than the default.
sep.set_extract_pixstack(3_000_000)
sep.set_sub_object_limit(4096)


@dataclass(frozen=True)
class Stars:
    """Detected stars, brightest first. Pixel coordinates are 0-based, x = column, y = row.

    ``hfr`` and ``fwhm`` are NaN for stars that could not be measured (touching the frame edge,
    saturated, or blended); the positions of such stars are still good for registration.
    """

    x: FloatArray
    y: FloatArray
    flux: FloatArray  # background-subtracted ADU summed over the isophote
    hfr: FloatArray  # px
    fwhm: FloatArray  # px
    background: float  # median sky level, ADU
    background_rms: float  # sky noise, ADU

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def xy(self) -> FloatArray:
        return np.column_stack([self.x, self.y])

    def median_hfr(self) -> float | None:
        good = self.hfr[np.isfinite(self.hfr)]
        return float(np.median(good)) if good.size else None

    def median_fwhm(self) -> float | None:
        good = self.fwhm[np.isfinite(self.fwhm)]
        return float(np.median(good)) if good.size else None

    @classmethod
    def empty(cls, background: float = 0.0, background_rms: float = 0.0) -> Stars:
        z = np.zeros(0, dtype=np.float64)
        return cls(z, z, z, z, z, background, background_rms)


def _clipping_level(raw: npt.NDArray[Any]) -> float | None:
    """Where an integer frame's stars are clipped (98 % of its range); floats: unknown."""
    if np.issubdtype(raw.dtype, np.integer):
        return float(np.iinfo(raw.dtype).max) * 0.98
    return None


def _as_float_mono(image: npt.ArrayLike) -> npt.NDArray[np.float32]:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., :3].astype(np.float32).mean(axis=2)
    if arr.ndim != 2:
        raise StackingError(f"expected a 2-D image (or H×W×3 colour), got shape {arr.shape}")
    if min(arr.shape) < 16:
        raise StackingError(f"image {arr.shape} is too small to look for stars")
    # sep needs native byte order and C order (FITS data are big-endian), and callers subtract
    # the sky in place: always a fresh array, never a view of the caller's.
    out = np.array(arr, dtype=np.float32, order="C", copy=True)
    return out


def detect_stars(
    image: npt.ArrayLike,
    *,
    threshold_sigma: float = 5.0,
    max_stars: int | None = None,
    min_area: int = 5,
    saturation: float | None = None,
    measure: bool = True,
) -> Stars:
    """Find stars: sky background and noise, threshold at ``threshold_sigma``·rms, centroid.

    ``saturation`` (ADU, default: the dtype's maximum for integer images) excludes clipped
    stars from the width measurements. ``measure=False`` skips HFR/FWHM (registration needs only
    positions). Raises :class:`StackingError` when the frame cannot be analysed at all (wrong
    shape, sep buffer overflow); a frame without stars returns an empty :class:`Stars`.
    """
    if threshold_sigma <= 0:
        raise ValueError("threshold_sigma must be > 0")
    raw = np.asarray(image)
    if saturation is None:
        saturation = _clipping_level(raw)
    data = _as_float_mono(raw)
    try:
        bkg = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
        sky = float(bkg.globalback)
        rms = float(bkg.globalrms)
        bkg.subfrom(data)
        if not math.isfinite(rms) or rms <= 0:
            # A perfectly flat (e.g. noise-free synthetic) image: use a tiny floor so that
            # any real signal still stands out.
            rms = max(1e-3, 1e-6 * float(np.max(np.abs(data))))
        objs = sep.extract(data, threshold_sigma, err=rms, minarea=min_area, deblend_cont=0.005)
    except Exception as exc:  # sep raises bare Exception for buffer overflows
        raise StackingError(f"star detection failed: {exc}") from exc
    if len(objs) == 0:
        return Stars.empty(sky, rms)

    order = np.argsort(objs["flux"])[::-1]
    if max_stars is not None:
        order = order[:max_stars]
    objs = objs[order]
    x0 = objs["x"].astype(np.float64)
    y0 = objs["y"].astype(np.float64)
    flux = objs["flux"].astype(np.float64)
    # Windowed centroids: a Gaussian-weighted refinement of the isophotal barycentre, much
    # less sensitive to the threshold cut and to noise in faint wings.
    sig_w = np.clip(objs["a"].astype(np.float64), 0.5, 20.0)
    wx, wy, wflag = sep.winpos(data, x0, y0, sig_w)
    ok = (wflag == 0) & np.isfinite(wx) & np.isfinite(wy) & (np.hypot(wx - x0, wy - y0) < 2.0)
    x = np.where(ok, wx, x0)
    y = np.where(ok, wy, y0)

    n = len(x)
    hfr = np.full(n, np.nan)
    fwhm = np.full(n, np.nan)
    if measure:
        truncated = (objs["flag"] & sep.OBJ_TRUNC) != 0
        hfr, fwhm = _measure_widths(data, raw, x, y, objs["a"], truncated, saturation)
    return Stars(x=x, y=y, flux=flux, hfr=hfr, fwhm=fwhm, background=sky, background_rms=rms)


def _half_flux_radius(
    sub: npt.NDArray[np.float32], x: FloatArray, y: FloatArray, r_max: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int16]]:
    """``sep.flux_radius`` (half flux, 5×5 sub-pixels), a few stars at a time.

    sep holds the GIL for the whole call, and its cost grows with the apertures' area: 200
    stars in one call stalled the engine's loop for 17–25 ms. Chunks of bounded total area
    (~2 ms each) let the interpreter hand the GIL back in between.
    """
    radii = np.empty(len(x), dtype=np.float64)
    flags = np.empty(len(x), dtype=np.int16)
    # chunk boundaries where the running aperture area crosses a multiple of the budget
    area = np.cumsum(np.square(r_max))
    cuts = np.flatnonzero(np.diff(area // _RADIUS_CHUNK_AREA, prepend=0.0))
    bounds = [0, *(int(c) for c in cuts if c > 0), len(x)]
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            c = slice(lo, hi)
            radii[c], flags[c] = sep.flux_radius(sub, x[c], y[c], r_max[c], 0.5, subpix=5)
    return radii, flags


def _measure_widths(
    sub: npt.NDArray[np.float32],
    raw: npt.NDArray[np.generic],
    x: FloatArray,
    y: FloatArray,
    sigma: npt.ArrayLike,
    truncated: npt.NDArray[np.bool_],
    saturation: float | None,
) -> tuple[FloatArray, FloatArray]:
    """HFR and FWHM of each star of ``sub`` (background-subtracted) at (x, y).

    ``sigma`` is a first guess of each star's Gaussian width (it sizes the first aperture);
    ``truncated`` marks stars cut by the frame edge; ``raw`` is checked against ``saturation``.
    """
    h, w = sub.shape
    n = len(x)
    # Aperture from a first HFR guess (the isophotal size), then the real measure inside 4·HFR.
    a = np.asarray(sigma, dtype=np.float64)
    r_guess = np.clip(4.0 * np.maximum(a * _GAUSS_HFR_PER_SIGMA, 1.0), 4.0, 60.0)
    r1, _ = _half_flux_radius(sub, x, y, r_guess)
    r_ap = np.clip(4.0 * np.nan_to_num(r1, nan=1.0), 4.0, 60.0)
    r2, fl = _half_flux_radius(sub, x, y, r_ap)
    hfr = np.sqrt(np.clip(r2**2 - (_GAUSS_HFR_PER_SIGMA**2) * _HFR_PIXEL_VAR, 0.0, None))

    bad = (fl & sep.APER_TRUNC) != 0
    bad |= truncated
    bad |= ~np.isfinite(r2) | (r2 <= 0)

    fwhm = np.full(n, np.nan)
    rad = np.ceil(r_ap).astype(int)
    for i in range(n):
        if bad[i]:
            continue
        r = int(rad[i])
        cx, cy = round(x[i]), round(y[i])
        if cx - r < 0 or cy - r < 0 or cx + r >= w or cy + r >= h:
            bad[i] = True
            continue
        stamp = sub[cy - r : cy + r + 1, cx - r : cx + r + 1].astype(np.float64)
        if saturation is not None:
            rawstamp = raw[cy - r : cy + r + 1, cx - r : cx + r + 1]
            if float(np.max(rawstamp)) >= saturation:
                bad[i] = True
                continue
        dy = np.arange(cy - r, cy + r + 1, dtype=np.float64)[:, None] - y[i]
        dx = np.arange(cx - r, cx + r + 1, dtype=np.float64)[None, :] - x[i]
        inside = (dx**2 + dy**2) <= r_ap[i] ** 2
        wts = np.where(inside, stamp, 0.0)
        total = wts.sum()
        if total <= 0:
            bad[i] = True
            continue
        var = ((wts * dx**2).sum() + (wts * dy**2).sum()) / (2.0 * total) - _MOMENT_PIXEL_VAR
        if var > 0:
            fwhm[i] = _GAUSS_FWHM_PER_SIGMA * math.sqrt(var)
    hfr[bad] = np.nan
    fwhm[bad] = np.nan
    return hfr, fwhm


def measure_hfr(image: npt.ArrayLike, *, threshold_sigma: float = 5.0) -> float | None:
    """Median half-flux radius (px) of the stars in ``image``; ``None`` when there are none.

    This is what autofocus minimises and what the night report shows per frame, measured after
    every light in a worker thread. Stars are found by :mod:`runner.stacking.starfind`, not
    ``sep.extract``: the latter holds the GIL for ~200 ms on a 2k frame, which stalled the
    engine's loop and the control plane behind it once per frame. The brightest 200 stars are
    enough for a stable median and keep the cost low on large frames.
    """
    if threshold_sigma <= 0:
        raise ValueError("threshold_sigma must be > 0")
    raw = np.asarray(image)
    saturation = _clipping_level(raw)
    data = _as_float_mono(raw)
    found = find_bright_stars(data, candidates=200, threshold_sigma=threshold_sigma)
    if len(found) == 0:
        return None
    found.sky.subtract_from(data)
    # Edge-touching blobs are already left out by the finder.
    hfr, _ = _measure_widths(
        data, raw, found.x, found.y, found.sigma, np.zeros(len(found), dtype=bool), saturation
    )
    good = hfr[np.isfinite(hfr)]
    return float(np.median(good)) if good.size else None
