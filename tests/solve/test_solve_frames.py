"""solve-field on simulated frames of the real sky: the WCS is right to the arcsecond, the
time limit kills the solver, missing pieces are named, and ``nightrunner solve`` works."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from typer.testing import CliRunner

from runner.cli import app
from runner.devices.sim.catalogue import load_catalogue
from runner.errors import SolveError, SolverMissing
from runner.solve import SolveHints, solve_path
from runner.solve.astrometry import find_solver, index_files
from runner.solve.geometry import separation_arcsec
from runner.stacking.detect import detect_stars
from tests.solve.simframes import equipment, write_frame

#: Open clusters and empty fields at both poles of the Galaxy and both hemispheres.
FIELDS = [(10.684583, 41.269167), (83.82, -5.39), (201.0, -43.0), (192.86, 27.13)]


@pytest.mark.parametrize(("ra", "dec"), FIELDS)
def test_the_solved_wcs_puts_catalogue_stars_within_two_arcsec(
    tmp_path: Path, ra: float, dec: float
) -> None:
    eq = equipment(error_arcmin=6)
    path, frame, truth = write_frame(tmp_path / "f.fits", eq, ra, dec)
    sol = asyncio.run(solve_path(path))
    assert separation_arcsec(sol.ra, sol.dec, *truth) < 15  # truth: the axis, before drift
    assert sol.scale == pytest.approx(eq.pixel_scale, rel=0.005)
    # independent of the simulator's projection: stars found in the pixels, through the WCS,
    # against the catalogue's own positions
    stars = detect_stars(frame.data, threshold_sigma=10, max_stars=15, measure=False)
    sky = WCS(sol.header).all_pix2world(stars.xy, 0)
    cat_ra, cat_dec, _ = load_catalogue().around(sol.ra, sol.dec, 0.4)
    nearest = []
    for s_ra, s_dec in sky:
        d = np.hypot((cat_ra - s_ra) * np.cos(np.radians(s_dec)), cat_dec - s_dec) * 3600
        nearest.append(float(d.min()))
    matched = [d for d in nearest if d < 10]  # the rest are the synthetic faint filler
    assert len(matched) >= 4, nearest
    assert max(matched) <= 2.0, matched


def test_solve_hints_come_from_the_header_and_a_blind_solve_needs_none(tmp_path: Path) -> None:
    eq = equipment()
    path, _, truth = write_frame(tmp_path / "f.fits", eq, 150.0, 55.0)
    sol = asyncio.run(solve_path(path, SolveHints(scale_arcsec=eq.pixel_scale)))
    assert separation_arcsec(sol.ra, sol.dec, *truth) < 15


def _unsolvable(tmp_path: Path) -> Path:
    """A frame of the synthetic sky: no catalogue matches it, so a blind solve (no hints)
    searches every index at every scale until its limit."""
    base = equipment()
    eq = base.model_copy(update={
        "simulation": base.simulation.model_copy(update={"sky": "synthetic"})})
    path, _, _ = write_frame(tmp_path / "f.fits", eq, 150.0, 55.0)
    return path


def test_the_time_limit_kills_the_solver(tmp_path: Path) -> None:
    import subprocess

    path = _unsolvable(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(SolveError, match="no solution within 3 s"):
        asyncio.run(solve_path(path, SolveHints(), timeout=3.0))
    assert time.monotonic() - t0 < 6.0
    left = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_missing_solver_or_index_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SolverMissing, match=r"apt-get install astrometry\.net"):
        find_solver("no-such-solve-field")
    with pytest.raises(SolverMissing, match="astrometry-data-tycho2-07"):
        index_files(tmp_path)


def test_nightrunner_solve_prints_the_solution_and_writes_the_wcs(tmp_path: Path) -> None:
    eq = equipment(error_arcmin=10)
    path, _, truth = write_frame(tmp_path / "frame.fits", eq, 83.82, -5.39)
    before = path.read_bytes()
    out = CliRunner().invoke(app, ["solve", str(path)])
    assert out.exit_code == 0, out.output
    assert "RA 05 " in out.output and "scale 1.9" in out.output
    assert path.read_bytes() == before  # no --write: the file is untouched

    out = CliRunner().invoke(app, ["solve", str(path), "--write", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert separation_arcsec(got["ra"], got["dec"], *truth) < 15 and got["written"] is True
    with fits.open(path) as hdul:
        h = hdul[0].header
        assert h["PLTSOLVD"] is True and h["CTYPE1"].startswith("RA---TAN")
        assert hdul[0].data.dtype.kind in "ui" and h["BZERO"] == 32768  # pixels unchanged
        assert separation_arcsec(h["CRVAL1"], h["CRVAL2"], got["ra"], got["dec"]) < 1
    assert not list(tmp_path.glob(".*.part"))


def test_nightrunner_solve_fails_clearly_on_an_unsolvable_file(tmp_path: Path) -> None:
    blank = tmp_path / "blank.fits"
    fits.PrimaryHDU(np.zeros((200, 300), np.uint16)).writeto(blank)
    out = CliRunner().invoke(app, ["solve", str(blank), "--timeout", "10"])
    assert out.exit_code == 2
    assert "error:" in out.output and "no solution" in out.output


def test_cancelling_a_solve_kills_the_solver_and_its_engine(tmp_path: Path) -> None:
    import subprocess

    path = _unsolvable(tmp_path)

    async def cancel_soon() -> None:
        task = asyncio.create_task(solve_path(path, SolveHints(), timeout=60))
        await asyncio.sleep(1.5)
        running = await asyncio.to_thread(
            subprocess.run, ["pgrep", "-f", str(path)], capture_output=True, text=True)
        assert running.stdout.strip(), "solve-field should be running by now"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = time.monotonic()
    asyncio.run(cancel_soon())
    assert time.monotonic() - t0 < 5
    left = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True)
    assert left.stdout.strip() == ""  # solve-field and astrometry-engine are gone
