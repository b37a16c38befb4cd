"""A simulated week under the hub's scheduler: seven nights at one site, each started at its
astronomical dusk, none twice, and one reboot in the middle of a night resumed with every
frame taken exactly once.

Issue 10's bar: 7 nights started within 1 s of their computed dusk (engine clock), no night
started twice, the injected reboot resumed with no lost or duplicated frame. The hub and its
scheduler run in-process on the simulators (tests/schedule/schedkit.py, the same path as
``nightrunner serve``) on a clock at 5000x; "reboot" is the hub going down mid-night (the
night stopped, the process's hub and scheduler gone) and a new hub ten minutes later.
The dusk is found here by bisection on astropy's Sun altitude, not by the scheduler's code.

Run: .venv/bin/python benchmarks/bench_week.py

Status (2026-12-03, 2-core machine shared with other suites; 4 runs): PASS each time.
Seven nights, none twice, 140 frames, none duplicated, the reboot night resumed once (3-4
frames taken before the cut); the worst first event of a night +0.21 to +0.26 s (engine
clock) from dusk, the scheduler's own start exact to the millisecond. Before: +1.2 to +35 s
(the scheduler woke a timer tick late, seconds of clock time at 5000x; now the clock's alarm
stops time at the start), and the reboot was missed in 2 of 3 runs (this script polled the
hub's night_task, which the hub drops the moment a night ends).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runner.plan.models import Site
from runner.schedule.when import sun_altitude_at
from tests.schedule.schedkit import SimHub, add_job, decisions, write_plan

AMS = ZoneInfo("Europe/Amsterdam")
SITE = Site(latitude=52.37, longitude=4.89, timezone="Europe/Amsterdam")
FIRST = datetime(2026, 11, 20, 12, 0, tzinfo=AMS)
NIGHTS = 7
FRAMES = 20
SPEED = 5000.0
REBOOT_NIGHT = 4  # 1-based
BAR_S = 1.0


def dusk(day: datetime) -> datetime:
    """Sun at -18 deg going down after the day's noon, to 1 ms."""
    lo = day.replace(hour=12, minute=0, second=0, microsecond=0)
    hi = lo + timedelta(hours=12)
    assert sun_altitude_at(SITE, lo) > -18 > sun_altitude_at(SITE, hi)
    while (hi - lo).total_seconds() > 0.001:
        mid = lo + (hi - lo) / 2
        if sun_altitude_at(SITE, mid) > -18:
            lo = mid
        else:
            hi = mid
    return hi


class Watch:
    """Sees each night's Run as it is created (before its first event): notes when its night
    began on the engine clock, and cuts the reboot night after its third frame."""

    def __init__(self) -> None:
        self.runs: list[Any] = []
        self.tasks: list[asyncio.Task[Any]] = []  # each Run's night task, in start order
        self.began: list[datetime] = []
        self.cut = False

    def wrap(self, hub: SimHub) -> None:
        original = hub.hub.start_night

        async def start(plan: Path, resume: bool = False) -> Any:
            out = await original(plan, resume)
            assert hub.hub.night_task is not None
            self.tasks.append(hub.hub.night_task)
            self.attach(hub.hub.run, resume)
            return out

        hub.hub.start_night = start

    def attach(self, run: Any, resume: bool) -> None:
        self.runs.append(run)
        frames = {"n": 0, "first": True}
        cut_this = len(self.runs) == REBOOT_NIGHT and not self.cut

        def listen(event: dict[str, Any]) -> None:
            if frames["first"]:
                frames["first"] = False
                if not resume:
                    self.began.append(datetime.fromisoformat(event["clock"]))
            if cut_this and event["event"] == "frame":
                frames["n"] += 1
                if frames["n"] == 3:
                    self.cut = True
                    asyncio.get_running_loop().call_soon(run.abort, "power cut")

        run.listeners.append(listen)


async def week(root: Path) -> dict[str, Any]:
    plan = write_plan(root, frames=FRAMES, exposure=60, name="weekly")
    data = root / "data"
    add_job(data, plan, "dusk", FIRST)
    watch = Watch()
    hub = await SimHub.open(data, plan, FIRST, speed=SPEED)
    watch.wrap(hub)
    real0 = time.monotonic()
    rebooted = False
    try:
        hub.begin()
        while True:
            await asyncio.sleep(0.05)
            # the cut night's own task (the hub forgets its night_task the moment it ends:
            # polling that missed the reboot in 2 of 3 runs, and the week went on unbooted)
            if watch.cut and not rebooted and watch.tasks[REBOOT_NIGHT - 1].done():
                cut_at = hub.clock.now()
                await hub.close()
                rebooted = True
                hub = await SimHub.open(data, plan, cut_at + timedelta(minutes=10), speed=SPEED)
                watch.wrap(hub)
                hub.begin()
                continue
            if len(watch.began) >= NIGHTS and not hub.hub.night_active:
                break
            if time.monotonic() - real0 > 900:
                raise TimeoutError("the week did not end in 15 min")
    finally:
        await hub.close()
    return {"data": data, "real_s": time.monotonic() - real0, "decisions": decisions(data),
            "began": watch.began}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        got = asyncio.run(week(Path(tmp)))
        data: Path = got["data"]
        runs = sorted((data / "runs").iterdir())
        summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
        starts = [d for d in got["decisions"] if d["action"] == "started"]
        resumed = [d for d in got["decisions"] if d["action"] == "resumed"]
        planned = Counter(d["planned"] for d in starts)
        late = []
        plans = sorted(datetime.fromisoformat(d["planned"]) for d in starts)
        for r, sched, began in zip(runs, plans, got["began"], strict=False):
            local = began.astimezone(AMS)
            day = local if local.hour >= 12 else local - timedelta(days=1)
            d = dusk(day)
            late.append((r.name, (began - d).total_seconds(), (sched - d).total_seconds()))
        fits = [p for p in data.rglob("*.fits") if "stacked" not in p.parts]
        names = Counter(str(p.relative_to(data)) for p in fits)
        nights_dates = sorted({p.parent for p in fits})
        reboot = next((s for s in summaries if s["frames"].get("skipped_on_resume")), None)
    print(f"week: {NIGHTS} nights x {FRAMES} frames at {SPEED:g}x, {got['real_s']:.1f} s real")
    for name, dt, sched in late:
        print(f"  {name}: first event {dt:+.3f} s from dusk (engine clock); "
              f"the scheduler's planned start {sched:+.3f} s")
    worst = max(abs(dt) for _, dt, _ in late)
    print(f"starts: {len(starts)} started, {len(resumed)} resumed; "
          f"planned starts repeated: {sum(c - 1 for c in planned.values())}; "
          f"worst |start - dusk| {worst:.3f} s (bar {BAR_S} s)")
    frames_total = len(fits)
    dup = sum(c - 1 for c in names.values())
    print(f"frames: {frames_total} on disk (expected {NIGHTS * FRAMES}), duplicated {dup}, "
          f"folders {len(nights_dates)}; the reboot night's run resumed "
          f"{reboot['frames']['skipped_on_resume'] if reboot else '-'} frames already taken")
    checks = {
        "a run per night": len(runs) == NIGHTS,
        "7 starts": len(starts) == NIGHTS,
        "1 resume": len(resumed) == 1,
        "no start twice": all(c == 1 for c in planned.values()),
        "starts within the bar": worst <= BAR_S,
        "every frame on disk": frames_total == NIGHTS * FRAMES,
        "no frame twice": dup == 0,
        "the reboot night resumed": reboot is not None,
        # a resumed run's summary covers its whole night (skipped_on_resume: the part
        # taken before the reboot), so every night's summary counts FRAMES lights
        "each run's frames": all(s["frames"]["light"] == FRAMES for s in summaries),
    }
    ok = all(checks.values())
    for what, good in checks.items():
        if not good:
            print(f"  not met: {what}")
            if what == "each run's frames":
                print("   ", [(s["frames"]["light"], s["frames"].get("skipped_on_resume"))
                            for s in summaries])  # (lights, of which before the reboot)
    if not ok:
        for d in got["decisions"]:
            if d["action"] != "next":
                print("  decision:", d)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
