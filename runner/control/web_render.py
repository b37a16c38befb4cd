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


def pixels(picture: Any) -> tuple[npt.NDArray[Any], str | None]:
    """The picture's pixels and Bayer pattern (a FITS path or an array)."""
    if picture.data is not None:
        return picture.data, getattr(picture, "bayer", None)
    from runner.stacking.fitsio import read_frame

    data, meta = read_frame(picture.path)
    return data, meta.bayer


def display(data: npt.NDArray[Any], bayer: str | None = None) -> npt.NDArray[np.float32]:
    img = np.asarray(data, dtype=np.float32)
    pattern = normalize_pattern(bayer)
    if pattern is not None and img.ndim == 2:
        img = debayer(img, pattern)
    return stretch(img, StretchParams(auto=True))


def picture_jpeg(picture: Any) -> bytes:
    data, bayer = pixels(picture)
    return jpeg_bytes(display(data, bayer), quality=85, max_size=PREVIEW_SIZE)


def picture_histogram(picture: Any) -> dict[str, Any]:
    data, _ = pixels(picture)
    return histogram(data)
