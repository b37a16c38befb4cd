"""Live stacking: calibration masters, star detection, registration, rejection, stretch.

The engine uses :class:`LiveStacker` (``submit()`` never blocks) and :func:`measure_hfr`
(autofocus, night report); ``runner.stacking.cli`` holds the offline ``stack`` command.
See docs/stacking.md for the pipeline and its measured choices.
"""

from runner.errors import RegistrationError, StackingError
from runner.stacking.accumulate import MeanStack, SigmaClipStack
from runner.stacking.calibrate import CalibrationLibrary, CalibrationSet, Calibrator, Master
from runner.stacking.detect import Stars, detect_stars, measure_hfr
from runner.stacking.fitsio import FrameMeta, read_frame
from runner.stacking.live import LiveStacker
from runner.stacking.output import StackPaths
from runner.stacking.pipeline import FrameResult, Stacker, StackSettings
from runner.stacking.register import Registration, find_transform
from runner.stacking.replay import replay
from runner.stacking.stretch import StretchParams, histogram, stretch

__all__ = [
    "CalibrationLibrary",
    "CalibrationSet",
    "Calibrator",
    "FrameMeta",
    "FrameResult",
    "LiveStacker",
    "Master",
    "MeanStack",
    "Registration",
    "RegistrationError",
    "SigmaClipStack",
    "StackPaths",
    "StackSettings",
    "Stacker",
    "StackingError",
    "Stars",
    "StretchParams",
    "detect_stars",
    "find_transform",
    "histogram",
    "measure_hfr",
    "read_frame",
    "replay",
    "stretch",
]
