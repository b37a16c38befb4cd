"""Entry points for the CLI: ``nightrunner estimate`` and ``nightrunner validate --sky``.

Both import astropy only when they run, so mounting them in the CLI costs ``validate``
nothing.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from datetime import date as Date
from datetime import datetime
from pathlib import Path
from typing import Protocol

from runner.plan.diagnostics import Diagnostic, Mark, Severity
from runner.plan.equipment import Equipment
from runner.plan.models import Plan

PathKey = tuple[str | int, ...]


class Positions(Protocol):
    """Where a YAML node stands in its file (``runner.plan.yamlsource.Positions``)."""

    def mark(self, path: PathKey) -> Mark: ...


def parse_date(text: str) -> Date:
    """A ``--date`` value; ValueError with a message a user can act on."""
    try:
        return Date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a date: write YYYY-MM-DD, e.g. 2026-11-25") from None


def _timezone_error(plan: Plan, positions: Positions) -> Diagnostic | None:
    from runner.sky.timeutil import SiteTimezoneError, site_timezone

    try:
        site_timezone(plan.site)
    except SiteTimezoneError as exc:
        return Diagnostic.at(positions.mark(("site", "timezone")), str(exc))
    return None


def sky_diagnostics(
    plan: Plan,
    equipment: Equipment | None,
    positions: Positions,
    date: Date | str | None = None,
) -> list[Diagnostic]:
    """Warnings about the night of ``date`` (default: today at the site) for ``validate --sky``.

    Each target whose constraints never hold together between sunset and sunrise gets a
    warning at its ``constraints`` node, with the reason per constraint. With an equipment
    profile the plan is also estimated, and a target that would be skipped or not reached
    (its window passed while earlier targets ran, its wait ran out, the plan aborted) gets a
    warning at its node. An unknown site time zone is an error, and so is a ``date`` string
    that is not YYYY-MM-DD (reported at the top of the file: it is the command line's fault).
    """
    if isinstance(date, str):
        try:
            date = parse_date(date)
        except ValueError as exc:
            return [Diagnostic.at(positions.mark(()), f"--date: {exc}")]
    tz_error = _timezone_error(plan, positions)
    if tz_error is not None:
        return [tz_error]
    from runner.sky.events import night_events
    from runner.sky.timeutil import local_noon, site_timezone
    from runner.sky.visibility import TargetVisibility

    tz = site_timezone(plan.site)
    day = date if date is not None else datetime.now(tz).date()
    out: list[Diagnostic] = []
    if equipment is None:
        events = night_events(plan.site, day)
        start = events.sunset.dusk or events.start
        end = events.sunset.dawn or events.end
        for i, target in enumerate(plan.targets):
            vis = TargetVisibility(target, plan.site, local_noon(day, tz))
            reasons = vis.never_reasons(start, end)
            if reasons:
                out.append(
                    Diagnostic.at(
                        positions.mark(("targets", i, "constraints")),
                        f"target '{target.name}' never meets its constraints on "
                        f"{day.isoformat()}: {'; '.join(reasons)}",
                        Severity.warning,
                    )
                )
        return out

    from runner.estimate.model import TargetStatus
    from runner.estimate.night import estimate

    timeline = estimate(plan, equipment, date=day)
    for te in timeline.targets:
        for w in te.warnings:
            path: PathKey = ("targets", te.index, "constraints")
            out.append(Diagnostic.at(positions.mark(path), w, Severity.warning))
        if te.windows and te.status in (TargetStatus.skipped, TargetStatus.not_run):
            verb = "is skipped" if te.status is TargetStatus.skipped else "is not reached"
            why = te.ended_by or ""
            if te.reasons:
                why += f" ({'; '.join(te.reasons)})"
            out.append(
                Diagnostic.at(
                    positions.mark(("targets", te.index)),
                    f"target '{te.name}' {verb} on {day.isoformat()}: {why}",
                    Severity.warning,
                )
            )
    targeted = {w for te in timeline.targets for w in te.warnings}
    for w in timeline.warnings:
        if w not in targeted:
            out.append(Diagnostic.at(positions.mark(()), w, Severity.warning))
    return out


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a one-shot command. The plan's nodes and the
    night's events are ~100,000 objects that live to the end; the collector traversed all of
    them again every few thousand allocations, 1-1.7 s of a 10,000-step estimate's 5-6 s.
    Reference counting still frees everything else; cycles wait for the collection at the
    end."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def estimate_main(plan_path: Path, date: str | None, as_json: bool) -> int:
    """``nightrunner estimate PLAN [--date YYYY-MM-DD] [--json]``.

    Prints the timeline (a table, or JSON on stdout) and the plan's diagnostics on stderr.
    Exit 0 when the plan was estimated, 1 when the plan is invalid, 2 on a bad ``--date``.
    """
    with _no_cyclic_gc():
        return _estimate_main(plan_path, date, as_json)


def _estimate_main(plan_path: Path, date: str | None, as_json: bool) -> int:
    from runner.plan.loader import load_plan

    day: Date | None = None
    if date is not None:
        try:
            day = parse_date(date)
        except ValueError as exc:
            print(f"error: --date: {exc}", file=sys.stderr)
            return 2
    result = load_plan(plan_path)
    for d in result.diagnostics:
        print(d.format(), file=sys.stderr)
    plan, equipment = result.plan, result.equipment
    if plan is None or equipment is None:
        return 1
    tz_error = _timezone_error(plan, result.positions)
    if tz_error is not None:
        print(tz_error.format(), file=sys.stderr)
        return 1

    from runner.estimate.night import estimate
    from runner.estimate.render import render_table, timeline_json

    timeline = estimate(plan, equipment, date=day)
    if as_json:
        sys.stdout.write(timeline_json(timeline) + "\n")
    else:
        render_table(timeline)
    return 0
