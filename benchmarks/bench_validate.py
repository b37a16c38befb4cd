"""Issue 2's bars for `nightrunner validate`.

1. Cold start: `nightrunner validate plans/m31-m42-lrgb.yaml` vs `python -c "import yaml,
   pydantic"` — best of N fresh processes each; the bar is ≤ 3×.
2. A generated 10,000-step plan validates (in-process, load + models + semantic checks) in
   ≤ 1.5 s; printed with the cold-process time too.

Run: .venv/bin/python benchmarks/bench_validate.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
NR = str(Path(PY).parent / "nightrunner")
RUNS = 15


def best_of(cmd: list[str], runs: int = RUNS) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def big_plan(steps: int) -> str:
    lines = [
        "version: 1",
        "name: ten thousand steps",
        "site: {latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}",
        "targets:",
    ]
    per_target = 500
    for t in range(steps // per_target):
        lines += [
            f"  - name: T{t}",
            f"    coordinates: {{ra: {(t * 7.3) % 360:.3f}, dec: {20 + t % 50}}}",
            "    constraints: {min_altitude: 10}",
            "    sequence:",
        ]
        filters = ["L", "R", "G", "B"]
        for i in range(per_target):
            if i % 2 == 0:
                lines.append(f"      - filter: {filters[(i // 2) % 4]}")
            else:
                lines.append(f"      - expose: {{count: 3, exposure: {60 + i % 120}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    baseline = best_of([PY, "-c", "import yaml, pydantic"])
    example = ROOT / "plans" / "m31-m42-lrgb.yaml"
    cold = best_of([NR, "validate", str(example)])
    print(f"cold `import yaml, pydantic`      : {baseline * 1000:7.1f} ms (best of {RUNS})")
    print(f"cold `nightrunner validate` example: {cold * 1000:7.1f} ms (best of {RUNS})")
    print(f"ratio                              : {cold / baseline:7.2f}×  (bar ≤ 3×)")

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.yaml"
        path.write_text(big_plan(10_000))
        from runner.plan.loader import load_plan

        t = time.perf_counter()
        result = load_plan(path)
        warm = time.perf_counter() - t
        assert result.ok, [x.format() for x in result.diagnostics[:5]]
        steps = sum(len(tg.sequence) for tg in result.plan.targets)  # type: ignore[union-attr]
        cold_big = best_of([NR, "validate", str(path)], runs=3)
        print(f"10,000-step plan ({steps} steps, {path.stat().st_size // 1024} KiB): "
              f"in-process {warm:.3f} s, cold process {cold_big:.3f} s  (bar ≤ 1.5 s)")


if __name__ == "__main__":
    main()
