"""kill -9 at any moment, then `--resume`: no frame lost, none duplicated, state restored."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from runner.devices.interfaces import Frame, RoiBox
from runner.engine.journal import Journal, resume_state
from runner.engine.reconcile import reconcile
from runner.storage.fits import FrameMeta, write_fits
from tests.engine.conftest import CLUSTER, Rig

NR = str(Path(sys.executable).parent / "nightrunner")
EXPECTED = sorted(
    [f"NGC 188_{f}_20s_{i:04d}.fits" for f in ("L", "R") for i in (1, 2, 3, 4)]
    + [f"NGC 188_{f}_20s_{i:04d}.fits" for f in ("L", "R") for i in (5, 6, 7, 8)]
)


def _frames_journalled(data: Path) -> int:
    journals = list(data.glob("runs/*/journal.jsonl"))
    if not journals:
        return 0
    return sum(1 for e in Journal.read(journals[0]) if e["type"] == "frame")


def _kill_9_after(rig: Rig, plan: Path, *, frames: int, speed: float, then: float = 0.0
                  ) -> list[str]:
    """``nightrunner run`` killed with SIGKILL once ``frames`` are journalled (and ``then``
    seconds more); returns its command line, for the ``--resume``."""
    cmd = [NR, "run", str(plan), "--data-dir", str(rig.data), "--speed", str(speed),
           "--progress", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _frames_journalled(rig.data) < frames and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(then)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return cmd


def _plan(rig: Rig) -> Path:
    return rig.write(
        f"""\
        startup:
          - guide: start
        triggers:
          - dither: {{every: 3, amount: 2}}
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - repeat: {{count: 2}}
                steps:
                  - filter: L
                  - expose: {{count: 4, exposure: 20}}
                  - filter: R
                  - expose: {{count: 4, exposure: 20}}
        """,
        guider=True,
        shutdown="shutdown:\n  - guide: stop\n",
    )


def test_kill_9_mid_frame_then_resume_gives_the_exact_frame_set(rig: Rig) -> None:
    plan = _plan(rig)
    cmd = _kill_9_after(rig, plan, frames=5, speed=40, then=0.2)  # into the next exposure
    before = _frames_journalled(rig.data)
    assert 5 <= before < 16
    # the lock died with the process: resume is allowed and picks the run up
    done = subprocess.run([*cmd, "--resume", "--json"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["frames"]["skipped_on_resume"] == before
    assert summary["frames"]["light"] == 16  # the whole night, both segments
    names = sorted(p.name for p in rig.fits())
    assert names == EXPECTED
    # the resumed run continues the journal of the interrupted one
    assert len(list(rig.data.glob("runs/*"))) == 1
    journal = Journal.read(next(rig.data.glob("runs/*/journal.jsonl")))
    keys = [e["key"] for e in journal if e["type"] == "frame"]
    assert len(keys) == len(set(keys)) == 16


def test_resume_restores_the_dither_counter(rig: Rig) -> None:
    plan = _plan(rig)
    result = rig.run(plan)
    journal_path = result.run_dir / "journal.jsonl"
    entries = Journal.read(journal_path)
    frames = [e for e in entries if e["type"] == "frame"]
    # the counter journalled with each frame is what --resume restores
    counters = [e["triggers"]["frames_since_dither"] for e in frames]
    assert counters[:7] == [1, 2, 3, 1, 2, 3, 1]


def test_a_frame_written_but_not_journalled_is_kept_not_retaken(tmp_path: Path) -> None:
    """A crash between the rename and the journal entry: the file is whole and names its
    frame, so the resume journals it instead of deleting it and taking it again."""
    run_dir = tmp_path / "runs" / "r1"
    j = Journal(run_dir / "journal.jsonl")
    done, kept = tmp_path / "a_0001.fits", tmp_path / "a_0002.fits"
    frame = Frame(data=np.zeros((8, 8), np.uint16), exposure=1.0, start=datetime.now(UTC),
                  frame_type="light", binning=1, gain=0, offset=0, ccd_temp=None,
                  set_temp=None, roi=RoiBox(0, 0, 8, 8))
    write_fits(done, frame, FrameMeta(run_id="r1", frame_key="k0"))
    write_fits(kept, frame, FrameMeta(run_id="r1", frame_key="k1", object_name="M 1"))
    j.record("writing", key="k0", path=str(done))
    j.record("frame", key="k0", path=str(done), triggers={"frames_since_dither": 1})
    j.record("writing", key="k1", path=str(kept))  # crash after rename, before journal
    with (run_dir / "journal.jsonl").open("ab") as f:
        f.write(b'{"type": "frame", "key": "k1", "pa')  # a torn last line
    state = resume_state(run_dir / "journal.jsonl")
    assert set(state.frames) == {"k0"} and state.trigger_state == {"frames_since_dither": 1}
    assert state.unreadable_lines == 1
    j = Journal(run_dir / "journal.jsonl")  # cuts the torn tail: the next entry is whole
    fixed = reconcile(state, j, tmp_path)
    j.record("run_start")
    j.close()
    assert fixed.adopted == [str(kept)] and done.exists() and kept.exists()
    again = resume_state(run_dir / "journal.jsonl")
    assert again.frames == {"k0": str(done), "k1": str(kept)}
    assert again.details["k1"]["target"] == "M 1" and again.unreadable_lines == 0


def test_a_journal_cut_to_nothing_still_keeps_the_frames_on_disk(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"started": datetime.now(UTC).isoformat()}))
    frame = Frame(data=np.zeros((8, 8), np.uint16), exposure=1.0, start=datetime.now(UTC),
                  frame_type="light", binning=1, gain=0, offset=0, ccd_temp=None,
                  set_temp=None, roi=RoiBox(0, 0, 8, 8))
    ours, other = tmp_path / "L" / "a_0001.fits", tmp_path / "L" / "b_0001.fits"
    write_fits(ours, frame, FrameMeta(run_id="r1", frame_key="k0"))
    write_fits(other, frame, FrameMeta(run_id="r0", frame_key="k0"))  # another run's
    (run_dir / "journal.jsonl").write_bytes(b"")
    state = resume_state(run_dir / "journal.jsonl")
    j = Journal(run_dir / "journal.jsonl")
    fixed = reconcile(state, j, tmp_path)
    j.close()
    assert fixed.adopted == [str(ours)] and state.frames == {"k0": str(ours)}
    assert other.exists()


def test_resume_without_an_interrupted_run_starts_fresh(rig: Rig) -> None:
    plan = _plan(rig)
    first = rig.run(plan)
    assert first.outcome == "completed"
    again = rig.run(plan, resume=True)
    events = rig.events(again)
    assert any("nothing to resume" in e.get("message", "") for e in events)
    assert again.summary["frames"]["light"] == 16


def test_resuming_an_edited_plan_says_the_edit_is_why_it_starts_fresh(rig: Rig) -> None:
    plan = _plan(rig)
    run = rig.make_run(plan)

    def abort_at_first_frame(event: dict[str, Any]) -> None:
        if event["event"] == "frame":
            run.abort("test abort")

    run.listeners.append(abort_at_first_frame)
    first = asyncio.run(run.execute())
    assert first.outcome == "aborted"
    plan.write_text(plan.read_text().replace("count: 4", "count: 3"))
    again = rig.run(plan, resume=True)
    notes = [e["message"] for e in rig.events(again) if e["event"] == "warning"]
    assert (f"the plan changed since its interrupted run {first.run_dir.name}: a changed plan "
            "is not resumed (that run's frames stay on disk); starting a fresh run") in notes
    assert again.run_dir != first.run_dir


def test_a_master_set_cut_by_kill_9_is_combined_whole_after_the_resume(rig: Rig) -> None:
    plan = rig.write(
        """\
        startup:
          - calibration: {kind: bias, count: 8, master: true}
        targets: []
        """
    )
    cmd = _kill_9_after(rig, plan, frames=3, speed=20)
    assert 3 <= _frames_journalled(rig.data) < 8
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    events = [json.loads(x) for x in next(rig.data.glob("runs/*/events.jsonl")).read_text()
              .splitlines()]
    built = [e for e in events if e["event"] == "calibration_master"]
    assert [(e["kind"], e["frames"]) for e in built] == [("bias", 8)]
    assert len(rig.fits()) == 8 + 1  # the eight biases and their master


def test_a_resumed_until_frames_loop_counts_the_lights_it_took_before(rig: Rig) -> None:
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence:
              - filter: L
              - repeat: {{until: {{frames: 5}}}}
                steps:
                  - expose: {{count: 2, exposure: 5}}
        """)
    run = rig.make_run(plan)
    taken = 0

    def abort_at_third_frame(event: dict[str, Any]) -> None:
        nonlocal taken
        if event["event"] == "frame":
            taken += 1
            if taken == 3:  # mid-way through the loop's second iteration
                run.abort("test abort")

    run.listeners.append(abort_at_third_frame)
    first = asyncio.run(run.execute())
    assert first.outcome == "aborted"
    before = first.summary["frames"]["light"]
    assert before >= 3
    again = rig.run(plan, resume=True)
    assert again.outcome == "completed"
    assert again.summary["frames"]["skipped_on_resume"] == before
    assert again.summary["frames"]["light"] == 5  # the loop's five, not five more
    keys = [e["key"] for e in Journal.read(again.run_dir / "journal.jsonl")
            if e["type"] == "frame"]
    assert len(keys) == len(set(keys)) == 5
