"""The simulated sensor: photons and electrons in, 16-bit ADU out — pure numpy, no asyncio.

What one pixel records (electrons, before conversion)::

    E = vignetting · (sky + stars)·t  +  dark(T)·t  +  hot pixel(T)·t     (flat: panel instead)
    E' = E + sqrt(E + read_noise²) · N(0, 1)                               (shot + read noise)
    ADU = clip(E' / egain(gain) + offset + column pattern, 0, min(65535, full well))

Shot noise uses the Gaussian limit of the Poisson distribution (exact Poisson costs 6× more
for a 2k×2k frame and differs only below ~10 e-). Everything that is fixed for a sensor (hot
pixels, the column pattern of the bias, vignetting, the Bayer matrix) is drawn once from the
seed and cached per ROI and binning; stars are drawn as small stamps, never full-frame per star.

The N(0, 1) draws come from a *noise bank*: two full frames of independent normals drawn once
per sensor from the seed; each frame reads a window at a random offset with a random sign
(from the frame's own seeded stream). Within a frame every pixel is independent; two frames
share noise only if their offsets coincide (probability ~1/(2·pixels) per pair) — and drawing
4 M fresh normals would cost 40 ms of the ~50 ms a 2k×2k frame takes, the bank read 3 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from runner.devices.interfaces import RoiBox
from runner.plan.equipment import CameraProfile

F32 = npt.NDArray[np.float32]
U16 = npt.NDArray[np.uint16]

FULL_WELL = 50_000.0  # e-
DARK_AT_25C = 0.1  # e-/s/px
DARK_DOUBLING = 6.0  # °C per doubling of dark current
HOT_PIXEL_FRACTION = 2e-4
HOT_PIXEL_RATE_25C = (2.0, 200.0)  # e-/s, log-uniform
COLUMN_PATTERN_ADU = 1.5  # σ of the fixed per-column bias offset
VIGNETTING_CORNER = 0.25  # fractional light loss in the sensor's corners
FLAT_PANEL_RATE = 20_000.0  # e-/s/px through L
CFA_QE = (0.85, 1.0, 0.75)  # R, G, B relative quantum efficiency
CFA_COLOUR = 0.5  # how strongly a star's colour index moves flux between R and B
_CFA_INDEX = {"R": 0, "G": 1, "B": 2}


def dark_rate(celsius: float) -> float:
    """Dark current, e-/s/px: doubles every 6 °C."""
    return DARK_AT_25C * math.pow(2.0, (celsius - 25.0) / DARK_DOUBLING)


def egain_at(profile: CameraProfile, gain: int) -> float:
    """e-/ADU at ``gain``: ``profile.egain`` at the lowest gain, gain in 0.1 dB steps (ZWO)."""
    return profile.egain * math.pow(10.0, -(gain - profile.gain_range[0]) / 200.0)


@dataclass(frozen=True)
class StarsOnSensor:
    """Stars as the sensor sees them in one frame: output pixel coordinates (x column, y row),
    electrons collected over the whole exposure, colour index -1…+1."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    electrons: npt.NDArray[np.float64]
    colour: npt.NDArray[np.float64]
    hfr: float  # output px
    beta: float = 3.0


@dataclass(frozen=True)
class Exposure:
    """Everything that varies per frame; a snapshot taken on the event loop at shutter close."""

    seconds: float
    frame_type: str  # light | dark | bias | flat
    shutter_open: bool
    roi: RoiBox
    binning: int
    egain: float  # e-/ADU
    offset_adu: float
    temperature: float  # °C
    sky_rate: float = 0.0  # e-/s per unbinned px, after the filter
    flat_rate: float = 0.0  # e-/s per unbinned px, after the filter
    stars: StarsOnSensor | None = None


def moffat_alpha(hfr: float, beta: float) -> float:
    """Moffat core width α for a half-flux radius: r½ = α·sqrt(2^(1/(β−1)) − 1)."""
    return hfr / math.sqrt(2.0 ** (1.0 / (beta - 1.0)) - 1.0)


def star_stamps(
    fx: npt.NDArray[np.float64], fy: npt.NDArray[np.float64], hfr: float, beta: float, radius: int
) -> F32:
    """Unit-flux Moffat stamps (n, 2r+1, 2r+1) for sub-pixel offsets (fx, fy) ∈ [-0.5, 0.5].

    Pixels integrate the PSF (by supersampling when it is narrow), so a star's pixel values
    are what a real sensor would record and HFR measured on them matches ``hfr``.
    """
    os_ = 3 if hfr < 1.5 else 2 if hfr < 3.0 else 1
    alpha = moffat_alpha(hfr, beta)
    side = 2 * radius + 1
    sub = ((np.arange(os_) + 0.5) / os_ - 0.5).astype(np.float32)
    grid = (np.arange(side, dtype=np.float32) - radius)[:, None] + sub[None, :]
    grid = grid.reshape(-1)  # side*os_
    dx = grid[None, :] - fx.astype(np.float32)[:, None]  # (n, side*os)
    dy = grid[None, :] - fy.astype(np.float32)[:, None]
    r2 = dy[:, :, None] ** 2 + dx[:, None, :] ** 2  # (n, side*os, side*os)
    r2 *= np.float32(1.0 / (alpha * alpha))
    r2 += np.float32(1.0)
    psf = r2 ** np.float32(-beta)
    n = fx.shape[0]
    if os_ > 1:
        psf = psf.reshape(n, side, os_, side, os_).mean(axis=(2, 4))
    # Normalise to the flux a Moffat puts inside the stamp's circle-ish box; the far wings
    # beyond 4 HFR hold < 0.1 % and are dropped.
    psf /= psf.sum(axis=(1, 2), keepdims=True)
    return psf.astype(np.float32, copy=False)


def add_stars(
    img: F32,
    stars: StarsOnSensor,
    weights: F32 | None = None,
    cfa: npt.NDArray[np.intp] | None = None,
) -> int:
    """Add ``stars`` into ``img`` in place; returns how many landed on the frame.

    ``cfa`` (2×2 channel indices) with ``weights`` (n, 3) gives each star its colour per
    Bayer channel.
    """
    h, w = img.shape
    radius = int(min(60, max(3, math.ceil(4.0 * stars.hfr) + 1)))
    cx = np.rint(stars.x).astype(np.int64)
    cy = np.rint(stars.y).astype(np.int64)
    on = (cx + radius >= 0) & (cx - radius < w) & (cy + radius >= 0) & (cy - radius < h)
    on &= stars.electrons > 0
    idx = np.nonzero(on)[0]
    side = 2 * radius + 1
    chunk = max(1, 4_000_000 // (side * side * 9))
    for c0 in range(0, idx.size, chunk):
        sel = idx[c0 : c0 + chunk]
        stamps = star_stamps(
            stars.x[sel] - cx[sel], stars.y[sel] - cy[sel], stars.hfr, stars.beta, radius
        )
        stamps *= stars.electrons[sel].astype(np.float32)[:, None, None]
        if cfa is not None and weights is not None:
            local = np.arange(side)
            par_y = (cy[sel, None] - radius + local[None, :]) & 1  # (n, side)
            par_x = (cx[sel, None] - radius + local[None, :]) & 1
            chan = cfa[par_y[:, :, None], par_x[:, None, :]]  # (n, side, side)
            stamps *= np.take_along_axis(
                weights[sel][:, None, :], chan.reshape(len(sel), 1, -1), axis=2
            ).reshape(stamps.shape)
        for k, i in enumerate(sel):
            x0, y0 = int(cx[i]) - radius, int(cy[i]) - radius
            xa, ya = max(0, x0), max(0, y0)
            xb, yb = min(w, x0 + side), min(h, y0 + side)
            img[ya:yb, xa:xb] += stamps[k, ya - y0 : yb - y0, xa - x0 : xb - x0]
    return int(idx.size)


class Sensor:
    """The fixed properties of one simulated sensor and the per-frame rendering."""

    def __init__(self, profile: CameraProfile, seed: int) -> None:
        self.profile = profile
        self.width = profile.width
        self.height = profile.height
        rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x5E25])
        n_hot = max(1, round(HOT_PIXEL_FRACTION * self.width * self.height))
        self.hot_x = rng.integers(0, self.width, n_hot)
        self.hot_y = rng.integers(0, self.height, n_hot)
        lo, hi = HOT_PIXEL_RATE_25C
        self.hot_rate_25c = np.exp(rng.uniform(math.log(lo), math.log(hi), n_hot))
        self.column_pattern = rng.normal(0.0, COLUMN_PATTERN_ADU, self.width).astype(np.float32)
        self._bank_seed = [seed & 0xFFFFFFFF, 0xBA4C]
        self._bank: F32 | None = None
        self.cfa: npt.NDArray[np.intp] | None = None
        if profile.bayer:
            self.cfa = np.array(
                [
                    [_CFA_INDEX[profile.bayer[0]], _CFA_INDEX[profile.bayer[1]]],
                    [_CFA_INDEX[profile.bayer[2]], _CFA_INDEX[profile.bayer[3]]],
                ],
                dtype=np.intp,
            )

    def bayer_for(self, binning: int) -> str | None:
        """The frame's Bayer pattern; binning sums all four colours, so binned OSC is mono."""
        return self.profile.bayer if self.cfa is not None and binning == 1 else None

    # ---------------------------------------------------------------- cached maps

    def _shape(self, roi: RoiBox, b: int) -> tuple[int, int]:
        return roi.height // b, roi.width // b

    @lru_cache(maxsize=8)  # noqa: B019 - the sensor lives as long as its camera
    def vignetting(self, roi: RoiBox, b: int) -> F32:
        h, w = self._shape(roi, b)
        y = roi.y + (np.arange(h, dtype=np.float32) + 0.5) * b - self.height / 2
        x = roi.x + (np.arange(w, dtype=np.float32) + 0.5) * b - self.width / 2
        r2_corner = (self.width / 2) ** 2 + (self.height / 2) ** 2
        r2 = (y[:, None] ** 2 + x[None, :] ** 2) / np.float32(r2_corner)
        out: F32 = (1.0 - VIGNETTING_CORNER * r2).astype(np.float32)
        return out

    @lru_cache(maxsize=8)  # noqa: B019
    def cfa_qe(self, roi: RoiBox, b: int) -> F32 | None:
        if self.cfa is None or b != 1:
            return None
        h, w = self._shape(roi, b)
        qe = np.asarray(CFA_QE, dtype=np.float32)[self.cfa]
        ys = (roi.y + np.arange(h)) & 1
        xs = (roi.x + np.arange(w)) & 1
        out: F32 = qe[ys[:, None], xs[None, :]]
        return out

    @lru_cache(maxsize=8)  # noqa: B019
    def bias_map(self, roi: RoiBox, b: int, offset_adu: float) -> F32:
        """Offset + fixed column pattern + 0.5 (so that truncation rounds), ADU."""
        h, w = self._shape(roi, b)
        cols = self.column_pattern[roi.x : roi.x + w * b].reshape(w, b).mean(axis=1)
        row = (cols + np.float32(offset_adu + 0.5)).astype(np.float32)
        return np.broadcast_to(row, (h, w))

    @lru_cache(maxsize=8)  # noqa: B019
    def hot_pixels(self, roi: RoiBox, b: int) -> tuple[npt.NDArray[np.intp], F32]:
        """Flat output indices of the hot pixels inside ``roi`` and their rate at 25 °C."""
        h, w = self._shape(roi, b)
        ox = (self.hot_x - roi.x) // b
        oy = (self.hot_y - roi.y) // b
        inside = (self.hot_x >= roi.x) & (self.hot_y >= roi.y) & (ox < w) & (oy < h)
        flat = (oy[inside] * w + ox[inside]).astype(np.intp)
        rates = self.hot_rate_25c[inside]
        uniq, inv = np.unique(flat, return_inverse=True)
        summed = np.zeros(uniq.size)
        np.add.at(summed, inv, rates)
        return uniq, summed.astype(np.float32)

    def noise(self, shape: tuple[int, int], rng: np.random.Generator) -> F32:
        """Standard normal noise for one frame (a read-only window of the noise bank)."""
        n = shape[0] * shape[1]
        if self._bank is None:
            size = 2 * self.width * self.height
            self._bank = np.random.default_rng(self._bank_seed).standard_normal(
                size, dtype=np.float32
            )
        start = int(rng.integers(0, self._bank.size - n + 1))
        window: F32 = self._bank[start : start + n].reshape(shape)
        return window

    # ---------------------------------------------------------------- rendering

    def render(self, exp: Exposure, rng: np.random.Generator) -> tuple[U16, int]:
        """The frame's pixels and how many stars fell on it."""
        b = exp.binning
        h, w = self._shape(exp.roi, b)
        t = 0.0 if exp.frame_type == "bias" else max(0.0, exp.seconds)
        pix = float(b * b)
        d_rate = dark_rate(exp.temperature)
        uniform = d_rate * t * pix  # electrons common to every pixel
        img: F32 | None = None
        n_stars = 0
        if exp.shutter_open and t > 0:
            light_level = (exp.flat_rate if exp.frame_type == "flat" else exp.sky_rate) * t * pix
            qe = self.cfa_qe(exp.roi, b)
            img = (
                np.full((h, w), light_level, dtype=np.float32)
                if qe is None
                else qe * np.float32(light_level)
            )
            if exp.frame_type != "flat" and exp.stars is not None and exp.stars.x.size:
                weights = None
                if qe is not None:
                    c = exp.stars.colour.astype(np.float32)
                    weights = np.stack(
                        [
                            CFA_QE[0] * (1 + CFA_COLOUR * c),
                            np.full_like(c, CFA_QE[1]),
                            CFA_QE[2] * (1 - CFA_COLOUR * c),
                        ],
                        axis=1,
                    ).astype(np.float32)
                n_stars = add_stars(img, exp.stars, weights, self.cfa if qe is not None else None)
            img *= self.vignetting(exp.roi, b)
        if t > 0:
            hot_idx, hot_rate = self.hot_pixels(exp.roi, b)
            if hot_idx.size:
                if img is None:
                    img = np.zeros((h, w), dtype=np.float32)
                scale = np.float32(t * 2.0 ** ((exp.temperature - 25.0) / DARK_DOUBLING))
                img.reshape(-1)[hot_idx] += hot_rate * scale
        rn = self.profile.read_noise
        sign = np.float32(1.0 if rng.random() < 0.5 else -1.0)
        inv_g = np.float32(1.0 / exp.egain)
        noise = self.noise((h, w), rng)
        if img is None:
            out = noise * (sign * np.float32(math.sqrt(uniform + rn * rn)) * inv_g)
            out += np.float32(uniform) * inv_g
        else:
            img += np.float32(uniform)
            out = img + np.float32(rn * rn)
            np.sqrt(out, out=out)
            out *= noise
            if sign < 0:
                np.negative(out, out=out)
            out += img
            out *= inv_g
        out += self.bias_map(exp.roi, b, float(exp.offset_adu))
        top = min(65535.0, FULL_WELL / exp.egain + exp.offset_adu)
        np.clip(out, 0.0, top, out=out)
        return out.astype(np.uint16), n_stars
