"""What the console says at the end of a night and when a night resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runner.cli import final_line
from runner.engine.progress import _describe
from runner.engine.run import Run, RunOptions
from runner.plan.loader import load_plan
from tests.engine.conftest import CLUSTER, EVENING, Rig


def test_the_last_line_of_a_failed_night_names_what_ended_it(rig: Rig) -> None:
    """The error that ended the night is named and counted: "failed: … 0 errors" used to
    hide it."""
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
        faults="[{kind: focuser_stuck}]",
    )
    loaded = load_plan(plan)
    assert loaded.plan is not None and loaded.equipment is not None
    run = Run(loaded.plan, loaded.equipment,
              RunOptions(data_dir=rig.data, speed=400, start=EVENING, progress="none",
                         plan_text=plan.read_bytes(), plan_path=plan))
    result = asyncio.run(run.execute())
    assert result.outcome == "failed"
    line = final_line(result.summary, result.run_dir / "report.md")
    assert line.startswith("failed (focus failed: "), line
    assert ": 0 light frames, 2 errors" in line
    assert line.endswith(f"report {result.run_dir}/report.md")


def test_a_completed_night_has_no_cause_and_counts_its_errors() -> None:
    summary = {"outcome": "completed", "frames": {"light": 12}, "errors": ["dither: timeout"]}
    assert final_line(summary, Path("r/report.md")) == \
        "completed: 12 light frames, 1 error; report r/report.md"


def test_a_resume_is_announced_with_what_it_found_on_disk() -> None:
    # the fields the engine's resume event carries (runner/engine/reconcile.Reconciled)
    line = _describe({"event": "resume", "run": "20261125-190000-demo", "frames": 8,
                      "adopted": ["M81/L/M81_L_30s_0009.fits"],
                      "lost": ["M81/L/M81_L_30s_0003.fits", "M81/L/M81_L_30s_0004.fits"],
                      "temp_files_removed": ["M81/L/.M81_L_30s_0010.fits.part"]})
    assert line == ("resuming run 20261125-190000-demo: 8 frames already taken; "
                    "kept 1 complete unjournalled frame: M81/L/M81_L_30s_0009.fits; "
                    "2 journalled frames missing, taken again: M81/L/M81_L_30s_0003.fits, "
                    "M81/L/M81_L_30s_0004.fits; "
                    "removed 1 partial file: M81/L/.M81_L_30s_0010.fits.part")
    assert _describe({"event": "resume", "run": "r", "frames": 3, "adopted": [], "lost": [],
                      "temp_files_removed": []}) == "resuming run r: 3 frames already taken"


def test_each_centring_attempt_is_a_line_with_where_it_landed_and_what_was_done() -> None:
    assert _describe({"event": "centring", "attempt": 1, "ra": 10.8, "dec": 41.4,
                      "error_arcsec": 600.84, "action": "sync"}) == (
        "centring attempt 1 at RA 00h43m12s Dec +41°24′00″, 600.8″ off → sync")
    assert _describe({"event": "centring", "attempt": 2, "ra": None, "dec": None,
                      "error_arcsec": None, "action": "unsolved"}) == (
        "centring attempt 2 → unsolved")


def test_console_lines_speak_site_time_and_sexagesimal_coordinates() -> None:
    import io
    from zoneinfo import ZoneInfo

    from runner.engine.progress import PlainProgress

    out = io.StringIO()
    show = PlainProgress(out, tz=ZoneInfo("Europe/Amsterdam"))
    show({"event": "slewed", "time": "2026-11-25T19:00:05+00:00", "ra": 12.1083, "dec": 85.245})
    show({"event": "frame", "time": "2026-11-25T19:05:00+00:00", "type": "light", "filter": "L",
          "exposure": 30.0, "hfr": 2.123456, "guiding_rms": None, "path": "M/L/x.fits"})
    show({"event": "autofocus", "time": "2026-11-25T19:10:00+00:00", "best_position": 25251,
          "hfr": 1.4728638597302155})
    assert out.getvalue().splitlines() == [
        "(times are site time, CET)",
        "20:00:05 slewed to RA 00h48m26s Dec +85°14′42″",
        "20:05:00 frame light L 30s HFR 2.12px → M/L/x.fits",
        "20:10:00 autofocus → 25251 (HFR 1.47 px)",
    ]


def test_the_panel_follows_the_phase_all_night() -> None:
    import io

    from rich.console import Console

    from runner.engine.progress import RichProgress

    panel = RichProgress(4, console=Console(file=io.StringIO(), force_terminal=False))
    try:
        panel({"event": "phase", "phase": "startup", "time": "2026-11-25T19:00:00+00:00"})
        panel({"event": "state", "state": "imaging:expose", "time": "2026-11-25T19:01:00+00:00"})
        assert panel.info["phase"] == "imaging"
        panel({"event": "state", "state": "shutdown:park", "time": "2026-11-25T23:00:00+00:00"})
        assert panel.info["phase"] == "shutdown"
    finally:
        panel.close()


def test_a_torn_event_line_from_a_killed_night_does_not_swallow_the_next_event(
    tmp_path: Path,
) -> None:
    import json

    from runner.engine.events import EventBus

    log = tmp_path / "events.jsonl"
    log.write_text('{"event": "frame", "time": "2026-11-25T19:00:00+00:00"}\n{"event": "fra')
    bus = EventBus(log)
    bus.emit("resume", run="r", frames=1)
    bus.close()
    lines = log.read_text().splitlines()
    assert lines[1] == '{"event": "fra'
    assert json.loads(lines[2])["event"] == "resume"


def test_the_report_gives_the_night_in_site_time() -> None:
    from runner.engine.report import render

    summary = {"plan": "p", "outcome": "completed", "clock_seconds": 3600.0, "speed": 1.0,
               "site_timezone": "Europe/Amsterdam", "dithers": 0, "dithers_skipped": 0,
               "autofocus_runs": 0, "retries": 0, "per_target": {}, "errors": [],
               "data_dir": "d", "run_dir": "d/runs/r",
               "frames": {"light": 0, "dark": 0, "flat": 0, "bias": 0, "skipped_on_resume": 0}}
    events = [{"event": "phase", "clock": "2026-11-25T19:00:00+00:00"},
              {"event": "run_end", "clock": "2026-11-25T20:00:00+00:00"}]
    assert "- night: 20:00:00 → 21:00:00 Europe/Amsterdam (1.00 h" in render(summary, events)
