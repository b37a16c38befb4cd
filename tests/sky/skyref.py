"""Independent references for the sky tests: textbook formulas, no astropy.

* Sun: the NOAA Solar Calculator (Meeus-based low-precision series; ~1 min in event times).
* Fixed stars: GMST (IAU 1982), rigorous precession J2000 → date (Meeus, Astronomical
  Algorithms ch. 21), altitude from spherical trigonometry; nutation and aberration ignored
  (≤ 0.01°).
* Moon: illuminated fraction from Meeus ch. 48 (eq. 48.4), geocentric.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta


def julian_day(t: datetime) -> float:
    return t.astimezone(UTC).timestamp() / 86400.0 + 2440587.5


def _centuries(t: datetime) -> float:
    return (julian_day(t) - 2451545.0) / 36525.0


def noaa_sun(t: datetime) -> tuple[float, float]:
    """(declination °, equation of time minutes) at instant ``t`` (NOAA spreadsheet)."""
    jc = _centuries(t)
    l0 = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360
    m = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    mr = math.radians(m)
    c = (
        math.sin(mr) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + math.sin(2 * mr) * (0.019993 - 0.000101 * jc)
        + math.sin(3 * mr) * 0.000289
    )
    omega = math.radians(125.04 - 1934.136 * jc)
    app_long = math.radians(l0 + c - 0.00569 - 0.00478 * math.sin(omega))
    mean_obliq = 23 + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60
    obliq = math.radians(mean_obliq + 0.00256 * math.cos(omega))
    decl = math.degrees(math.asin(math.sin(obliq) * math.sin(app_long)))
    y = math.tan(obliq / 2) ** 2
    l0r = math.radians(l0)
    eqt = 4 * math.degrees(
        y * math.sin(2 * l0r)
        - 2 * e * math.sin(mr)
        + 4 * e * y * math.sin(mr) * math.cos(2 * l0r)
        - 0.5 * y * y * math.sin(4 * l0r)
        - 1.25 * e * e * math.sin(2 * mr)
    )
    return decl, eqt


def noaa_sun_altitude(t: datetime, lat: float, lon: float) -> float:
    """Geometric altitude of the Sun's centre, degrees (no refraction)."""
    decl, eqt = noaa_sun(t)
    u = t.astimezone(UTC)
    minutes = u.hour * 60 + u.minute + u.second / 60 + u.microsecond / 6e7
    true_solar = (minutes + eqt + 4 * lon) % 1440
    ha = true_solar / 4 - 180
    phi, d, h = math.radians(lat), math.radians(decl), math.radians(ha)
    return math.degrees(
        math.asin(math.sin(phi) * math.sin(d) + math.cos(phi) * math.cos(d) * math.cos(h))
    )


def noaa_event(near: datetime, lat: float, lon: float, zenith: float, rising: bool) -> datetime:
    """The sunrise/sunset (zenith 90.833°) or twilight (96°, 102°, 108°) closest to ``near``.

    Iterated so that declination and equation of time are taken at the event itself.
    """
    t = near.astimezone(UTC)
    for _ in range(3):
        decl, eqt = noaa_sun(t)
        phi, d = math.radians(lat), math.radians(decl)
        cos_ha = math.cos(math.radians(zenith)) / (math.cos(phi) * math.cos(d)) - math.tan(
            phi
        ) * math.tan(d)
        ha = math.degrees(math.acos(cos_ha))
        noon_min = 720 - 4 * lon - eqt
        event_min = noon_min - 4 * ha if rising else noon_min + 4 * ha
        midnight = datetime(t.year, t.month, t.day, tzinfo=UTC)
        event = midnight + timedelta(minutes=event_min)
        days = round((near - event).total_seconds() / 86400)
        t = event + timedelta(days=days)
    return t


def gmst_degrees(t: datetime) -> float:
    """Greenwich mean sidereal time (IAU 1982), degrees."""
    jd = julian_day(t)
    tc = (jd - 2451545.0) / 36525.0
    g = 280.46061837 + 360.98564736629 * (jd - 2451545.0) + 0.000387933 * tc * tc
    g -= tc**3 / 38710000.0
    return g % 360.0


def precess(ra: float, dec: float, t: datetime) -> tuple[float, float]:
    """J2000 → mean equinox of date (Meeus 21.2–21.4), degrees."""
    tc = _centuries(t)
    arc = 1 / 3600
    zeta = (2306.2181 * tc + 0.30188 * tc**2 + 0.017998 * tc**3) * arc
    z = (2306.2181 * tc + 1.09468 * tc**2 + 0.018203 * tc**3) * arc
    theta = (2004.3109 * tc - 0.42665 * tc**2 - 0.041833 * tc**3) * arc
    a, d = math.radians(ra), math.radians(dec)
    zr, zz, th = math.radians(zeta), math.radians(z), math.radians(theta)
    aa = math.cos(d) * math.sin(a + zr)
    bb = math.cos(th) * math.cos(d) * math.cos(a + zr) - math.sin(th) * math.sin(d)
    cc = math.sin(th) * math.cos(d) * math.cos(a + zr) + math.cos(th) * math.sin(d)
    ra_d = (math.degrees(math.atan2(aa, bb)) + math.degrees(zz)) % 360
    dec_d = math.degrees(math.asin(cc))
    return ra_d, dec_d


def star_hour_angle(ra: float, dec: float, t: datetime, lon: float) -> float:
    """Local hour angle, hours in (−12, 12]."""
    ra_d, _ = precess(ra, dec, t)
    ha = (gmst_degrees(t) + lon - ra_d) % 360
    if ha > 180:
        ha -= 360
    return ha / 15


def star_altitude(ra: float, dec: float, t: datetime, lat: float, lon: float) -> float:
    """Geometric altitude of a J2000 star, degrees."""
    _, dec_d = precess(ra, dec, t)
    h = math.radians(star_hour_angle(ra, dec, t, lon) * 15)
    phi, d = math.radians(lat), math.radians(dec_d)
    return math.degrees(
        math.asin(math.sin(phi) * math.sin(d) + math.cos(phi) * math.cos(d) * math.cos(h))
    )


def moon_illumination(t: datetime) -> float:
    """Illuminated fraction of the Moon (Meeus eq. 48.4 with 47.2–47.4), geocentric."""
    tc = _centuries(t)
    d = 297.8501921 + 445267.1114034 * tc - 0.0018819 * tc**2
    m = 357.5291092 + 35999.0502909 * tc - 0.0001536 * tc**2
    mp = 134.9633964 + 477198.8675055 * tc + 0.0087414 * tc**2
    r = math.radians
    i = (
        180
        - d
        - 6.289 * math.sin(r(mp))
        + 2.100 * math.sin(r(m))
        - 1.274 * math.sin(r(2 * d - mp))
        - 0.658 * math.sin(r(2 * d))
        - 0.214 * math.sin(r(2 * mp))
        - 0.110 * math.sin(r(d))
    )
    return (1 + math.cos(r(i))) / 2
