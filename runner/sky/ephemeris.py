"""Positions of the Sun, the Moon and fixed targets over arrays of instants, with astropy.

Every function takes POSIX seconds (numpy arrays) and returns plain numpy arrays in degrees, so
the callers above (grids, constraints, the estimate) never handle astropy objects. Positions are
topocentric and geometric (no refraction): sunset and twilight limits are defined on geometric
altitudes, and a few arc-minutes of refraction near the horizon do not matter for scheduling.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from runner.plan.models import Site
from runner.sky.offline import configure_offline, quiet

configure_offline()

import astropy.units as u  # noqa: E402  (after the offline configuration, on purpose)
from astropy.coordinates import (  # noqa: E402
    AltAz,
    EarthLocation,
    SkyCoord,
    get_body,
)
from astropy.time import Time  # noqa: E402

FloatArray = NDArray[np.float64]

#: Geometric altitude of the Sun's centre at sunrise/sunset: the upper limb touching the horizon
#: (−16′ semi-diameter) through standard refraction (−34′).
SUNSET_ALTITUDE = -0.833


@lru_cache(maxsize=32)
def earth_location(site: Site) -> EarthLocation:
    """The site as an astropy location (WGS84 geodetic)."""
    return EarthLocation.from_geodetic(
        lon=site.longitude * u.deg, lat=site.latitude * u.deg, height=site.elevation * u.m
    )


def _times(unix: FloatArray) -> Time:
    return Time(np.asarray(unix, dtype=np.float64), format="unix", scale="utc")


def sun_altitude(site: Site, unix: FloatArray) -> FloatArray:
    """Geometric altitude of the Sun's centre, degrees, at each instant."""
    with quiet():
        times = _times(unix)
        frame = AltAz(obstime=times, location=earth_location(site))
        sun = get_body("sun", times, earth_location(site)).transform_to(frame)
        return np.asarray(sun.alt.deg, dtype=np.float64)


def bodies(site: Site, unix: FloatArray) -> dict[str, FloatArray]:
    """Sun and Moon at each instant.

    Keys: ``sun_alt``, ``moon_alt`` (degrees), ``moon_vec`` (shape (n, 3): unit vector towards
    the Moon, topocentric, axes of ICRS — dotted with a target's ICRS unit vector it gives the
    separation to ~20″ of aberration), ``moon_illum`` (illuminated fraction 0–1).
    """
    loc = earth_location(site)
    with quiet():
        times = _times(unix)
        frame = AltAz(obstime=times, location=loc)
        sun = get_body("sun", times, loc)
        moon = get_body("moon", times, loc)
        sun_alt = np.asarray(sun.transform_to(frame).alt.deg, dtype=np.float64)
        moon_alt = np.asarray(moon.transform_to(frame).alt.deg, dtype=np.float64)
        moon_vec = np.asarray(moon.cartesian.xyz.value, dtype=np.float64).T
        moon_dist = np.linalg.norm(moon_vec, axis=1)
        moon_vec = moon_vec / moon_dist[:, None]
        sun_vec = np.asarray(sun.cartesian.xyz.value, dtype=np.float64).T
        sun_dist = np.linalg.norm(sun_vec, axis=1)
        # Phase angle from elongation and distances (Meeus, Astronomical Algorithms, 48.2-48.3).
        cos_elong = np.clip(np.einsum("ij,ij->i", sun_vec, moon_vec) / sun_dist, -1.0, 1.0)
        elong = np.arccos(cos_elong)
        phase = np.arctan2(sun_dist * np.sin(elong), moon_dist - sun_dist * np.cos(elong))
        illum = (1.0 + np.cos(phase)) / 2.0
    return {"sun_alt": sun_alt, "moon_alt": moon_alt, "moon_vec": moon_vec, "moon_illum": illum}


def targets_altaz(
    site: Site, ra: FloatArray, dec: FloatArray, unix: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Altitude and azimuth (degrees, azimuth from north through east) of J2000 targets.

    ``ra``/``dec`` have shape (k,), ``unix`` shape (n,); results have shape (k, n): one
    broadcast transform, so ten targets cost little more than one.
    """
    loc = earth_location(site)
    with quiet():
        times = _times(unix)
        coords = SkyCoord(
            ra=np.asarray(ra)[:, None] * u.deg, dec=np.asarray(dec)[:, None] * u.deg, frame="icrs"
        )
        altaz = coords.transform_to(AltAz(obstime=times[None, :], location=loc))
        return (
            np.asarray(altaz.alt.deg, dtype=np.float64),
            np.asarray(altaz.az.deg, dtype=np.float64),
        )


def hour_angle(latitude: float, alt: FloatArray, az: FloatArray) -> FloatArray:
    """Local hour angle in hours (−12, 12], negative east of the meridian, from alt/az.

    Derived from the topocentric alt/az rather than from sidereal time minus RA, so that it
    includes precession, nutation and aberration exactly as the altitude does.
    """
    phi = np.radians(latitude)
    h = np.radians(alt)
    a = np.radians(az)
    ha = np.degrees(
        np.arctan2(
            -np.sin(a) * np.cos(h), np.cos(phi) * np.sin(h) - np.sin(phi) * np.cos(h) * np.cos(a)
        )
    )
    return np.asarray(ha / 15.0, dtype=np.float64)


def unit_vectors(ra: FloatArray, dec: FloatArray) -> FloatArray:
    """ICRS unit vectors, shape (k, 3), of J2000 RA/Dec in degrees."""
    r = np.radians(np.asarray(ra, dtype=np.float64))
    d = np.radians(np.asarray(dec, dtype=np.float64))
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)
