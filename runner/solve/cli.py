"""``nightrunner solve FILE``: plate-solve one frame, print where it points, optionally write
the WCS into its header. Registered on the main app with :func:`register`; astropy and the
solver load only when the command runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from runner.errors import SolveError


def solve(
    file: Annotated[Path, typer.Argument(help="A FITS image.", exists=True, dir_okay=False)],
    write: Annotated[bool, typer.Option(
        "--write", help="Write the WCS into the file's header (atomically).")] = False,
    ra: Annotated[float | None, typer.Option(help="RA hint, degrees (default: header RA).")] = None,
    dec: Annotated[float | None, typer.Option(
        help="Dec hint, degrees (default: header DEC).")] = None,
    radius: Annotated[float, typer.Option(help="Search radius around the hint, degrees.")] = 2.0,
    scale: Annotated[float | None, typer.Option(
        help="Image scale, arcsec/px (default: from FOCALLEN and XPIXSZ).")] = None,
    blind: Annotated[bool, typer.Option(
        "--blind", help="Ignore the header's pointing (search the whole sky).")] = False,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the solution as JSON.")] = False,
) -> None:
    """Plate-solve FILE with astrometry.net (and, with hints, the hinted matcher when it finds
    nothing): centre RA/Dec, rotation and scale."""
    from dataclasses import replace

    from astropy.io import fits

    from runner.solve.solver import hints_from_header, solve_path
    from runner.solve.wcs import write_wcs

    try:
        hints = hints_from_header(fits.getheader(file), radius)
    except OSError as exc:
        typer.echo(f"error: {file}: {exc}", err=True)
        raise typer.Exit(1) from None
    if blind:
        hints = replace(hints, ra=None, dec=None)
    if ra is not None or dec is not None:
        if ra is None or dec is None:
            raise typer.BadParameter("give both --ra and --dec", param_hint="--ra/--dec")
        hints = replace(hints, ra=ra, dec=dec)
    if scale is not None:
        hints = replace(hints, scale_arcsec=scale)
    try:
        sol = asyncio.run(solve_path(file, hints, timeout))
        if write:
            write_wcs(file, sol)
    except SolveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps({"file": str(file), "ra": round(sol.ra, 6),
                               "dec": round(sol.dec, 6), "rotation": round(sol.rotation, 3),
                               "scale": round(sol.scale, 4), "flipped": sol.flipped,
                               "seconds": round(sol.seconds, 2), "solver": sol.solver,
                               "written": write}))
        return
    from runner.storage.fits import format_dec, format_ra

    typer.echo(f"{file.name}: RA {format_ra(sol.ra)} ({sol.ra:.5f}°)  "
               f"Dec {format_dec(sol.dec)} ({sol.dec:+.5f}°)")
    typer.echo(f"  rotation {sol.rotation:.2f}° E of N{' (flipped)' if sol.flipped else ''}  "
               f"scale {sol.scale:.3f}″/px  solved in {sol.seconds:.1f} s by {sol.solver}"
               + ("  WCS written" if write else ""))


def register(app: typer.Typer) -> None:
    app.command()(solve)
