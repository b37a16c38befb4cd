"""The rules of docs/semantics.md, as a user sees them in the log and on disk."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from runner.engine import triggers as trig
from runner.plan.models import AutofocusTrigger, DitherTrigger, Triggers
from tests.engine.conftest import CLUSTER, EVENING, Rig, names


def test_repeat_until_already_true_runs_zero_iterations_and_says_so(rig: Rig) -> None:
    # the run starts at 20:00 local; "until 19:30" … is tomorrow 19:30: not reached. Use a
    # frames condition that is met at once instead: `frames: 1` after a first loop.
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - filter: L
              - repeat: {{until: {{altitude_below: 89}}}}
                steps: [{{expose: {{count: 1, exposure: 5}}}}]
              - expose: {{count: 1, exposure: 5}}
        """)
    result = rig.run(plan)
    events = rig.events(result)
    zero = names(events, "loop_zero_iterations")
    assert len(zero) == 1 and "altitude" in zero[0]["reason"]
    assert result.summary["frames"]["light"] == 1  # only the step after the loop


def test_repeat_until_time_overruns_by_at_most_the_exposure_in_progress(rig: Rig) -> None:
    # the run starts 19:00 UTC = 20:00 Amsterdam; the loop must stop at 20:10 local
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - filter: L
              - repeat: {{until: {{time: "20:10"}}}}
                steps:
                  - expose: {{count: 3, exposure: 60}}
        """)
    result = rig.run(plan, speed=300)
    events = rig.events(result)
    starts = [datetime.fromisoformat(e["clock"]) for e in names(events, "exposure_start")]
    ends = names(events, "loop_end")
    assert len(ends) == 1 and "20:10" in ends[0]["reason"]
    deadline = EVENING + timedelta(minutes=10)  # 20:10 Amsterdam
    assert len(starts) >= 3 and all(t < deadline for t in starts)
    # the loop ended after the deadline by at most the exposure in progress (+ download)
    overrun = datetime.fromisoformat(ends[0]["clock"]) - deadline
    assert timedelta(0) <= overrun <= timedelta(seconds=60 + 1 + 10)
    assert len(names(events, "frame")) == len(starts)


def test_repeat_until_frames_counts_lights_inside_the_loop(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - repeat: {{until: {{frames: 5}}}}
                steps:
                  - filter: L
                  - expose: {{count: 2, exposure: 5}}
        """)
    result = rig.run(plan)
    assert result.summary["frames"]["light"] == 5  # stops mid-iteration, before the 6th


def test_pause_takes_effect_between_exposures_and_resume_continues(rig: Rig) -> None:
    plan = rig.write(f"""\
        startup: [{{cool: {{to: 0, rate: 30}}}}]
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{filter: L}}, {{expose: {{count: 4, exposure: 30}}}}]
        shutdown: [{{warm: {{to: 10, rate: 30}}}}]
        """)
    run = rig.make_run(plan, speed=100)

    async def scenario() -> tuple[str, int, float]:
        task = asyncio.create_task(run.execute())
        while run.executor is None or run.executor.counters.lights < 1:
            await asyncio.sleep(0.01)
        run.pause()
        while run.executor.model.state != "paused":
            await asyncio.sleep(0.01)
        lights_paused = run.executor.counters.lights
        await asyncio.sleep(0.5)  # 50 s of clock time: nothing is exposed while paused
        assert run.executor.counters.lights == lights_paused
        assert run.executor.current_exposure is None
        temp = await run.executor.s.camera.set_point()  # cooling keeps running
        run.resume()
        result = await task
        return result.outcome, lights_paused, temp

    outcome, lights_paused, set_point = asyncio.run(scenario())
    assert outcome == "completed"
    # the exposure in progress when the pause came finished, and every exposure begun before
    # the pause took effect is on disk when the night reports itself paused
    events = [json.loads(x) for x in
              next(rig.data.glob("runs/*/events.jsonl")).read_text().splitlines()]
    kinds = [e["event"] for e in events]
    begun = kinds[:kinds.index("paused")].count("exposure_start")
    assert lights_paused == begun and 1 <= begun < 4
    assert set_point == 0


def test_a_dither_without_guiding_is_skipped_with_a_warning(rig: Rig) -> None:
    plan = rig.write(f"""\
        triggers:
          - dither: {{every: 1}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{filter: L}}, {{expose: {{count: 3, exposure: 5}}}}]
        """, guider=True)
    result = rig.run(plan)
    assert result.outcome == "completed"
    assert result.summary["dithers_skipped"] == 2 and result.summary["dithers"] == 0
    warnings = [e["message"] for e in names(rig.events(result), "warning")]
    assert warnings.count("dither skipped: the guider is not guiding") == 2


def test_a_target_whose_constraints_do_not_hold_is_skipped_not_failed(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: Too low
            coordinates: {{ra: 180, dec: 10}}
            constraints: {{min_altitude: 30}}
            sequence: [{{expose: {{count: 1, exposure: 5}}}}]
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{expose: {{count: 1, exposure: 5}}}}]
        """)
    result = rig.run(plan)
    assert result.outcome == "completed" and result.exit_code == 0
    ends = names(rig.events(result), "target_end")
    assert ends[0]["status"] == "skipped" and "altitude" in ends[0]["reason"]
    assert ends[1]["status"] == "completed"


# ------------------------------------------------------------------ trigger bookkeeping


def _triggers() -> Triggers:
    return Triggers(
        dither=DitherTrigger(every=3),
        autofocus=AutofocusTrigger(temperature_change=1.0, hfr_increase=0.2,
                                   filter_change=True, every_minutes=30),
    )


def test_any_autofocus_resets_every_autofocus_baseline() -> None:
    t = _triggers()
    s = trig.TriggerState()
    trig.autofocus_done(s, now=0, temperature=10.0, filter_name="L")
    trig.light_frame_done(s, hfr=2.0)  # the first HFR after a focus is the baseline
    trig.light_frame_done(s, hfr=2.5)  # +25 %
    s.filter_changed = True
    d = trig.due(t, s, now=40 * 60, temperature=8.5, guiding=True, any_light_yet=True)
    assert d.autofocus is not None  # several reasons are due at once
    trig.autofocus_done(s, now=40 * 60, temperature=8.5, filter_name="R")
    d = trig.due(t, s, now=40 * 60 + 1, temperature=8.6, guiding=True, any_light_yet=True)
    assert d.autofocus is None, "a fresh autofocus must reset temperature, HFR, time, filter"
    trig.light_frame_done(s, hfr=2.1)
    trig.light_frame_done(s, hfr=2.6)  # +24 % over the new baseline
    d = trig.due(t, s, now=41 * 60, temperature=8.6, guiding=True, any_light_yet=True)
    assert d.autofocus is not None and "HFR" in d.autofocus


def test_dither_counts_frames_across_filters_and_restarts_per_target() -> None:
    t = _triggers()
    s = trig.TriggerState()
    due_at = []
    for frame in range(1, 8):
        d = trig.due(t, s, now=0, temperature=None, guiding=True, any_light_yet=frame > 1)
        if d.dither:
            due_at.append(frame)
            trig.dither_done(s)
        s.filter_changed = frame % 2 == 0  # filters alternate: no effect on the count
        trig.light_frame_done(s, hfr=None)
    assert due_at == [4, 7]
    trig.new_target(s)
    assert not trig.due(t, s, now=0, temperature=None, guiding=True, any_light_yet=True).dither


def test_run_start_is_the_reference_for_clock_times() -> None:
    from zoneinfo import ZoneInfo

    from runner.plan.units import parse_clock_time

    tz = ZoneInfo("Europe/Amsterdam")
    start = EVENING  # 20:00 local
    assert parse_clock_time("20:10").next_after(start, tz) - start == timedelta(minutes=10)
    assert parse_clock_time("19:50").next_after(start, tz) - start == timedelta(hours=23,
                                                                                minutes=50)


def test_guiding_pauses_around_filter_changes_when_the_plan_says_so(rig: Rig) -> None:
    plan = rig.write(f"""\
        defaults:
          guiding: {{pause_during: [filter]}}
        startup: [{{guide: start}}]
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - each_filter: [L, R]
                steps: [{{expose: {{count: 1, exposure: 5}}}}]
        shutdown: [{{guide: stop}}]
        """, guider=True)
    result = rig.run(plan, speed=100)
    assert result.outcome == "completed"
    sequence = [(e["event"], e.get("state"), e.get("filter"))
                for e in rig.events(result) if e["event"] in ("guiding", "filter")]
    assert sequence[:7] == [
        ("guiding", "guiding", None),
        ("guiding", "paused", None), ("filter", None, "L"), ("guiding", "guiding", None),
        ("guiding", "paused", None), ("filter", None, "R"), ("guiding", "guiding", None),
    ]


def test_meridian_flip_happens_once_after_the_meridian_and_guiding_resumes(rig: Rig) -> None:
    # a target 3 min east of the meridian at the start: the flip is due 1 min past it
    jd = EVENING.timestamp() / 86400.0 + 2440587.5
    lst = (280.46061837 + 360.98564736629 * (jd - 2451545.0) + 4.89) % 360.0
    ra = (lst + 3 * 0.25) % 360.0  # 0.25° per minute of hour angle
    plan = rig.write(f"""\
        startup: [{{guide: start}}]
        triggers:
          - meridian_flip: {{after: 1}}
        targets:
          - name: Transiting
            coordinates: {{ra: {ra:.4f}, dec: 60}}
            sequence:
              - slew: {{}}
              - filter: L
              - expose: {{count: 12, exposure: 30}}
        shutdown: [{{guide: stop}}]
        """, guider=True)
    run = rig.make_run(plan, speed=60)
    result = asyncio.run(run.execute())
    assert result.outcome == "completed"
    events = rig.events(result)
    flips = [e for e in names(events, "trigger") if e["kind"] == "meridian_flip"]
    assert len(flips) == 1
    assert flips[0]["hour_angle"] * 60 >= 1.0  # minutes past the meridian
    flip_at = events.index(flips[0])
    after = [e["event"] for e in events[flip_at:]]
    # the flip slews (guiding stopped first) and restarts guiding before the next exposure
    assert after.index("slewed") < after.index("exposure_start")
    guiding = [e.get("state") for e in events[flip_at:] if e["event"] == "guiding"]
    assert guiding[:2] == ["stopped", "guiding"]
    assert result.summary["frames"]["light"] == 12
