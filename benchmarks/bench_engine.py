"""Issue 3's bar: engine overhead per frame.

A 200-frame plan on the simulator camera (zero-length exposures, 2048×2048 frames) run by the
engine, against a bare Python loop that drives the same simulator objects and writes the same
FITS files directly (``runner.devices.sim.bench.bare_loop``). Bar: engine ≤ 1.10× bare loop.

Both sides are timed over the frame loop (first exposure to last file written); the engine's
whole-run time (set-up, journal, index, shutdown included) is printed too.

Run: .venv/bin/python benchmarks/bench_engine.py [--frames 200] [--size 2048]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

from runner.clock import ScaledClock
from runner.devices.sim.bench import bare_loop, bench_equipment
from runner.devices.sim.camera import SimCamera
from runner.devices.sim.world import SimWorld
from runner.engine.run import Run, RunOptions
from runner.plan.models import Plan

PLAN = {
    "version": 1,
    "name": "engine benchmark",
    "site": {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"},
    "targets": [
        {
            "name": "Benchmark",
            "coordinates": {"ra": 12.1, "dec": 85.2},
            "sequence": [{"expose": {"count": 0, "exposure": 0, "type": "bias"}}],
        }
    ],
}


async def bare(frames: int, size: int, tmp: Path) -> float:
    eq = bench_equipment(size, size)
    clock = ScaledClock(1.0)
    cam = SimCamera(SimWorld(clock, eq))
    await cam.connect()
    await bare_loop(cam, clock, tmp / "warm", 2)
    t = time.perf_counter()
    await bare_loop(cam, clock, tmp / "bare", frames)
    return time.perf_counter() - t


def engine(frames: int, size: int, tmp: Path) -> tuple[float, float]:
    data = dict(PLAN)
    data["targets"] = [dict(PLAN["targets"][0])]  # type: ignore[index]
    data["targets"][0]["sequence"] = [  # type: ignore[index]
        {"expose": {"count": frames, "exposure": 0, "type": "bias"}}
    ]
    plan = Plan.model_validate(data)
    eq = bench_equipment(size, size)
    opts = RunOptions(data_dir=tmp / "engine", speed=1.0, progress="none")
    t = time.perf_counter()
    result = asyncio.run(Run(plan, eq, opts).execute())
    whole = time.perf_counter() - t
    assert result.outcome == "completed", result.summary
    events = [json.loads(x) for x in (result.run_dir / "events.jsonl").read_text().splitlines()]
    first = next(e for e in events if e["event"] == "exposure_start")
    last = [e for e in events if e["event"] == "frame"][-1]
    loop = (datetime.fromisoformat(last["time"]) - datetime.fromisoformat(first["time"]))
    per = loop.total_seconds() * frames / (frames - 1)  # first start → last end ≈ n−1 gaps
    return per, whole


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=2048)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        b = asyncio.run(bare(args.frames, args.size, tmp))
        e, whole = engine(args.frames, args.size, tmp)
    n = args.frames
    print(f"{n} frames, {args.size}×{args.size}, zero-length exposures, FITS written")
    print(f"bare loop          : {b:7.2f} s  ({b / n * 1e3:6.1f} ms/frame)")
    print(f"engine (frame loop): {e:7.2f} s  ({e / n * 1e3:6.1f} ms/frame)")
    print(f"ratio              : {e / b:7.3f}×  (bar ≤ 1.10×)")
    print(f"engine whole run   : {whole:7.2f} s  (set-up, index, journal, shutdown included)")


if __name__ == "__main__":
    main()
