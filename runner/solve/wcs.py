"""A plate solution: the WCS cards astrometry.net (or the hinted matcher) wrote, read as
centre, rotation and scale, and written into a frame's FITS header.

The header is the product: with the WCS cards in it, every post-processing tool (Siril,
PixInsight, ASTAP, DS9) knows where the frame points. ``write_wcs`` replaces the file
atomically (temporary file in the same directory, fsync, ``os.replace``), as frames are written.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits
from astropy.wcs import WCS

from runner.solve.geometry import position_angle_deg
from runner.storage.durable import atomic_write_bytes

#: Cards of a TAN(-SIP) solution copied into a frame (the solver's other cards are its log).
WCS_KEYS = ("WCSAXES", "CTYPE1", "CTYPE2", "EQUINOX", "LONPOLE", "LATPOLE", "CRVAL1", "CRVAL2",
            "CRPIX1", "CRPIX2", "CUNIT1", "CUNIT2", "CD1_1", "CD1_2", "CD2_1", "CD2_2",
            "A_ORDER", "B_ORDER", "AP_ORDER", "BP_ORDER", "RADESYS")
_SIP_PREFIXES = ("A_", "B_", "AP_", "BP_")


@dataclass(frozen=True)
class Solution:
    """Where a frame points: its centre (J2000 degrees), the position angle of the image's +y
    axis (degrees east of north), the scale (arcsec per pixel), the parity, the WCS cards."""

    ra: float
    dec: float
    rotation: float
    scale: float
    flipped: bool
    header: fits.Header
    seconds: float = 0.0
    solver: str = "astrometry.net"

    def wcs(self) -> WCS:
        return WCS(self.header)


def wcs_cards(header: fits.Header) -> fits.Header:
    """The WCS (and SIP) cards of a solver's header, nothing else."""
    out = fits.Header()
    for card in header.cards:
        key = card.keyword
        if key in WCS_KEYS or (key.startswith(_SIP_PREFIXES) and key[-1].isdigit()):
            out[key] = (card.value, card.comment)
    return out


def solution_from_header(
    header: fits.Header | str, width: int, height: int, seconds: float = 0.0,
    solver: str = "astrometry.net",
) -> Solution:
    """Read a solution; the centre is that of a ``width``×``height`` image."""
    if isinstance(header, str):
        header = fits.Header.fromstring(header)
    cards = wcs_cards(header)
    w = WCS(cards)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    (ra, dec), (ra_up, dec_up), (ra_r, dec_r) = (
        (float(a), float(b)) for a, b in w.all_pix2world([[cx, cy], [cx, cy + 10], [cx + 10, cy]],
                                                         0))
    rotation = position_angle_deg(ra, dec, ra_up, dec_up)
    # +x is 90° clockwise of +y seen on the sky with east left for a normal (unflipped) image
    right = position_angle_deg(ra, dec, ra_r, dec_r)
    flipped = (right - rotation) % 360.0 < 180.0
    cd = w.pixel_scale_matrix
    scale = math.sqrt(abs(float(cd[0, 0] * cd[1, 1] - cd[0, 1] * cd[1, 0]))) * 3600.0
    return Solution(ra % 360.0, dec, rotation, scale, flipped, cards, seconds, solver)


def write_wcs(path: Path, solution: Solution) -> None:
    """Put the solution's cards into the primary header of ``path``, atomically. Blocking."""
    with fits.open(path, memmap=False) as hdul:
        hdul[0].header.update(solution.header)
        hdul[0].header["PLTSOLVD"] = (True, f"plate solved by {solution.solver}")
        out = io.BytesIO()
        hdul.writeto(out)
    atomic_write_bytes(path, out.getvalue())  # the storage layer's: whole file or none
