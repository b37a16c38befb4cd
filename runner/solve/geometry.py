"""Small-angle geometry on the sphere: offsets in the tangent plane and separations.

Pure math (no astropy: numpy for many stars at once), so the simulators and the engine can use
it without the import cost.
Offsets are (east, north) arcsec in the gnomonic tangent plane at a reference point: that is
what a pointing error, a dither or a centring correction is, and it stays meaningful near the
celestial pole where a difference of RA does not.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0


def separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance between two J2000 positions (degrees in), arcsec (Vincenty)."""
    a1, d1, a2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    da = a2 - a1
    num = math.hypot(math.cos(d2) * math.sin(da),
                     math.cos(d1) * math.sin(d2) - math.sin(d1) * math.cos(d2) * math.cos(da))
    den = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(da)
    return math.atan2(num, den) * ARCSEC_PER_RAD


def tangent_offset(ra0: float, dec0: float, ra: float, dec: float) -> tuple[float, float]:
    """Where (ra, dec) lies seen from (ra0, dec0): (east, north) arcsec in the tangent plane."""
    a0, d0, a, d = map(math.radians, (ra0, dec0, ra, dec))
    cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a - a0)
    if cos_c <= 0:
        raise ValueError("the point is more than 90° from the reference")
    xi = math.cos(d) * math.sin(a - a0) / cos_c
    eta = (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a - a0)) / cos_c
    return xi * ARCSEC_PER_RAD, eta * ARCSEC_PER_RAD


def tangent_offsets(ra0: float, dec0: float, ra: F64, dec: F64) -> tuple[F64, F64]:
    """:func:`tangent_offset` of many stars at once (degrees in, arcsec out): the one gnomonic
    projection of the simulated sky and of the plate solver's catalogue. A star more than 90°
    from the reference has no place in the plane: NaN."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    a, d = np.radians(ra), np.radians(dec)
    cos_c = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a - a0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(cos_c > 0, ARCSEC_PER_RAD / cos_c, np.nan)
    xi = np.cos(d) * np.sin(a - a0) * scale
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a - a0)) * scale
    return xi, eta


def offset_point(ra0: float, dec0: float, east: float, north: float) -> tuple[float, float]:
    """The position (east, north) arcsec from (ra0, dec0) in its tangent plane (inverse of
    :func:`tangent_offset`); RA in [0, 360)."""
    xi, eta = east / ARCSEC_PER_RAD, north / ARCSEC_PER_RAD
    a0, d0 = math.radians(ra0), math.radians(dec0)
    den = math.cos(d0) - eta * math.sin(d0)
    a = a0 + math.atan2(xi, den)
    d = math.atan2(math.sin(d0) + eta * math.cos(d0), math.hypot(xi, den))
    return math.degrees(a) % 360.0, math.degrees(d)


def position_angle_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Position angle of point 2 seen from point 1, degrees east of north in [0, 360)."""
    a1, d1, a2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    da = a2 - a1
    y = math.sin(da) * math.cos(d2)
    x = math.cos(d1) * math.sin(d2) - math.sin(d1) * math.cos(d2) * math.cos(da)
    return math.degrees(math.atan2(y, x)) % 360.0
