"""Offline astronomy for the night: Sun, Moon, targets, twilight and observing constraints.

Everything here runs on astropy with its bundled IERS tables and never touches the network
(see :mod:`runner.sky.offline` and docs/astropy-iers.md). Importing ``runner.sky`` itself is
cheap: the names below load their modules — and astropy — on first use, so that
``nightrunner validate`` never pays for astropy.

For the engine: :class:`TargetVisibility` (``holds_at`` before every exposure, ``next_start``,
``windows``, ``hour_angle_at``/``next_transit`` for meridian flips) and
:func:`night_start` (the instant a plan's clock times resolve after).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.sky.constraints import (
        TWILIGHT_ALTITUDE,
        AirmassConstraint,
        AltitudeConstraint,
        Constraint,
        MoonIlluminationConstraint,
        MoonSeparationConstraint,
        SunAltitudeConstraint,
        TimeWindowConstraint,
        constraints_for,
    )
    from runner.sky.events import Crossings, NightEvents, dusk_at, night_events
    from runner.sky.grid import SkySegment, TargetTrack
    from runner.sky.offline import configure_offline
    from runner.sky.timeutil import SiteTimezoneError, night_of, night_start, site_timezone
    from runner.sky.visibility import TargetVisibility

_EXPORTS = {
    "TWILIGHT_ALTITUDE": "constraints",
    "AirmassConstraint": "constraints",
    "AltitudeConstraint": "constraints",
    "Constraint": "constraints",
    "MoonIlluminationConstraint": "constraints",
    "MoonSeparationConstraint": "constraints",
    "SunAltitudeConstraint": "constraints",
    "TimeWindowConstraint": "constraints",
    "constraints_for": "constraints",
    "Crossings": "events",
    "NightEvents": "events",
    "dusk_at": "events",
    "night_events": "events",
    "SkySegment": "grid",
    "TargetTrack": "grid",
    "configure_offline": "offline",
    "SiteTimezoneError": "timeutil",
    "night_of": "timeutil",
    "night_start": "timeutil",
    "site_timezone": "timeutil",
    "TargetVisibility": "visibility",
}

__all__ = [
    "TWILIGHT_ALTITUDE",
    "AirmassConstraint",
    "AltitudeConstraint",
    "Constraint",
    "Crossings",
    "MoonIlluminationConstraint",
    "MoonSeparationConstraint",
    "NightEvents",
    "SiteTimezoneError",
    "SkySegment",
    "SunAltitudeConstraint",
    "TargetTrack",
    "TargetVisibility",
    "TimeWindowConstraint",
    "configure_offline",
    "constraints_for",
    "dusk_at",
    "night_events",
    "night_of",
    "night_start",
    "site_timezone",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runner.sky' has no attribute '{name}'")
    value = getattr(import_module(f"runner.sky.{module}"), name)
    globals()[name] = value
    return value
