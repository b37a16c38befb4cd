"""Synthetic sky frames with known truth, for the stacker's tests and benchmarks.

Registration accuracy can only be measured against a known answer, so every frame here is
rendered from one fixed star field seen through a known similarity transform. Stars are
*pixel-integrated* (a Gaussian PSF is integrated exactly over each pixel with ``erf``; a Moffat
PSF is supersampled), so centroids have no rendering bias larger than the 0.01 px we care about.

A :class:`Sensor` owns the fixed pattern (bias level, dark current with hot pixels, vignetting
flat, Bayer mosaic) so that darks, flats and lights taken with it share the same defects, as a
real camera's do; calibration tests rely on that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
U16 = npt.NDArray[np.uint16]

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


@dataclass(frozen=True)
class Transform:
    """Where a sky point lands in a frame: ``p' = scale·R(rotation)·(p − centre) + centre + shift``.

    ``rotation_deg`` is counter-clockwise in the (x right, y down) pixel frame as numpy shows it,
    i.e. it rotates +x towards +y. The centre is the frame centre; a meridian flip is 180°.
    """

    dx: float = 0.0
    dy: float = 0.0
    rotation_deg: float = 0.0
    scale: float = 1.0

    def matrix(self, shape: tuple[int, int]) -> FloatArray:
        """The 2×3 affine matrix taking reference (x, y) to frame (x, y)."""
        h, w = shape
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        t = math.radians(self.rotation_deg)
        c, s = self.scale * math.cos(t), self.scale * math.sin(t)
        a = np.array([[c, -s], [s, c]])
        off = np.array([cx, cy]) - a @ np.array([cx, cy]) + np.array([self.dx, self.dy])
        return np.hstack([a, off[:, None]])

    def apply(self, xy: FloatArray, shape: tuple[int, int]) -> FloatArray:
        m = self.matrix(shape)
        return xy @ m[:, :2].T + m[:, 2]


@dataclass(frozen=True)
class StarField:
    """Stars in reference-frame pixels: positions, total fluxes (e-) and colours (r, g, b)."""

    xy: FloatArray
    flux: FloatArray
    color: FloatArray

    @classmethod
    def random(
        cls,
        shape: tuple[int, int],
        n_stars: int,
        *,
        seed: int = 0,
        flux_range: tuple[float, float] = (2e3, 2e5),
        margin: float = -0.2,
    ) -> StarField:
        """A field with a power-law flux distribution (many faint, few bright stars).

        A negative ``margin`` (a fraction of the frame) places stars outside the reference frame
        too, so that shifted or rotated frames stay evenly populated.
        """
        rng = np.random.default_rng(seed)
        h, w = shape
        lo, hi = flux_range
        xy = np.column_stack(
            [
                rng.uniform(margin * w, (1 - margin) * w, n_stars),
                rng.uniform(margin * h, (1 - margin) * h, n_stars),
            ]
        )
        # Density ∝ f^-2 (uniform in 1/f) between lo and hi.
        u = rng.uniform(1.0 / hi, 1.0 / lo, n_stars)
        flux = 1.0 / u
        color = rng.uniform(0.5, 1.0, (n_stars, 3))
        return cls(xy=xy, flux=flux, color=color)


@dataclass(frozen=True)
class Trail:
    """A satellite or aircraft trail: a straight line through (x0, y0) at ``angle_deg``."""

    x0: float
    y0: float
    angle_deg: float
    width_px: float = 1.5  # Gaussian σ across the trail
    brightness: float = 3000.0  # e-/px at the centre line


def _gaussian_stamp(fx: float, fy: float, sigma: float, radius: int) -> F32:
    """Exact pixel integrals of a unit-flux Gaussian centred at (fx, fy) within the stamp."""
    edges = np.arange(-radius, radius + 2, dtype=np.float64) - 0.5
    k = 1.0 / (math.sqrt(2.0) * sigma)
    ex = np.array([math.erf((e - fx) * k) for e in edges])
    ey = np.array([math.erf((e - fy) * k) for e in edges])
    px = 0.5 * np.diff(ex)
    py = 0.5 * np.diff(ey)
    return np.outer(py, px).astype(np.float32)


def _moffat_stamp(fx: float, fy: float, fwhm: float, beta: float, radius: int) -> F32:
    """A unit-flux Moffat profile, supersampled 5× per axis and normalised over the plane."""
    sub = 5
    off = (np.arange(sub) + 0.5) / sub - 0.5
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    xs = (grid[:, None] + off[None, :]).ravel() - fx
    ys = (grid[:, None] + off[None, :]).ravel() - fy
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    r2 = ys[:, None] ** 2 + xs[None, :] ** 2
    prof = (beta - 1.0) / (math.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)
    n = 2 * radius + 1
    out: F32 = prof.reshape(n, sub, n, sub).mean(axis=(1, 3)).astype(np.float32)
    return out


def render_stars(
    shape: tuple[int, int],
    xy: FloatArray,
    flux: FloatArray,
    *,
    psf: Literal["gaussian", "moffat"] = "gaussian",
    sigma: float = 1.5,
    beta: float = 3.0,
) -> F32:
    """Noise-free electrons from point sources at ``xy`` (x = column, y = row, 0-based centres).

    For the Moffat PSF, ``sigma`` is converted to the FWHM a Gaussian of that σ would have, so
    both shapes have the same core width.
    """
    h, w = shape
    out = np.zeros(shape, dtype=np.float32)
    fwhm = 2.0 * math.sqrt(2.0 * math.log(2.0)) * sigma
    radius = math.ceil(5.0 * sigma) if psf == "gaussian" else math.ceil(4.0 * fwhm)
    for (x, y), f in zip(xy, flux, strict=True):
        ix, iy = round(x), round(y)
        if ix < -radius or iy < -radius or ix >= w + radius or iy >= h + radius:
            continue
        fx, fy = x - ix, y - iy
        stamp = (
            _gaussian_stamp(fx, fy, sigma, radius)
            if psf == "gaussian"
            else _moffat_stamp(fx, fy, fwhm, beta, radius)
        )
        x0, y0 = ix - radius, iy - radius
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + stamp.shape[1], w), min(y0 + stamp.shape[0], h)
        if xa >= xb or ya >= yb:
            continue
        out[ya:yb, xa:xb] += np.float32(f) * stamp[ya - y0 : yb - y0, xa - x0 : xb - x0]
    return out


def render_trail(shape: tuple[int, int], trail: Trail) -> F32:
    h, w = shape
    t = math.radians(trail.angle_deg)
    # Signed distance to the line, computed separably to keep memory at one frame.
    ys = (np.arange(h, dtype=np.float32) - trail.y0)[:, None]
    xs = (np.arange(w, dtype=np.float32) - trail.x0)[None, :]
    d = xs * np.float32(-math.sin(t)) + ys * np.float32(math.cos(t))
    out: F32 = np.exp(-0.5 * (d / np.float32(trail.width_px)) ** 2).astype(np.float32)
    out *= np.float32(trail.brightness)
    return out


def mosaic(rgb: F32, pattern: str) -> F32:
    """Sample an (H, W, 3) image through a Bayer colour filter array (e.g. ``"RGGB"``)."""
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f"unknown Bayer pattern {pattern!r}")
    index = {"R": 0, "G": 1, "B": 2}
    out = np.empty(rgb.shape[:2], dtype=np.float32)
    for k, ch in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, index[ch]]
    return out


def _to_u16(adu: F32) -> U16:
    out: U16 = np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
    return out


@dataclass
class Sensor:
    """A camera with a fixed pattern shared by all its frames (bias, darks, flats, lights).

    Units: electrons on the sensor, ADU in the returned uint16 frames (``gain`` e-/ADU).
    ``dark_current`` is e-/s/px for normal pixels; ``hot_fraction`` of pixels are hot with
    ``hot_current`` e-/s. The flat field is a radial vignetting falling to ``1 - vignetting``
    at the corners, plus a few dust shadows.
    """

    shape: tuple[int, int] = (512, 512)
    seed: int = 1
    bias_level: float = 500.0  # ADU
    read_noise: float = 3.0  # e-
    gain: float = 1.0  # e-/ADU
    dark_current: float = 0.02  # e-/s/px
    hot_fraction: float = 2e-4
    hot_current: float = 50.0  # e-/s
    vignetting: float = 0.3
    bayer: str | None = None
    dark_map: F32 = field(init=False, repr=False)
    flat_map: F32 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        h, w = self.shape
        dark = np.full(self.shape, self.dark_current, dtype=np.float32)
        n_hot = int(self.hot_fraction * h * w)
        dark[rng.integers(0, h, n_hot), rng.integers(0, w, n_hot)] = self.hot_current
        self.dark_map = dark
        yy = ((np.arange(h, dtype=np.float32) - (h - 1) / 2) / (h / 2))[:, None]
        xx = ((np.arange(w, dtype=np.float32) - (w - 1) / 2) / (w / 2))[None, :]
        r2 = (xx**2 + yy**2) / 2.0
        flat = (1.0 - self.vignetting * r2).astype(np.float32)
        for _ in range(3):  # dust donuts
            cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
            rad = rng.uniform(0.02, 0.05) * min(h, w)
            d2 = (xx * w / 2 + (w - 1) / 2 - cx) ** 2 + (yy * h / 2 + (h - 1) / 2 - cy) ** 2
            flat *= (1.0 - 0.15 * np.exp(-d2 / (2 * rad**2))).astype(np.float32)
        self.flat_map = flat

    def _readout(self, electrons: F32, rng: np.random.Generator) -> U16:
        signal = rng.poisson(np.clip(electrons, 0, None)).astype(np.float32)
        signal += rng.standard_normal(self.shape, dtype=np.float32) * np.float32(self.read_noise)
        adu = signal / np.float32(self.gain) + np.float32(self.bias_level)
        return _to_u16(adu)

    def bias(self, *, seed: int = 0) -> U16:
        return self._readout(np.zeros(self.shape, np.float32), np.random.default_rng(seed))

    def dark(self, exposure: float, *, seed: int = 0) -> U16:
        return self._readout(self.dark_map * np.float32(exposure), np.random.default_rng(seed))

    def flat(self, level: float = 20000.0, exposure: float = 1.0, *, seed: int = 0) -> U16:
        e = self.flat_map * np.float32(level * self.gain) + self.dark_map * np.float32(exposure)
        return self._readout(e, np.random.default_rng(seed))

    def light(
        self,
        stars: StarField,
        exposure: float = 10.0,
        *,
        transform: Transform | None = None,
        sky: float = 200.0,  # e-/px over the exposure
        psf: Literal["gaussian", "moffat"] = "gaussian",
        sigma: float = 1.5,
        trail: Trail | None = None,
        seed: int = 0,
        noise: bool = True,
    ) -> U16:
        """A raw light frame in ADU: stars seen through ``transform``, vignetted, plus dark."""
        rng = np.random.default_rng(seed)
        xy = (transform or Transform()).apply(stars.xy, self.shape)
        if self.bayer is None:
            e = render_stars(self.shape, xy, stars.flux, psf=psf, sigma=sigma)
            e += np.float32(sky)
        else:
            rgb = np.empty((*self.shape, 3), dtype=np.float32)
            for c in range(3):
                rgb[..., c] = render_stars(
                    self.shape, xy, stars.flux * stars.color[:, c], psf=psf, sigma=sigma
                )
                rgb[..., c] += np.float32(sky * (0.6, 0.8, 1.0)[c])
            e = mosaic(rgb, self.bayer)
        if trail is not None:
            e += render_trail(self.shape, trail)
        e *= self.flat_map
        e += self.dark_map * np.float32(exposure)
        if not noise:
            return _to_u16(e / np.float32(self.gain) + np.float32(self.bias_level))
        return self._readout(e, rng)


def gaussian_star_image(
    shape: tuple[int, int],
    sigma: float,
    *,
    n_stars: int = 60,
    sky: float = 100.0,
    read_noise: float = 5.0,
    flux_range: tuple[float, float] = (2e4, 2e5),
    seed: int = 0,
    psf: Literal["gaussian", "moffat"] = "gaussian",
) -> tuple[F32, FloatArray]:
    """A float image of well separated stars of one PSF width on a noisy sky, and their (x, y).

    Stars sit on a jittered grid so none overlap; that isolates PSF-width measurement from
    crowding, which is what focus curves need.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    side = math.ceil(math.sqrt(n_stars))
    sx, sy = w / side, h / side
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.column_stack([(gx.ravel() + 0.5) * sx, (gy.ravel() + 0.5) * sy])[:n_stars]
    xy += rng.uniform(-0.15, 0.15, xy.shape) * np.array([sx, sy])
    flux = rng.uniform(*flux_range, len(xy))
    img = render_stars(shape, xy, flux, psf=psf, sigma=sigma) + np.float32(sky)
    img = rng.poisson(img).astype(np.float32)
    img += rng.standard_normal(shape, dtype=np.float32) * np.float32(read_noise)
    return img, xy
