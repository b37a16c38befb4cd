"""Issue 3's bar: engine overhead per frame.

A 200-frame plan on the simulator camera (zero-length exposures, 2048×2048 frames) run by the
engine, against a bare Python loop that drives the same simulator objects and writes the same
FITS files directly (``runner.devices.sim.bench.bare_loop``). Bar: engine ≤ 1.10× bare loop.

Both take *light* frames (stars rendered, the engine's gap checks run) of 1 ms — the plan
language requires lights to have an exposure > 0; 1 ms is zero-length for the simulator.

Both sides are timed over the frame loop (first exposure to last file written); the engine's
whole-run time (set-up, journal, index, shutdown included) is printed too.

Run: .venv/bin/python benchmarks/bench_engine.py [--frames 200] [--size 2048]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from runner.clock import ScaledClock
from runner.devices.sim.bench import bare_loop, bench_equipment
from runner.devices.sim.camera import SimCamera
from runner.devices.sim.world import SimWorld
from runner.engine.run import Run, RunOptions
from runner.plan.equipment import Equipment
from runner.plan.models import Plan, Site
from runner.storage.fits import FrameMeta

EXPOSURE = 0.001  # s

PLAN = {
    "version": 1,
    "name": "engine benchmark",
    "site": {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"},
    "targets": [
        {
            "name": "Benchmark",
            "coordinates": {"ra": 12.1, "dec": 85.2},
            "sequence": [],
        }
    ],
}


def same_header(eq: Equipment) -> FrameMeta:
    """The cards the engine writes for this plan, so both sides write the same files."""
    site = Site.model_validate(PLAN["site"])
    return FrameMeta(
        object_name="Benchmark", ra=12.1, dec=85.2, site_latitude=site.latitude,
        site_longitude=site.longitude, site_elevation=site.elevation,
        instrument=eq.camera.name, telescope=eq.telescope, focal_length=eq.focal_length,
        pixel_size=eq.camera.pixel_size, egain=eq.camera.egain,
    )


async def bare(frames: int, size: int, tmp: Path) -> float:
    eq = bench_equipment(size, size)
    clock = ScaledClock(1.0)
    cam = SimCamera(SimWorld(clock, eq))
    await cam.connect()
    meta = same_header(eq)
    await bare_loop(cam, clock, tmp / "warm", 2, exposure=EXPOSURE, meta=meta)
    t = time.perf_counter()
    await bare_loop(cam, clock, tmp / "bare", frames, exposure=EXPOSURE, meta=meta,
                    target="Benchmark")
    return time.perf_counter() - t


def engine(frames: int, size: int, tmp: Path) -> tuple[float, float]:
    data = dict(PLAN)
    data["targets"] = [dict(PLAN["targets"][0])]  # type: ignore[index]
    data["targets"][0]["sequence"] = [  # type: ignore[index]
        {"expose": {"count": frames, "exposure": EXPOSURE}}
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


def one_side(side: str, frames: int, size: int, where: str | None) -> None:
    """Run one side in this (fresh) process and print its frame-loop seconds as JSON."""
    with tempfile.TemporaryDirectory(dir=where) as d:
        if side in ("bare", "bare-tuned"):
            if side == "bare-tuned":
                from runner.memory import keep_frame_buffers

                keep_frame_buffers()
            print(json.dumps({"loop": asyncio.run(bare(frames, size, Path(d)))}))
        else:
            loop, whole = engine(frames, size, Path(d))
            print(json.dumps({"loop": loop, "whole": whole}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=5,
                    help="interleaved bare/engine rounds; disk latency makes single runs noisy")
    ap.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where both write their FITS files (default: tmpfs, so that disk "
                    "latency, identical work for both, does not drown the engine's overhead)")
    ap.add_argument("--side", choices=["bare", "bare-tuned", "engine"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        one_side(args.side, args.frames, args.size, args.dir)
        return
    n = args.frames
    bares, tuned, engines, wholes = [], [], [], []

    def spawn(side: str) -> dict[str, float]:
        cmd = [sys.executable, __file__, "--side", side, "--frames", str(n),
               "--size", str(args.size)] + (["--dir", args.dir] if args.dir else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return result

    for r in range(args.rounds):  # each side in a fresh process: no shared allocator state
        bares.append(spawn("bare")["loop"])
        tuned.append(spawn("bare-tuned")["loop"])
        e = spawn("engine")
        engines.append(e["loop"])
        wholes.append(e["whole"])
        print(f"round {r + 1}: bare {bares[-1]:6.2f} s, engine {engines[-1]:6.2f} s, "
              f"ratio {engines[-1] / bares[-1]:.3f}×")
    b, e_med = statistics.median(bares), statistics.median(engines)
    print(f"{n} frames, {args.size}×{args.size}, zero-length lights, FITS written to "
          f"{args.dir or 'the temp dir'}; medians of {args.rounds} rounds")
    print(f"bare loop          : {b:7.2f} s  ({b / n * 1e3:6.1f} ms/frame)")
    print(f"engine (frame loop): {e_med:7.2f} s  ({e_med / n * 1e3:6.1f} ms/frame)")
    t = statistics.median(tuned)
    print(f"ratio              : {e_med / b:7.3f}×  (bar ≤ 1.10×)")
    print(f"bare loop with the engine's malloc tuning (runner.memory): {t:6.2f} s → "
          f"ratio {e_med / t:.3f}×")
    print(f"engine whole run   : {statistics.median(wholes):7.2f} s  "
          "(set-up, index, journal, shutdown included)")


if __name__ == "__main__":
    main()
