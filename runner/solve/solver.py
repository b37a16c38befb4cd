"""Solve a FITS file or a frame in memory: hints from the header or the caller, one solution.

``solve_path`` is what ``nightrunner solve FILE`` and the engine's centring share: a frame the
engine wants solved is written to a FITS file first (the solver reads files), under the run's
``solve/`` directory so that a failed centring can be looked at afterwards. astrometry.net's
``solve-field`` goes first; when it has searched everything and found nothing, the hinted
matcher (:mod:`runner.solve.fallback`) gets the time that is left.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path

from astropy.io import fits

from runner.errors import NoSolution, SolveError
from runner.solve.astrometry import DEFAULT_INDEX_DIR, SolveHints, solve_fits
from runner.solve.fallback import solve_hinted
from runner.solve.wcs import Solution, solution_from_header

#: Search radius when the hint comes from a FITS header (the mount's pointing): a badly
#: aligned mount is off by a degree or so, not by ten.
HEADER_RADIUS_DEG = 2.0


def hints_from_header(header: fits.Header, radius_deg: float = HEADER_RADIUS_DEG) -> SolveHints:
    """Scale from FOCALLEN and XPIXSZ (binned µm), pointing from RA/DEC, when present."""
    scale = None
    focal, pixel = header.get("FOCALLEN"), header.get("XPIXSZ")
    if isinstance(focal, int | float) and isinstance(pixel, int | float) and focal > 0:
        scale = 206.265 * float(pixel) / float(focal)
    ra, dec = header.get("RA"), header.get("DEC")
    has_pos = isinstance(ra, int | float) and isinstance(dec, int | float)
    width = int(header.get("NAXIS1", 0))
    return SolveHints(
        scale_arcsec=scale,
        ra=float(ra) if has_pos else None,
        dec=float(dec) if has_pos else None,
        radius_deg=radius_deg,
        downsample=2 if width >= 1000 else 1,
    )


def _image_size(path: Path) -> tuple[fits.Header, int, int]:
    try:
        header = fits.getheader(path)
    except (OSError, ValueError) as exc:
        raise SolveError(f"{path}: not a readable FITS image ({exc})") from exc
    width, height = int(header.get("NAXIS1", 0)), int(header.get("NAXIS2", 0))
    if header.get("NAXIS", 0) != 2 or width < 16 or height < 16:
        raise SolveError(f"{path}: not a 2-D image (NAXIS {header.get('NAXIS')})")
    return header, width, height


async def solve_path(
    path: Path, hints: SolveHints | None = None, timeout: float = 30.0, *,
    index_dir: Path = DEFAULT_INDEX_DIR,
) -> Solution:
    """Solve the FITS image at ``path`` (hints: from its header unless given), within
    ``timeout`` seconds in all."""
    t0 = time.monotonic()
    header, width, height = await asyncio.to_thread(_image_size, path)
    if hints is None:
        hints = hints_from_header(header)
    try:
        raw = await solve_fits(path, hints, timeout, index_dir=index_dir)
    except NoSolution:
        if hints.scale_arcsec is None or hints.ra is None or hints.dec is None:
            raise
        return await _solve_hinted(path, hints, t0, timeout, index_dir)
    solution = solution_from_header(raw.wcs_header, width, height, raw.seconds)
    if hints.scale_arcsec is not None and not math.isclose(
            solution.scale, hints.scale_arcsec, rel_tol=0.2):
        raise SolveError(f"{path.name}: solved at {solution.scale:.3f}″/px, expected "
                         f"{hints.scale_arcsec:.3f}″/px (a false match)")
    return solution


async def _solve_hinted(
    path: Path, hints: SolveHints, t0: float, timeout: float, index_dir: Path
) -> Solution:
    """The hinted matcher in a thread, until the solve's deadline; cancelling stops it at its
    next check (a thread cannot be killed, but it checks after every triangle)."""
    cancel = threading.Event()
    deadline = t0 + timeout
    late = SolveError(f"{path.name}: no solution within {timeout:g} s")
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            return await asyncio.to_thread(solve_hinted, path, hints, deadline,
                                           index_dir=index_dir, cancel=cancel, t0=t0)
    except TimeoutError:
        raise late from None
    except SolveError as exc:
        if isinstance(exc, NoSolution) or time.monotonic() < deadline:
            raise
        raise late from None
    finally:
        cancel.set()
