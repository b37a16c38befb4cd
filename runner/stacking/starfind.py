"""Bright-star finding that leaves the event loop alone — shared by registration and HFR.

``sep.extract`` holds the GIL for its whole run (~190 ms on a 2k×2k frame with 2000 stars,
most of it deblending and shape measurement nobody here needs), so a worker thread running it
stalls the engine's loop and every control-plane reply behind it. This finder does the same job
with work that releases the GIL or is short: a copy binned to ~1k px (``cv2.resize``), ``sep``'s
background map on that small copy (a few ms), a threshold and OpenCV's connected components, and
vectorised numpy centroids on full-resolution stamps. Measured on a 2k frame: ~25 ms in total,
event-loop lag p99 a few ms while it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import sep

from runner.errors import StackingError

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BrightStars:
    """Bright stars, brightest first, in full-resolution pixels (0-based, x = column).

    ``sigma`` is each star's Gaussian-equivalent width from its above-threshold pixels (a
    first guess: the threshold cuts the wings); ``refined`` says whether the windowed centroid
    converged (when not, ``x``/``y`` are the isophotal barycentre).
    """

    x: FloatArray
    y: FloatArray
    flux: FloatArray
    sigma: FloatArray
    refined: npt.NDArray[np.bool_]
    sky: SkyModel

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class SkyModel:
    """The sky background measured on the binned copy, and how to apply it at full resolution."""

    back: F32  # background map, binned pixels
    level: float  # global background, ADU per full-resolution pixel
    rms: float  # sky noise per full-resolution pixel
    factor: int  # binning factor

    def subtract_from(self, image: F32) -> None:
        """Subtract the (bilinearly upsampled) background from ``image`` in place."""
        h, w = image.shape
        if self.factor == 1 and self.back.shape == image.shape:
            image -= self.back
            return
        b = self.factor
        # The binned map covers (h//b)·b × (w//b)·b; its pixel centres sit at b·(i + ½) − ½.
        # Resizing to the covered area then padding the remainder edge-on keeps them aligned.
        hb, wb = self.back.shape
        full = cv2.resize(self.back, (wb * b, hb * b), interpolation=cv2.INTER_LINEAR)
        if full.shape != image.shape:
            full = np.pad(full, ((0, h - full.shape[0]), (0, w - full.shape[1])), mode="edge")
        image -= full


def bin_factor(shape: tuple[int, int], target: int = 1024) -> int:
    """Binning for star finding: to ~``target``/2 px, but by at most 4 unless ``target`` itself
    asks for more. Measured on 2048² frames, binning 4 instead of 2 makes finding 2–4× faster
    with the same accuracy (0.002–0.007 px, the centroids are refined at full resolution); on
    4096² frames binning 8 lost accuracy (0.04–0.07 px), so frames of 4k and more keep ~1k."""
    long_side = max(shape)
    return max(1, min(round(long_side / (target / 2)), max(4, round(long_side / target))))


def find_bright_stars(
    image: F32,
    *,
    candidates: int,
    threshold_sigma: float = 5.0,
    bin_target: int = 1024,
    mesh: int = 64,
) -> BrightStars:
    """The ``candidates`` brightest blobs of a 2-D float ``image`` (not modified), centroided.

    Callers keep what they trust (registration: the refined ones; HFR: the unsaturated ones),
    so the brightness cut comes before any of those choices and means the same for both.
    ``mesh`` is the background mesh size in binned pixels. Raises :class:`StackingError` when
    the background cannot be estimated; a frame without stars returns an empty result.
    """
    if image.ndim != 2:
        raise StackingError(f"star finding needs a 2-D luminance image, got {image.shape}")
    h, w = image.shape
    b = bin_factor((h, w), bin_target)
    src = np.ascontiguousarray(image, dtype=np.float32)
    small: F32
    if b > 1:
        binned = cv2.resize(
            src[: (h // b) * b, : (w // b) * b], (w // b, h // b), interpolation=cv2.INTER_AREA
        )
        small = np.asarray(binned, dtype=np.float32)
    else:
        small = src.copy()
    np.nan_to_num(small, copy=False)
    try:
        bkg = sep.Background(small, bw=mesh, bh=mesh, fw=3, fh=3)
        back_map = np.asarray(bkg.back(), dtype=np.float32)
        level, rms = float(bkg.globalback), float(bkg.globalrms)
    except Exception as exc:  # sep raises bare Exception on bad input
        raise StackingError(f"background estimation failed: {exc}") from exc
    small -= back_map
    if not math.isfinite(rms) or rms <= 0:
        # A perfectly flat (e.g. noise-free synthetic) image: a tiny floor so that any real
        # signal still stands out.
        rms = max(1e-3, 1e-6 * float(np.max(np.abs(small))))
    # sep's background is per binned pixel of the mean: the same units as full resolution.
    # Its noise per full-res pixel is b× larger (averaging b² pixels divides it by b).
    sky = SkyModel(back=back_map, level=level, rms=rms * b, factor=b)
    x0, y0, flux, sig = components(small, threshold_sigma * rms, candidates)
    if len(x0) == 0:
        z = np.zeros(0, dtype=np.float64)
        return BrightStars(z, z, z, z, np.zeros(0, dtype=bool), sky)
    # Binned-pixel centres → full-resolution coordinates.
    x0 = (x0 + 0.5) * b - 0.5
    y0 = (y0 + 0.5) * b - 0.5
    sig = np.clip(sig * b, 0.7, 8.0 * b)
    xy, ok = refine_centroids(src, x0, y0, np.minimum(sig, 8.0))
    x = np.where(ok, xy[:, 0], x0)
    y = np.where(ok, xy[:, 1], y0)
    return BrightStars(x, y, flux, sig, ok, sky)


def components(
    sub: F32, threshold: float, keep: int, min_area: int = 3
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Threshold + 8-connected components: (x, y, flux, σ) of the ``keep`` brightest blobs.

    ``sep.extract`` spends most of its time deblending and measuring shapes that registration
    does not need (60–80 ms on a binned 4k frame); this takes ~10 ms. Blends and cosmic rays
    that slip through are outvoted by the triangle matching and clipped in the final fit.
    """
    mask = (sub > threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    empty = np.zeros(0, dtype=np.float64)
    if n <= 1:
        return empty, empty, empty, empty
    # only the pixels above the threshold (a few %) carry flux: sum over those alone
    on = np.flatnonzero(mask)
    lab = labels.ravel()[on]
    vals = sub.ravel()[on].astype(np.float64)
    flux = np.bincount(lab, weights=vals, minlength=n)
    h, w = sub.shape
    left = stats[:, cv2.CC_STAT_LEFT]
    top = stats[:, cv2.CC_STAT_TOP]
    width = stats[:, cv2.CC_STAT_WIDTH]
    height = stats[:, cv2.CC_STAT_HEIGHT]
    good = (stats[:, cv2.CC_STAT_AREA] >= min_area) & (left > 0) & (top > 0)
    good &= (left + width < w) & (top + height < h)
    good[0] = False  # label 0 is the background
    idx = np.nonzero(good)[0]
    idx = idx[np.argsort(flux[idx])[::-1][:keep]]
    if len(idx) == 0:
        return empty, empty, empty, empty
    sel = np.zeros(n, dtype=bool)
    sel[idx] = True
    pix = sel[lab]
    ys, xs = np.divmod(on[pix], w)
    lp = lab[pix]
    wv = vals[pix]
    sw = np.bincount(lp, weights=wv, minlength=n)[idx]
    mx = np.bincount(lp, weights=wv * xs, minlength=n)[idx] / sw
    my = np.bincount(lp, weights=wv * ys, minlength=n)[idx] / sw
    mxx = np.bincount(lp, weights=wv * xs * xs, minlength=n)[idx] / sw - mx**2
    myy = np.bincount(lp, weights=wv * ys * ys, minlength=n)[idx] / sw - my**2
    sig = np.sqrt(np.clip((mxx + myy) / 2.0, 0.25, None))
    f: FloatArray = flux[idx].astype(np.float64)
    return mx.astype(np.float64), my.astype(np.float64), f, sig.astype(np.float64)


def refine_centroids(
    image: F32, x0: FloatArray, y0: FloatArray, sig: FloatArray, iterations: int = 6
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Iterated Gaussian-windowed centroids (SExtractor's XWIN) on small stamps.

    The window follows the estimate until it moves < 0.001 px; with a symmetric PSF the fixed
    point is the true centre, independently of the threshold that found the star.
    """
    h, w = image.shape
    n = len(x0)
    # One stamp size for all (vectorised): ~3 σ of a typical star, enough for the window.
    r = int(np.clip(np.ceil(3.0 * float(np.median(sig))) + 1, 4, 12)) if n else 4
    size = 2 * r + 1
    ok = (x0 >= r + 1) & (y0 >= r + 1) & (x0 < w - r - 2) & (y0 < h - r - 2)
    ix = np.where(ok, np.round(x0), r + 1).astype(np.intp)
    iy = np.where(ok, np.round(y0), r + 1).astype(np.intp)
    off = np.arange(-r, r + 1)
    rows = iy[:, None, None] + off[None, :, None]
    cols = ix[:, None, None] + off[None, None, :]
    stamps = image[rows, cols].astype(np.float64)  # (n, size, size)
    gy = np.broadcast_to(off[None, :, None].astype(np.float64), (n, size, size))
    gx = np.broadcast_to(off[None, None, :].astype(np.float64), (n, size, size))
    # Local sky: median of the stamp's outer ring.
    ring = (np.abs(off)[:, None] == r) | (np.abs(off)[None, :] == r)
    sky = np.median(stamps[:, ring], axis=1)
    stamps -= sky[:, None, None]
    bad_pixels = ~np.isfinite(stamps)
    ok &= ~bad_pixels.any(axis=(1, 2))
    stamps[bad_pixels] = 0.0
    cx = x0 - ix
    cy = y0 - iy
    s2 = (np.maximum(sig, 0.7) ** 2)[:, None, None]
    for _ in range(iterations):
        dx = gx - cx[:, None, None]
        dy = gy - cy[:, None, None]
        wgt = np.exp(-(dx * dx + dy * dy) / (2.0 * s2)) * stamps
        tot = wgt.sum(axis=(1, 2))
        good = tot > 0
        tot = np.where(good, tot, 1.0)
        # XWIN update: x += 2·Σ w I (x − x̄) / Σ w I
        step_x = 2.0 * (wgt * dx).sum(axis=(1, 2)) / tot
        step_y = 2.0 * (wgt * dy).sum(axis=(1, 2)) / tot
        step_x = np.clip(np.where(good, step_x, 0.0), -1.0, 1.0)
        step_y = np.clip(np.where(good, step_y, 0.0), -1.0, 1.0)
        cx += step_x
        cy += step_y
        ok &= good
        if np.max(np.abs(step_x) + np.abs(step_y), initial=0.0) < 1e-3:
            break
    ok &= (np.abs(cx) < r - 2) & (np.abs(cy) < r - 2)
    return np.column_stack([ix + cx, iy + cy]), ok
