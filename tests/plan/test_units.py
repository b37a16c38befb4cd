"""Durations, clock times and coordinates are read the way people write them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from runner.plan.units import parse_clock_time, parse_dec, parse_duration, parse_ra


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(120, 120.0), ("90s", 90.0), ("15min", 900.0), ("2h", 7200.0), ("1.5 h", 5400.0),
     ("250ms", 0.25), ("45", 45.0)],
)
def test_durations_normalise_to_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10 parsecs", "-5", -1, True, "min"])
def test_bad_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_clock_time_means_the_next_occurrence_across_midnight() -> None:
    ams = ZoneInfo("Europe/Amsterdam")
    evening = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # 19:00 local
    t = parse_clock_time("02:30").next_after(evening, ams)
    assert t == datetime(2026, 11, 26, 2, 30, tzinfo=ams)
    # an explicit offset or Z is honoured as written
    z = parse_clock_time("02:30Z").next_after(evening, ams)
    assert z == datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    later_today = parse_clock_time("21:15").next_after(evening, ams)
    assert later_today == datetime(2026, 11, 25, 21, 15, tzinfo=ams)


@pytest.mark.parametrize("bad", ["25:00", "2:60", "noon", 150])
def test_bad_clock_times_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_clock_time(bad)


def test_coordinates_in_sexagesimal_and_degrees() -> None:
    assert parse_ra("05:35:17.3") == pytest.approx(83.822083, abs=1e-6)
    assert parse_ra("05h35m17.3s") == pytest.approx(83.822083, abs=1e-6)
    assert parse_ra(83.8) == 83.8
    assert parse_dec("-05:23:28") == pytest.approx(-5.391111, abs=1e-6)
    assert parse_dec("-00:30:00") == pytest.approx(-0.5)
    for bad in ("24:00:00", "12:61:00", 360):
        with pytest.raises(ValueError):
            parse_ra(bad)
    with pytest.raises(ValueError):
        parse_dec("+91:00:00")
