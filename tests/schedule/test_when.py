"""When nights start: twilight edges computed per night at the plan's site, checked against
astropy's Sun, in the site's zone across DST; no start where the twilight never comes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, EarthLocation, get_body
from astropy.time import Time

from runner.plan.models import Site
from runner.schedule.when import StartSpecError, parse_at

SYDNEY = Site(latitude=-33.87, longitude=151.21, elevation=40, timezone="Australia/Sydney")
TROMSO = Site(latitude=69.65, longitude=18.96, elevation=10, timezone="Europe/Oslo")
AMSTERDAM = Site(latitude=52.37, longitude=4.89, elevation=5, timezone="Europe/Amsterdam")


def sun_alt(site: Site, t: datetime) -> float:
    """The Sun's geometric altitude straight from astropy (the reference)."""
    loc = EarthLocation.from_geodetic(site.longitude * u.deg, site.latitude * u.deg,
                                      site.elevation * u.m)
    when = Time(t)
    return float(get_body("sun", when, loc).transform_to(AltAz(obstime=when, location=loc))
                 .alt.deg)


@pytest.mark.parametrize(("site", "night", "at", "altitude"), [
    (SYDNEY, date(2026, 6, 21), "dusk", -18.0),          # southern winter
    (SYDNEY, date(2026, 12, 21), "nautical-dusk", -12.0),  # southern summer, DST (+11)
    (TROMSO, date(2026, 12, 21), "civil-dawn", -6.0),     # polar night: the Sun stays low
    (AMSTERDAM, date(2026, 3, 28), "dusk", -18.0),
])
def test_twilight_starts_are_where_astropy_puts_the_sun(
        site: Site, night: date, at: str, altitude: float) -> None:
    s = parse_at(at).start_for(site, night)
    assert s.when is not None and s.when.tzinfo == ZoneInfo(site.timezone or "UTC")
    assert abs(sun_alt(site, s.when) - altitude) < 0.05  # ~10 s of the Sun's motion
    # the right side of the crossing: dusk goes down, dawn comes up
    later = sun_alt(site, s.when + timedelta(minutes=10))
    assert (later < altitude) if "dusk" in at else (later > altitude)


def test_offsets_and_dst_follow_the_site_zone() -> None:
    before = parse_at("dusk+30m").start_for(AMSTERDAM, date(2026, 3, 28)).when
    after = parse_at("dusk+30m").start_for(AMSTERDAM, date(2026, 3, 29)).when
    dusk = parse_at("dusk").start_for(AMSTERDAM, date(2026, 3, 28)).when
    assert before is not None and after is not None and dusk is not None
    assert before - dusk == timedelta(minutes=30)
    assert before.utcoffset() == timedelta(hours=1) and after.utcoffset() == timedelta(hours=2)
    # a clock time stays on the wall clock across the change; one skipped by it moves on
    nine = [parse_at("21:00").start_for(AMSTERDAM, date(2026, 3, d)).when for d in (28, 29)]
    assert [t.strftime("%H:%M %z") for t in nine if t] == ["21:00 +0100", "21:00 +0200"]
    gap = parse_at("02:30").start_for(AMSTERDAM, date(2026, 3, 28)).when
    assert gap is not None and gap.strftime("%Y-%m-%d %H:%M %z") == "2026-03-29 03:30 +0200"
    # dawn-2h of a night is the next morning, before that dawn
    dawn = parse_at("dawn").start_for(SYDNEY, date(2026, 6, 21)).when
    early = parse_at("dawn-2h").start_for(SYDNEY, date(2026, 6, 21)).when
    assert dawn is not None and early is not None and dawn - early == timedelta(hours=2)
    assert early.date() == date(2026, 6, 22)


def test_no_night_tonight_at_high_latitude_in_june() -> None:
    s = parse_at("dusk").start_for(TROMSO, date(2026, 6, 21))
    assert s.when is None and s.reason.startswith("no night tonight")
    # astropy agrees: the Sun never goes below −18° that night
    noon = datetime(2026, 6, 21, 12, tzinfo=ZoneInfo("Europe/Oslo"))
    lowest = min(sun_alt(TROMSO, noon + timedelta(minutes=m)) for m in range(600, 840, 10))
    assert lowest > -18
    # the next start is the first night that has one: mid-September at 69.65° N
    nxt = parse_at("dusk").next_start(TROMSO, noon)
    assert nxt is not None and nxt.when is not None
    assert date(2026, 9, 1) < nxt.night < date(2026, 9, 30)
    assert abs(sun_alt(TROMSO, nxt.when) + 18) < 0.05


def test_cron_expressions_and_days() -> None:
    spec = parse_at("30 21 * * 1-5")
    tz = ZoneInfo("Europe/Amsterdam")
    got = [s.when for s in spec.starts(AMSTERDAM, date(2026, 11, 27), 4)]  # Fri … Mon
    assert got[0] == datetime(2026, 11, 27, 21, 30, tzinfo=tz)
    assert got[1] is None and got[2] is None
    assert got[3] == datetime(2026, 11, 30, 21, 30, tzinfo=tz)
    weekdays = parse_at("dusk", "mon,wed-thu")
    assert weekdays.days == (0, 2, 3)
    assert [s.when is not None for s in weekdays.starts(AMSTERDAM, date(2026, 11, 30), 7)] == \
        [True, False, True, True, False, False, False]
    for bad in ("dusk+", "sunset", "25:00", "* * *", "0 99 * * *"):
        with pytest.raises(StartSpecError):
            parse_at(bad)
    with pytest.raises(StartSpecError, match="mon,tue"):
        parse_at("dusk", "someday")
    assert np.isfinite(sun_alt(AMSTERDAM, datetime(2026, 1, 1, tzinfo=tz)))
