"""astrometry.net's ``solve-field`` as a subprocess: hints in, a TAN WCS out, a hard time limit.

Why a subprocess and not a library: astrometry.net is the solver every observatory package
trusts, it ships in Debian with the Tycho-2 index files that fit our fields (``tycho2-07``:
22′–30′ skymarks, ``tycho2-08``: 30′–44′), and a process can be killed — a stuck solve must
never hold the night. It runs in its own process group (``solve-field`` starts
``astrometry-engine``), which is killed whole on timeout or cancellation.

The hints make a solve of a 33′ field take about a second instead of a minute: the image scale
from the optics (±15 %), the mount's pointing with a search radius, downsampling, and a
``--cpulimit`` just under the wall-clock limit. Output goes into a temporary directory that is
always removed; only the WCS header is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runner.errors import NoSolution, SolveError, SolverMissing

#: Where Debian's astrometry-data-* packages put the index files.
DEFAULT_INDEX_DIR = Path(os.environ.get("NIGHTRUNNER_ASTROMETRY_INDEX", "/usr/share/astrometry"))
#: Smaller-quad indexes built from the same Tycho-2 stars by scripts/build-solve-index.sh
#: (Debian packages none below 22′ quads, and a 33′ field holds few of those); used when present.
BUILT_INDEX_DIR = Path(os.environ.get("NIGHTRUNNER_SOLVE_INDEX_DIR",
                                      "/var/lib/nightrunner/astrometry"))
#: The brightest sources handed to the matcher (a 33′ field has 10–20 catalogue stars).
MAX_SOURCES = 60
#: How far the true image scale may be from the one computed from the optics.
SCALE_TOLERANCE = 0.15


@dataclass(frozen=True)
class SolveHints:
    """What the solver is told to narrow the search; everything optional but the scale helps
    most (without any hint a solve searches every index at every scale)."""

    scale_arcsec: float | None = None  # arcsec per pixel of the image as given (binned)
    ra: float | None = None  # J2000 degrees: where the mount thinks it points
    dec: float | None = None
    radius_deg: float = 2.0  # search radius around (ra, dec)
    downsample: int = 2


def find_solver(executable: str = "solve-field") -> str:
    """The path of ``solve-field``; :class:`SolverMissing` says how to install it."""
    found = shutil.which(executable)
    if found is None:
        raise SolverMissing(
            f"'{executable}' not found: install astrometry.net (Debian: apt-get install "
            "astrometry.net astrometry-data-tycho2-07 astrometry-data-tycho2-08; "
            "scripts/install-backends.sh does it)")
    return found


def index_files(
    index_dir: Path = DEFAULT_INDEX_DIR, built: Path | None = BUILT_INDEX_DIR
) -> list[Path]:
    """The index files the solver will use (``index_dir``'s, then the built ones);
    :class:`SolverMissing` when ``index_dir`` holds none."""
    files = sorted(index_dir.glob("index-*.fits")) if index_dir.is_dir() else []
    if files and built is not None and built.is_dir() and built.resolve() != index_dir.resolve():
        files += sorted(built.glob("index-*.fits"))
    if not files:
        raise SolverMissing(
            f"no astrometry.net index files (index-*.fits) in {index_dir}: install "
            "astrometry-data-tycho2-07 and astrometry-data-tycho2-08 (fields of 22′–44′), or "
            "set NIGHTRUNNER_ASTROMETRY_INDEX to a directory that holds them")
    return files


def solve_command(
    solver: str, image: Path, out_dir: Path, config: Path, hints: SolveHints, cpu_limit: float
) -> list[str]:
    """The ``solve-field`` command line for one image (public for tests and the docs)."""
    cmd = [solver, str(image), "--dir", str(out_dir), "--config", str(config),
           "--no-plots", "--overwrite", "--no-verify", "--crpix-center",
           # the line-removal and uniformisation passes are Python scripts solve-field runs:
           # a second of interpreter start-up per solve, for fields that have no satellite
           # trails to remove and few enough stars not to need thinning
           "--no-remove-lines", "--uniformize", "0", "--objs", str(MAX_SOURCES),
           "--downsample", str(max(1, hints.downsample)),
           "--cpulimit", str(max(1, int(cpu_limit))),
           "--new-fits", "none", "--index-xyls", "none", "--rdls", "none", "--match", "none",
           "--corr", "none", "--solved", str(out_dir / "solved"),
           "--wcs", str(out_dir / "image.wcs"), "--temp-axy"]
    if hints.scale_arcsec is not None:
        lo, hi = hints.scale_arcsec * (1 - SCALE_TOLERANCE), hints.scale_arcsec * (
            1 + SCALE_TOLERANCE)
        cmd += ["--scale-units", "arcsecperpix", "--scale-low", f"{lo:.4f}",
                "--scale-high", f"{hi:.4f}"]
    if hints.ra is not None and hints.dec is not None:
        cmd += ["--ra", f"{hints.ra % 360.0:.6f}", "--dec", f"{hints.dec:.6f}",
                "--radius", f"{hints.radius_deg:.3f}"]
    return cmd


@dataclass(frozen=True)
class RawSolution:
    """The WCS file's text (FITS header cards) and how long the solve took, wall seconds."""

    wcs_header: str
    seconds: float


async def solve_fits(
    image: Path, hints: SolveHints, timeout: float = 30.0, *,
    index_dir: Path = DEFAULT_INDEX_DIR, executable: str = "solve-field",
    built: Path | None = BUILT_INDEX_DIR,
) -> RawSolution:
    """Solve one FITS image; :class:`SolveError` when it does not solve within ``timeout``.

    The process (group) is killed on timeout and on cancellation, and its directory removed.
    """
    solver = find_solver(executable)
    indexes = index_files(index_dir, built)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nightrunner-solve-") as tmp:
        out = Path(tmp)
        config = out / "astrometry.cfg"
        config.write_text("inparallel\n" + "".join(f"index {p}\n" for p in indexes))
        cpu_limit = timeout - 1
        cmd = solve_command(solver, image, out, config, hints, cpu_limit)
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        try:
            async with asyncio.timeout(timeout):
                _, err = await proc.communicate()
        except TimeoutError:
            raise SolveError(f"{image.name}: no solution within {timeout:g} s") from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await asyncio.shield(proc.wait())
        wcs = out / "image.wcs"
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            raise SolveError(f"{image.name}: solve-field failed (exit {proc.returncode}): "
                             + " | ".join(tail))
        if not (out / "solved").exists() or not wcs.exists():
            if time.monotonic() - t0 >= max(1, int(cpu_limit)):
                # it gave up at --cpulimit, which an idle machine reaches before the timeout
                raise SolveError(f"{image.name}: no solution within {timeout:g} s")
            raise NoSolution(f"{image.name}: no solution (not enough catalogue stars matched "
                             "— clouds, a wrong scale, or a field the index does not cover)")
        text = wcs.read_bytes().decode("ascii", errors="replace")
    return RawSolution(text, time.monotonic() - t0)
