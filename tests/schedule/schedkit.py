"""A hub on the simulators with the scheduler in it, on a simulated clock (tests, benchmarks).

A plain module with a unique name (test directories share one ``conftest`` name)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.clock import ScaledClock
from runner.control.hub import Hub
from runner.control.serve import _start_night
from runner.devices.factory import build_devices
from runner.plan.loader import load_plan
from runner.schedule.loop import NightControl, NightScheduler
from runner.schedule.store import ScheduleStore

EQUIPMENT = """\
name: sched-rig
camera: {backend: simulator, width: 160, height: 120, download_time: 1}
filter_wheel: {backend: simulator, change_time: 2, filters: [{name: L}, {name: R}]}
mount: {backend: simulator, slew_rate: 5, settle_time: 2}
simulation: {seed: 3, stars: 40}
"""

AMSTERDAM = "{latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}"


def write_plan(folder: Path, *, frames: int = 3, exposure: float = 60, name: str = "nightly",
               site: str = AMSTERDAM) -> Path:
    (folder / "eq.yaml").write_text(EQUIPMENT)
    plan = folder / f"{name}.yaml"
    plan.write_text(textwrap.dedent(f"""\
        version: 1
        name: {name}
        site: {site}
        equipment: eq.yaml
        targets:
          - name: NGC 188
            coordinates: {{ra: "00:48:26", dec: "+85:14:42"}}
            sequence:
              - filter: L
              - expose: {{count: {frames}, exposure: {exposure}}}
        """))
    return plan


@dataclass
class SimHub:
    """``nightrunner serve``'s hub and scheduler, minus the network, on a simulated clock."""

    data: Path
    clock: ScaledClock
    hub: Hub
    scheduler: NightScheduler
    task: asyncio.Task[None] | None = None
    started: list[Any] = field(default_factory=list)

    @classmethod
    async def open(cls, data: Path, plan: Path, start: datetime, speed: float) -> SimHub:
        result = load_plan(plan)
        assert result.equipment is not None and result.plan is not None
        clock = ScaledClock(speed=speed, start=start)
        clock.hold()  # the scheduler lets it go once it has looked at its jobs
        devices = build_devices(result.equipment, clock, site=result.plan.site)
        await devices.connect_all()
        hub = Hub(data, devices=devices, equipment=result.equipment, clock=clock)
        hub.start_night = lambda p, resume=False: _start_night(hub, p, speed, resume)
        me: SimHub

        async def start(p: Path, resume: bool) -> Any:
            me.started.append((clock.now(), resume))
            return await hub.start_night(p, resume)

        def abort(reason: str) -> None:
            if hub.night_active:
                hub.run.abort(reason)

        control = NightControl(start_night=start, night_active=lambda: hub.night_active,
                               running_plan=lambda: hub.run.plan.name if hub.run else None,
                               abort_night=abort,
                               night_starting=lambda: hub.night_active
                               and not hub.run.night_begun)
        me = cls(data, clock, hub, NightScheduler(data, clock, control))
        return me

    def begin(self) -> None:
        self.task = asyncio.create_task(self.scheduler.run())

    async def wait_night(self, timeout: float = 60.0) -> Any:
        """Wait for the running night (if any) to end; its RunResult."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.hub.night_task is None and loop.time() < end:
            await asyncio.sleep(0.01)
        task = self.hub.night_task
        assert task is not None, "no night started"
        return await asyncio.wait_for(task, timeout)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.hub.night_task is not None:
            self.hub.run.abort("test over")
            await asyncio.gather(self.hub.night_task, return_exceptions=True)
        await self.hub.devices.disconnect_all()


def add_job(data: Path, plan: Path, at: str, now: datetime, **kw: Any) -> Any:
    store = ScheduleStore(data)
    try:
        result = load_plan(plan)
        assert result.plan is not None
        return store.add(plan, at, days=kw.get("days"), until_dawn=kw.get("until_dawn", False),
                         site=result.plan.site, now=now)
    finally:
        store.close()


def decisions(data: Path) -> list[dict[str, Any]]:
    path = data / "schedule.jsonl"
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()]


def actions(data: Path) -> list[str]:
    return [d["action"] for d in decisions(data) if d["action"] != "next"]


async def _serve(data: Path, plan: Path, start: datetime, speed: float) -> None:
    hub = await SimHub.open(data, plan, start, speed=speed)
    hub.begin()
    print("hub up", flush=True)
    try:
        await asyncio.Event().wait()  # until killed
    finally:
        await hub.close()


def main(argv: list[str]) -> None:
    """``python -m tests.schedule.schedkit DATA PLAN START SPEED``: the hub and its scheduler
    as a process of their own, for tests that kill it (``kill -9``) and start it again."""
    data, plan, start, speed = argv
    asyncio.run(_serve(Path(data), Path(plan), datetime.fromisoformat(start), float(speed)))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
