"""The ``nightrunner`` command line.

Exit codes everywhere: 0 success, 1 invalid plan / failed or aborted run, 2 usage error.
Heavy modules (astropy, numpy, the engine) are imported inside the commands that need them so
that ``validate`` stays fast enough for an editor's save hook.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from runner.plan.diagnostics import Diagnostic
    from runner.plan.loader import LoadResult

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
    from runner.plan.diagnostics import has_errors, sort_key, to_json
    from runner.plan.loader import load_plan

    everything = []
    failed = False
    for path in plans:
        result = load_plan(path, equipment=equipment)
        diags = list(result.diagnostics)
        if sky and result.ok:
            diags += _sky_diagnostics(result, date)
        everything += sorted(diags, key=sort_key)
        failed = failed or has_errors(diags) or result.plan is None
    if output_format is OutputFormat.json:
        typer.echo(to_json(everything))
    else:
        for d in everything:
            typer.echo(d.format(), err=False)
    raise typer.Exit(1 if failed else 0)


def _sky_diagnostics(result: LoadResult, date: str | None) -> list[Diagnostic]:
    import importlib

    estimate = importlib.import_module("runner.estimate")
    diags: list[Diagnostic] = estimate.sky_diagnostics(
        result.plan, result.equipment, result.positions, date
    )
    return diags


@app.command()
def schema(
    kind: Annotated[SchemaKind, typer.Argument(help="Which schema.")] = SchemaKind.plan,
    write: Annotated[
        bool, typer.Option(help="Write schemas/*.schema.json and docs/plan-reference.md.")
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
        ref = root / "docs" / "plan-reference.md"
        ref.write_text(reference_markdown(), encoding="utf-8")
        typer.echo(f"wrote {ref}")
        return
    if reference:
        typer.echo(reference_markdown(), nl=False)
    else:
        typer.echo(schema_text("plan" if kind is SchemaKind.plan else "equipment"), nl=False)


def _project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(1)


if __name__ == "__main__":
    main()
