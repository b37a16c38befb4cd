"""TargetVisibility: the engine's questions — may I start now, when can I, until when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from skyref import gmst_degrees, precess
from skysites import AMS_TZ, AMSTERDAM, NIGHT, NOON, VEGA

from runner.plan.models import Target
from runner.sky.events import night_events
from runner.sky.timeutil import night_of, night_start, site_timezone
from runner.sky.visibility import TargetVisibility


def target(ra: float, dec: float, **constraints: object) -> Target:
    return Target.model_validate(
        {
            "name": "T",
            "coordinates": {"ra": ra, "dec": dec},
            "constraints": constraints,
            "sequence": [{"expose": {"exposure": 60}}],
        }
    )


M42 = (83.822, -5.391)
EV = night_events(AMSTERDAM, NIGHT)
DUSK, DAWN = EV.sunset.dusk, EV.sunset.dawn
assert DUSK is not None and DAWN is not None


def test_holds_at_gives_every_failing_reason() -> None:
    vis = TargetVisibility(target(*M42, min_altitude=25, twilight="astronomical"), AMSTERDAM, NOON)
    ok, reasons = vis.holds_at(DUSK)
    assert not ok
    assert len(reasons) == 2
    assert reasons[0].startswith("sun at ")
    assert reasons[1].startswith("altitude -") and reasons[1].endswith("° < 25°")
    ok, reasons = vis.holds_at(datetime(2026, 11, 26, 1, 0, tzinfo=AMS_TZ))
    assert ok and reasons == []


def test_windows_agree_with_holds_at_everywhere() -> None:
    vis = TargetVisibility(
        target(*M42, min_altitude=25, twilight="astronomical", until="03:30"), AMSTERDAM, NOON
    )
    wins = vis.windows(DUSK, DAWN)
    assert len(wins) == 1
    start, end = wins[0]
    assert end == datetime(2026, 11, 26, 3, 30, tzinfo=AMS_TZ)
    assert vis.holds_at(start)[0] and not vis.holds_at(start - timedelta(seconds=2))[0]
    assert vis.holds_at(end)[0] and not vis.holds_at(end + timedelta(seconds=2))[0]
    rng = np.random.default_rng(1)
    span = (DAWN - DUSK).total_seconds()
    for s in rng.uniform(0, span, 200):
        t = DUSK + timedelta(seconds=float(s))
        inside = start <= t <= end
        assert vis.holds_at(t)[0] == inside


def test_next_start_waits_for_the_window_or_gives_up_at_the_limit() -> None:
    vis = TargetVisibility(target(*M42, min_altitude=25), AMSTERDAM, NOON)
    first = vis.windows(DUSK, DAWN)[0][0]
    assert vis.next_start(DUSK) == first
    assert vis.next_start(first + timedelta(minutes=5)) == first + timedelta(minutes=5)
    assert vis.next_start(DUSK, limit=first - timedelta(minutes=1)) is None


def test_a_target_that_never_rises_says_why() -> None:
    vis = TargetVisibility(target(120.0, -80.0, min_altitude=10), AMSTERDAM, NOON)
    assert vis.windows(DUSK, DAWN) == []
    assert vis.next_start(DUSK) is None
    reasons = vis.never_reasons(DUSK, DAWN)
    assert len(reasons) == 1
    assert reasons[0].startswith("altitude ≥ 10° never holds (highest -")


def test_constraints_that_never_coincide_are_explained_together() -> None:
    # M42 rises high only after midnight; the window closes at 21:00.
    vis = TargetVisibility(target(*M42, min_altitude=30, until="21:00"), AMSTERDAM, NOON)
    reasons = vis.never_reasons(DUSK, DAWN)
    assert reasons and reasons[0].startswith("the constraints never hold at the same time")
    assert "altitude ≥ 30° holds only" in reasons[0]
    assert "not after 21:00 holds only" in reasons[0]


def test_windows_span_midnight_and_several_days() -> None:
    vis = TargetVisibility(target(*VEGA, min_altitude=20), AMSTERDAM, NOON)
    wins = vis.windows(NOON, NOON + timedelta(days=2, hours=6))
    # Vega is circumpolar-ish at 52°N: above 20° most of the day, once per sidereal day below.
    assert 2 <= len(wins) <= 4
    for a, b in wins:
        assert b > a
    # Segment boundaries do not split a window.
    gaps = [(wins[i + 1][0] - wins[i][1]).total_seconds() for i in range(len(wins) - 1)]
    assert all(g > 3600 for g in gaps)


def test_hour_angle_and_transit_match_sidereal_time() -> None:
    vis = TargetVisibility(target(*VEGA), AMSTERDAM, NOON)
    transit = vis.next_transit(NOON)
    assert abs(vis.hour_angle_at(transit)) < 0.002
    # Independent: local mean sidereal time equals the RA of date at transit.
    ra_date, _ = precess(*VEGA, transit)
    lst = (gmst_degrees(transit) + AMSTERDAM.longitude) % 360
    diff_deg = (lst - ra_date + 180) % 360 - 180
    assert abs(diff_deg) / 15 * 3600 < 30  # seconds of time
    assert NOON <= transit < NOON + timedelta(days=1)


def test_altitude_wait_and_when_altitude() -> None:
    vis = TargetVisibility(target(*M42), AMSTERDAM, NOON)
    when = vis.when_altitude(DUSK, 20.0, DAWN)
    assert when is not None
    assert vis.altitude_at(when) == pytest.approx(20.0, abs=0.05)
    assert vis.when_altitude(DUSK, 60.0, DAWN) is None  # M42 culminates at ~32° here


def test_night_start_is_local_noon_of_the_evening_that_began_the_night() -> None:
    tz = site_timezone(AMSTERDAM)
    late = datetime(2026, 11, 26, 3, 0, tzinfo=AMS_TZ)
    assert night_of(late, tz) == NIGHT
    assert night_start(late, tz) == NOON
    assert night_start(datetime(2026, 11, 25, 20, 0, tzinfo=UTC), tz) == NOON


def test_a_resumed_run_after_midnight_still_sees_a_closed_window() -> None:
    vis = TargetVisibility(
        target(*M42, until="02:30"),
        AMSTERDAM,
        night_start(datetime(2026, 11, 26, 3, 0, tzinfo=AMS_TZ), site_timezone(AMSTERDAM)),
    )
    ok, reasons = vis.holds_at(datetime(2026, 11, 26, 3, 0, tzinfo=AMS_TZ))
    assert not ok and reasons == ["after 02:30 (window closed)"]
