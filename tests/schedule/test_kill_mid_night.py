"""The power cut for real: the hub's process is killed (SIGKILL: no shutdown, no last
journal line, perhaps a frame half written) in the middle of a scheduled night and started
again. Tonight's unfinished run resumes from its journal, once, and every frame of the night
is on disk exactly once; the job itself never starts the night a second time."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.schedule.schedkit import actions, add_job, decisions, write_plan

AMS = ZoneInfo("Europe/Amsterdam")
ROOT = Path(__file__).resolve().parents[2]
FRAMES = 6


def _hub(data: Path, plan: Path, start: datetime, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.schedule.schedkit", str(data), str(plan),
             start.isoformat(), "100"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait(what: str, done: object, proc: subprocess.Popen[bytes], log: Path,
          timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert proc.poll() is None, f"the hub died: {log.read_text()[-2000:]}"
        assert time.monotonic() < end, f"no {what} in {timeout} s: {log.read_text()[-2000:]}"
        time.sleep(0.05)


def _journalled_frames(data: Path) -> int:
    n = 0
    for journal in data.glob("runs/*/journal.jsonl"):
        for line in journal.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):  # the line the kill cut short
                n += json.loads(line).get("type") == "frame"
    return n


def _last_clock(run: Path) -> datetime:
    clocks = []
    for line in (run / "events.jsonl").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, KeyError):
            clocks.append(datetime.fromisoformat(json.loads(line)["clock"]))
    return max(clocks)


def test_a_hub_killed_mid_night_resumes_tonight_once_with_every_frame_once(
        tmp_path: Path) -> None:
    plan = write_plan(tmp_path, frames=FRAMES)
    data = tmp_path / "data"
    log = tmp_path / "hub.log"
    add_job(data, plan, "21:00", datetime(2026, 11, 25, 12, 0, tzinfo=AMS))
    hub = _hub(data, plan, datetime(2026, 11, 25, 20, 59, 50, tzinfo=AMS), log)
    try:
        _wait("two frames", lambda: _journalled_frames(data) >= 2, hub, log)
        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
    finally:
        hub.kill()
    [run] = list((data / "runs").iterdir())
    assert not (run / "summary.json").exists(), "the kill must land mid-night"
    taken = _journalled_frames(data)
    assert 2 <= taken < FRAMES
    # the machine is back ten (simulated) minutes after its last word
    hub = _hub(data, plan, _last_clock(run) + timedelta(minutes=10), log)
    try:
        _wait("the end of the night", lambda: (run / "summary.json").is_file(), hub, log)
    finally:
        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["outcome"] == "completed"
    assert summary["frames"]["light"] == FRAMES
    assert summary["frames"]["skipped_on_resume"] == taken
    assert list((data / "runs").iterdir()) == [run]  # no second run of the night
    assert actions(data) == ["started", "resumed"]
    [resumed] = [d for d in decisions(data) if d["action"] == "resumed"]
    assert resumed["run"] == run.name
    names = sorted(p.name for p in data.rglob("*.fits"))
    assert names == [f"NGC 188_L_60s_000{i}.fits" for i in range(1, FRAMES + 1)]
