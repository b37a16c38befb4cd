"""Instants, site time zones and nights — plain Python, no astropy.

Everything in :mod:`runner.sky` keeps time as POSIX seconds (``float``, UTC) so that numpy can
interpolate it; these helpers convert at the boundary and refuse naive datetimes, which would
silently mean "the machine's zone" and shift a whole night by hours.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runner.plan.models import Site


class SiteTimezoneError(ValueError):
    """The site's ``timezone`` is not a known IANA zone name."""


def _machine_zone() -> tzinfo:
    """The machine's zone as a ZoneInfo when it can be named (so DST is right), else its offset."""
    key = os.environ.get("TZ", "").lstrip(":")
    if key:
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        marker = "zoneinfo/"
        if marker in target:
            try:
                return ZoneInfo(target.split(marker, 1)[1])
            except (ZoneInfoNotFoundError, ValueError):
                pass
    tz = datetime.now().astimezone().tzinfo
    return tz if tz is not None else UTC


def site_timezone(site: Site) -> tzinfo:
    """The zone that clock times in a plan refer to (the machine's when the site names none)."""
    if site.timezone is None:
        return _machine_zone()
    try:
        return ZoneInfo(site.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SiteTimezoneError(
            f"unknown time zone '{site.timezone}': use an IANA name such as Europe/Amsterdam"
        ) from exc


def require_aware(t: datetime, what: str = "time") -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} {t.isoformat()} has no time zone: pass an aware datetime")
    return t


def to_unix(t: datetime) -> float:
    return require_aware(t).timestamp()


def from_unix(seconds: float, tz: tzinfo = UTC) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=tz)


def local_noon(day: date, tz: tzinfo) -> datetime:
    """Noon of ``day`` at the site: the boundary between one night and the next."""
    return datetime.combine(day, time(12, 0), tzinfo=tz)


def night_start(t: datetime, tz: tzinfo) -> datetime:
    """Local noon opening the night that contains ``t``: the instant every clock time of a plan
    (constraint windows, ``wait: until``, ``repeat: until: time``) resolves after.

    For a run that starts in the evening this is the same as SEMANTICS' "next occurrence after
    the run starts"; unlike the run's own start it stays put when a run is resumed after
    midnight, so a window that closed at 02:30 is still closed at 03:00.
    """
    return local_noon(night_of(t, tz), tz)


def night_of(t: datetime, tz: tzinfo) -> date:
    """The date whose evening begins the night containing ``t`` (before noon: the day before)."""
    local = require_aware(t).astimezone(tz)
    return (local - timedelta(hours=12)).date()


def hhmm(t: datetime | None, tz: tzinfo) -> str:
    """Site-local wall time for messages ('02:30'); '—' when there is no such instant."""
    return "—" if t is None else t.astimezone(tz).strftime("%H:%M")
