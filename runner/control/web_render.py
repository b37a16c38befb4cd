"""Frames as pictures for the web: a stretched JPEG (colour sensors debayered) and seed 004's
histogram. Run in worker threads (numpy, astropy and Pillow release the GIL for the work)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from runner.stacking.debayer import debayer, normalize_pattern
from runner.stacking.output import jpeg_bytes
from runner.stacking.stretch import StretchParams, histogram, stretch

PREVIEW_SIZE = 1024  # px on the long side: enough for a phone, cheap to encode
# The shape of a 256-bin histogram survives sampling: 512 px a side (a quarter million
# pixels) reads the same as the whole frame, at a sixteenth of the cost of a 2k frame.
HISTOGRAM_SIZE = 512


def pixels(picture: Any) -> tuple[npt.NDArray[Any], str | None]:
    """The picture's pixels and Bayer pattern (a FITS path or an array), read once for the
    preview and the histogram (``picture.data`` keeps them)."""
    with picture.reading:  # the preview and the histogram render together: one read
        if picture.data is None:
            from runner.stacking.fitsio import read_frame

            picture.data, meta = read_frame(picture.path)
            picture.bayer = meta.bayer
    return picture.data, picture.bayer


def reduced(data: npt.NDArray[Any], bayer: str | None, size: int = PREVIEW_SIZE
            ) -> npt.NDArray[Any]:
    """Every n-th pixel so that the long side is at most ``size`` (a colour sensor's frame
    is kept whole: decimating it would break its Bayer pattern), so that a preview of a 4k
    frame stretches and encodes a quarter of its pixels or fewer."""
    step = max(1, -(-max(data.shape[:2]) // size))
    if bayer is not None and step > 1:
        return data  # decimating would break the pattern: debayer the full frame
    return data[::step, ::step] if step > 1 else data


def display(data: npt.NDArray[Any], bayer: str | None = None) -> npt.NDArray[np.float32]:
    img = np.asarray(data, dtype=np.float32)
    pattern = normalize_pattern(bayer)
    if pattern is not None and img.ndim == 2:
        img = debayer(img, pattern)
    return stretch(img, StretchParams(auto=True))


def picture_jpeg(picture: Any) -> bytes:
    data, bayer = pixels(picture)
    return jpeg_bytes(display(reduced(data, bayer), bayer), quality=85,
                      max_size=PREVIEW_SIZE)


def picture_histogram(picture: Any) -> dict[str, Any]:
    return sampled_histogram(*pixels(picture))


def sampled_histogram(data: npt.NDArray[Any], bayer: str | None = None) -> dict[str, Any]:
    """Seed 004's histogram of ``data`` (before any stretch), from a ``HISTOGRAM_SIZE`` sample."""
    return histogram(reduced(data, bayer, HISTOGRAM_SIZE))
