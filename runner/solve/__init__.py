"""Plate solving: astrometry.net's ``solve-field`` driven as a subprocess with a time limit.

Modules, one job each: ``geometry`` (tangent-plane offsets and separations, pure math),
``astrometry`` (the subprocess: hints, time limit, kill), ``catalogue`` (the Tycho-2 stars of
the index files, shared with the simulator), ``triangles`` and ``hinted`` (the hinted matcher
tried when solve-field finds nothing), ``fallback`` (that matcher on a file), ``wcs`` (a
solution read from and written into FITS headers), ``solver`` (a file or header to a
solution), ``cli`` (``nightrunner solve``). Names load on first use (PEP 562):
``runner.solve.geometry`` is imported by the simulators and the engine, which must not pay for
astropy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.solve.astrometry import SolveHints
    from runner.solve.solver import hints_from_header, solve_path
    from runner.solve.wcs import Solution, write_wcs

__all__ = ["Solution", "SolveHints", "hints_from_header", "solve_path", "write_wcs"]

_WHERE = {"SolveHints": "astrometry", "Solution": "wcs", "write_wcs": "wcs",
          "hints_from_header": "solver", "solve_path": "solver"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'runner.solve' has no attribute {name!r}")
    return getattr(importlib.import_module(f"runner.solve.{_WHERE[name]}"), name)
