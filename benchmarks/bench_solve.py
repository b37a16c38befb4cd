"""Plate solving of simulator frames (33′×25′ field, 1.94″/px): 20 random pointings over the sky
the Tycho-2 index covers (all of it), each with a random pointing error of up to 10′ in the hint.

Bars (issue 14): median solve time ≤ 5 s on this machine, ≥ 95 % of the pointings solved to
within 30″ of where the simulated telescope really points. Frame rendering is not timed; the
solve is timed as the engine runs it (``solve_path``: write nothing, run solve-field with the
hints, read the WCS). Prints figures and whether each bar is met; ``--strict`` exits 1 when
one is missed (``make bench`` runs it without, so the benchmarks after it still run).

Run: ``.venv/bin/python benchmarks/bench_solve.py [--n 20] [--seed 1] [--strict]``
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.errors import SolveError  # noqa: E402
from runner.solve import solve_path  # noqa: E402
from runner.solve.geometry import separation_arcsec  # noqa: E402
from tests.solve.simframes import equipment, write_frame  # noqa: E402

MEDIAN_BAR_S = 5.0
SUCCESS_BAR = 0.95


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--strict", action="store_true", help="exit 1 when a bar is missed")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    times: list[float] = []
    ok = 0
    with tempfile.TemporaryDirectory(prefix="bench-solve-") as tmp:
        for i in range(args.n):
            ra = float(rng.uniform(0, 360))
            dec = math.degrees(math.asin(float(rng.uniform(-1, 1))))
            eq = equipment(seed=int(rng.integers(1 << 30)),
                           error_arcmin=float(rng.uniform(0, 10)))
            path, _, truth = write_frame(Path(tmp) / f"f{i}.fits", eq, ra, dec)
            t0 = time.perf_counter()
            try:
                sol = asyncio.run(solve_path(path, timeout=30.0))
                dt = time.perf_counter() - t0
                err = separation_arcsec(sol.ra, sol.dec, *truth)
                good = err <= 30.0
                note = f"error {err:5.1f}″  ({sol.solver})"
            except SolveError as exc:
                dt, good, note = time.perf_counter() - t0, False, f"FAILED: {exc}"
            times.append(dt)
            ok += good
            print(f"  {i + 1:2d}  RA {ra:7.3f}  Dec {dec:+7.3f}  {dt:5.2f} s  {note}")
    median = statistics.median(times)
    rate = ok / args.n
    load = os.getloadavg()[0]
    print(f"solve: median {median:.2f} s (bar ≤ {MEDIAN_BAR_S:g} s), max {max(times):.2f} s, "
          f"success {ok}/{args.n} = {rate:.0%} (bar ≥ {SUCCESS_BAR:.0%}); load average {load:.1f}"
          f" on {os.cpu_count()} cores")
    met = median <= MEDIAN_BAR_S and rate >= SUCCESS_BAR
    print(f"bars: median {'met' if median <= MEDIAN_BAR_S else 'MISSED'}, success "
          f"{'met' if rate >= SUCCESS_BAR else 'MISSED'}")
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
