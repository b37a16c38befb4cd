"""The night report: what happened, for the person who slept through it.

Written at the end of every run (``runs/<id>/report.md``) from the run's own event log and
summary — the same facts the log holds, arranged per target. A resumed run appends to the
same event log and its summary counts every segment, so the report is the whole night's.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any


def _stats(values: list[float]) -> str:
    if not values:
        return "—"
    return (f"median {statistics.median(values):.2f}, best {min(values):.2f}, "
            f"worst {max(values):.2f}")


def _local(iso: str | None, zone: str | None) -> str:
    """An event's engine-clock instant as site time (as the estimate and the plan speak)."""
    if not iso:
        return "?"
    if not zone:
        return iso[11:19]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(iso).astimezone(ZoneInfo(zone)).strftime("%H:%M:%S")


def render(summary: dict[str, Any], events: list[dict[str, Any]], extra: str = "") -> str:
    """``extra``: sections placed before the list of files (the estimate against what
    happened, from the HTML report's numbers)."""
    lines = [f"# Night report — {summary['plan']}", ""]
    outcome = summary["outcome"]
    if summary.get("abort_reason"):
        outcome += f" ({summary['abort_reason']})"
    clocks = [e["clock"] for e in events if "clock" in e]
    zone = summary.get("site_timezone")
    lines += [
        f"- outcome: **{outcome}**",
        f"- night: {_local(clocks[0] if clocks else None, zone)} → "
        f"{_local(clocks[-1] if clocks else None, zone)} {zone or 'UTC'} "
        f"({summary['clock_seconds'] / 3600:.2f} h; speed {summary['speed']:g}×)",
        f"- frames: {summary['frames']['light']} light, {summary['frames']['dark']} dark, "
        f"{summary['frames']['flat']} flat, {summary['frames']['bias']} bias"
        + (f" ({summary['frames']['skipped_on_resume']} already taken before a resume)"
           if summary["frames"]["skipped_on_resume"] else ""),
        f"- dithers: {summary['dithers']} ({summary['dithers_skipped']} skipped); "
        f"autofocus runs: {summary['autofocus_runs']}; retries: {summary['retries']}",
        "",
    ]
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"hfr": [], "rms": [], "frames": 0})
    status: dict[str, str] = {}
    current: str | None = None
    stacks: dict[str, dict[str, Any]] = {}
    stopped = summary.get("abort_reason") or summary["outcome"]
    for e in events:
        ev = e["event"]
        if ev == "target_start":
            current = e["target"]
            # until its end: a night that stops here leaves it interrupted, not "not reached"
            status[current] = f"interrupted ({stopped})"
        elif ev == "target_end":
            status[e["target"]] = e["status"] + (f": {e['reason']}" if e.get("reason") else "")
        elif ev == "target_skipped" and e.get("reason") == "completed before":
            status[e["target"]] = "completed (before the resume)"
        elif ev == "frame" and current is not None and e.get("type") == "light":
            p = per[current]
            p["frames"] += 1
            if e.get("hfr") is not None:
                p["hfr"].append(float(e["hfr"]))
            if e.get("guiding_rms") is not None:
                p["rms"].append(float(e["guiding_rms"]))
        elif ev == "stack_saved" and current is not None:
            stacks[current] = e.get("status", {})
    for name, counts in summary.get("per_target", {}).items():
        lines += [f"## {name}", "", f"- status: {status.get(name, 'not reached')}"]
        if counts:
            parts = [f"{k.split(':', 1)[1]} {v}" + ("" if k.startswith("light") else
                                                    f" ({k.split(':', 1)[0]})")
                     for k, v in sorted(counts.items())]
            lines.append(f"- frames: {', '.join(parts)}")
        seen = per.get(name)
        if seen and seen["hfr"]:
            lines.append(f"- HFR (px): {_stats(seen['hfr'])}")
        if seen and seen["rms"]:
            lines.append(f"- guiding RMS: {_stats(seen['rms'])}")
        if name in stacks:
            st = stacks[name]
            lines.append(f"- live stack: {st.get('stacked', 0)} stacked, "
                         f"{st.get('dropped', 0)} dropped → `stacked/`")
        lines.append("")
    problems = [e for e in events if e["event"] in ("error", "warning")]
    if problems:
        lines += ["## Problems", ""]
        for e in problems[:200]:
            lines.append(f"- {_local(e.get('clock'), zone)} {e['event']}: {e['message']}")
        if len(problems) > 200:
            lines.append(f"- … and {len(problems) - 200} more in events.jsonl")
        lines.append("")
    if extra:
        lines.append(extra)
    lines += ["## Files", "", f"- data: `{summary['data_dir']}`",
              f"- this run: `{summary['run_dir']}` (events.jsonl, journal.jsonl, summary.json)", ""]
    return "\n".join(lines)


def write_report(run_dir: Path, summary: dict[str, Any], events: list[dict[str, Any]],
                 extra: str = "") -> Path:
    path = run_dir / "report.md"
    path.write_text(render(summary, events, extra), encoding="utf-8")
    return path
