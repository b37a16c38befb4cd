"""When a night starts: ``--at dusk|dusk+30m|dawn-2h|nautical-dusk|HH:MM|"cron expr"``.

A start is computed for one *night* (the date whose evening begins it, as in
:mod:`runner.sky.timeutil`), at the plan's site, in the site's zone, from the Sun's altitude
that night (astropy, offline, through :mod:`runner.sky`). A twilight start therefore moves
with the seasons and across DST changes by itself; a night in which the Sun never reaches
the altitude (astronomical dusk at 69°N in June) has *no* start, with a reason, never a start
in daylight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from runner.plan.models import Site
from runner.sky.timeutil import night_of, site_timezone

#: Sun altitudes (degrees) of the named twilights: ``dusk`` alone is astronomical.
TWILIGHTS = {"": -18.0, "astronomical": -18.0, "nautical": -12.0, "civil": -6.0}

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_TWILIGHT_RE = re.compile(
    r"^(?:(?P<kind>astronomical|nautical|civil)-)?(?P<edge>dusk|dawn)"
    r"(?:(?P<sign>[+-])(?P<num>\d+(?:\.\d+)?)(?P<unit>s|m|min|h))?$"
)
_CLOCK_RE = re.compile(r"^(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?$")
_UNIT_S = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


class StartSpecError(ValueError):
    """An ``--at`` or ``--days`` value that cannot be understood."""


@dataclass(frozen=True)
class NightStart:
    """The start of one night, or why that night has none (``when is None``)."""

    night: date
    when: datetime | None
    reason: str = ""


@dataclass(frozen=True)
class StartSpec:
    """A parsed ``--at``: a twilight edge with an offset, a clock time, or a cron expression."""

    text: str
    kind: str  # twilight | clock | cron
    altitude: float = -18.0
    edge: str = "dusk"  # dusk | dawn
    offset_s: float = 0.0
    clock: time | None = None
    days: tuple[int, ...] = ()  # weekdays (0 = Monday) of the night's evening; () = every night

    @property
    def dark_altitude(self) -> float:
        """The Sun altitude below which a late start still makes sense (see ``late_ok``)."""
        return self.altitude if self.kind == "twilight" else -0.833

    def start_for(self, site: Site, night: date) -> NightStart:
        """This spec's start in the night that begins on the evening of ``night``."""
        if self.days and night.weekday() not in self.days:
            return NightStart(night, None, f"not a scheduled day ({WEEKDAYS[night.weekday()]})")
        tz = site_timezone(site)
        if self.kind == "clock":
            assert self.clock is not None
            day = night if self.clock >= time(12, 0) else night + timedelta(days=1)
            return NightStart(night, _wall(day, self.clock, tz))
        if self.kind == "cron":
            return _cron_start(self.text, night, tz)
        from runner.sky.events import night_events

        ev = night_events(site, night)
        crossing = next(c for c in (ev.civil, ev.nautical, ev.astronomical)
                        if c.altitude == self.altitude)
        edge = crossing.dusk if self.edge == "dusk" else crossing.dawn
        if edge is None:
            what = "never sets below" if not crossing.always_below else "never rises above"
            return NightStart(night, None, f"no night tonight: the Sun {what} "
                              f"{self.altitude:g}° at this site on {night.isoformat()}")
        return NightStart(night, (edge + timedelta(seconds=self.offset_s)).astimezone(tz))

    def next_start(self, site: Site, after: datetime, *, horizon_days: int = 400,
                   strictly: bool = False) -> NightStart | None:
        """The first start at or after ``after`` (strictly after with ``strictly``), searching
        night by night from the night that contains ``after``; ``None`` within the horizon."""
        tz = site_timezone(site)
        night = night_of(after, tz) - timedelta(days=1)  # a dawn-2h start of last night
        for _ in range(horizon_days + 2):
            s = self.start_for(site, night)
            if s.when is not None and (s.when > after or (not strictly and s.when == after)):
                return s
            night += timedelta(days=1)
        return None

    def starts(self, site: Site, first: date, nights: int) -> list[NightStart]:
        return [self.start_for(site, first + timedelta(days=i)) for i in range(nights)]


def parse_at(text: str, days: str | None = None) -> StartSpec:
    """Parse ``--at`` (and ``--days mon,wed,fri`` / ``mon-fri``); raises StartSpecError."""
    raw = text.strip()
    at = raw.lower()
    wd = parse_days(days)
    m = _TWILIGHT_RE.match(at)
    if m:
        off = 0.0
        if m["num"]:
            off = float(m["num"]) * _UNIT_S[m["unit"]] * (-1 if m["sign"] == "-" else 1)
        return StartSpec(raw, "twilight", altitude=TWILIGHTS[m["kind"] or ""], edge=m["edge"],
                         offset_s=off, days=wd)
    m = _CLOCK_RE.match(at)
    if m:
        clock = time(int(m["h"]), int(m["m"]), int(m["s"] or 0))
        return StartSpec(raw, "clock", clock=clock, days=wd)
    if len(at.split()) == 5:
        _cron_trigger(raw, UTC)  # raises on a bad expression
        return StartSpec(raw, "cron", days=wd)
    raise StartSpecError(
        f"--at {text!r}: expected dusk, dawn, [civil-|nautical-|astronomical-]dusk/dawn with an "
        "optional offset (dusk+30m, dawn-2h), a clock time HH:MM[:SS], or a cron expression of "
        "five fields ('0 21 * * *')")


def parse_days(days: str | None) -> tuple[int, ...]:
    if not days:
        return ()
    out: set[int] = set()
    for part in days.lower().replace(" ", "").split(","):
        lo, _, hi = part.partition("-")
        try:
            a = WEEKDAYS.index(lo[:3])
            b = WEEKDAYS.index(hi[:3]) if hi else a
        except ValueError:
            raise StartSpecError(f"--days {days!r}: use mon,tue,…,sun or a range like mon-fri "
                                 f"(not {part!r})") from None
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return tuple(sorted(out))


def late_ok(spec: StartSpec, site: Site, planned: datetime, now: datetime,
            grace_s: float) -> str | None:
    """Why a start planned for ``planned`` must not be made at ``now`` (``None``: start it).

    A missed start (the machine was off) runs once, late, while its night still has dark
    left: within ``grace_s`` and only while the Sun is still below the spec's altitude (the
    Sun's altitude, not the clock, says "daylight")."""
    late = (now - planned).total_seconds()
    if late > grace_s:
        return f"missed by {late / 3600:.1f} h (more than the {grace_s / 3600:g} h grace)"
    if late > 60.0 and not still_dark(spec, site, now):
        return (f"missed by {late / 3600:.1f} h and the Sun is above "
                f"{spec.dark_altitude:g}°: no night is started in daylight")
    return None


def sun_altitude_at(site: Site, t: datetime) -> float:
    import numpy as np

    from runner.sky.ephemeris import sun_altitude

    return float(sun_altitude(site, np.array([t.timestamp()]))[0])


def still_dark(spec: StartSpec, site: Site, now: datetime) -> bool:
    """The Sun is below the altitude the spec starts at (sunset for clock and cron starts)."""
    return sun_altitude_at(site, now) < spec.dark_altitude


def dawn_after(spec: StartSpec, site: Site, planned: datetime) -> datetime | None:
    """The dawn that ends the night a start belongs to (at the spec's twilight; astronomical
    for clock and cron starts), for ``--until-dawn``."""
    from runner.sky.events import night_events

    ev = night_events(site, night_of(planned, site_timezone(site)))
    alt = spec.altitude if spec.kind == "twilight" else TWILIGHTS["astronomical"]
    crossing = next(c for c in (ev.civil, ev.nautical, ev.astronomical) if c.altitude == alt)
    return crossing.dawn


def _wall(day: date, clock: time, tz: tzinfo) -> datetime:
    """Wall time ``clock`` on ``day`` in ``tz``: a time skipped by a DST jump moves forward by
    the jump, a repeated one means its first occurrence (as cron does)."""
    # fold=0 reads a wall time in a gap with the offset before the jump, which lands the
    # instant the jump's length later (02:30 → 03:30 CEST); the round trip through UTC
    # turns it into a wall time that exists
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC).astimezone(tz)


_CRON_DOW = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cron_trigger(expr: str, tz: tzinfo) -> Any:
    """APScheduler's trigger for a standard crontab expression. APScheduler 3 reads a
    numeric day of week as 0 = Monday; crontab's 0 (and 7) is Sunday: numbers in that field
    are turned into names first, so ``1-5`` means Monday to Friday as in crontab(5)."""
    from apscheduler.triggers.cron import CronTrigger

    minute, hour, dom, month, dow = expr.split()
    dow = re.sub(r"(?<!/)\d+", lambda m: _CRON_DOW[int(m[0])] if int(m[0]) < 8 else m[0], dow)
    try:
        return CronTrigger(minute=minute, hour=hour, day=dom, month=month, day_of_week=dow,
                           timezone=tz)
    except ValueError as exc:
        raise StartSpecError(f"--at {expr!r}: not a cron expression ({exc})") from None


def _cron_start(expr: str, night: date, tz: tzinfo) -> NightStart:
    """The first cron time in the night of ``night`` (local noon to noon)."""
    from runner.sky.timeutil import local_noon

    start = local_noon(night, tz)
    trig = _cron_trigger(expr, tz)
    when = trig.get_next_fire_time(None, start)
    if when is None or when >= local_noon(night + timedelta(days=1), tz):
        return NightStart(night, None, f"{expr!r} has no time in this night")
    return NightStart(night, when.astimezone(UTC).astimezone(tz))
