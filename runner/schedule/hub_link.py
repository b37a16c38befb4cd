"""The scheduler's start and stop inside ``nightrunner serve`` (one call each from serve)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from runner.schedule.loop import NightControl, NightScheduler


def start_scheduler(hub: Any, data_dir: Path, clock: Any) -> asyncio.Task[None] | None:
    """Run the data directory's schedule on the hub's clock, starting nights through the
    hub's own ``start_night`` (the path ``run_plan`` takes). A schedule that cannot be read
    is a warning: the hub serves on without it."""

    def running_plan() -> str | None:
        return hub.run.plan.name if hub.run is not None else None

    def abort_night(reason: str) -> None:
        if hub.night_active:
            hub.run.abort(reason)

    control = NightControl(
        start_night=lambda plan, resume: hub.start_night(plan, resume),
        night_active=lambda: bool(hub.night_active),
        running_plan=running_plan, abort_night=abort_night,
        night_starting=lambda: bool(hub.night_active) and not hub.run.night_begun)
    try:
        sched = NightScheduler(data_dir, clock, control)
    except Exception as exc:
        print(f"warning: the schedule in {data_dir} cannot be read ({exc}); "
              "serving without it", flush=True)
        return None
    task = asyncio.create_task(sched.run())

    def done(t: asyncio.Task[None]) -> None:
        if not t.cancelled() and t.exception() is not None:
            print(f"warning: the scheduler stopped: {t.exception()}", flush=True)

    task.add_done_callback(done)
    return task


async def stop_scheduler(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
