"""``nightrunner report RUN_DIR|DATA_DIR [--night DATE]``: the page of any past night."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer


def _run_dirs(data_dir: Path, night: str | None) -> list[Path]:
    """The runs of a data directory, of one night (its evening's date, site-less: the UTC
    date of the run's first event before noon belongs to the day before) or the latest."""
    from runner.schedule.loop import first_clock

    runs = sorted(d for d in (data_dir / "runs").glob("*") if (d / "events.jsonl").is_file())
    if night is None:
        return runs[-1:]
    try:
        wanted = date.fromisoformat(night)
    except ValueError:
        raise typer.BadParameter(f"{night!r} is not a date YYYY-MM-DD",
                                 param_hint="--night") from None
    out = []
    for d in runs:
        began = first_clock(d)
        if began is not None:
            local = began.astimezone()
            evening = local.date() if local.hour >= 12 else date.fromordinal(
                local.date().toordinal() - 1)
            if evening == wanted:
                out.append(d)
    return out


def report(
    path: Annotated[Path, typer.Argument(help="A run directory (runs/<id>) or a data "
                                         "directory (its latest run, or --night).")],
    night: Annotated[str | None, typer.Option(help="With a data directory: the night's "
                                              "date (YYYY-MM-DD, its evening).")] = None,
) -> None:
    """Write report.html (plots embedded) and report.json for a past night."""
    from runner.report import write_html_report

    if (path / "events.jsonl").is_file():
        dirs = [path]
    elif (path / "runs").is_dir():
        dirs = _run_dirs(path, night)
    else:
        typer.echo(f"error: {path} is neither a run directory (events.jsonl) nor a data "
                   "directory (runs/)", err=True)
        raise typer.Exit(1)
    if not dirs:
        typer.echo(f"error: no run in {path}" + (f" for the night of {night}" if night else ""),
                   err=True)
        raise typer.Exit(1)
    for d in dirs:
        typer.echo(f"wrote {write_html_report(d)}")
