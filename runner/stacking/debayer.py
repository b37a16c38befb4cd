"""One-shot-colour frames: Bayer demosaicing and CFA-aware helpers.

OpenCV's demosaicing accepts only 8/16-bit integers, but calibrated frames are float (negative
after dark subtraction, fractional after flat division); rounding them back to integers would
throw away the precision stacking is for. Bilinear interpolation is two small convolutions per
channel in float32 (``cv2.filter2D``), which is exact, fast, and introduces no colour bias on
the smooth, oversampled stars of deep-sky frames.

Patterns name the colours of the top-left 2×2 cell read row by row (FITS ``BAYERPAT``), e.g.
``RGGB``: (0,0) red, (0,1) green, (1,0) green, (1,1) blue — in the array as numpy shows it.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from runner.errors import StackingError

F32 = npt.NDArray[np.float32]

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")

_K_RB = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], dtype=np.float32)
_K_G = np.array([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]], dtype=np.float32)


def normalize_pattern(pattern: str | None) -> str | None:
    """``BAYERPAT`` as found in FITS headers (any case, padded) → one of :data:`PATTERNS`."""
    if pattern is None:
        return None
    p = pattern.strip().upper()
    if not p or p in ("NONE", "MONO"):
        return None
    if p not in PATTERNS:
        raise StackingError(f"unsupported Bayer pattern {pattern!r} (expected one of {PATTERNS})")
    return p


def channel_masks(shape: tuple[int, int], pattern: str) -> list[tuple[int, int, int]]:
    """(row offset, column offset, channel index) of each cell of the 2×2 pattern."""
    del shape
    index = {"R": 0, "G": 1, "B": 2}
    return [(k // 2, k % 2, index[c]) for k, c in enumerate(pattern)]


def debayer(raw: npt.NDArray[np.floating] | npt.NDArray[np.integer], pattern: str) -> F32:
    """Bilinear demosaic of a CFA frame into an (H, W, 3) float32 RGB image."""
    pat = normalize_pattern(pattern)
    if pat is None:
        raise StackingError("debayer needs a Bayer pattern")
    if raw.ndim != 2 or raw.shape[0] < 2 or raw.shape[1] < 2:
        raise StackingError(f"a CFA frame must be 2-D, got shape {raw.shape}")
    src = np.ascontiguousarray(raw, dtype=np.float32)
    h, w = src.shape
    out = np.empty((h, w, 3), dtype=np.float32)
    plane = np.empty((h, w), dtype=np.float32)
    for ch, kernel in ((0, _K_RB), (1, _K_G), (2, _K_RB)):
        plane.fill(0.0)
        for dy, dx, c in channel_masks((h, w), pat):
            if c == ch:
                plane[dy::2, dx::2] = src[dy::2, dx::2]
        out[..., ch] = cv2.filter2D(plane, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    # Reflection at the border mixes in the wrong CFA phase for one row/column; it is a
    # 1-px rim that registration warps away or crops, and does not affect the interior.
    return out


def luminance(image: F32) -> F32:
    """Mean of the colour channels (registration and star measurements run on this)."""
    if image.ndim == 2:
        return image
    lum: F32 = image.mean(axis=2, dtype=np.float32)
    return lum
