"""The scheduler inside the hub, on a simulated clock, starting real nights on simulators:
missed starts coalesce into one late start, never in daylight, a night cut short resumes
after the reboot, and a second start while a night runs is refused."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from runner.schedule.store import ScheduleStore
from tests.schedule.schedkit import SimHub, actions, add_job, decisions, write_plan

AMS = ZoneInfo("Europe/Amsterdam")


def _next_run(data: Path) -> datetime | None:
    store = ScheduleStore(data)
    try:
        [job] = store.jobs()
        return job.next_run
    finally:
        store.close()


async def test_a_reboot_at_21_05_runs_the_21_00_night_once_late_after_missed_nights(
        tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    data = tmp_path / "data"
    # scheduled on the 23rd; the machine was off until 21:05 on the 25th
    add_job(data, plan, "21:00", datetime(2026, 11, 23, 12, 0, tzinfo=AMS))
    hub = await SimHub.open(data, plan, datetime(2026, 11, 25, 21, 5, tzinfo=AMS), speed=200)
    try:
        hub.begin()
        result = await hub.wait_night()
        assert result.outcome == "completed" and result.summary["frames"]["light"] == 3
    finally:
        await hub.close()
    assert actions(data) == ["coalesced", "started"]
    started = next(d for d in decisions(data) if d["action"] == "started")
    assert started["planned"] == "2026-11-25T21:00:00+01:00"
    assert 300 <= started["late_s"] < 301
    assert len(hub.started) == 1
    assert _next_run(data) == datetime(2026, 11, 26, 21, 0, tzinfo=AMS)


async def test_a_reboot_at_06_00_starts_no_night_in_daylight(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    data = tmp_path / "data"
    add_job(data, plan, "civil-dusk", datetime(2026, 6, 20, 12, 0, tzinfo=AMS))
    # civil dusk was at ~22:50; at 06:00 the Sun is up (within the 8 h grace nonetheless)
    hub = await SimHub.open(data, plan, datetime(2026, 6, 21, 6, 0, tzinfo=AMS), speed=60)
    try:
        hub.begin()
        for _ in range(500):
            if "skipped" in actions(data):
                break
            await asyncio.sleep(0.01)
    finally:
        await hub.close()
    assert actions(data) == ["skipped"]
    [skip] = [d for d in decisions(data) if d["action"] == "skipped"]
    assert "daylight" in skip["reason"] and skip["planned"].startswith("2026-06-20T22:")
    assert hub.started == [] and not (data / "runs").exists()
    nxt = _next_run(data)
    assert nxt is not None and nxt.astimezone(AMS).date().isoformat() == "2026-06-21"


async def test_a_night_cut_short_resumes_after_the_reboot_with_every_frame_once(
        tmp_path: Path) -> None:
    plan = write_plan(tmp_path, frames=6)
    data = tmp_path / "data"
    add_job(data, plan, "21:00", datetime(2026, 11, 25, 12, 0, tzinfo=AMS))
    hub = await SimHub.open(data, plan, datetime(2026, 11, 25, 20, 59, 58, tzinfo=AMS),
                            speed=100)
    try:
        hub.begin()
        while not list(data.rglob("*.fits"))[1:]:  # two frames on disk
            await asyncio.sleep(0.02)
        hub.hub.run.abort("power cut")
        first = await hub.wait_night()
        cut_at = hub.clock.now()
    finally:
        await hub.close()
    assert first.outcome == "aborted"
    taken = first.summary["frames"]["light"]
    assert 2 <= taken < 6
    # the machine comes back ten minutes later: the night resumes, the job does not restart it
    hub = await SimHub.open(data, plan, cut_at + timedelta(minutes=10), speed=100)
    try:
        hub.begin()
        second = await hub.wait_night()
    finally:
        await hub.close()
    assert second.run_dir == first.run_dir
    assert second.summary["frames"]["skipped_on_resume"] == taken
    assert actions(data) == ["started", "resumed"]
    assert [resume for _, resume in hub.started] == [True]
    names = sorted(p.name for p in data.rglob("*.fits"))
    assert names == [f"NGC 188_L_60s_000{i}.fits" for i in range(1, 7)]


async def test_a_second_start_while_a_night_runs_is_refused_by_the_hub_and_the_lock(
        tmp_path: Path) -> None:
    plan = write_plan(tmp_path, frames=200)
    data = tmp_path / "data"
    add_job(data, plan, "21:00", datetime(2026, 11, 25, 12, 0, tzinfo=AMS))
    add_job(data, plan, "21:01", datetime(2026, 11, 25, 12, 0, tzinfo=AMS))
    hub = await SimHub.open(data, plan, datetime(2026, 11, 25, 20, 59, 59, tzinfo=AMS),
                            speed=30)
    try:
        hub.begin()
        while "refused" not in actions(data):
            await asyncio.sleep(0.02)
        # cron starting the same plan on the same data directory meanwhile
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from runner.entry import main; main()", "run", str(plan),
            "--data-dir", str(data), "--no-rpc", "--progress", "plain", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        assert hub.hub.night_active, "the test needs the night still running"
    finally:
        await hub.close()
    [refused] = [d for d in decisions(data) if d["action"] == "refused"]
    assert "'nightly' is running" in refused["reason"]
    assert len(hub.started) == 1
    assert proc.returncode == 4
    message = err.decode()
    assert "night 'nightly' (pid " in message and "nightrunner status" in message
    assert "Traceback" not in message
