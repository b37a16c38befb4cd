"""The timeline for people (a rich table) and for tools (JSON)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import IO

from runner.estimate.model import Phase, TargetEstimate, TargetStatus, Timeline
from runner.estimate.timeline import duration_text


def timeline_json(timeline: Timeline) -> str:
    return json.dumps(timeline.to_dict(), indent=2, ensure_ascii=False)


def _frames_text(phase: Phase) -> str:
    parts = []
    for f in phase.frames.values():
        label = f.filter or "—"
        if f.type != "light":
            label = f"{f.type} {label}" if f.filter else f.type
        if f.each is not None:
            parts.append(f"{label} {f.count}×{f.each:g}s" if f.each else f"{label} {f.count}")
        else:
            parts.append(f"{label} {f.count} ({duration_text(f.exposure)})")
    return ", ".join(parts) or "—"


def _status_text(phase: Phase) -> str:
    if not isinstance(phase, TargetEstimate):
        return ""
    text = phase.status.value
    if phase.status is not TargetStatus.complete and phase.ended_by:
        text += f": {phase.ended_by}"
    if phase.reasons:
        text += " (" + "; ".join(phase.reasons) + ")"
    return text


def _hhmm(t: datetime | None, tl: Timeline) -> str:
    return "—" if t is None else t.astimezone(tl.tz).strftime("%H:%M")


def render_table(timeline: Timeline, file: IO[str] | None = None) -> None:
    """Print the timeline as a table with the night's facts above and warnings below."""
    from rich.console import Console
    from rich.table import Table

    tl = timeline
    console = Console(file=file, highlight=False)
    if not console.is_terminal:  # cron logs and pipes: no 80-column squeeze
        console = Console(file=file, highlight=False, width=120)
    n = tl.night
    dark = (
        f"astronomical dark {_hhmm(n.astronomical_dusk, tl)}–{_hhmm(n.astronomical_dawn, tl)}"
        if n.astronomical_dusk is not None
        else "no astronomical darkness"
    )
    console.print(f"[bold]{tl.plan}[/bold] — night of {tl.date.isoformat()} ({tl.tz})")
    console.print(
        f"sunset {_hhmm(n.sunset, tl)} · {dark} · sunrise {_hhmm(n.sunrise, tl)} · "
        f"moon {n.moon_illumination:.0%} lit, {n.moon_altitude:.0f}° up at mid-night"
    )
    table = Table(show_lines=False)
    for col, justify in (
        ("Phase", "left"),
        ("Start", "right"),
        ("End", "right"),
        ("Frames", "left"),
        ("Exposure", "right"),
        ("Overhead", "right"),
        ("Status", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for phase in tl.phases:
        ran = phase.start is not None
        table.add_row(
            phase.name,
            _hhmm(phase.start, tl),
            _hhmm(phase.end, tl),
            _frames_text(phase),
            duration_text(phase.exposure) if ran else "—",
            duration_text(phase.overhead) if ran else "—",
            _status_text(phase),
        )
    table.add_row(
        "[bold]total[/bold]",
        _hhmm(tl.start, tl),
        _hhmm(tl.end, tl),
        f"{sum(p.light_frames() for p in tl.phases)} light frames",
        duration_text(tl.exposure),
        duration_text(tl.overhead),
        f"idle {duration_text(tl.idle)}",
    )
    console.print(table)
    for phase in tl.phases:
        for note in phase.notes:
            console.print(f"{phase.name}: {note}")
    for w in tl.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    console.print("[dim]assumptions: " + "; ".join(tl.assumptions) + "[/dim]")
