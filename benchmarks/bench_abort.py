"""Abort latency: from an abort request (RPC, CLI, signal) to the safe state.

BRIEF's bar: abort reaches a safe state (exposure aborted, guiding stopped, warm-up started)
within a second. Measured in real time at speed 1 (real-time clock), with a 300 s exposure and
guiding running, over several runs: abort → exposure aborted (shutdown phase entered) and
abort → guiding stopped and warm-up started.

Run: .venv/bin/python benchmarks/bench_abort.py
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from runner.engine.run import Run, RunOptions
from runner.plan.loader import load_plan

EQ = """\
name: bench
camera: {backend: simulator, width: 512, height: 512, download_time: 1}
filter_wheel: {backend: simulator, filters: [{name: L}]}
guider: {backend: simulator, exposure: 1}
"""
PLAN = """\
version: 1
name: abort bench
site: {latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}
equipment: eq.yaml
defaults: {settle: {pixels: 2, time: 2, timeout: 30}}
startup: [{guide: start}]
targets:
  - name: NGC 188
    coordinates: {ra: "00:48:26", dec: "+85:14:42"}
    sequence: [{filter: L}, {expose: {count: 10, exposure: 300}}]
shutdown: [{guide: stop}, {warm: {to: 20, rate: 1}}]
"""


async def once(tmp: Path) -> tuple[float, float]:
    (tmp / "eq.yaml").write_text(EQ)
    (tmp / "plan.yaml").write_text(PLAN)
    loaded = load_plan(tmp / "plan.yaml")
    assert loaded.plan is not None and loaded.equipment is not None
    run = Run(loaded.plan, loaded.equipment,
              RunOptions(data_dir=tmp / "data", speed=1.0, progress="none"))
    marks: dict[str, float] = {}

    def watch(e: dict[str, object]) -> None:
        now = time.perf_counter()
        if e["event"] == "phase" and e.get("phase") == "shutdown":
            marks.setdefault("shutdown", now)
        if e["event"] == "guiding" and e.get("state") == "stopped":
            marks.setdefault("guiding_stopped", now)
        if e["event"] == "step" and e.get("kind") == "warm":
            marks.setdefault("warm", now)

    task = asyncio.create_task(run.execute())
    while run.executor is None or run.executor.current_exposure is None:
        await asyncio.sleep(0.01)
    assert run.bus is not None
    run.bus.subscribe(watch)
    await asyncio.sleep(1.0)  # mid-exposure
    t0 = time.perf_counter()
    run.abort("benchmark")
    while "warm" not in marks:
        await asyncio.sleep(0.001)
    task.cancel()  # don't wait for the slow warm-up itself
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return marks["shutdown"] - t0, marks["warm"] - t0


def main() -> None:
    shutdown, warm = [], []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as d:
            a, b = asyncio.run(once(Path(d)))
        shutdown.append(a)
        warm.append(b)
    med, top = statistics.median(shutdown) * 1e3, max(shutdown) * 1e3
    print(f"abort → exposure aborted, shutdown entered: median {med:6.1f} ms, max {top:6.1f} ms")
    med, top = statistics.median(warm) * 1e3, max(warm) * 1e3
    print(f"abort → guiding stopped, warm-up started  : median {med:6.1f} ms, max {top:6.1f} ms"
          "  (bar < 1000 ms)")


if __name__ == "__main__":
    main()
