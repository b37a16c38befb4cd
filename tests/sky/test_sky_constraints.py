"""Every constraint through one shared shape test, then each against an independent value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from skyref import noaa_sun_altitude, star_altitude
from skysites import AMS_TZ, AMSTERDAM, NOON, VEGA

from runner.plan.models import Constraints, Twilight
from runner.plan.units import parse_clock_time
from runner.sky.constraints import (
    AirmassConstraint,
    AltitudeConstraint,
    Constraint,
    MoonIlluminationConstraint,
    MoonSeparationConstraint,
    SunAltitudeConstraint,
    TimeWindowConstraint,
    constraints_for,
)
from runner.sky.grid import TargetTrack, segment
from runner.sky.timeutil import to_unix

EVENING = [NOON + timedelta(hours=h) for h in (5.0, 8.5, 11.0, 14.25, 17.0)]


@pytest.fixture(scope="module")
def vega() -> TargetTrack:
    return segment(AMSTERDAM, to_unix(NOON)).track(*VEGA)


ALL: list[Constraint] = [
    AltitudeConstraint(30),
    AltitudeConstraint(10, 60),
    AirmassConstraint(2.0),
    SunAltitudeConstraint.twilight_astronomical(),
    SunAltitudeConstraint(-8),
    MoonSeparationConstraint(40),
    MoonIlluminationConstraint.dark(),
    TimeWindowConstraint.from_clock(
        parse_clock_time("22:00"), parse_clock_time("02:30"), reference=NOON, tz=AMS_TZ
    ),
]


@pytest.mark.parametrize("constraint", ALL, ids=lambda c: type(c).__name__)
def test_every_constraint_answers_in_the_shape_it_was_asked(
    constraint: Constraint, vega: TargetTrack
) -> None:
    grid = constraint(vega)
    assert grid.dtype == np.bool_ and grid.shape == vega.t.shape
    one = constraint(vega, EVENING[1])
    assert one.shape == ()
    many = constraint(vega, EVENING)
    assert many.shape == (len(EVENING),)
    assert bool(one) == bool(many[1])
    # The explanation exists exactly when the constraint does not hold.
    for t, ok in zip(EVENING, many, strict=True):
        reason = constraint.explain(vega, to_unix(t))
        assert (reason is None) == bool(ok)
    assert constraint.describe()


@pytest.mark.parametrize("constraint", ALL[:2], ids=lambda c: type(c).__name__)
def test_naive_or_out_of_span_instants_are_refused(
    constraint: Constraint, vega: TargetTrack
) -> None:
    with pytest.raises(ValueError, match="time zone"):
        constraint(vega, datetime(2026, 11, 25, 22, 0))
    with pytest.raises(ValueError, match="outside"):
        constraint(vega, NOON + timedelta(days=3))


def test_altitude_constraint_agrees_with_an_independent_altitude(vega: TargetTrack) -> None:
    times = [NOON + timedelta(minutes=17 * k) for k in range(80)]
    ref = np.array(
        [star_altitude(*VEGA, t, AMSTERDAM.latitude, AMSTERDAM.longitude) for t in times]
    )
    clear = np.abs(ref - 30) > 0.1  # away from the limit, where 0.02° can flip the answer
    got = AltitudeConstraint(30)(vega, times)
    assert clear.sum() > 60
    np.testing.assert_array_equal(got[clear], (ref >= 30)[clear])
    air = AirmassConstraint(2.0)(vega, times)  # airmass 2 is altitude 30°
    np.testing.assert_array_equal(air[clear], (ref >= 30)[clear])


def test_sun_constraint_agrees_with_noaa(vega: TargetTrack) -> None:
    times = [NOON + timedelta(minutes=13 * k) for k in range(100)]
    ref = np.array([noaa_sun_altitude(t, AMSTERDAM.latitude, AMSTERDAM.longitude) for t in times])
    clear = np.abs(ref + 18) > 0.1
    got = SunAltitudeConstraint.twilight_astronomical()(vega, times)
    np.testing.assert_array_equal(got[clear], (ref < -18)[clear])


def test_reasons_read_like_the_problem(vega: TargetTrack) -> None:
    dusk = to_unix(NOON + timedelta(hours=5))  # 17:00: sun at about -5°
    sun = SunAltitudeConstraint.for_twilight(Twilight.astronomical).explain(vega, dusk)
    assert sun is not None
    assert sun.startswith("sun at -") and sun.endswith("not astronomical twilight (needs < -18°)")
    low = AltitudeConstraint(85).explain(vega, dusk)
    assert low is not None and low.startswith("altitude ") and low.endswith("° < 85°")
    assert AirmassConstraint(1.01).explain(vega, dusk) is not None


def test_moon_constraints_hold_while_the_moon_is_down(vega: TargetTrack) -> None:
    down = vega.moon_alt < 0
    assert down.any() and (~down).any()  # the night of 2026-11-25 has both
    sep = MoonSeparationConstraint(180)(vega)  # impossible while the moon is up
    np.testing.assert_array_equal(sep, down)
    ill = MoonIlluminationConstraint(0.0)(vega)  # nearly full moon: fails while up
    np.testing.assert_array_equal(ill, down)


def test_time_window_resolves_clock_times_after_the_night_start() -> None:
    c = TimeWindowConstraint.from_clock(
        parse_clock_time("22:00"), parse_clock_time("02:30"), reference=NOON, tz=AMS_TZ
    )
    assert c.start == datetime(2026, 11, 25, 22, 0, tzinfo=AMS_TZ)
    assert c.end == datetime(2026, 11, 26, 2, 30, tzinfo=AMS_TZ)
    assert c.describe() == "time window 22:00–02:30"
    utc = TimeWindowConstraint.from_clock(
        None, parse_clock_time("01:00Z"), reference=NOON, tz=AMS_TZ
    )
    assert utc.end == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    track = segment(AMSTERDAM, to_unix(NOON)).track(*VEGA)
    assert c.explain(track, to_unix(c.start) - 60) == "before 22:00 (window not open yet)"
    assert c.explain(track, to_unix(c.end) + 60) == "after 02:30 (window closed)"
    assert c.explain(track, to_unix(c.end)) is None


def test_constraints_for_builds_one_object_per_given_field() -> None:
    c = Constraints.model_validate(
        {
            "min_altitude": 30,
            "max_airmass": 2,
            "twilight": "nautical",
            "max_sun_altitude": -15,
            "moon_separation": 40,
            "max_moon_illumination": 0.5,
            "after": "21:00",
            "until": "03:00",
        }
    )
    built = constraints_for(c, reference=NOON, tz=AMS_TZ)
    kinds = sorted(type(x).__name__ for x in built)
    assert kinds == sorted(
        [
            "AltitudeConstraint",
            "AirmassConstraint",
            "SunAltitudeConstraint",
            "SunAltitudeConstraint",
            "MoonSeparationConstraint",
            "MoonIlluminationConstraint",
            "TimeWindowConstraint",
        ]
    )
    assert constraints_for(Constraints(), reference=NOON, tz=AMS_TZ) == []


@pytest.mark.parametrize(
    ("factory", "args"),
    [
        (AltitudeConstraint, (95,)),
        (AltitudeConstraint, (40, 30)),
        (AirmassConstraint, (0.5,)),
        (MoonSeparationConstraint, (-1,)),
        (MoonIlluminationConstraint, (1.5,)),
    ],
)
def test_impossible_limits_are_refused(factory: type[Constraint], args: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        factory(*args)
