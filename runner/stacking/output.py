"""Results on disk in seed 004's layout, under a data directory::

    <data>/calibration/index.json              masters (see calibrate/)
    <data>/stacked/<id>_final.jpeg             stretched preview of the final stack
    <data>/stacked/<id>_final.tiff             linear float32 stack (not stretched)
    <data>/stacked/<id>_final.json             metadata (seed fields, see below)
    <data>/stacked/<id>_final.fits             linear float32 stack with its headers (stackfits.py)
    <data>/stacked/<id>_intermediate_NN.*      the same every N stacked frames
    <data>/debug/<id>/log.txt                  JSON lines: everything needed to re-stack offline
    <data>/debug/<id>/frames/, masters/        copies of inputs when ``save_data`` is on

Every file is written to a temporary name and renamed, so a reader (the control plane, a
phone) never sees half a JPEG. The JSON carries seed 004's fields, spelled ``total_frames``
and ``stacked_frames`` as OpenLiveStacker itself writes them (the seed text's "fames" is a typo).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import tifffile
from PIL import Image

from runner.stacking.stretch import StretchParams, stretch, to_uint8
from runner.storage.durable import atomic_write_bytes as _atomic_write_bytes

if TYPE_CHECKING:
    from astropy.io import fits

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class StackPaths:
    jpeg: Path
    tiff: Path | None
    json: Path
    fits: Path | None = None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Whole or not at all, with the mode frames get (0644 under the usual umask)."""
    _atomic_write_bytes(path, data)


def display_image(stack: F32, params: StretchParams, *, flip: bool = False) -> F32:
    img = np.fliplr(stack) if flip else stack
    return stretch(np.ascontiguousarray(img), params)


def jpeg_bytes(display: F32, *, quality: int = 90, max_size: int | None = None) -> bytes:
    im = Image.fromarray(to_uint8(display))
    if max_size is not None and max(im.size) > max_size:
        im.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def tiff_bytes(stack: F32, *, flip: bool = False) -> bytes:
    img = np.fliplr(stack) if flip else stack
    buf = io.BytesIO()
    photometric = "rgb" if img.ndim == 3 else "minisblack"
    tifffile.imwrite(buf, np.ascontiguousarray(img, dtype=np.float32), photometric=photometric)
    return buf.getvalue()


def write_result(
    stacked_dir: Path,
    base: str,
    stack: F32,
    meta: dict[str, Any],
    params: StretchParams,
    *,
    flip: bool = False,
    tiff: bool = True,
    fits_header: fits.Header | None = None,
) -> StackPaths:
    """``<base>.jpeg``, ``<base>.tiff`` (float32, linear), ``<base>.json`` and, given a
    header, ``<base>.fits`` (float32, linear: the file post-processing reads)."""
    filled = np.nan_to_num(stack, nan=float(np.nanmin(stack)) if np.isfinite(stack).any() else 0.0)
    jpeg = stacked_dir / f"{base}.jpeg"
    atomic_write_bytes(jpeg, jpeg_bytes(display_image(filled, params, flip=flip)))
    tiff_path: Path | None = None
    if tiff:
        tiff_path = stacked_dir / f"{base}.tiff"
        atomic_write_bytes(tiff_path, tiff_bytes(filled, flip=flip))
    fits_path: Path | None = None
    if fits_header is not None:
        from runner.stacking.stackfits import fits_bytes

        fits_path = stacked_dir / f"{base}.fits"
        atomic_write_bytes(fits_path, fits_bytes(filled, fits_header, flip=flip))
    js = stacked_dir / f"{base}.json"
    atomic_write_bytes(js, (json.dumps(meta, indent=2, default=str) + "\n").encode())
    return StackPaths(jpeg=jpeg, tiff=tiff_path, json=js, fits=fits_path)
