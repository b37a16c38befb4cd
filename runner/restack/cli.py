"""``nightrunner restack``: re-stack an archive's lights per target × filter × binning on Dask.

Registered on the main app with :func:`register`; Dask is imported only when the command
runs, so ``nightrunner --help`` stays fast.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any

import typer

from runner.errors import StackingError

PROGRESS_MODES = ("auto", "rich", "plain", "none")


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO date (midnight UTC) or date-time (UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), UTC)
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM)",
            param_hint=option,
        ) from exc
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


class _Progress:
    """A rich bar per group on a terminal, else a plain line every ~10 % of a group."""

    def __init__(self, labels: list[str], totals: list[int], mode: str) -> None:
        self.labels, self.totals = labels, totals
        self.done = [0] * len(labels)
        if mode == "auto":
            mode = "rich" if sys.stdout.isatty() else "plain"
        self.mode = mode
        self._bar: Any = None
        self._ids: list[Any] = []
        if mode == "rich":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            )
            pairs = zip(labels, totals, strict=True)
            self._ids = [self._bar.add_task(lb, total=t) for lb, t in pairs]

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def echo(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        elif self.mode != "none":
            typer.echo(text)

    def frame(self, group: int, report: Any) -> None:
        self.done[group] += 1
        if not report.stacked:
            self.echo(f"skipped {report.path}: {report.status}: {report.reason}")
        if self._bar is not None:
            self._bar.advance(self._ids[group])
            return
        n, total = self.done[group], self.totals[group]
        step = max(1, total // 10)
        if self.mode == "plain" and (n % step == 0 or n == total):
            typer.echo(f"{self.labels[group]}: {n}/{total} frames")


def restack(
    data_dir: Annotated[
        list[Path] | None,
        typer.Option("--data-dir", help="Data directory with an image index (repeatable)."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    filter_name: Annotated[str | None, typer.Option("--filter", help="Only this filter.")] = None,
    since: Annotated[str | None, typer.Option(help="Frames from this date (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Frames before this date (UTC).")] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Where stacked/ and debug/ go (default: the first data directory)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="A Dask scheduler, tcp://HOST:PORT.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="LocalCluster workers (default: one per core; 0: in-process). "
            "Jobs under 24 frames run in-process."
        ),
    ] = None,
    reject: Annotated[bool, typer.Option(help="κσ outlier rejection.")] = True,
    kappa: Annotated[float, typer.Option(help="Rejection threshold, σ.")] = 3.0,
    tile_mpx: Annotated[
        float, typer.Option(help="Pixels per tile, millions (memory per accumulator task).")
    ] = 1.0,
    progress: Annotated[str, typer.Option(help="auto | rich | plain | none.")] = "auto",
) -> None:
    """Re-stack lights from the image index(es), one stack per target × filter × binning."""
    if scheduler is not None and workers is not None:
        raise typer.BadParameter("give --scheduler or --workers, not both", param_hint="--workers")
    if workers is not None and workers < 0:
        raise typer.BadParameter("must be ≥ 0", param_hint="--workers")
    if progress not in PROGRESS_MODES:
        raise typer.BadParameter("must be auto, rich, plain or none", param_hint="--progress")
    if not (0.001 <= tile_mpx <= 1000):
        raise typer.BadParameter("must be between 0.001 and 1000", param_hint="--tile-mpx")
    if kappa <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--kappa")
    dirs = data_dir or [Path("nightrunner-data")]
    t0, t1 = _when(since, "--since"), _when(until, "--until")

    from runner.restack.graph import build_plan
    from runner.restack.run import Target, run
    from runner.restack.select import select_groups
    from runner.stacking.pipeline import StackSettings

    try:
        groups = select_groups(dirs, target=target, filter=filter_name, since=t0, until=t1)
    except StackingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    out = (output or dirs[0]).resolve()
    settings = StackSettings(reject=reject, kappa=kappa)
    where = Target(scheduler=scheduler, workers=workers)
    frames = sum(len(g.frames) for g in groups)
    local = where.in_process(frames)
    plan = build_plan(groups, settings, str(out), tile_px=int(tile_mpx * 1e6), in_process=local)
    typer.echo(
        f"{len(groups)} group(s), {frames} frames: "
        + ", ".join(f"{g.label} ({len(g.frames)})" for g in groups)
    )
    if local:
        typer.echo("running in-process")
    with _Progress([g.label for g in groups], [len(g.frames) for g in groups], progress) as bar:

        def on_client(client: Any) -> None:
            n = len(client.scheduler_info().get("workers", {}))
            bar.echo(f"Dask cluster {client.scheduler.address}: {n} worker(s)")
            bar.echo(f"dashboard: {client.dashboard_link}")

        try:
            summaries = run(plan, where, bar.frame, on_client)
        except (OSError, TimeoutError) as exc:
            typer.echo(f"error: cannot reach the Dask scheduler {scheduler or ''}: {exc}", err=True)
            raise typer.Exit(1) from exc
        except StackingError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    for s in summaries:
        typer.echo(
            f"{s.stacking_id}: {s.stacked} of {s.frames} frames stacked, "
            f"{s.unregistered} not registered, {s.failed} unreadable"
        )
        for p in s.outputs:
            typer.echo(f"  {p}")
    if not any(s.stacked for s in summaries):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(restack)
