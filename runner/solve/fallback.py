"""The hinted matcher run on a FITS file: stars detected, catalogue read, a solution or none.

Why a separate step after ``solve-field``: astrometry.net stays the solver of record — it is
blind-capable, fast on any field with enough stars and trusted everywhere. This runs only when
``solve-field`` searched everything and found nothing, with the hints the engine always has
(scale and pointing), and inside the same time limit (:func:`runner.solve.solver.solve_path`).
Its answer is written as the same TAN WCS cards (:mod:`runner.solve.wcs`).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from runner.errors import NoSolution, SolveError
from runner.solve.astrometry import SCALE_TOLERANCE, SolveHints
from runner.solve.catalogue import load_catalogue
from runner.solve.hinted import (
    MAX_RADIUS_DEG,
    Match,
    Sources,
    catalogue_budget,
    field_around,
    match,
)
from runner.solve.wcs import Solution, solution_from_header

#: Detected sources handed to the matcher (its triangles use the brightest few; the rest
#: tell it how many sources of a given brightness a chance match could land on).
MAX_SOURCES = 100
#: Detection threshold, sky sigmas: the stars that matter are far above it.
THRESHOLD_SIGMA = 5.0

NAME = "Nightrunner hinted matcher"


def match_header(m: Match) -> fits.Header:
    """The TAN WCS cards of a match, as astrometry.net writes them."""
    h = fits.Header()
    h["WCSAXES"] = 2
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["EQUINOX"] = 2000.0
    h["LONPOLE"], h["LATPOLE"] = 180.0, 0.0
    h["CRVAL1"], h["CRVAL2"] = m.crval[0] % 360.0, m.crval[1]
    h["CRPIX1"], h["CRPIX2"] = m.crpix
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    (h["CD1_1"], h["CD1_2"]), (h["CD2_1"], h["CD2_2"]) = m.cd
    h["RADESYS"] = "ICRS"
    return h


def detect_sources(path: Path) -> tuple[Sources, int, int]:
    """The sources of a FITS image, brightest first, and its width and height."""
    from runner.stacking.detect import detect_stars

    data = fits.getdata(path)
    if data is None or np.ndim(data) != 2:
        raise SolveError(f"{path.name}: not a 2-D image")
    stars = detect_stars(data, threshold_sigma=THRESHOLD_SIGMA, max_stars=MAX_SOURCES,
                         measure=False)
    height, width = np.shape(data)
    return Sources(stars.x, stars.y, stars.flux), int(width), int(height)


def solve_hinted(path: Path, hints: SolveHints, deadline: float, *,
                 index_dir: Path | None = None, cancel: threading.Event | None = None,
                 t0: float | None = None) -> Solution:
    """Solve ``path`` with the hinted matcher (blocking: run it in a thread).

    :class:`NoSolution` when nothing verifies, :class:`SolveError` when ``deadline``
    (``time.monotonic``) passes or ``cancel`` is set first.
    """
    if hints.scale_arcsec is None or hints.ra is None or hints.dec is None:
        raise NoSolution(f"{path.name}: no solution (and no scale and pointing hints for the "
                         "hinted matcher)")
    start = time.monotonic() if t0 is None else t0
    src, width, height = detect_sources(path)
    catalogue = load_catalogue(index_dir)
    half_diag = math.hypot(width, height) / 2 * hints.scale_arcsec * (1 + SCALE_TOLERANCE)
    search = min(hints.radius_deg, MAX_RADIUS_DEG)
    radius = search + half_diag / 3600
    ra, dec, mag = catalogue.around(hints.ra, hints.dec, radius)
    field_area = width * height * (hints.scale_arcsec / 3600) ** 2
    field = field_around(ra, dec, mag, hints.ra, hints.dec, catalogue_budget(radius, field_area))
    got = match(src, width, height, field, hints.scale_arcsec, SCALE_TOLERANCE, search,
                deadline, cancel)
    if got is None:
        raise NoSolution(f"{path.name}: no solution (solve-field found none, and the hinted "
                         f"matcher none it could verify among {src.x.size} sources)")
    return solution_from_header(match_header(got), width, height, time.monotonic() - start,
                                solver=NAME)
