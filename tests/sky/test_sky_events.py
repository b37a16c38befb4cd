"""Sunset, twilight and sunrise: compared with the NOAA Solar Calculator, an independent
low-precision series, to the minute or two that published tables round to."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from skyref import noaa_event, noaa_sun_altitude
from skysites import AMSTERDAM, NIGHT, SYDNEY, TROMSO

from runner.plan.models import Site, Twilight
from runner.sky.ephemeris import sun_altitude
from runner.sky.events import dusk_at, night_events
from runner.sky.timeutil import to_unix

TOLERANCE = timedelta(minutes=2)

ZENITH = {"sunset": 90.833, "civil": 96.0, "nautical": 102.0, "astronomical": 108.0}


@pytest.mark.parametrize(("site", "day"), [(AMSTERDAM, NIGHT), (SYDNEY, date(2026, 1, 15))])
@pytest.mark.parametrize("which", ["sunset", "civil", "nautical", "astronomical"])
def test_dusk_and_dawn_match_the_noaa_calculator(site: Site, day: date, which: str) -> None:
    ev = night_events(site, day)
    crossing = ev.sunset if which == "sunset" else ev.twilight(Twilight(which))
    assert crossing.dusk is not None and crossing.dawn is not None
    lat, lon = site.latitude, site.longitude
    ref_dusk = noaa_event(crossing.dusk, lat, lon, ZENITH[which], rising=False)
    ref_dawn = noaa_event(crossing.dawn, lat, lon, ZENITH[which], rising=True)
    assert abs(crossing.dusk - ref_dusk) < TOLERANCE
    assert abs(crossing.dawn - ref_dawn) < TOLERANCE


def test_events_come_in_the_order_of_a_night() -> None:
    ev = night_events(AMSTERDAM, NIGHT)
    order = [
        ev.start,
        ev.sunset.dusk,
        ev.civil.dusk,
        ev.nautical.dusk,
        ev.astronomical.dusk,
        ev.astronomical.dawn,
        ev.nautical.dawn,
        ev.civil.dawn,
        ev.sunset.dawn,
        ev.end,
    ]
    assert all(a is not None for a in order)
    assert order == sorted(order)  # type: ignore[type-var]
    # Reported in the site's zone; the Amsterdam sunset in late November is about 16:36 CET.
    assert ev.sunset.dusk is not None
    assert ev.sunset.dusk.utcoffset() == timedelta(hours=1)
    assert ev.sunset.dusk.strftime("%H:%M") in {"16:35", "16:36", "16:37"}


def test_sun_altitude_at_the_found_instants_is_the_limit() -> None:
    ev = night_events(AMSTERDAM, NIGHT)
    for c in (ev.sunset, ev.civil, ev.nautical, ev.astronomical):
        assert c.dusk is not None and c.dawn is not None
        alt = sun_altitude(AMSTERDAM, np.array([to_unix(c.dusk), to_unix(c.dawn)]))
        np.testing.assert_allclose(alt, c.altitude, atol=0.01)


def test_sun_altitude_matches_noaa_through_a_day() -> None:
    t0 = datetime(2026, 11, 25, 6, tzinfo=UTC)
    times = [t0 + timedelta(minutes=37 * k) for k in range(40)]
    ours = sun_altitude(AMSTERDAM, np.array([to_unix(t) for t in times]))
    ref = [noaa_sun_altitude(t, AMSTERDAM.latitude, AMSTERDAM.longitude) for t in times]
    np.testing.assert_allclose(ours, ref, atol=0.05)


def test_midsummer_in_amsterdam_has_no_astronomical_darkness() -> None:
    ev = night_events(AMSTERDAM, date(2026, 6, 21))
    assert ev.sunset.dusk is not None and ev.nautical.dusk is not None
    assert ev.astronomical.dusk is None and ev.astronomical.dawn is None
    assert not ev.astronomical.always_below  # never dark enough, as opposed to polar night


def test_polar_day_and_polar_night() -> None:
    summer = night_events(TROMSO, date(2026, 6, 21))
    assert summer.sunset.dusk is None and summer.sunset.dawn is None
    assert not summer.sunset.always_below
    winter = night_events(TROMSO, date(2026, 12, 21))
    assert winter.sunset.dusk is None and winter.sunset.dawn is None
    assert winter.sunset.always_below


def test_dusk_at_an_arbitrary_sun_altitude_lies_between_the_twilights() -> None:
    ev = night_events(AMSTERDAM, NIGHT)
    dusk = dusk_at(AMSTERDAM, NIGHT, -9.0)
    assert dusk is not None and ev.civil.dusk is not None and ev.nautical.dusk is not None
    assert ev.civil.dusk < dusk < ev.nautical.dusk
    assert dusk_at(AMSTERDAM, NIGHT, -18.0) == ev.astronomical.dusk
    assert dusk_at(AMSTERDAM, date(2026, 6, 21), -18.0) is None


def test_moon_at_the_full_moon_of_the_march_2026_lunar_eclipse() -> None:
    # Total lunar eclipse, greatest at 2026-03-03 11:33 UTC: the night of March 2/3 in Sydney.
    ev = night_events(SYDNEY, date(2026, 3, 3))
    assert ev.moon_illumination > 0.97
