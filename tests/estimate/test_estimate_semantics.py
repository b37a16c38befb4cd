"""SEMANTICS, walked on paper: targets in order, waits, constraints, loops, shutdown."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from estplans import AMS, DOWNLOAD, SIM, START, make_plan, run, seconds, target

from runner.estimate import TargetStatus, estimate
from runner.sky.events import dusk_at, night_events
from runner.sky.visibility import TargetVisibility

M42 = {"ra": 83.822, "dec": -5.391}
NOON = START.replace(hour=12)


def frames(te) -> int:  # type: ignore[no-untyped-def]
    return sum(f.count for f in te.frames.values())


# ------------------------------------------------------------------ loops


def test_repeat_count_runs_its_body_that_many_times() -> None:
    seq = [{"repeat": {"count": 3}, "steps": [{"expose": {"count": 2, "exposure": 10}}]}]
    assert frames(run(make_plan([target(sequence=seq)])).targets[0]) == 6


def test_repeat_until_time_overruns_by_at_most_the_exposure_in_progress() -> None:
    seq = [{"repeat": {"until": {"time": "22:30"}}, "steps": [{"expose": {"exposure": 120}}]}]
    te = run(make_plan([target(sequence=seq)])).targets[0]
    per_frame = 120 + DOWNLOAD
    # Frames start at 0, 121.5, … while before 22:30 (1800 s): 15 of them.
    assert frames(te) == 15
    assert seconds(te.start, te.end) == pytest.approx(15 * per_frame)
    overrun = seconds(START.replace(minute=30), te.end)
    assert 0 <= overrun <= per_frame
    assert te.status is TargetStatus.complete


def test_repeat_until_already_true_runs_zero_iterations_and_says_so() -> None:
    # 21:00 resolves after local noon of the night: it has passed when the run starts at 22:00.
    seq = [
        {"repeat": {"until": {"time": "21:00"}}, "steps": [{"expose": {"exposure": 60}}]},
        {"expose": {"exposure": 5}},
    ]
    te = run(make_plan([target(sequence=seq)])).targets[0]
    assert frames(te) == 1  # only the step after the loop
    assert any("zero iterations" in n for n in te.notes)


def test_repeat_until_frames_stops_inside_an_iteration() -> None:
    seq = [
        {"repeat": {"until": {"frames": 7}}, "steps": [{"expose": {"count": 3, "exposure": 10}}]}
    ]
    te = run(make_plan([target(sequence=seq)])).targets[0]
    assert frames(te) == 7
    assert any("3 iteration(s) (the last one cut short)" in n for n in te.notes)


def test_an_outer_until_stops_an_inner_counted_loop() -> None:
    seq = [
        {
            "repeat": {"until": {"frames": 5}},
            "steps": [
                {"repeat": {"count": 10}, "steps": [{"expose": {"exposure": 10}}]},
                {"expose": {"exposure": 99}},
            ],
        }
    ]
    te = run(make_plan([target(sequence=seq)])).targets[0]
    assert frames(te) == 5
    assert all(f.each == 10 for f in te.frames.values())


def test_repeat_until_altitude_below() -> None:
    # M31 sets through 30° in the small hours; the loop ends there, not the target.
    seq = [{"repeat": {"until": {"altitude_below": 30}}, "steps": [{"expose": {"exposure": 300}}]}]
    tl = run(make_plan([target(sequence=seq)]))
    te = tl.targets[0]
    vis = TargetVisibility(make_plan([target()]).targets[0], make_plan([]).site, NOON)
    assert te.end is not None
    assert vis.altitude_at(te.end) < 30 <= vis.altitude_at(te.end - timedelta(seconds=301.5))


def test_a_loop_whose_body_takes_no_time_is_stopped_with_a_warning() -> None:
    seq = [{"repeat": {"until": {"time": "23:00"}}, "steps": [{"stack": "on"}]}]
    tl = run(make_plan([target(sequence=seq)]))
    assert any("takes no time" in w for w in tl.warnings)


# ------------------------------------------------------------------ constraints and waits


def test_a_target_ends_when_a_constraint_stops_holding_and_the_next_one_runs() -> None:
    seq = [{"repeat": {"until": {"time": "23:30"}}, "steps": [{"expose": {"exposure": 60}}]}]
    plan = make_plan(
        [
            target("A", sequence=seq, constraints={"until": "22:10"}),
            target("B", sequence=[{"expose": {"exposure": 30}}]),
        ]
    )
    a, b = run(plan).targets
    assert a.status is TargetStatus.ended
    assert a.reasons == ["after 22:10 (window closed)"]
    assert a.end is not None and 0 <= seconds(START.replace(minute=10), a.end) <= 60 + DOWNLOAD
    assert b.status is TargetStatus.complete and b.start == a.end


def test_a_target_without_wait_is_skipped_with_the_reasons_and_when_it_could_start() -> None:
    plan = make_plan([target("M42", constraints={"min_altitude": 25}, **{"coordinates": M42})])
    te = run(plan).targets[0]
    assert te.status is TargetStatus.skipped
    assert te.start is None and te.frames == {}
    assert len(te.reasons) == 1 and te.reasons[0].endswith("° < 25°")
    assert te.ended_by is not None and "they hold from 23:3" in te.ended_by


def test_a_target_waits_for_its_constraints_up_to_its_limit() -> None:
    waiting = target("M42", constraints={"min_altitude": 25}, wait={"max": "2h"})
    waiting["coordinates"] = M42
    te = run(make_plan([waiting])).targets[0]
    vis = TargetVisibility(make_plan([waiting]).targets[0], make_plan([]).site, NOON)
    opens = vis.windows(START, START + timedelta(hours=6))[0][0]
    assert te.status is TargetStatus.complete
    assert te.start == opens
    assert te.waited == pytest.approx(seconds(START, opens))


def test_a_wait_that_runs_out_skips_at_once_and_abort_ends_the_plan() -> None:
    short = target("M42", constraints={"min_altitude": 25}, wait={"max": "30min"})
    short["coordinates"] = M42
    aborting = {**short, "name": "M42-abort", "wait": {"max": "30min", "then": "abort"}}
    plan = make_plan(
        [short, aborting, target("after")],
        startup=[{"cool": {"to": -10}}],
        shutdown=[{"warm": {"to": 5}}],
    )
    tl = run(plan)
    skipped, aborted, never = tl.targets
    assert skipped.status is TargetStatus.skipped
    assert skipped.ended_by is not None and "wait max 30m" in skipped.ended_by
    assert aborted.status is TargetStatus.skipped
    assert never.status is TargetStatus.not_run
    assert never.ended_by is not None and "plan aborted" in never.ended_by
    # Shutdown always runs.
    assert tl.shutdown.overheads["cooling"] > 0


def test_wait_steps_for_a_duration_until_a_time_and_until_an_altitude() -> None:
    seq = [
        {"wait": {"for": "10min"}},
        {"wait": {"until": "22:30"}},
        {"wait": {"altitude": 25}},
        {"expose": {"exposure": 60}},
    ]
    t = target("M42", sequence=seq)
    t["coordinates"] = M42
    te = run(make_plan([t])).targets[0]
    vis = TargetVisibility(make_plan([t]).targets[0], make_plan([]).site, NOON)
    reached = vis.when_altitude(START, 25, START + timedelta(hours=8))
    assert reached is not None
    assert te.idle == pytest.approx(seconds(START, reached), abs=1)


# ------------------------------------------------------------------ the night


def test_without_start_the_run_begins_at_the_dusk_the_first_target_needs() -> None:
    ev = night_events(make_plan([]).site, START.date())
    astro = make_plan([target(constraints={"twilight": "astronomical"})])
    assert estimate(astro, SIM, date=START.date()).start == ev.astronomical.dusk
    plain = make_plan([target()])
    assert estimate(plain, SIM, date=START.date()).start == ev.sunset.dusk
    custom = make_plan([target(), target(constraints={"max_sun_altitude": -9})])
    assert estimate(custom, SIM, date=START.date()).start == dusk_at(
        make_plan([]).site, START.date(), -9.0
    )


def test_a_target_that_never_meets_its_constraints_is_warned_about() -> None:
    south = target("Deep south", ra=120.0, dec=-80.0, constraints={"min_altitude": 10})
    tl = run(make_plan([south]))
    assert len(tl.warnings) == 1
    w = tl.warnings[0]
    assert w.startswith("target 'Deep south' never meets its constraints on 2026-11-25: ")
    assert "altitude ≥ 10° never holds (highest -" in w
    assert tl.targets[0].warnings == [w]


def test_frames_below_the_horizon_without_an_altitude_constraint_are_warned_about() -> None:
    seq = [{"expose": {"count": 20, "exposure": 300}}]
    low = target("Low", ra=83.822, dec=-30.0, sequence=seq)
    tl = estimate(make_plan([low]), SIM, start=datetime(2026, 11, 25, 20, 0, tzinfo=AMS))
    assert any("below the horizon during its run" in w for w in tl.warnings)


def test_imaging_past_sunrise_is_warned_about() -> None:
    seq = [{"expose": {"count": 70, "exposure": 600}}]  # 22:00 + 11.7 h
    tl = run(make_plan([target(sequence=seq)]))
    assert any(w.startswith("imaging runs past sunrise") for w in tl.warnings)
