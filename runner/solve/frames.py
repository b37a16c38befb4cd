"""Solve a frame the engine just took: write it under ``<data>/solve/``, solve, put the WCS in.

The centring frames are not lights (they are never stacked, counted or indexed) but they are
kept: a centring that fails can be looked at, and solved again with ``nightrunner solve``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path

from runner.records import Frame
from runner.solve.astrometry import DEFAULT_INDEX_DIR, SolveHints
from runner.solve.solver import solve_path
from runner.solve.wcs import Solution, write_wcs


class FrameSolver:
    """The engine's plate solver (``Services.solver``): frames in, solutions out."""

    def __init__(self, directory: Path, *, focal_length: float, pixel_size: float,
                 instrument: str | None = None, telescope: str | None = None,
                 index_dir: Path = DEFAULT_INDEX_DIR) -> None:
        self.directory = directory
        self.focal_length = focal_length
        self.pixel_size = pixel_size  # µm, unbinned
        self.instrument, self.telescope = instrument, telescope
        self.index_dir = index_dir

    def scale_arcsec(self, binning: int) -> float:
        return 206.265 * self.pixel_size * binning / self.focal_length

    async def solve(
        self, frame: Frame, name: str, hints: SolveHints, timeout: float
    ) -> tuple[Solution, Path]:
        """Write ``frame`` as ``<directory>/<name>.fits`` (RA/DEC: the hint), solve it and write
        the WCS into it; :class:`runner.errors.SolveError` when it does not solve."""
        from runner.storage.fits import FrameMeta, write_fits

        stamp = frame.start.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.directory / f"{name}_{stamp}.fits"
        meta = FrameMeta(object_name=name, ra=hints.ra, dec=hints.dec,
                         focal_length=self.focal_length, pixel_size=self.pixel_size,
                         instrument=self.instrument, telescope=self.telescope)
        await asyncio.to_thread(write_fits, path, frame, meta)
        solution = await solve_path(path, hints, timeout, index_dir=self.index_dir)
        await asyncio.to_thread(write_wcs, path, solution)
        return solution, path
