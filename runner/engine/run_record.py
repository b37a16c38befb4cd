"""The morning's record of a night, written after its shutdown: the journal's last entry,
``summary.json``, the ``run_end`` event and the reports.

Written piece by piece: a full or failing disk loses the piece it hits, never the rest (and
never the shutdown, which ran before). What could not be written is in the summary's
``record_problems`` and the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.engine.events import EventBus
from runner.engine.journal import Journal
from runner.engine.run_services import site_tz
from runner.engine.summary import whole_night
from runner.storage.durable import atomic_write_text

if TYPE_CHECKING:
    from runner.engine.run import Run

log = logging.getLogger("nightrunner.run")


@contextlib.contextmanager
def _noting(problems: list[str], what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # OSError mostly; a bug in the report must not hide the rest
        problems.append(f"{what}: {type(exc).__name__}: {exc}")


def write_record(
    run: Run, outcome: str, run_dir: Path, journal: Journal, bus: EventBus,
    close_console: Callable[[], None], real_start: float, clock_start: float,
) -> dict[str, Any]:
    """Close the journal and the event log, write the summary and reports; the summary."""
    problems: list[str] = []
    with _noting(problems, "journal"):
        journal.record("run_end" if outcome == "completed" else "run_stopped", outcome=outcome)
    with _noting(problems, "journal"):
        journal.close()
    summary = _summary(run, outcome, run_dir, real_start, clock_start)
    unsafe = run.executor.unsafe if run.executor else []
    summary["errors"] = [*summary["errors"], *run.setup_errors]
    summary["rig_safe"] = not unsafe
    summary["site_timezone"] = None
    with contextlib.suppress(Exception):  # only a label for the report's times
        summary["site_timezone"] = getattr(site_tz(run.plan), "key", None)
    summary["rig_unsafe_reasons"] = list(unsafe)
    if bus.write_error:
        problems.append(f"{bus.write_error} ({bus.write_failures} events)")
    with _noting(problems, "summary.json"):
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    bus.emit("run_end", outcome=outcome, lights=summary["frames"]["light"],
             rig_safe=summary["rig_safe"])
    with _noting(problems, "console"):
        close_console()
    bus.close()
    with _noting(problems, "report.html"):
        from runner.report import write_html_report

        write_html_report(run_dir)
    with _noting(problems, "report.md"):
        from runner.engine.report import write_report
        from runner.report.versus import markdown_of_report

        events = _read_events(run_dir / "events.jsonl")
        write_report(run_dir, summary, events,
                     extra=markdown_of_report(run_dir, summary.get("site_timezone")))
    summary["record_problems"] = problems
    for p in problems:
        log.error("night record: %s", p)
    return summary


def _summary(
    run: Run, outcome: str, run_dir: Path, real_start: float, clock_start: float
) -> dict[str, Any]:
    ex = run.executor
    c = ex.counters if ex else None
    frames, per_target = whole_night(run.resume_from, c)
    return {
        "plan": run.plan.name,
        "outcome": outcome,
        "abort_reason": run.abort_reason,
        "run_dir": str(run_dir),
        "data_dir": str(run.opt.data_dir),
        "real_seconds": round(time.monotonic() - real_start, 3),
        "clock_seconds": round(run.clock.monotonic() - clock_start, 1),
        "speed": run.clock.speed,
        "dry_run": run.opt.dry_run,
        "frames": frames,
        "per_target": per_target,
        "dithers": c.dithers if c else 0,
        "dithers_skipped": c.dithers_skipped if c else 0,
        "autofocus_runs": c.autofocus_runs if c else 0,
        "retries": c.retries if c else 0,
        "errors": c.errors if c else [],
        "final_state": ex.model.state if ex else None,
    }


def _read_events(path: Path) -> list[dict[str, Any]]:
    """The event log for the report; a line torn by a kill in an earlier segment is skipped."""
    events: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # a failing disk: the report shows what the summary holds
        return events
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and "event" in e:
            events.append(e)
    return events
