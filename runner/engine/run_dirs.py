"""A night's run directory: which one ``--resume`` continues, and a new one when none.

One directory per run under ``DATA_DIR/runs``, named by start time and plan; ``run.json`` (written
durably before anything else) says which plan it ran, by digest, so that a resume never continues
a run of a different plan — and says so when the plan was edited since.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from runner.engine.journal import resume_state
from runner.storage.durable import atomic_write_text, fsync_dir


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "plan"


def find_resumable(runs: Path, digest: str) -> Path | None:
    """The latest run of this plan, unless it finished. Its plan is read from ``run.json`` or,
    when that is unreadable (a crash before the disk had it), from the journal's
    ``run_start`` entries, which carry the same digest."""
    if not runs.is_dir():
        return None
    for d in sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True):
        if run_digest(d) != digest:
            continue
        if resume_state(d / "journal.jsonl").finished:
            return None  # the latest run of this plan finished: nothing to resume
        return d
    return None


def why_nothing_to_resume(runs: Path, digest: str, plan_path: Path | None, name: str) -> str:
    """The message for a --resume that finds nothing: a plan edited since its interrupted run
    is the common case, and the user must hear that the edit is why."""
    fresh = "starting a fresh run"
    if not runs.is_dir():
        return f"nothing to resume for this plan: {fresh}"
    wanted = str(plan_path) if plan_path else None
    for d in sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True):
        try:
            info = json.loads((d / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict) or info.get("plan_digest") == digest:
            continue
        same = (wanted is not None and info.get("plan") == wanted) or info.get("plan_name") == name
        if same and not resume_state(d / "journal.jsonl").finished:
            return (f"the plan changed since its interrupted run {d.name}: a changed plan "
                    f"is not resumed (that run's frames stay on disk); {fresh}")
    return f"nothing to resume for this plan: {fresh}"


def run_digest(run_dir: Path) -> str | None:
    try:
        info = json.loads((run_dir / "run.json").read_text())
        if isinstance(info, dict) and info.get("plan_digest"):
            return str(info["plan_digest"])
    except (OSError, ValueError):
        pass
    return resume_state(run_dir / "journal.jsonl").plan_digest


def new_run_dir(
    runs: Path, plan_name: str, digest: str, plan_path: Path | None, *, dry_run: bool
) -> Path:
    """A fresh ``runs/<stamp>-<plan>[-n]`` with its ``run.json`` on disk (fsync'd, as is the
    directory entry): a crash a second later still leaves a run that ``--resume`` finds."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = runs / f"{stamp}-{slug(plan_name)}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = runs / f"{stamp}-{slug(plan_name)}-{n}"
    run_dir.mkdir(parents=True)
    fsync_dir(runs)
    atomic_write_text(run_dir / "run.json", json.dumps({
        "plan": str(plan_path) if plan_path else None,
        "plan_name": plan_name, "plan_digest": digest,
        "started": datetime.now(UTC).isoformat(), "dry_run": dry_run,
    }, indent=2))
    return run_dir
