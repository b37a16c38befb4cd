"""Every failure ends predictably: policies apply, aborts and unsafe weather reach the shutdown
sequence, and the rig is left safe (guiding stopped, camera warming, mount parked)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runner.engine.run import Run, RunResult
from tests.engine.conftest import CLUSTER, Rig, names

SHUTDOWN = """\
shutdown:
  - guide: stop
  - warm: {to: 10, rate: 20}
  - park: {}
"""


async def _abort_when(run: Run, state_prefix: str, timeout: float = 60) -> tuple[RunResult, str]:
    task = asyncio.create_task(run.execute())
    seen = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        ex = run.executor
        if ex is not None and ex.model.state.startswith(state_prefix):
            seen = ex.model.state
            run.abort("test abort")
            break
        if task.done():
            break
        await asyncio.sleep(0.005)
    return await task, seen


@pytest.mark.parametrize(
    "state",
    ["startup:cool", "imaging:filter", "imaging:expose", "imaging:trigger_dither",
     "imaging:trigger_autofocus", "imaging:focus", "imaging:slew"],
)
def test_abort_in_any_step_runs_the_shutdown_and_leaves_the_rig_safe(
    rig: Rig, state: str
) -> None:
    plan = rig.write(
        f"""\
        startup:
          - cool: {{to: -5, rate: 5}}
          - guide: start
        triggers:
          - dither: {{every: 1, amount: 2}}
          - autofocus: {{every_frames: 2, settings: {{steps: 5, exposure: 2}}}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - slew: {{}}
              - focus: {{by: 300}}
              - repeat: {{count: 5}}
                steps:
                  - filter: L
                  - expose: {{count: 2, exposure: 30}}
                  - filter: R
                  - expose: {{count: 2, exposure: 30}}
        """,
        shutdown=SHUTDOWN,
        guider=True,
    )
    run = rig.make_run(plan, speed=100)
    result, seen = asyncio.run(_abort_when(run, state))
    assert seen.startswith(state), f"never reached {state}"
    assert result.outcome == "aborted" and result.exit_code == 1
    events = rig.events(result)
    kinds = [e["event"] for e in events]
    abort_at = kinds.index("abort")
    assert "shutdown" in [e.get("phase") for e in events[abort_at:] if e["event"] == "phase"]
    steps = [e["kind"] for e in events[abort_at:] if e["event"] == "step"]
    assert steps == ["guide", "warm", "park"]
    assert names(events, "parked")
    ex = run.executor
    assert ex is not None and ex.model.state == "aborted"
    assert ex.guiding is False
    # the exposure in progress was discarded: every file on disk is journalled, none partial
    journal = (result.run_dir / "journal.jsonl").read_text()
    files = rig.fits()
    assert all(str(p) in journal for p in files)
    assert not list(rig.data.rglob("*.part"))
    assert result.summary["frames"]["light"] == len(files)


def test_camera_disconnect_is_retried_and_the_night_goes_on(rig: Rig) -> None:
    plan = rig.write(
        f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            on_error: {{retry: 2, backoff: 10, then: skip_target}}
            sequence:
              - filter: L
              - expose: {{count: 4, exposure: 10}}
        """,
        faults="[{kind: camera_disconnect, at_frame: 2}]",
    )
    result = rig.run(plan)
    assert result.outcome == "completed"
    events = rig.events(result)
    assert len(names(events, "retry")) == 1
    assert names(events, "reconnected")
    assert len(rig.fits()) == 4


def test_camera_disconnect_without_retries_skips_the_target_only(rig: Rig) -> None:
    plan = rig.write(
        f"""\
        targets:
          - name: first
            coordinates: {CLUSTER}
            on_error: {{retry: 0, then: skip_target}}
            sequence: [{{filter: L}}, {{expose: {{count: 4, exposure: 10}}}}]
          - name: second
            coordinates: {CLUSTER}
            sequence: [{{filter: L}}, {{expose: {{count: 2, exposure: 10}}}}]
        """,
        faults="[{kind: camera_disconnect, at_frame: 2}]",
    )
    result = rig.run(plan)
    assert result.outcome == "completed"  # skipped targets are not failures
    ends = {e["target"]: e["status"] for e in names(rig.events(result), "target_end")}
    assert ends == {"first": "skipped", "second": "completed"}
    assert result.summary["per_target"]["first"] == {"light:L": 1}
    assert result.summary["per_target"]["second"] == {"light:L": 2}


def test_a_stuck_focuser_times_out_and_the_step_policy_decides(rig: Rig) -> None:
    plan = rig.write(
        f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - focus: {{position: 20000}}
                timeout: 60
                on_error: {{retry: 1, backoff: 5, then: skip_step}}
              - filter: L
              - expose: {{count: 2, exposure: 10}}
        """,
        faults="[{kind: focuser_stuck, times: 5}]",
    )
    result = rig.run(plan, speed=400)
    assert result.outcome == "completed"
    events = rig.events(result)
    errors = [e["message"] for e in names(events, "error")]
    assert len(errors) == 2 and all("timed out after 60 s" in m for m in errors)
    assert [e["action"] for e in names(events, "policy")] == ["skip_step"]
    assert len(rig.fits()) == 2


def test_an_abort_policy_fails_the_run_after_a_safe_shutdown(rig: Rig) -> None:
    plan = rig.write(
        f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - focus: {{position: 20000}}
                timeout: 30
              - expose: {{count: 2, exposure: 10}}
        on_error: {{retry: 0, then: abort}}
        """,
        shutdown=SHUTDOWN.replace("  - guide: stop\n", ""),
        faults="[{kind: focuser_stuck}]",
    )
    result = rig.run(plan, speed=400)
    assert result.outcome == "failed" and result.exit_code == 1
    events = rig.events(result)
    assert names(events, "parked") and not rig.fits()


def test_unsafe_weather_aborts_the_exposure_at_once_and_shuts_down(rig: Rig) -> None:
    plan = rig.write(
        f"""\
        startup:
          - cool: {{to: 0, rate: 30}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - filter: L
              - expose: {{count: 5, exposure: 300}}
        """,
        shutdown=SHUTDOWN.replace("  - guide: stop\n", ""),
        faults="[{kind: unsafe_weather, at_time: 500}]",
    )
    result = rig.run(plan, speed=200)
    assert result.outcome == "aborted"
    events = rig.events(result)
    kinds = [e["event"] for e in events]
    assert "unsafe" in kinds
    # the exposure running when it turned unsafe was aborted; it is not on disk
    started = names(events, "exposure_start")
    assert len(started) == len(rig.fits()) + 1 and len(started) < 5
    after = kinds[kinds.index("unsafe"):]
    assert "frame" not in after and "parked" in after


def test_settle_failure_follows_the_dither_policy(rig: Rig) -> None:
    plan = rig.write(
        f"""\
        startup:
          - guide: start
        triggers:
          - dither: {{every: 1, amount: 3, settle: {{pixels: 1.5, time: 4, timeout: 20}},
                      on_settle_failure: skip_target}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{filter: L}}, {{expose: {{count: 4, exposure: 10}}}}]
        """,
        shutdown=SHUTDOWN,
        guider=True,
        faults="[{kind: settle_never, at_frame: 2}]",
    )
    result = rig.run(plan, speed=100)
    ends = names(rig.events(result), "target_end")
    assert ends[0]["status"] == "skipped" and "settl" in ends[0]["reason"]
    assert result.summary["frames"]["light"] == 1


def _exposure_gaps(events: list[dict[str, Any]]) -> list[list[str]]:
    gaps: list[list[str]] = []
    current: list[str] = []
    for e in events:
        if e["event"] == "exposure_start":
            gaps.append(current)
            current = []
        elif e["event"] in ("dithered", "settled", "autofocus", "warning"):
            current.append(e["event"])
    return gaps


def test_exposures_never_start_before_the_dither_settled(rig: Rig) -> None:
    plan = rig.write(
        f"""\
        startup:
          - guide: start
        triggers:
          - dither: {{every: 2, amount: 3, settle: {{pixels: 2, time: 3, timeout: 60}}}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - each_filter: [L, R, G]
                steps: [{{expose: {{count: 3, exposure: 10}}}}]
        """,
        shutdown=SHUTDOWN,
        guider=True,
    )
    result = rig.run(plan, speed=100)
    assert result.outcome == "completed"
    gaps = _exposure_gaps(rig.events(result))
    # 9 lights; "every 2" counts across filters: dithers before lights 3, 5, 7, 9
    assert [i for i, g in enumerate(gaps) if "dithered" in g] == [2, 4, 6, 8]
    assert result.summary["dithers"] == 4
    # each is announced settled before the exposure, and so is the start of guiding
    assert all(g[g.index("dithered") + 1] == "settled" for g in gaps if "dithered" in g)
    assert "settled" in gaps[0]
    settled = names(rig.events(result), "settled")
    assert [e["after"] for e in settled] == ["guide"] + ["dither"] * 4
    assert all(e["pixels"] == 2 and e["seconds"] >= 3 for e in settled[1:])


def test_sigterm_runs_the_shutdown_and_a_second_signal_is_ignored(rig: Rig) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    plan = rig.write(
        f"""\
        startup: [{{cool: {{to: 0, rate: 30}}}}]
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{filter: L}}, {{expose: {{count: 50, exposure: 60}}}}]
        """,
        shutdown="shutdown:\n  - warm: {to: 10, rate: 2}\n  - park: {}\n",
    )
    nr = str(Path(sys.executable).parent / "nightrunner")
    proc = subprocess.Popen(
        [nr, "run", str(plan), "--data-dir", str(rig.data), "--speed", "20", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    deadline = time.monotonic() + 60
    while not list(rig.data.rglob("*.fits")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # shutdown is warming the camera (slowly): a second signal changes nothing
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    summary = json.loads(out)
    assert summary["outcome"] == "aborted" and summary["abort_reason"] == "signal SIGTERM"
    events = [json.loads(x) for x in
              (Path(summary["run_dir"]) / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert "parked" in kinds[kinds.index("abort"):]
    assert any("signal SIGINT during shutdown: ignored" in e.get("message", "")
               for e in events)


def test_a_lost_guide_star_is_recovered_before_the_next_exposure(rig: Rig) -> None:
    plan = rig.write(
        f"""\
        startup: [{{guide: start}}]
        triggers:
          - star_lost: {{wait: 90, restart_guiding: true, then: skip_target}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{filter: L}}, {{expose: {{count: 4, exposure: 20}}}}]
        """,
        shutdown=SHUTDOWN,
        guider=True,
        faults="[{kind: star_lost, at_frame: 2, duration: 40}]",
    )
    result = rig.run(plan, speed=50)
    assert result.outcome == "completed"
    events = rig.events(result)
    warnings = [e["message"] for e in names(events, "warning")]
    assert any("guide star lost" in w for w in warnings)
    assert result.summary["frames"]["light"] == 4
    assert [e["state"] for e in names(events, "state")].count("imaging:recover_guiding") == 1
    assert names(events, "target_end")[0]["status"] == "completed"
