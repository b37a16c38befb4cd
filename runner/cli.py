"""The ``nightrunner`` command line.

Exit codes everywhere: 0 success, 1 invalid plan / failed or aborted run, 2 usage error.
Heavy modules (astropy, numpy, the engine) are imported inside the commands that need them so
that ``validate`` stays fast enough for an editor's save hook.
"""

from __future__ import annotations

import contextlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

app = typer.Typer(
    name="nightrunner",
    help="Declarative observatory sequencer: validate, estimate and run YAML imaging plans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class SchemaKind(StrEnum):
    plan = "plan"
    equipment = "equipment"


@app.command()
def validate(
    plans: Annotated[list[Path], typer.Argument(help="Plan files to check.")],
    equipment: Annotated[
        Path | None, typer.Option(help="Equipment profile overriding the plans' own.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="text (FILE:LINE:COL lines) or json.")
    ] = OutputFormat.text,
    sky: Annotated[
        bool, typer.Option("--sky", help="Also check that targets meet their constraints.")
    ] = False,
    date: Annotated[
        str | None, typer.Option(help="Night to check with --sky (YYYY-MM-DD; default tonight).")
    ] = None,
) -> None:
    """Check plans without touching any device: exit 0 when all are valid, 1 otherwise."""
    from runner.validate_cmd import check_plans

    raise typer.Exit(check_plans(plans, equipment, output_format.value, sky, date))


@app.command()
def schema(
    kind: Annotated[SchemaKind, typer.Argument(help="Which schema.")] = SchemaKind.plan,
    write: Annotated[
        bool, typer.Option(help="Write schemas/*.schema.json, schemas/openapi.json and "
                           "docs/plan-reference.md.")
    ] = False,
    reference: Annotated[
        bool, typer.Option(help="Print the Markdown plan reference instead.")
    ] = False,
) -> None:
    """Print the JSON Schema (for editors) generated from the plan models."""
    from runner.plan.reference import reference_markdown
    from runner.plan.schema import schema_text

    if write:
        root = _project_root()
        names: tuple[Literal["plan"], Literal["equipment"]] = ("plan", "equipment")
        for name in names:
            target = root / "schemas" / f"{name}.schema.json"
            target.parent.mkdir(exist_ok=True)
            target.write_text(schema_text(name), encoding="utf-8")
            typer.echo(f"wrote {target}")
        from runner.control.openapi_doc import openapi_text

        api = root / "schemas" / "openapi.json"
        api.write_text(openapi_text(), encoding="utf-8")
        typer.echo(f"wrote {api}")
        ref = root / "docs" / "plan-reference.md"
        ref.write_text(reference_markdown(), encoding="utf-8")
        typer.echo(f"wrote {ref}")
        return
    if reference:
        typer.echo(reference_markdown(), nl=False)
    else:
        typer.echo(schema_text("plan" if kind is SchemaKind.plan else "equipment"), nl=False)


@app.command()
def run(
    plan: Annotated[Path, typer.Argument(help="The plan to run.")],
    equipment: Annotated[
        Path | None, typer.Option(help="Equipment profile overriding the plan's own.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where frames, index, journal and logs go.")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(min=0.001, help="Time acceleration of the simulated clock (simulators)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted run of this plan.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run the plan on nominal devices in virtual time "
                           "(as `estimate` does); write no frames.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary at the end.")
    ] = False,
    progress: Annotated[
        str, typer.Option(help="auto | rich | plain | none (auto: rich on a terminal).")
    ] = "auto",
    rpc: Annotated[
        str, typer.Option(help="Control plane HTTP/WebSocket address (HOST:PORT).",
                          envvar="NIGHTRUNNER_RPC")
    ] = "127.0.0.1:8765",
    tcp: Annotated[
        str, typer.Option(help="pyastroimageview TCP line protocol address (HOST:PORT).",
                          envvar="NIGHTRUNNER_TCP")
    ] = "127.0.0.1:8800",
    no_rpc: Annotated[
        bool, typer.Option("--no-rpc", help="Serve no control plane for this night.")
    ] = False,
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the control-plane token "
                                  "(else $NIGHTRUNNER_TOKEN); required off loopback.")
    ] = None,
    start_at: Annotated[
        str | None, typer.Option(help="Wait until tonight's dusk|dusk+30m|dawn-2h|HH:MM at "
                                 "the plan's site (cron); resumes tonight's unfinished run.")
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option(help="Append all output to this file (headless nights).")
    ] = None,
) -> None:
    """Run a plan: startup, targets, and the safe shutdown — always."""
    import asyncio

    if log_file is not None:
        from runner.schedule.headless import log_to_file

        log_to_file(log_file)

    from runner.errors import RunLockedError
    from runner.plan.loader import load_plan

    if progress not in ("auto", "rich", "plain", "none"):
        raise typer.BadParameter("must be auto, rich, plain or none", param_hint="--progress")
    result = load_plan(plan, equipment=equipment)
    for d in result.diagnostics:
        typer.echo(d.format(), err=True)
    if not result.ok or result.plan is None or result.equipment is None:
        raise typer.Exit(1)
    from runner.engine.run import Run, RunOptions, default_data_dir

    data_dir = data_dir or default_data_dir(result.equipment)
    if start_at is not None:
        from runner.schedule.cli import wait_for_start

        resume = wait_for_start(plan, result.plan.site, start_at, data_dir) or resume
    options = RunOptions(
        data_dir=data_dir,
        speed=speed,
        resume=resume,
        dry_run=dry_run,
        progress="none" if as_json and progress == "auto" else progress,
        plan_text=plan.read_bytes(),
        plan_path=plan,
    )
    runner_ = Run(result.plan, result.equipment, options)
    from runner.notify import attach_notifier

    notifier = attach_notifier(runner_)
    from runner.control.night import run_served
    from runner.errors import ConfigError

    try:
        plane = None if no_rpc else _control_plane(options.data_dir, rpc, tcp, token_file,
                                                    plan.resolve().parent)
        if dry_run:  # the executor on nominal devices in virtual time (as `estimate` is)
            from runner.clock import run_virtual

            outcome = run_virtual(lambda _clock: run_served(runner_, plane))
        else:
            outcome = asyncio.run(run_served(runner_, plane))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except RunLockedError as exc:
        from runner.engine.lock import EXIT_LOCKED

        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_LOCKED) from None
    except OSError as exc:  # the data directory cannot be created or written
        where = exc.filename or options.data_dir
        typer.echo(f"error: data directory {where}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    notifier.drain()  # the night is over; the last notifications go out before the exit
    _final_words(outcome, as_json)
    raise typer.Exit(outcome.exit_code)


def _final_words(outcome: Any, as_json: bool) -> None:
    """The last lines of a night. The terminal may be gone (SIGHUP, a closed pipe): the night
    is over and recorded, so a failing stdout only loses these lines, not the exit code."""
    import json
    import os
    import sys

    s = outcome.summary
    if as_json:
        text = json.dumps(s, indent=2, default=str)
    else:
        lines = []
        if not s.get("rig_safe", True):
            lines.append("RIG MAY NOT BE SAFE: " + "; ".join(s.get("rig_unsafe_reasons", [])))
        for p in s.get("record_problems", []):
            lines.append(f"night record incomplete: {p}")
        lines.append(final_line(s, outcome.run_dir / "report.md"))
        text = "\n".join(lines)
    try:
        typer.echo(text)
        sys.stdout.flush()
    except OSError:  # EPIPE / EIO: nobody is reading; keep the interpreter's exit quiet
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


FATAL_PREFIXES = ("fatal:", "unexpected ", "internal error:", "run could not start:")


def final_line(summary: dict[str, Any], report: Path) -> str:
    """The run's last line: outcome, its cause, frames and errors, where the report is."""
    outcome = str(summary["outcome"])
    errors_ = [str(e) for e in summary.get("errors") or []]
    fatal = [e.removeprefix("fatal:").strip() for e in errors_ if e.startswith(FATAL_PREFIXES)]
    cause = fatal[-1] if fatal else (summary.get("abort_reason") if outcome == "aborted" else None)
    head = f"{outcome} ({cause})" if cause else outcome
    n = len(errors_)
    errors = f"{n} error{'' if n == 1 else 's'}"
    return f"{head}: {summary['frames']['light']} light frames, {errors}; report {report}"


@app.command()
def estimate(
    plan: Annotated[Path, typer.Argument(help="The plan to estimate.")],
    date: Annotated[
        str | None, typer.Option(help="Night to estimate (YYYY-MM-DD; default tonight).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
) -> None:
    """Dry-run timeline of the night: when each target runs, frames, overheads, and why not."""
    from runner.estimate.main import estimate_main

    raise typer.Exit(estimate_main(plan, date, as_json))


def _index_catch_up(index: Any, data_dir: Path) -> None:
    """Frames the runs journalled but the index missed (locked, or a run killed before its
    rows were written) are added from their headers before listing; a locked index is listed
    as it is."""
    import sqlite3

    from runner.engine.reconcile import journalled_frames
    from runner.storage.recover import index_missing

    try:
        index_missing(index, [(Path(p), r) for p, r in journalled_frames(data_dir)])
    except (sqlite3.Error, OSError) as exc:
        typer.echo(f"warning: image index {index.path} not brought up to date: {exc}", err=True)


@app.command()
def images(
    data_dir: Annotated[Path, typer.Option(help="The data directory of the runs.")] = Path(
        "nightrunner-data"
    ),
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    filter_name: Annotated[str | None, typer.Option("--filter", help="Only this filter.")] = None,
    frame_type: Annotated[
        str | None, typer.Option("--type", help="light, dark, flat or bias.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only frames of this run.")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many, newest first.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON records.")] = False,
) -> None:
    """Recall frames from the image index: what was taken, when, and how good it was."""
    import json
    from dataclasses import asdict

    from runner.storage.index import INDEX_FILENAME, ImageIndex

    if not (data_dir / INDEX_FILENAME).is_file() and not (data_dir / "runs").is_dir():
        typer.echo(f"error: no image index in {data_dir}", err=True)
        raise typer.Exit(1)
    index = ImageIndex(data_dir, busy_timeout=1.0)
    try:
        _index_catch_up(index, data_dir)
        rows = index.query(target=target, filter=filter_name, frame_type=frame_type,
                           run_id=run_id, limit=limit, newest_first=limit is not None)
    finally:
        index.close()
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2, default=str))
        return
    for r in rows:
        hfr = f"{r.hfr:.2f}" if r.hfr is not None else "-"
        rms = f"{r.guide_rms:.2f}{r.guide_unit or ''}" if r.guide_rms is not None else "-"
        typer.echo(f"{r.date_obs:%Y-%m-%d %H:%M:%S} {r.frame_type:5} {r.target or '-':12} "
                   f"{r.filter or '-':5} {r.exposure:7.1f}s HFR {hfr:>5} RMS {rms:>9} {r.path}")
    typer.echo(f"{len(rows)} frames")


@app.command()
def scan(
    backend: Annotated[str, typer.Argument(help="simulator, alpaca or indi.")],
    address: Annotated[
        str | None, typer.Option(help="host:port (Alpaca 127.0.0.1:11111, INDI :7624).")
    ] = None,
) -> None:
    """List the devices a back-end offers, for the equipment profile's `device:` fields."""
    import asyncio

    from runner.devices.scan import scan as scan_devices
    from runner.errors import DeviceError

    try:
        found = asyncio.run(scan_devices(backend, address))
    except DeviceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for d in found:
        typer.echo(f"{d.kind:12} device: {d.device!s:24} {d.name}")


_FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command(context_settings=_FORWARD, add_help_option=False)
def stack(ctx: typer.Context) -> None:
    """Stack FITS files offline with the live stacker's pipeline (`stack --help` for options)."""
    from runner.stacking.cli import app as stack_app

    stack_app(args=ctx.args, prog_name="nightrunner stack")


@app.command(context_settings=_FORWARD, add_help_option=False)
def sim(ctx: typer.Context) -> None:
    """Start a simulator for other programs: `sim phd2 [--port 4400]` (`sim --help`)."""
    from runner.guiding.cli import app as sim_app

    sim_app(args=ctx.args, prog_name="nightrunner sim")


def _control_plane(data_dir: Path, rpc: str, tcp: str, token_file: Path | None,
                   plans: Path) -> Any:
    from runner.control.hub import Hub
    from runner.control.server import ControlPlane, parse_address, read_token

    # validate_plan reads plans beside the night's own (and in DATA_DIR/plans)
    hub = Hub(data_dir, token=read_token(None, token_file),
              plan_dirs=[plans, data_dir / "plans"])
    return ControlPlane(hub, http=parse_address(rpc, 8765), tcp=parse_address(tcp, 8800))


from runner.control.cli import register as _register_control  # noqa: E402

_register_control(app)

from runner.schedule.cli import register as _register_schedule  # noqa: E402

_register_schedule(app)

from runner.restack.cli import register as _register_restack  # noqa: E402

_register_restack(app)

from runner.solve.cli import register as _register_solve  # noqa: E402

_register_solve(app)


def _project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


def main() -> None:
    """Typer entry point (``runner.entry`` decides whether it is needed)."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(1)


if __name__ == "__main__":
    main()
