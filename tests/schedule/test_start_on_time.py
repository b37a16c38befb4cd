"""A start is made at the instant it was due, however fast the simulated clock runs: time
stops at the job's start (the clock's alarm) and flows again when the night's first step
runs, so a wake-up a few milliseconds late (seconds of clock time at 5000x) costs nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from runner.clock import ScaledClock
from tests.schedule.schedkit import SimHub, add_job, decisions, write_plan

AMS = ZoneInfo("Europe/Amsterdam")
T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def test_the_clock_stops_at_its_alarm_and_flows_on_from_there_when_released() -> None:
    clock = ScaledClock(speed=5000, start=T0)
    clock.hold_at(T0 + timedelta(seconds=50))  # 10 ms of real time away
    time.sleep(0.05)  # a waiter that wakes 40 ms late: 200 s of clock time at 5000x
    assert clock.held
    assert clock.now() == T0 + timedelta(seconds=50)
    time.sleep(0.01)
    assert clock.now() == T0 + timedelta(seconds=50)  # still stopped: nobody released it
    clock.release()
    time.sleep(0.01)
    assert T0 + timedelta(seconds=50) < clock.now() < T0 + timedelta(seconds=50 + 5000)


def test_an_alarm_already_past_holds_at_the_present_never_back_in_time() -> None:
    clock = ScaledClock(speed=5000, start=T0)
    time.sleep(0.01)
    before = clock.now()
    clock.hold_at(T0)
    assert clock.held and clock.now() >= before


def test_the_real_clock_has_no_alarm() -> None:
    clock = ScaledClock()
    clock.hold_at(datetime.now(UTC))
    time.sleep(0.002)
    assert not clock.held


async def test_at_5000x_the_night_begins_at_its_start_to_the_millisecond(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, frames=1)
    data = tmp_path / "data"
    add_job(data, plan, "21:00", datetime(2026, 11, 25, 12, 0, tzinfo=AMS))
    # 21:00 is 10 simulated minutes away: 0.12 s of real time at 5000x
    hub = await SimHub.open(data, plan, datetime(2026, 11, 25, 20, 50, tzinfo=AMS),
                            speed=5000)
    first: list[datetime] = []
    original = hub.hub.start_night

    async def start(p: Path, resume: bool = False) -> object:
        out = await original(p, resume)
        hub.hub.run.listeners.append(
            lambda e: first.append(datetime.fromisoformat(e["clock"])) if not first else None)
        return out

    hub.hub.start_night = start
    # the event loop is made busy meanwhile: 5 ms blocks are 25 s of clock time each
    busy = True

    async def hog() -> None:
        while busy:
            time.sleep(0.005)  # noqa: ASYNC251 - blocking the loop is the point
            await asyncio.sleep(0)

    hogger = asyncio.create_task(hog())
    try:
        hub.begin()
        result = await hub.wait_night()
        assert result.outcome == "completed"
    finally:
        busy = False
        await hogger
        await hub.close()
    [started] = [d for d in decisions(data) if d["action"] == "started"]
    assert started["late_s"] == 0.0
    due = datetime(2026, 11, 25, 21, 0, tzinfo=AMS)
    assert timedelta(0) <= first[0] - due < timedelta(seconds=1)


async def test_a_scheduler_that_stops_leaves_simulated_time_flowing(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, frames=1)
    data = tmp_path / "data"
    add_job(data, plan, "21:00", datetime(2026, 11, 25, 12, 0, tzinfo=AMS))
    hub = await SimHub.open(data, plan, datetime(2026, 11, 25, 13, 0, tzinfo=AMS), speed=5000)
    try:
        hub.begin()
        await asyncio.sleep(0.2)  # it has looked at its jobs and sleeps until 21:00
        hub.clock.hold()  # as its alarm would, had it rung a moment before the stop
        assert hub.task is not None
        hub.task.cancel()
        await asyncio.gather(hub.task, return_exceptions=True)
        assert not hub.clock.held
    finally:
        await hub.close()
