"""``nightrunner validate`` without the CLI framework.

It runs on every editor save, and importing typer alone costs a fifth of the cold-start budget
(benchmarks/bench_validate.py), so ``runner.entry`` sends ``validate`` here directly. The typer
command of the same name calls ``check_plans`` too, so both paths behave the same.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.plan.diagnostics import Diagnostic
    from runner.plan.loader import LoadResult


def check_plans(
    plans: list[Path], equipment: Path | None, output_format: str, sky: bool, date: str | None
) -> int:
    """The work of ``validate``; returns the exit code."""
    from runner.plan.diagnostics import has_errors, sort_key, to_json
    from runner.plan.loader import load_plan

    everything = []
    failed = False
    for path in plans:
        result = load_plan(path, equipment=equipment)
        diags = list(result.diagnostics)
        if sky and result.ok:
            diags += _sky_diagnostics(result, date)
        everything += sorted(diags, key=sort_key)
        failed = failed or has_errors(diags) or result.plan is None
    if output_format == "json":
        print(to_json(everything))
    else:
        for d in everything:
            print(d.format())
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    """Parse ``validate``'s options (the same as the typer command's) and check the plans."""
    parser = argparse.ArgumentParser(prog="nightrunner validate")
    parser.add_argument("plans", nargs="+", type=Path)
    parser.add_argument("--equipment", type=Path)
    parser.add_argument("--format", dest="output_format", choices=["text", "json"],
                        default="text")
    parser.add_argument("--sky", action="store_true")
    parser.add_argument("--date")
    a = parser.parse_args(argv)
    return check_plans(a.plans, a.equipment, a.output_format, a.sky, a.date)


def _sky_diagnostics(result: LoadResult, date: str | None) -> list[Diagnostic]:
    estimate = importlib.import_module("runner.estimate")
    diags: list[Diagnostic] = estimate.sky_diagnostics(
        result.plan, result.equipment, result.positions, date
    )
    return diags
