"""``nightrunner schedule add|list|remove|next``, ``nightrunner cron`` and the helpers of
``run --start-at``: the commands of unattended nights (registered on the main app)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

DataDir = Annotated[Path, typer.Option(help="The data directory whose schedule this is "
                                       "(the one `nightrunner serve --data-dir` uses).")]
_DEFAULT_DATA = Path("nightrunner-data")

schedule_app = typer.Typer(name="schedule", no_args_is_help=True, add_completion=False,
                           help="Nights the hub (`nightrunner serve`) starts by itself.")


def _load_site(plan: Path) -> Any:
    from runner.plan.loader import load_plan

    if not plan.is_file():
        typer.echo(f"error: no plan file at {plan}", err=True)
        raise typer.Exit(1)
    result = load_plan(plan)
    for d in result.diagnostics:
        typer.echo(d.format(), err=True)
    if not result.ok or result.plan is None:
        raise typer.Exit(1)
    return result.plan.site


def _spec(at: str, days: str | None) -> Any:
    from runner.schedule.when import StartSpecError, parse_at

    try:
        return parse_at(at, days)
    except StartSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint="--at/--days") from None


def _fmt(t: datetime | None, tz: Any) -> str:
    return "—" if t is None else t.astimezone(tz).strftime("%a %Y-%m-%d %H:%M:%S %Z")


@schedule_app.command("add")
def add(
    plan: Annotated[Path, typer.Argument(help="The plan to run each night.")],
    at: Annotated[str, typer.Option(help="dusk, dusk+30m, dawn-2h, nautical-dusk, "
                                    "civil-dawn, HH:MM or a cron expression '0 21 * * *'.")],
    days: Annotated[str | None, typer.Option(help="Evenings to run: mon,wed,fri or "
                                             "mon-fri (default every night).")] = None,
    until_dawn: Annotated[bool, typer.Option("--until-dawn", help="Stop the night at dawn "
                                             "(the safe shutdown runs).")] = False,
    grace: Annotated[str, typer.Option(help="How late a missed start may still run "
                                       "(and only while dark).")] = "8h",
    data_dir: DataDir = _DEFAULT_DATA,
) -> None:
    """Schedule PLAN; `nightrunner serve --data-dir DIR` starts it at the computed time."""
    from runner.plan.units import parse_duration
    from runner.schedule.store import ScheduleError, ScheduleStore
    from runner.sky.timeutil import site_timezone

    _spec(at, days)
    site = _load_site(plan)
    try:
        grace_s = float(parse_duration(grace))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grace") from None
    store = ScheduleStore(data_dir)
    try:
        job = store.add(plan, at, days=days, until_dawn=until_dawn, site=site,
                        now=datetime.now(UTC), grace_s=grace_s)
    except ScheduleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"scheduled {job.id}: {plan} --at {at}; next start "
               f"{_fmt(job.next_run, site_timezone(site))}")


@schedule_app.command("list")
def list_(
    nights: Annotated[int, typer.Option(min=1, max=60, help="Nights to show per job.")] = 3,
    data_dir: DataDir = _DEFAULT_DATA,
) -> None:
    """Every scheduled night with its next starts (or why a night has none)."""
    from runner.schedule.store import ScheduleStore
    from runner.sky.timeutil import night_of, site_timezone

    store = ScheduleStore(data_dir)
    try:
        jobs = store.jobs()
    finally:
        store.close()
    if not jobs:
        typer.echo(f"nothing scheduled in {data_dir}")
        return
    now = datetime.now(UTC)
    for job in jobs:
        tz = site_timezone(job.site)
        extra = (f" days {job.days}" if job.days else "") + (" until dawn" if job.until_dawn
                                                             else "")
        typer.echo(f"{job.id}: {job.plan} --at {job.at}{extra} (site {job.site.latitude:g}, "
                   f"{job.site.longitude:g}, {job.site.timezone or 'machine zone'})")
        for s in job.upcoming(night_of(now, tz), nights):
            past = s.when is not None and s.when < now
            typer.echo(f"  night of {s.night}: " + (_fmt(s.when, tz) + (" (past)" if past
                                                    else "") if s.when else s.reason))


@schedule_app.command("remove")
def remove(
    job_id: Annotated[str, typer.Argument(help="The id `schedule list` shows.")],
    data_dir: DataDir = _DEFAULT_DATA,
) -> None:
    """Remove a scheduled night."""
    from runner.schedule.store import ScheduleError, ScheduleStore

    store = ScheduleStore(data_dir)
    try:
        store.remove(job_id)
    except ScheduleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"removed {job_id}")


@schedule_app.command("next")
def next_(data_dir: DataDir = _DEFAULT_DATA) -> None:
    """The next night the hub will start, and when."""
    from runner.schedule.store import ScheduleStore
    from runner.sky.timeutil import site_timezone

    store = ScheduleStore(data_dir)
    try:
        jobs = [j for j in store.jobs() if j.next_run is not None]
    finally:
        store.close()
    if not jobs:
        typer.echo(f"nothing scheduled in {data_dir}")
        raise typer.Exit(1)
    job = min(jobs, key=lambda j: j.next_run or datetime.max.replace(tzinfo=UTC))
    assert job.next_run is not None
    left = job.next_run - datetime.now(UTC)
    typer.echo(f"{job.id}: {job.plan} at {_fmt(job.next_run, site_timezone(job.site))} "
               f"(in {_human(left)})")


def _human(d: timedelta) -> str:
    s = int(d.total_seconds())
    if s < 0:
        return "overdue"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def cron(
    plan: Annotated[Path, typer.Argument(help="The plan cron should run each night.")],
    at: Annotated[str, typer.Option(help="When the night starts (as `schedule add --at`).")]
    = "dusk",
    days: Annotated[str | None, typer.Option(help="Evenings: mon,wed,fri or mon-fri.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory of the runs.")] = None,
    log_file: Annotated[Path | None, typer.Option(help="Where the night's output goes "
                                                  "(default DATA/logs/nightrunner.log).")]
    = None,
) -> None:
    """Print a crontab line that starts `nightrunner run PLAN --start-at AT` every afternoon;
    the run waits until tonight's computed time."""
    from runner.engine.run import default_data_dir
    from runner.plan.loader import load_plan
    from runner.schedule.cron import crontab_text

    _spec(at, days)
    _load_site(plan)
    if data_dir is None:
        result = load_plan(plan)
        assert result.equipment is not None
        data_dir = default_data_dir(result.equipment)
    typer.echo(crontab_text(plan, at, days, data_dir, log_file), nl=False)


def wait_for_start(plan_path: Path, site: Any, start_at: str, data_dir: Path) -> bool:
    """``run --start-at``: sleep until tonight's start; True to resume tonight's run. Exits
    0 with the reason when there is no start tonight (no night, missed, daylight)."""
    from runner.schedule.cron import decide_start, wait_until

    spec = _spec(start_at, None)
    decision = decide_start(spec, site, data_dir, plan_path, datetime.now(UTC))
    typer.echo(f"--start-at {start_at}: {decision.message}", err=True)
    if not decision.start:
        raise typer.Exit(0)
    if decision.when is not None and not decision.resume:
        wait_until(decision.when)
    return decision.resume


def register(app: typer.Typer) -> None:
    from runner.report.cli import report

    app.add_typer(schedule_app)
    app.command()(cron)
    app.command()(report)
