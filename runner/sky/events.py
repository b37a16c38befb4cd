"""Sunset, twilights and sunrise of a night: the frame the rest of a night hangs on.

A night is the span from local noon of its date to local noon of the next day, so an evening
and the following morning belong together and a night crossing midnight needs no dates. Times
are found on a 10-minute grid of exact Sun altitudes and refined by two rounds of
sub-division (to ~6 s) and a final linear interpolation — well under the minute or two that
published tables round to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache

import numpy as np

from runner.plan.models import Site, Twilight
from runner.sky import ephemeris
from runner.sky.constraints import TWILIGHT_ALTITUDE
from runner.sky.ephemeris import SUNSET_ALTITUDE, FloatArray
from runner.sky.timeutil import from_unix, local_noon, site_timezone, to_unix

_COARSE = 600.0
_SUBDIVISIONS = 10


@dataclass(frozen=True)
class Crossings:
    """When the Sun goes below (``dusk``) and comes back above (``dawn``) one altitude.

    ``None`` means it does not happen this night; ``always_below`` tells the two cases apart
    (polar night: always below; midnight sun / short summer nights: never below).
    """

    altitude: float
    dusk: datetime | None
    dawn: datetime | None
    always_below: bool


@dataclass(frozen=True)
class NightEvents:
    """Sun and Moon facts of the night that begins on ``date`` at the site."""

    date: date
    tz: tzinfo
    start: datetime
    end: datetime
    sunset: Crossings
    civil: Crossings
    nautical: Crossings
    astronomical: Crossings
    #: Illuminated fraction of the Moon and its altitude (degrees) at the middle of the night.
    moon_illumination: float
    moon_altitude: float
    midnight: datetime

    def twilight(self, twilight: Twilight | None) -> Crossings:
        """The crossings of a twilight (``None``: sunset/sunrise)."""
        if twilight is None:
            return self.sunset
        return {
            Twilight.civil: self.civil,
            Twilight.nautical: self.nautical,
            Twilight.astronomical: self.astronomical,
        }[twilight]


def _refine(site: Site, lo: FloatArray, hi: FloatArray, altitude: FloatArray) -> FloatArray:
    """Instants within each [lo, hi] where the Sun crosses ``altitude`` (one per bracket).

    All brackets of a night are refined together: astropy's cost is per call, not per point.
    """
    rows = np.arange(len(lo))
    for _ in range(2):
        frac = np.linspace(0.0, 1.0, _SUBDIVISIONS + 1)
        pts = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
        alt = ephemeris.sun_altitude(site, pts.ravel()).reshape(pts.shape) - altitude[:, None]
        sign = np.signbit(alt)
        idx = np.argmax(sign[:, 1:] != sign[:, :-1], axis=1)
        lo, hi = pts[rows, idx], pts[rows, idx + 1]
    a = ephemeris.sun_altitude(site, np.concatenate([lo, hi])) - np.concatenate([altitude] * 2)
    a_lo, a_hi = a[: len(lo)], a[len(lo) :]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(a_hi != a_lo, a_lo / (a_lo - a_hi), 0.5)
    return np.asarray(lo + np.clip(f, 0.0, 1.0) * (hi - lo), dtype=np.float64)


def _brackets(alt: FloatArray, altitude: float) -> tuple[int | None, int | None, bool]:
    """Grid indices where the Sun first goes below ``altitude`` and next comes back above."""
    below = alt < altitude
    down = np.nonzero(~below[:-1] & below[1:])[0]
    up = np.nonzero(below[:-1] & ~below[1:])[0]
    dusk_i = int(down[0]) if down.size else None
    dawn_cands = up[up > dusk_i] if dusk_i is not None else up
    dawn_i = int(dawn_cands[0]) if dawn_cands.size else None
    return dusk_i, dawn_i, bool(below.all())


@lru_cache(maxsize=256)
def dusk_at(site: Site, day: date, altitude: float) -> datetime | None:
    """When the Sun first goes below ``altitude`` degrees in the night of ``day`` (site-local);
    ``None`` if it does not (or is below it all night)."""
    ev = night_events(site, day)
    for c in (ev.sunset, ev.civil, ev.nautical, ev.astronomical):
        if c.altitude == altitude:
            return c.dusk
    tz = ev.tz
    t0, t1 = to_unix(ev.start), to_unix(ev.end)
    t = np.linspace(t0, t1, int(np.ceil((t1 - t0) / _COARSE)) + 1)
    alt = ephemeris.sun_altitude(site, t)
    d, _, _ = _brackets(alt, altitude)
    if d is None:
        return None
    value = _refine(site, t[[d]], t[[d + 1]], np.array([altitude]))[0]
    return from_unix(float(value), tz)


@lru_cache(maxsize=64)
def night_events(site: Site, day: date) -> NightEvents:
    """Sunset, twilights, sunrise and the Moon for the night beginning on ``day`` (site-local)."""
    tz = site_timezone(site)
    start = local_noon(day, tz)
    end = local_noon(day + timedelta(days=1), tz)
    t0, t1 = to_unix(start), to_unix(end)
    n = int(np.ceil((t1 - t0) / _COARSE))
    t = np.linspace(t0, t1, n + 1)
    alt = ephemeris.sun_altitude(site, t)
    limits: dict[Twilight | None, float] = {None: SUNSET_ALTITUDE}
    limits.update({tw: TWILIGHT_ALTITUDE[tw] for tw in Twilight})
    found = {key: _brackets(alt, a) for key, a in limits.items()}
    wanted = [(key, i) for key, (d, w, _) in found.items() for i in (d, w) if i is not None]
    refined: dict[tuple[Twilight | None, int], datetime] = {}
    if wanted:
        idx = np.array([i for _, i in wanted])
        lims = np.array([limits[key] for key, _ in wanted])
        values = _refine(site, t[idx], t[idx + 1], lims)
        refined = {w: from_unix(v, tz) for w, v in zip(wanted, values, strict=True)}

    def crossings(key: Twilight | None) -> Crossings:
        d, w, always = found[key]
        return Crossings(
            altitude=limits[key],
            dusk=None if d is None else refined[(key, d)],
            dawn=None if w is None else refined[(key, w)],
            always_below=always,
        )

    sunset = crossings(None)
    cross = {tw: crossings(tw) for tw in Twilight}
    if sunset.dusk is not None and sunset.dawn is not None:
        mid = sunset.dusk + (sunset.dawn - sunset.dusk) / 2
    else:
        mid = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    moon = ephemeris.bodies(site, np.array([to_unix(mid)]))
    return NightEvents(
        date=day,
        tz=tz,
        start=start,
        end=end,
        sunset=sunset,
        civil=cross[Twilight.civil],
        nautical=cross[Twilight.nautical],
        astronomical=cross[Twilight.astronomical],
        moon_illumination=float(moon["moon_illum"][0]),
        moon_altitude=float(moon["moon_alt"][0]),
        midnight=mid.astimezone(tz),
    )
