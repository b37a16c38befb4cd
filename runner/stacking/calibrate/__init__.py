"""Calibration: master bias/dark/flat, the calibration index, and calibrating light frames.

* ``build``: combining raw frames into masters (σ-clipped, in row blocks) and indexing them.
* ``index``: ``calibration/index.json`` and its :class:`Master` entries.
* ``match``: which masters fit a light (dark matching and scaling).
* ``library``: :class:`CalibrationLibrary` (all three on one directory) and
  :func:`calibration_for`, the masters for a series of lights.
* ``apply``: :class:`Calibrator`, which calibrates lights with a :class:`CalibrationSet`
  (hot pixels included).

Import the names from here.
"""

from runner.stacking.calibrate.apply import CalibrationSet, Calibrator
from runner.stacking.calibrate.build import (
    DEFAULT_MEMORY,
    combine_files,
    normalize_flat,
    sigma_clip_combine,
)
from runner.stacking.calibrate.index import Kind, Master
from runner.stacking.calibrate.library import CalibrationLibrary, calibration_for

__all__ = [
    "DEFAULT_MEMORY",
    "CalibrationLibrary",
    "CalibrationSet",
    "Calibrator",
    "Kind",
    "Master",
    "calibration_for",
    "combine_files",
    "normalize_flat",
    "sigma_clip_combine",
]
