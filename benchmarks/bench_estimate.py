"""Issue 9's bars: ``nightrunner estimate`` is the executor on a virtual clock, and still fast.

* the example plan cold (a fresh process, astropy import and IERS load included):
  ``nightrunner estimate plans/m31-m42-lrgb.yaml`` — bar ≤ 2.6 s (walk.py's figure);
* a 10,000-step plan (10,000 single-frame ``expose`` steps over four filters) cold — bar ≤ 3 s;
* the 48 h dry run of a loop that never ends (``repeat: {until: {altitude_below: 40}}`` in a
  block, on a circumpolar target: validation cannot see into blocks, the dry run stops at its
  horizon) — no bar; it took 33 s for 2,809 frames before the per-loop light counter.

Each prints the min and median of ``--runs`` fresh processes (wall clock) and the median CPU
time of the children, since on a loaded machine wall time says more about the neighbours.
"Cold" is a fresh process; the IERS table comes from the user's cache after the first run
(runner/sky/iers_cache.py), as it does for every estimate after the first one.

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


def forever_plan(where: Path) -> Path:
    plan = {
        "version": 1, "name": "never ends", "equipment": str(
            ROOT / "runner/plan/profiles/simulator.yaml"),
        "site": {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"},
        "blocks": {"sink": [{"repeat": {"until": {"altitude_below": 40}},
                             "steps": [{"expose": {"count": 1, "exposure": 60}}]}]},
        "targets": [{"name": "NGC 188", "coordinates": {"ra": 12.1, "dec": 85.2},
                     "sequence": [{"use": "sink"}]}],
    }
    path = where / "forever.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def timed(args: list[str], runs: int, ok: tuple[int, ...] = (0,)) -> tuple[float, float, float]:
    """Min and median wall seconds, median child CPU seconds of ``runs`` fresh processes."""
    walls, cpus = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # as installed for a user: bytecode cached. A sandbox that sets PYTHONDONTWRITEBYTECODE
    # recompiles all of runner/ in every process (≈0.5 s), which no user's machine does.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        s = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", "from runner.entry import main; main()",
                               *args], capture_output=True, text=True, env=env, check=False,
                              cwd=ROOT)  # python -c puts the working directory first
        walls.append(time.perf_counter() - s)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode not in ok:
            raise SystemExit(f"{args[0]} failed: {done.stderr}")
    return min(walls), statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10_000)
    a = ap.parse_args()
    low, wall, cpu = timed(["estimate", str(ROOT / "plans/m31-m42-lrgb.yaml"), "--date", NIGHT],
                           a.runs)
    print(f"estimate plans/m31-m42-lrgb.yaml, cold : {low:5.2f} s min, {wall:5.2f} s median "
          f"wall, {cpu:5.2f} s cpu (bar ≤ 2.6 s)")
    with tempfile.TemporaryDirectory() as tmp:
        path = big_plan(Path(tmp), a.steps)
        low, wall, cpu = timed(["estimate", str(path), "--date", NIGHT, "--json"], a.runs)
        print(f"estimate of a {a.steps}-step plan, cold : {low:5.2f} s min, {wall:5.2f} s "
              f"median wall, {cpu:5.2f} s cpu (bar ≤ 3 s)")
        path = forever_plan(Path(tmp))
        low, wall, cpu = timed(["run", str(path), "--dry-run", "--no-rpc", "--progress", "none",
                                "--data-dir", str(Path(tmp) / "data")], a.runs, ok=(0, 1))
        print(f"48 h dry run of a loop that never ends : {low:5.2f} s min, {wall:5.2f} s "
              f"median wall, {cpu:5.2f} s cpu (was 33 s)")


if __name__ == "__main__":
    main()
