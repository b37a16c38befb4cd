"""The Tycho-2 stars held in astrometry.net's index files, read as a catalogue.

Why here: two users need the same stars. The simulator renders them (so that a simulated
frame shows the real sky) and the hinted matcher (:mod:`runner.solve.hinted`) matches against
them when ``solve-field`` finds nothing. Both may import ``runner.solve``; the solver must not
import the simulator.

The layout (astrometry.net's ``startree``): the table ``kdtree_data_stars`` holds each star as
a unit vector (x, y, z) of three native-endian u32, scaled by ``kdtree_range_stars``
(low bounds, high bounds, scale: ``v = low + u32 / scale``); the tag-along table holds
``MAG_VT`` (Tycho VT magnitude) in the same order. The index with the most stars is used (the
star set of ``tycho2-08`` is a subset of ``tycho2-07``'s, uniformised at a coarser scale):
about 1.9 million stars, ~45 per square degree, 7–12 mag.

Loading takes about a second (run it off the loop: :func:`load_catalogue` is blocking and
cached per process); a field query is a binary search on declination and a few ms of numpy.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from runner.errors import SolveError, SolverMissing

F64 = npt.NDArray[np.float64]

INDEX_DIR = Path(os.environ.get("NIGHTRUNNER_ASTROMETRY_INDEX", "/usr/share/astrometry"))

_lock = threading.Lock()


@dataclass(frozen=True)
class Catalogue:
    """Stars sorted by declination (degrees), with their VT magnitudes."""

    ra: F64
    dec: F64
    mag: F64
    source: Path

    def around(self, ra0: float, dec0: float, radius_deg: float) -> tuple[F64, F64, F64]:
        """Stars within ``radius_deg`` of (ra0, dec0): (ra, dec, mag)."""
        lo = np.searchsorted(self.dec, dec0 - radius_deg, side="left")
        hi = np.searchsorted(self.dec, dec0 + radius_deg, side="right")
        ra, dec, mag = self.ra[lo:hi], self.dec[lo:hi], self.mag[lo:hi]
        d0, a0 = math.radians(dec0), math.radians(ra0)
        d, a = np.radians(dec), np.radians(ra)
        cos_sep = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a - a0)
        keep = cos_sep >= math.cos(math.radians(radius_deg))
        return ra[keep], dec[keep], mag[keep]


def _star_table(path: Path) -> tuple[int, F64, F64] | None:
    """(star count, xyz (n, 3), mag) of one index file; None if it holds no star tree."""
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdul:
        by_name = {str(h.header.get("TTYPE1", "")).strip(): h for h in hdul[1:]}
        data, rng = by_name.get("kdtree_data_stars"), by_name.get("kdtree_range_stars")
        mags = by_name.get("MAG_VT") or by_name.get("MAG")
        if data is None or rng is None or mags is None:
            return None
        n = int(data.header["NAXIS2"])
        scale = np.frombuffer(rng.data.tobytes(), dtype="<f8")
        raw = np.frombuffer(data.data.tobytes(), dtype="<u4").reshape(n, 3)
        xyz = scale[:3] + raw.astype(np.float64) / scale[6]
        mag = np.asarray(mags.data.field(0), dtype=np.float64)
    return n, xyz, mag


@lru_cache(maxsize=2)
def _load(index_dir: Path) -> Catalogue:
    files = sorted(index_dir.glob("index-*.fits")) if index_dir.is_dir() else []
    best: tuple[int, F64, F64, Path] | None = None
    for path in files:
        try:
            got = _star_table(path)
        except (OSError, KeyError, ValueError) as exc:
            raise SolveError(f"cannot read star catalogue {path}: {exc}") from exc
        if got is not None and (best is None or got[0] > best[0]):
            best = (*got, path)
    if best is None:
        raise SolverMissing(
            f"no Tycho-2 star catalogue (astrometry.net index files) in {index_dir}: install "
            "astrometry-data-tycho2-07 and astrometry-data-tycho2-08, or set "
            "NIGHTRUNNER_ASTROMETRY_INDEX to their directory")
    _, xyz, mag, path = best
    dec = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
    order = np.argsort(dec, kind="stable")
    return Catalogue(ra[order], dec[order], mag[order], path)


def load_catalogue(index_dir: Path | None = None) -> Catalogue:
    """The process's catalogue (blocking, about a second the first time; then cached).

    :class:`SolverMissing` when no index file holds a star tree, :class:`SolveError` when one
    cannot be read.
    """
    with _lock:
        return _load((index_dir or INDEX_DIR).resolve())


def catalogue_available(index_dir: Path | None = None) -> bool:
    d = index_dir or INDEX_DIR
    return d.is_dir() and any(d.glob("index-*.fits"))
