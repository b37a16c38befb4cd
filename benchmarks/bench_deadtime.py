"""Issue 13's bar: the next exposure never waits for the disk.

Dead time = from a frame's download completing (``exposure_end``: its pixels are in memory) to
the next exposure starting (``exposure_start``), read from the engine's own events, on the
simulator camera at IMX455 size (9576×6388, 122 MB per frame) with live stacking on, HFR
measured on every light and FITS written to disk — all of which now happen behind the
exposure loop. Bar: p95 ≤ 50 ms.

Run: .venv/bin/python benchmarks/bench_deadtime.py [--frames 12] [--exposure 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from runner.devices.sim.bench import bench_equipment
from runner.engine.run import Run, RunOptions
from runner.plan.models import Plan


def plan(frames: int, exposure: float) -> Plan:
    return Plan.model_validate({
        "version": 1,
        "name": "dead-time benchmark",
        "site": {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"},
        "targets": [{
            "name": "Benchmark",
            "coordinates": {"ra": 12.1, "dec": 85.2},
            "stack": True,
            "sequence": [{"expose": {"count": frames, "exposure": exposure}}],
        }],
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--exposure", type=float, default=4.0, help="seconds (real: speed 1)")
    ap.add_argument("--width", type=int, default=9576)
    ap.add_argument("--height", type=int, default=6388)
    ap.add_argument("--dir", default=None, help="data directory parent (default: a temp dir "
                    "on the ordinary disk, since the disk is what is being hidden)")
    args = ap.parse_args()
    eq = bench_equipment(args.width, args.height)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        opts = RunOptions(data_dir=Path(d) / "data", speed=1.0, progress="none")
        t = time.perf_counter()
        result = asyncio.run(Run(plan(args.frames, args.exposure), eq, opts).execute())
        whole = time.perf_counter() - t
        assert result.outcome == "completed", result.summary
        events = [json.loads(x) for x in
                  (result.run_dir / "events.jsonl").read_text().splitlines()]
        on_disk = len(list((Path(d) / "data").rglob("*.fits")))
    gaps: list[float] = []
    ended: datetime | None = None
    for e in events:
        if e["event"] == "exposure_end":
            ended = datetime.fromisoformat(e["time"])
        elif e["event"] == "exposure_start" and ended is not None:
            gaps.append((datetime.fromisoformat(e["time"]) - ended).total_seconds() * 1e3)
            ended = None
    waits = [e for e in events if e["event"] == "write_wait"]
    gaps.sort()
    p95 = gaps[min(len(gaps) - 1, round(0.95 * (len(gaps) - 1)))]
    print(f"{args.frames} lights of {args.exposure:g} s at {args.width}×{args.height} "
          f"({args.width * args.height * 2 / 1e6:.0f} MB each), stacking on, speed 1")
    print(f"dead time between download and next exposure: median "
          f"{statistics.median(gaps):.1f} ms, p95 {p95:.1f} ms, max {gaps[-1]:.1f} ms "
          f"(bar p95 ≤ 50 ms) over {len(gaps)} gaps")
    print(f"FITS files on disk {on_disk} / lights "
          f"{result.summary['frames']['light']}; write waits {len(waits)}; whole run "
          f"{whole:.1f} s")
    print("PASS" if p95 <= 50 else "FAIL")


if __name__ == "__main__":
    main()
