"""``run_plan {dry_run: true}``: the hub's dry run is ``nightrunner run --dry-run`` itself.

The plan runs on nominal devices on a virtual clock (:func:`runner.clock.run_virtual`), the
path of ``nightrunner estimate`` and ``run --dry-run``, so the hub cannot answer a dry run
that disagrees with the estimate. It needs no hardware, so it is allowed while a night runs;
it runs in a worker thread (its own virtual loop: the hub's loop keeps serving) and records
under ``<data>/dry-runs``, which has its own lock and stays out of the night's image index.
The answer comes when the simulated night is over (seconds; 48 h of clock time at most).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.control.hub import Hub
from runner.control.protocol import RpcError


async def dry_run_plan(hub: Hub, plan_path: Path, start: datetime | None) -> dict[str, Any]:
    """Dry-run ``plan_path`` on the hub's rig profile (else the plan's) from ``start`` (default
    now); the run's summary, as ``nightrunner run --dry-run --json`` prints it."""
    from runner.clock import run_virtual
    from runner.engine.run import Run, RunOptions
    from runner.plan.loader import load_plan

    if start is not None and start.tzinfo is None:
        raise RpcError("start: give a time zone (e.g. 2026-11-25T17:00:00+01:00)")
    if not await asyncio.to_thread(plan_path.is_file):
        raise RpcError(f"no plan file at {plan_path}")
    result = await asyncio.to_thread(load_plan, plan_path)
    if not result.ok or result.plan is None or result.equipment is None:
        raise RpcError("invalid plan: " + "; ".join(d.format() for d in result.diagnostics))
    text = await asyncio.to_thread(plan_path.read_bytes)
    options = RunOptions(data_dir=hub.data_dir / "dry-runs", dry_run=True, start=start,
                         progress="none", plan_text=text, plan_path=plan_path)
    run = Run(result.plan, hub.equipment or result.equipment, options)
    outcome = await asyncio.to_thread(run_virtual, lambda _clock: run.execute())
    summary: dict[str, Any] = json.loads(json.dumps(outcome.summary, default=str))
    return {"started": True, "plan": result.plan.name, "dry_run": True, "summary": summary}
