"""Issue 9's bars: ``nightrunner estimate`` is the executor on a virtual clock, and still fast.

* the example plan cold (a fresh process, astropy import and IERS load included):
  ``nightrunner estimate plans/m31-m42-lrgb.yaml`` — bar ≤ 2.6 s (walk.py's figure);
* a 10,000-step plan (10,000 single-frame ``expose`` steps over four filters) cold — bar ≤ 3 s.

Each is the median of ``--runs`` fresh processes (wall clock); the CPU time of the children is
printed too, since on a loaded machine wall time says more about the neighbours.

Run: .venv/bin/python benchmarks/bench_estimate.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
NIGHT = "2026-11-25"


def big_plan(where: Path, steps: int) -> Path:
    plan = {
        "version": 1, "name": f"{steps} steps", "equipment": str(
            ROOT / "runner/plan/profiles/simulator.yaml"),
        "site": {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"},
        "targets": [{"name": "NGC 188", "coordinates": {"ra": 12.1, "dec": 85.2},
                     "sequence": [{"expose": {"count": 1, "exposure": 1,
                                              "filter": "LRGB"[i % 4]}}
                                  for i in range(steps)]}],
    }
    path = where / "big.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def timed(args: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and median child CPU seconds of ``runs`` fresh processes."""
    walls, cpus = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        s = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", "from runner.entry import main; main()",
                               *args], capture_output=True, text=True, env=env, check=False)
        walls.append(time.perf_counter() - s)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"estimate failed: {done.stderr}")
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10_000)
    a = ap.parse_args()
    wall, cpu = timed(["estimate", str(ROOT / "plans/m31-m42-lrgb.yaml"), "--date", NIGHT],
                      a.runs)
    print(f"estimate plans/m31-m42-lrgb.yaml, cold : {wall:5.2f} s wall, {cpu:5.2f} s cpu "
          "(bar ≤ 2.6 s)")
    with tempfile.TemporaryDirectory() as tmp:
        path = big_plan(Path(tmp), a.steps)
        wall, cpu = timed(["estimate", str(path), "--date", NIGHT, "--json"], a.runs)
    print(f"estimate of a {a.steps}-step plan, cold : {wall:5.2f} s wall, {cpu:5.2f} s cpu "
          "(bar ≤ 3 s)")


if __name__ == "__main__":
    main()
