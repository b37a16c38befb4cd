"""``nightrunner stack``: stack FITS files offline with the live stacker's code.

Mount with ``app.add_typer(stacking_cli.app)`` (or register :func:`stack` as a command). The
lights go through :class:`~runner.stacking.live.LiveStacker` with a queue as long as the file
list, so nothing is dropped and the outputs (seed 004 layout, debug log) are the same as live.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationLibrary
from runner.stacking.fitsio import expand_paths, read_meta
from runner.stacking.live import LiveStacker

app = typer.Typer(help="Offline stacking with the live stacker's pipeline.")


def _masters(
    library: CalibrationLibrary,
    darks: list[Path],
    flats: list[Path],
    bias: list[Path],
) -> None:
    bias_id = None
    if bias:
        bias_id = library.build_master("bias", expand_paths(bias)).id
        typer.echo(f"master bias: {bias_id}")
    by_exposure: dict[float | None, list[Path]] = defaultdict(list)
    for p in expand_paths(darks):
        by_exposure[read_meta(p).exposure].append(p)
    for exposure, group in sorted(by_exposure.items(), key=lambda kv: kv[0] or 0.0):
        m = library.build_master("dark", group)
        typer.echo(f"master dark {exposure or 0:g} s: {m.id} ({len(group)} frames)")
    by_filter: dict[str | None, list[Path]] = defaultdict(list)
    for p in expand_paths(flats):
        by_filter[read_meta(p).filter].append(p)
    for filt, group in by_filter.items():
        m = library.build_master("flat", group, bias=bias_id)
        typer.echo(f"master flat {filt or '(no filter)'}: {m.id} ({len(group)} frames)")


def _lights(inputs: list[Path]) -> list[Path]:
    """The light frames among the inputs: directories are searched with their sub-folders, and
    frames found there whose IMAGETYP says dark, flat or bias are left out (a data directory
    holds ``calibration/`` too); files named one by one are taken as given."""
    lights: list[Path] = []
    left_out = 0
    for item in inputs:
        if not item.is_dir():
            lights += expand_paths([item])
            continue
        for p in expand_paths([item]):
            if read_meta(p).frame_type in (None, "light"):
                lights.append(p)
            else:
                left_out += 1
    if left_out:
        typer.echo(f"note: {left_out} calibration frames (dark, flat, bias) in the folders "
                   "left out")
    if not lights:
        where = ", ".join(str(p) for p in inputs)
        raise StackingError(f"no light frames (FITS files) in {where}, sub-folders included")
    return lights


@app.command("stack")
def stack(
    inputs: Annotated[
        list[Path], typer.Argument(help="Light frames: FITS files and/or directories of them.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Data directory to write.")],
    darks: Annotated[
        list[Path] | None, typer.Option(help="Dark frames or directories (repeatable).")
    ] = None,
    flats: Annotated[
        list[Path] | None, typer.Option(help="Flat frames or directories (repeatable).")
    ] = None,
    bias: Annotated[
        list[Path] | None, typer.Option(help="Bias frames or directories (repeatable).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Stacking id (default: first input's name).")
    ] = None,
    align: Annotated[bool, typer.Option(help="Register frames on their stars.")] = True,
    reject: Annotated[bool, typer.Option(help="κσ outlier rejection.")] = True,
    kappa: Annotated[float, typer.Option(help="Rejection threshold, σ.")] = 3.0,
    field_rotation: Annotated[bool, typer.Option(help="Accept any field rotation.")] = False,
    flip: Annotated[bool, typer.Option(help="Mirror the outputs left–right.")] = False,
    save_data: Annotated[bool, typer.Option(help="Copy inputs into debug/ for replay.")] = False,
) -> None:
    """Stack FILES_OR_DIR into OUTPUT/stacked/<name>_final.{jpeg,tiff,json}."""
    try:
        lights = _lights(inputs)
        library = CalibrationLibrary(output)
        _masters(library, darks or [], flats or [], bias or [])
        first = read_meta(lights[0])
        found_dark = library.find_dark(first) if darks else None
        found_flat = library.find_flat(first) if flats else None
        found_bias = library.find_bias(first) if bias else None
        if darks and found_dark is None:
            typer.echo("warning: no dark matches the lights (gain/offset/binning/temperature)")
        if found_dark is not None and found_dark[1] != 1.0 and found_bias is None:
            typer.echo("warning: dark exposure differs and no bias to scale it; dark not used")
            found_dark = None
        stacker = LiveStacker(output, queue_size=len(lights) + 1, intermediate_every=0)
        stacking_id = stacker.start(
            name or lights[0].parent.name or "stack",
            darks=found_dark[0].id if found_dark else None,
            flats=found_flat.id if found_flat else None,
            bias=found_bias.id if found_bias else None,
            align=align,
            reject=reject,
            kappa=kappa,
            field_rotation=field_rotation,
            flip=flip,
            save_data=save_data,
        )
        for p in lights:
            stacker.submit(p)
        paths = stacker.save()
        st = stacker.status()
    except StackingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"{stacking_id}: {st['stacked']} of {st['frames']} frames stacked, "
        f"{st['unregistered']} not registered, {st['failed']} unreadable"
    )
    typer.echo(f"  {paths.jpeg}\n  {paths.tiff}\n  {paths.json}")
    if st["stacked"] == 0:
        raise typer.Exit(1)
