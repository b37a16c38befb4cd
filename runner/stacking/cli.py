"""``nightrunner stack``: stack FITS files offline with the live stacker's code.

Mount with ``app.add_typer(stacking_cli.app)`` (or register :func:`stack` as a command). The
lights go through :class:`~runner.stacking.filters.FilterStacks` — one stack per filter, as a
night stacks them — with queues as long as the file list, so nothing is dropped and the outputs
(seed 004 layout, FITS, debug log, colour preview) are the same as live.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import typer

from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationLibrary
from runner.stacking.filters import FilterStacks, Saved, header_cards
from runner.stacking.fitsio import FrameMeta, expand_paths, read_meta

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


_NOT_LIGHT = ("dark", "flat", "bias", "offset", "zero")


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
            kind = header_cards(p, ("IMAGETYP",))["IMAGETYP"]  # not a full header parse
            if kind is None or not any(w in kind.lower() for w in _NOT_LIGHT):
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
    per_filter: Annotated[bool, typer.Option(
        help="One stack per FILTER card (and a colour preview when the filters make one); "
             "--no-per-filter stacks every frame together.")] = True,
) -> None:
    """Stack FILES_OR_DIR into OUTPUT/stacked/<name>_<filter>_final.{jpeg,tiff,fits,json}."""
    try:
        lights = _lights(inputs)
        library = CalibrationLibrary(output)
        _masters(library, darks or [], flats or [], bias or [])
        wanted = {"darks": bool(darks), "flats": bool(flats), "bias": bool(bias)}

        def masters_for(filter_name: str | None, first: FrameMeta) -> dict[str, Any]:
            return _matching(library, first, wanted, filter_name)

        stacks = FilterStacks(output, queue_size=len(lights) + 1, intermediate_every=0,
                              library=library, read_ahead=True)
        stacks.options_for = masters_for
        stacks.begin(name or _default_name(inputs, lights), align=align, reject=reject,
                     kappa=kappa, field_rotation=field_rotation, flip=flip,
                     save_data=save_data)
        groups: dict[str | None, list[Path]] = defaultdict(list)
        for p in lights:
            groups[header_cards(p, ("FILTER",))["FILTER"] if per_filter else None].append(p)
        # one filter at a time, as a night feeds them: stacks started side by side would
        # share the cores (each frame ~4× slower) and hold every stack's frames in memory
        for filt, group in groups.items():
            for p in group:
                stacks.submit(p, filter_name=filt, read_filter=False)
            if filt in stacks.stackers:
                stacks.stackers[filt].wait_idle()
        for filt, why in stacks.failed.items():
            raise StackingError(f"filter {filt or '(none)'}: {why}")
        saved = stacks.save()
        colour = _colour(stacks, saved, flip) if per_filter else None
    except StackingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for s in saved:
        _report(s)
    if colour is not None:
        typer.echo("colour preview:\n  " + "\n  ".join(str(p) for p in colour.values()))
    if not any(s.status["stacked"] for s in saved):
        raise typer.Exit(1)


def _default_name(inputs: list[Path], lights: list[Path]) -> str:
    """The target the frames are of (their OBJECT card, as a night writes it), else the folder
    given — not the filter folder (``NGC 188/L``) the first light happens to be in."""
    target = header_cards(lights[0], ("OBJECT",))["OBJECT"]
    if target:
        return str(target)
    given = inputs[0].resolve()
    return (given.name if given.is_dir() else lights[0].parent.name) or "stack"


def _matching(library: CalibrationLibrary, first: FrameMeta, wanted: dict[str, bool],
              filter_name: str | None) -> dict[str, Any]:
    """The masters built from the command's calibration frames that fit a filter's lights."""
    what = f" ({filter_name})" if filter_name else ""
    found_dark = library.find_dark(first) if wanted["darks"] else None
    found_flat = library.find_flat(first) if wanted["flats"] else None
    found_bias = library.find_bias(first) if wanted["bias"] else None
    if wanted["darks"] and found_dark is None:
        typer.echo(f"warning: no dark matches the lights{what} (gain/offset/binning/temperature)")
    if found_dark is not None and found_dark[1] != 1.0 and found_bias is None:
        typer.echo(f"warning: dark exposure differs{what} and no bias to scale it; not used")
        found_dark = None
    if wanted["flats"] and found_flat is None:
        typer.echo(f"warning: no flat of filter {filter_name} for the lights{what}")
    return {"darks": found_dark[0].id if found_dark else None,
            "flats": found_flat.id if found_flat else None,
            "bias": found_bias.id if found_bias else None}


def _colour(stacks: FilterStacks, saved: list[Saved], flip: bool) -> dict[str, Path] | None:
    try:
        return stacks.colour(saved, flip=flip)
    except StackingError as exc:
        typer.echo(f"warning: no colour preview: {exc}")
        return None


def _report(s: Saved) -> None:
    st = s.status
    if s.paths is None:
        typer.echo(f"{s.stacking_id}: not saved: {s.error}")
        return
    typer.echo(
        f"{s.stacking_id}: {st['stacked']} of {st['frames']} frames stacked, "
        f"{st['unregistered']} not registered, {st['failed']} unreadable"
    )
    files = [s.paths.jpeg, s.paths.tiff, s.paths.fits, s.paths.json]
    typer.echo("  " + "\n  ".join(str(p) for p in files if p is not None))
