"""Where the time goes: each overhead comes from the equipment profile, computed by hand here."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from estplans import (
    AUTOFOCUS,
    CHANGE,
    DOWNLOAD,
    SETTLE,
    SIM,
    START,
    make_plan,
    run,
    seconds,
    target,
)

from runner.estimate import TargetStatus, Timeline
from runner.sky.visibility import TargetVisibility


def only(tl: Timeline):  # type: ignore[no-untyped-def]
    assert len(tl.targets) == 1
    return tl.targets[0]


def test_a_frame_costs_its_exposure_plus_the_download() -> None:
    tl = run(make_plan([target(sequence=[{"expose": {"count": 10, "exposure": 60}}])]))
    t = only(tl)
    assert t.status is TargetStatus.complete
    assert t.start == START
    assert t.exposure == 600
    assert t.overheads == {"download": pytest.approx(10 * DOWNLOAD)}
    assert seconds(t.start, t.end) == pytest.approx(600 + 10 * DOWNLOAD)


def test_a_filter_change_is_paid_only_when_the_filter_changes() -> None:
    seq = [
        {"filter": "L"},
        {"filter": "L"},
        {"expose": {"count": 2, "exposure": 30}},
        {"expose": {"count": 2, "exposure": 30, "filter": "R"}},
        {"filter": "R"},
    ]
    t = only(run(make_plan([target(sequence=seq)])))
    assert t.overheads["filter"] == pytest.approx(2 * CHANGE)
    # L → R moves the focuser by the filters' offset difference (15 steps at 1000 steps/s).
    assert t.overheads["focus"] == pytest.approx(15 / 1000)
    frames = {(f.filter, f.type): (f.count, f.each) for f in t.frames.values()}
    assert frames == {("L", "light"): (2, 30.0), ("R", "light"): (2, 30.0)}


def test_dither_every_three_frames_while_guiding() -> None:
    plan = make_plan(
        [target(sequence=[{"expose": {"count": 10, "exposure": 60}}])],
        startup=[{"guide": "start"}],
        triggers=[{"dither": {"every": 3}}],
    )
    tl = run(plan)
    assert tl.startup.overheads == {"guide": pytest.approx(SETTLE)}
    # Dithers in the gaps before frames 4, 7 and 10; none after the last frame.
    assert only(tl).overheads["dither"] == pytest.approx(3 * SETTLE)


def test_a_dither_without_guiding_is_skipped_and_said() -> None:
    plan = make_plan(
        [target(sequence=[{"expose": {"count": 4, "exposure": 60}}])],
        triggers=[{"dither": {"every": 1}}],
    )
    t = only(run(plan))
    assert "dither" not in t.overheads
    assert "dither skipped: not guiding" in t.notes


def test_autofocus_every_four_frames() -> None:
    plan = make_plan(
        [target(sequence=[{"expose": {"count": 10, "exposure": 60}}])],
        triggers=[{"autofocus": {"every_frames": 4}}],
    )
    # Before frames 5 and 9.
    assert only(run(plan)).overheads["autofocus"] == pytest.approx(2 * AUTOFOCUS)


def test_autofocus_on_filter_change_fires_before_the_first_frame_in_the_new_filter() -> None:
    plan = make_plan(
        [
            target(
                sequence=[
                    {
                        "each_filter": ["L", "R", "G"],
                        "steps": [{"expose": {"count": 2, "exposure": 60}}],
                    }
                ]
            )
        ],
        triggers=[{"autofocus": {"filter_change": True}}],
    )
    # L → R and R → G: two runs; the first filter of the night is not a change.
    assert only(run(plan)).overheads["autofocus"] == pytest.approx(2 * AUTOFOCUS)


def test_an_explicit_autofocus_resets_the_filter_baseline() -> None:
    plan = make_plan(
        [
            target(
                sequence=[
                    {"filter": "R"},
                    {"focus": "auto"},
                    {"expose": {"count": 3, "exposure": 60}},
                ]
            )
        ],
        triggers=[{"autofocus": {"filter_change": True, "every_frames": 10}}],
    )
    # Only the explicit one: its baseline is R, and no frame limit is reached.
    assert only(run(plan)).overheads["autofocus"] == pytest.approx(AUTOFOCUS)


def test_autofocus_by_elapsed_time_counts_from_the_last_one() -> None:
    plan = make_plan(
        [target(sequence=[{"expose": {"count": 20, "exposure": 60}}])],
        triggers=[{"autofocus": {"every_minutes": 10}}],
    )
    # 61.5 s per frame: due before frame 11 (615 s ≥ 600 s); the next would be due after
    # another ten frames, i.e. before a 21st that does not exist.
    assert only(run(plan)).overheads["autofocus"] == pytest.approx(AUTOFOCUS)


def test_cooling_and_warming_follow_the_rates() -> None:
    plan = make_plan(
        [target()],
        startup=[{"cool": {"to": -10, "rate": 2}}],
        shutdown=[{"warm": {"to": 5, "rate": 3}}, {"cool": {"to": 0}}],
    )
    tl = run(plan)
    ambient = SIM.simulation.ambient  # 15 °C
    assert tl.startup.overheads["cooling"] == pytest.approx((ambient + 10) / 2 * 60)
    # Warm −10 → 5 at 3 °C/min (a ramp ends when its set point does, the sensor within the
    # engine's 0.5 °C), then cool to 0 without a rate: the sensor at the default 5 °C/min from
    # where the ramp left it (4.5-5 °C) until within 0.5 °C, on the engine's 2-s polls.
    warm = 15 / 3 * 60
    cool = tl.shutdown.overheads["cooling"] - warm
    assert (4.5 - 0.5) / 5 * 60 <= cool <= (5 - 0.5) / 5 * 60 + 2


def test_cooling_longer_than_its_timeout_is_capped_and_flagged() -> None:
    plan = make_plan([target()], startup=[{"cool": {"to": -20, "rate": 1, "timeout": 600}}])
    tl = run(plan)
    assert tl.startup.overheads["cooling"] == 600
    assert any("longer than its timeout" in n for n in tl.startup.notes)


def test_slews_cost_distance_over_rate_plus_settle() -> None:
    m31 = (10.684708, 41.26875)
    m33 = (23.462042, 30.660222)
    # the engine slews where the plan says (no implicit slew at a target's start)
    seq = [{"slew": {}}, {"expose": {"count": 1, "exposure": 60}}]
    plan = make_plan([target("M31", ra=m31[0], dec=m31[1], sequence=seq),
                      target("M33", ra=m33[0], dec=m33[1], sequence=seq)])
    tl = run(plan, equipment=SIM)
    rate, settle = SIM.mount.slew_rate, SIM.mount.settle_time  # type: ignore[union-attr]
    # From the park position (the pole) to M31, then M31 → M33 (spherical law of cosines).
    assert tl.targets[0].overheads["slew"] == pytest.approx((90 - m31[1]) / rate + settle)
    d1, d2 = math.radians(m31[1]), math.radians(m33[1])
    cos_sep = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(
        math.radians(m33[0] - m31[0])
    )
    sep = math.degrees(math.acos(cos_sep))
    assert tl.targets[1].overheads["slew"] == pytest.approx(sep / rate + settle, rel=1e-6)


def test_a_meridian_flip_happens_once_at_transit_plus_after() -> None:
    # M31 transits at about 21:05 local on this date; start 20:30, an hour of frames.
    start = START.replace(hour=20, minute=30)
    t = target(sequence=[{"slew": {}}, {"expose": {"count": 30, "exposure": 120}}])
    plan = make_plan([t], triggers=[{"meridian_flip": {"after": 5}}])
    tl = run(plan, equipment=SIM, start=start)
    te = only(tl)
    vis = TargetVisibility(plan.targets[0], plan.site, START.replace(hour=12))
    flip_at = vis.next_transit(start) + timedelta(minutes=5)
    rate, settle = SIM.mount.slew_rate, SIM.mount.settle_time  # type: ignore[union-attr]
    assert te.overheads["flip"] == pytest.approx(180 / rate + settle)
    assert f"meridian flip at {flip_at.strftime('%H:%M')}" in te.notes
    # No exposure straddles the flip: the wait is shorter than one frame.
    assert 0 < te.idle <= 120 + DOWNLOAD


def test_accounting_adds_up_to_the_night() -> None:
    plan = make_plan(
        [
            target("A", sequence=[{"filter": "L"}, {"expose": {"count": 5, "exposure": 60}}]),
            target("B", ra=83.82, dec=-5.39, sequence=[{"expose": {"count": 3, "exposure": 30}}]),
        ],
        startup=[{"cool": {"to": -10}}, {"guide": "start"}],
        triggers=[{"dither": {"every": 2}}, {"autofocus": {"every_frames": 3}}],
        shutdown=[{"guide": "stop"}, {"warm": {"to": 5}}, {"park": {}}],
    )
    tl = run(plan, equipment=SIM)
    assert seconds(tl.start, tl.end) == pytest.approx(tl.exposure + tl.overhead + tl.idle)
    assert tl.startup.end == tl.targets[0].start
    assert tl.targets[-1].end == tl.shutdown.start
