"""The real sky for the simulated camera: the Tycho-2 stars of astrometry.net's index files.

Why these stars: they are installable here (Debian's ``astrometry-data-tycho2-07``/``-08``),
and they are exactly the stars the plate solver matches against, so a simulated frame solves to
the coordinates the simulated telescope really points at — centring is tested for real. The
reading is shared with the solver (:mod:`runner.solve.catalogue`); what is the simulator's own
is the flux scale below and the error a simulated device raises.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import DeviceError, SolveError
from runner.solve.catalogue import INDEX_DIR, Catalogue, catalogue_available
from runner.solve.catalogue import load_catalogue as _load_shared

__all__ = ["BRIGHTEST_MAG", "FAINT_MAG", "FILLER_BRIGHTEST_MAG", "INDEX_DIR", "Catalogue",
           "catalogue_available", "load_catalogue"]

#: Magnitude of the synthetic sky's faintest star (``sky.FAINT_FLUX`` e-/s): the zero point
#: that puts catalogue stars on the same flux scale as the synthetic filler.
FAINT_MAG = 16.0
#: Synthetic filler stars brighter than this are dropped on the real sky: the bright stars
#: in the frame are real ones, as the solver expects.
FILLER_BRIGHTEST_MAG = 12.5

#: Stars brighter than this are drawn as bright as this: a star's stamp ends at 4 HFR, and a
#: brighter one would be a saturated square there, which source extraction breaks into bits.
BRIGHTEST_MAG = 8.0


def load_catalogue(index_dir: Path | None = None) -> Catalogue:
    """The process's catalogue (blocking, about a second the first time; then cached);
    a :class:`DeviceError` naming the packages when the index files are missing."""
    try:
        return _load_shared(index_dir)
    except SolveError as exc:
        raise DeviceError(f"simulation.sky 'catalogue': {exc}") from exc
