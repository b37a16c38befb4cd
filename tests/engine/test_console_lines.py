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


def test_a_resume_is_announced_with_the_files_it_removed() -> None:
    line = _describe({"event": "resume", "run": "20261125-190000-demo", "frames": 8,
                      "orphans": ["M81/L/M81_L_30s_0009.fits"]})
    assert line == ("resuming run 20261125-190000-demo: 8 frames already taken; removed 1 "
                    "unjournalled file: M81/L/M81_L_30s_0009.fits")
