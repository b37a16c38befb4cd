"""The dry run: how long a plan takes and when each target runs, before the night.

Importing this package does not import astropy (``nightrunner validate`` mounts it cheaply);
:func:`estimate` and :func:`sky_diagnostics` load the sky when they are called.
"""

from runner.estimate.main import estimate_main, parse_date, sky_diagnostics
from runner.estimate.model import (
    Assumptions,
    FrameTally,
    NightSummary,
    Phase,
    TargetEstimate,
    TargetStatus,
    Timeline,
)
from runner.estimate.night import estimate
from runner.estimate.render import render_table, timeline_json

__all__ = [
    "Assumptions",
    "FrameTally",
    "NightSummary",
    "Phase",
    "TargetEstimate",
    "TargetStatus",
    "Timeline",
    "estimate",
    "estimate_main",
    "parse_date",
    "render_table",
    "sky_diagnostics",
    "timeline_json",
]
