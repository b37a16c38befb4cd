"""Target, Moon and hour angle from astropy against independent textbook formulas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from skyref import moon_illumination, star_altitude, star_hour_angle
from skysites import AMSTERDAM, NOON, VEGA

from runner.sky import ephemeris
from runner.sky.grid import SkySegment, airmass, segment
from runner.sky.timeutil import to_unix

TIMES = [datetime(2026, 11, 25, 15, tzinfo=UTC) + timedelta(minutes=53 * k) for k in range(20)]
UNIX = np.array([to_unix(t) for t in TIMES])


def test_star_altitude_matches_precession_and_sidereal_time() -> None:
    alt, _ = ephemeris.targets_altaz(AMSTERDAM, np.array([VEGA[0]]), np.array([VEGA[1]]), UNIX)
    ref = [star_altitude(*VEGA, t, AMSTERDAM.latitude, AMSTERDAM.longitude) for t in TIMES]
    np.testing.assert_allclose(alt[0], ref, atol=0.02)


def test_hour_angle_matches_sidereal_time_minus_ra() -> None:
    alt, az = ephemeris.targets_altaz(AMSTERDAM, np.array([VEGA[0]]), np.array([VEGA[1]]), UNIX)
    ha = ephemeris.hour_angle(AMSTERDAM.latitude, alt[0], az[0])
    ref = np.array([star_hour_angle(*VEGA, t, AMSTERDAM.longitude) for t in TIMES])
    diff = (ha - ref + 12) % 24 - 12
    assert np.abs(diff).max() < 0.005  # 18 s of time: nutation and aberration left out of ref


def test_grid_interpolation_stays_close_to_exact_values() -> None:
    seg = segment(AMSTERDAM, to_unix(NOON))
    track = seg.track(*VEGA)
    probe = to_unix(NOON) + np.array([3_333.0, 20_000.0, 41_234.5, 70_001.0])
    exact_alt, _ = ephemeris.targets_altaz(
        AMSTERDAM, np.array([VEGA[0]]), np.array([VEGA[1]]), probe
    )
    np.testing.assert_allclose(track.at("alt", probe), exact_alt[0], atol=0.01)
    exact = ephemeris.bodies(AMSTERDAM, probe)
    np.testing.assert_allclose(track.at("sun_alt", probe), exact["sun_alt"], atol=0.02)
    np.testing.assert_allclose(track.at("moon_alt", probe), exact["moon_alt"], atol=0.05)
    np.testing.assert_allclose(track.at("moon_illum", probe), exact["moon_illum"], atol=0.002)


def test_moon_separation_agrees_with_astropy_separation_in_altaz() -> None:
    from astropy import units as u
    from astropy.coordinates import AltAz, SkyCoord, get_body
    from astropy.time import Time

    seg = segment(AMSTERDAM, to_unix(NOON))
    m31 = (10.684708, 41.26875)
    track = seg.track(*m31)
    probe = to_unix(NOON) + np.array([10_000.0, 30_000.0, 50_000.0])
    t = Time(probe, format="unix")
    loc = ephemeris.earth_location(AMSTERDAM)
    frame = AltAz(obstime=t, location=loc)
    target = SkyCoord(m31[0] * u.deg, m31[1] * u.deg).transform_to(frame)
    moon = get_body("moon", t, loc).transform_to(frame)
    np.testing.assert_allclose(
        track.at("moon_separation", probe), target.separation(moon).deg, atol=0.05
    )


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 3, 3, 11, 33, tzinfo=UTC),  # total lunar eclipse: full
        datetime(2026, 8, 12, 17, 46, tzinfo=UTC),  # total solar eclipse: new
        datetime(2026, 11, 20, 3, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 21, 0, tzinfo=UTC),
    ],
)
def test_moon_illumination_matches_meeus(when: datetime) -> None:
    illum = ephemeris.bodies(AMSTERDAM, np.array([to_unix(when)]))["moon_illum"][0]
    assert illum == pytest.approx(moon_illumination(when), abs=0.015)


def test_eclipses_are_full_and_new_moons() -> None:
    full = ephemeris.bodies(
        AMSTERDAM, np.array([to_unix(datetime(2026, 3, 3, 11, 33, tzinfo=UTC))])
    )
    new = ephemeris.bodies(
        AMSTERDAM, np.array([to_unix(datetime(2026, 8, 12, 17, 46, tzinfo=UTC))])
    )
    assert full["moon_illum"][0] > 0.99
    assert new["moon_illum"][0] < 0.01


def test_airmass_is_secant_of_zenith_distance_and_infinite_below_the_horizon() -> None:
    np.testing.assert_allclose(airmass(np.array([90.0, 30.0])), [1.0, 2.0])
    assert np.isinf(airmass(np.array([0.0, -5.0]))).all()


def test_several_targets_in_one_call_equal_one_at_a_time() -> None:
    seg = SkySegment(AMSTERDAM, to_unix(NOON), step=600.0)
    both = seg.tracks([VEGA, (83.82, -5.39)])
    single = SkySegment(AMSTERDAM, to_unix(NOON), step=600.0).track(83.82, -5.39)
    np.testing.assert_allclose(both[1].alt, single.alt, atol=1e-9)
    assert seg.track(*VEGA) is both[0]  # cached
