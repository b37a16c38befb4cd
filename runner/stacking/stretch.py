"""Display stretch and histograms: what the preview, the JPEG and the control plane show.

The stack itself is never stretched (the TIFF is linear float32); stretching only makes the
preview. Values are first normalised to [0, 1] between the image's minimum and maximum
(finite pixels), per channel for colour.

* **Auto** — the screen-transfer function popularised by PixInsight: per channel, the black
  point is the median minus 2.8 normalised MADs, and a midtones transfer function (MTF) maps
  the median to 0.25. It is robust (median/MAD ignore stars) and neutralises the background
  colour, which is what a live preview needs.
* **Manual** — seed 004's ``stretch_low``, ``stretch_high``, ``stretch_gamma``: black and
  white points in the normalised [0, 1] range and a power applied after them
  (``out = ((x − low)/(high − low))^gamma``; gamma < 1 brightens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.errors import StackingError

F32 = npt.NDArray[np.float32]

SHADOWS_CLIP = -2.8  # normalised MADs below the median
TARGET_BACKGROUND = 0.25


@dataclass(frozen=True)
class StretchParams:
    auto: bool = True
    low: float = 0.0
    high: float = 1.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.low < self.high <= 1.0):
            raise StackingError(f"stretch needs 0 ≤ low < high ≤ 1, got {self.low}, {self.high}")
        if not (0.0 < self.gamma <= 10.0):
            raise StackingError(f"stretch gamma must be in (0, 10], got {self.gamma}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "auto_stretch": self.auto,
            "stretch_low": self.low,
            "stretch_high": self.high,
            "stretch_gamma": self.gamma,
        }


def mtf(m: float | F32, x: F32) -> F32:
    """Midtones transfer function: 0→0, m→0.5, 1→1."""
    out: F32 = ((m - 1.0) * x / ((2.0 * m - 1.0) * x - m)).astype(np.float32)
    return out


def _channels(image: F32) -> list[F32]:
    if image.ndim == 2:
        return [image]
    if image.ndim == 3 and image.shape[2] == 3:
        return [image[..., c] for c in range(3)]
    raise StackingError(f"cannot stretch an image of shape {image.shape}")


def _sample(ch: F32, n: int = 400_000) -> F32:
    flat = ch.ravel()
    step = max(1, flat.size // n)
    s = flat[::step]
    out: F32 = s[np.isfinite(s)]
    return out


def _normalise(ch: F32) -> tuple[F32, float, float]:
    s = _sample(ch)
    if s.size == 0:
        return np.zeros_like(ch), 0.0, 1.0
    lo = float(np.min(s))
    finite = ch[np.isfinite(ch)]
    hi = float(np.max(finite)) if finite.size else lo + 1.0
    if hi <= lo:
        hi = lo + 1.0
    x = (np.nan_to_num(ch, nan=lo) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(x, 0.0, 1.0).astype(np.float32), lo, hi


def auto_parameters(x: F32) -> tuple[float, float]:
    """(black point, midtones balance) for a normalised channel."""
    s = _sample(x)
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    c0 = min(max(med + SHADOWS_CLIP * mad, 0.0), 1.0)
    span = med - c0
    if span <= 0 or c0 >= 1.0:
        return c0, 0.5
    m = float(mtf(TARGET_BACKGROUND, np.array([span], dtype=np.float32))[0])
    return c0, min(max(m, 1e-4), 1.0 - 1e-4)


def stretch(image: F32, params: StretchParams | None = None) -> F32:
    """A display image in [0, 1], same shape as ``image``."""
    p = params or StretchParams()
    out = np.empty(image.shape, dtype=np.float32)
    chans = _channels(image)
    for c, ch in enumerate(chans):
        x, _, _ = _normalise(ch)
        if p.auto:
            c0, m = auto_parameters(x)
            y = np.clip((x - np.float32(c0)) / np.float32(max(1.0 - c0, 1e-6)), 0.0, 1.0)
            y = mtf(m, y)
        else:
            y = np.clip((x - np.float32(p.low)) / np.float32(p.high - p.low), 0.0, 1.0)
            if p.gamma != 1.0:
                y = np.power(y, np.float32(p.gamma), dtype=np.float32)
        if image.ndim == 2:
            out[...] = y
        else:
            out[..., c] = y
    return np.clip(out, 0.0, 1.0)


def to_uint8(display: F32) -> npt.NDArray[np.uint8]:
    out: npt.NDArray[np.uint8] = np.rint(np.clip(display, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def histogram(image: F32 | npt.NDArray[np.generic], bins: int = 256) -> dict[str, Any]:
    """Seed 004's histogram: ``{"type": "mono", "Y": [...]}`` or RGB ``R, G, B`` lists.

    Each list holds the fraction of pixels per bin over the image's [min, max] (given as
    ``range``, per channel), before any stretch.
    """
    img = np.asarray(image, dtype=np.float32)
    chans = _channels(img)
    names = ["Y"] if img.ndim == 2 else ["R", "G", "B"]
    out: dict[str, Any] = {"type": "mono" if img.ndim == 2 else "rgb", "range": {}}
    for name, ch in zip(names, chans, strict=True):
        s = _sample(ch, 2_000_000)
        if s.size == 0:
            out[name] = [0.0] * bins
            out["range"][name] = [0.0, 0.0]
            continue
        lo, hi = float(np.min(s)), float(np.max(s))
        if hi <= lo:
            hi = lo + 1.0
        counts, _ = np.histogram(s, bins=bins, range=(lo, hi))
        total = max(int(counts.sum()), 1)
        out[name] = [float(c) / total for c in counts]
        out["range"][name] = [lo, hi] if math.isfinite(lo + hi) else [0.0, 0.0]
    return out
