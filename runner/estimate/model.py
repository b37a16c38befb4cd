"""The estimate's result: a timeline of the night, for people (a table) and tools (JSON).

Plain dataclasses with no astropy in sight, so that the CLI can import them cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from enum import StrEnum
from typing import Any

from runner.clock import VIRTUAL_HORIZON_S


class TargetStatus(StrEnum):
    complete = "complete"  #: the sequence ran to its end
    ended = "ended"  #: started, then a constraint stopped holding (or a step gave up)
    skipped = "skipped"  #: constraints did not hold (within the wait limit) when its turn came
    not_run = "not_run"  #: never reached: an earlier target aborted the plan


@dataclass(frozen=True)
class Assumptions:
    """Figures the equipment profile does not give; explicit inputs, documented defaults.

    ``ambient`` (°C) is where cooling starts; ``None`` takes the profile's
    ``simulation.ambient``. ``cool_rate`` (°C/min) applies to ``cool``/``warm`` steps without a
    rate. A settle after guide start, dither or slew costs ``settle.time`` plus
    ``settle_guide_frames`` guide exposures. ``guide_calibration`` (s) is added when
    ``guide: start`` recalibrates; ``center_time`` (s) per ``slew: {center: true}``.
    ``horizon`` (s) bounds the walk so a loop that never ends cannot hang the estimate.
    """

    ambient: float | None = None
    cool_rate: float = 5.0
    settle_guide_frames: int = 3
    guide_exposure: float = 2.0
    guide_calibration: float = 120.0
    center_time: float = 30.0
    horizon: float = VIRTUAL_HORIZON_S
    grid_step: float = 120.0


@dataclass
class FrameTally:
    filter: str | None
    type: str
    count: int = 0
    exposure: float = 0.0  #: total open-shutter seconds
    #: The exposure time of every frame when they all share one, else None.
    each: float | None = None

    def add(self, exposure: float) -> None:
        self.each = exposure if self.count == 0 or self.each == exposure else None
        self.count += 1
        self.exposure += exposure

    def to_dict(self) -> dict[str, Any]:
        return {
            "filter": self.filter,
            "type": self.type,
            "count": self.count,
            "each_s": self.each,
            "exposure_s": round(self.exposure, 3),
        }


@dataclass
class Phase:
    """Startup, one target, or shutdown: when it ran and where its time went."""

    name: str
    start: datetime | None = None
    end: datetime | None = None
    exposure: float = 0.0
    #: Seconds by category: download, filter, focus, autofocus, dither, guide, slew, flip,
    #: cooling, center.
    overheads: dict[str, float] = field(default_factory=dict)
    #: Seconds spent waiting: for constraints, clock times, a meridian flip, ``wait`` steps.
    idle: float = 0.0
    frames: dict[tuple[str | None, str], FrameTally] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        return float(sum(self.overheads.values()))

    @property
    def duration(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return (self.end - self.start).total_seconds()

    def light_frames(self) -> int:
        return sum(f.count for f in self.frames.values() if f.type == "light")

    def to_dict(self, tz: tzinfo) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": _iso(self.start, tz),
            "end": _iso(self.end, tz),
            "duration_s": round(self.duration, 3),
            "exposure_s": round(self.exposure, 3),
            "overhead_s": round(self.overhead, 3),
            "idle_s": round(self.idle, 3),
            "overheads": {k: round(v, 3) for k, v in sorted(self.overheads.items())},
            "frames": [f.to_dict() for f in self.frames.values()],
            "notes": list(self.notes),
        }


@dataclass
class TargetEstimate(Phase):
    index: int = 0
    #: Seconds between the target's turn and its start, waiting for its constraints.
    waited: float = 0.0
    status: TargetStatus = TargetStatus.not_run
    #: What ended (or prevented) the target, in words.
    ended_by: str | None = None
    #: Why the target could not run (or run on) at the decisive instant.
    reasons: list[str] = field(default_factory=list)
    #: When its constraints hold during the night (sunset to sunrise).
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    #: Problems found with this target (also listed in ``Timeline.warnings``).
    warnings: list[str] = field(default_factory=list)

    def to_dict(self, tz: tzinfo) -> dict[str, Any]:
        d = super().to_dict(tz)
        d.update(
            index=self.index,
            waited_s=round(self.waited, 3),
            status=self.status.value,
            ended_by=self.ended_by,
            reasons=list(self.reasons),
            windows=[[_iso(a, tz), _iso(b, tz)] for a, b in self.windows],
            warnings=list(self.warnings),
        )
        return d


@dataclass
class NightSummary:
    """Sun and Moon facts shown above the timeline (site-local times)."""

    sunset: datetime | None
    civil_dusk: datetime | None
    nautical_dusk: datetime | None
    astronomical_dusk: datetime | None
    astronomical_dawn: datetime | None
    nautical_dawn: datetime | None
    civil_dawn: datetime | None
    sunrise: datetime | None
    moon_illumination: float
    moon_altitude: float

    def to_dict(self, tz: tzinfo) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            d[k] = _iso(v, tz) if isinstance(v, datetime) or v is None else round(v, 3)
        return d


@dataclass
class Timeline:
    """The estimated night: phases in order, with warnings and the assumptions behind it."""

    plan: str
    date: date
    tz: tzinfo
    start: datetime
    end: datetime
    night: NightSummary
    startup: Phase
    targets: list[TargetEstimate]
    shutdown: Phase
    warnings: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    @property
    def phases(self) -> list[Phase]:
        return [self.startup, *self.targets, self.shutdown]

    @property
    def exposure(self) -> float:
        return sum(p.exposure for p in self.phases)

    @property
    def overhead(self) -> float:
        return sum(p.overhead for p in self.phases)

    @property
    def idle(self) -> float:
        """Waiting: for constraints before targets, for flips, in ``wait`` steps."""
        return sum(p.idle for p in self.phases) + sum(t.waited for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        tz = self.tz
        return {
            "plan": self.plan,
            "date": self.date.isoformat(),
            "timezone": str(tz),
            "start": _iso(self.start, tz),
            "end": _iso(self.end, tz),
            "duration_s": round((self.end - self.start).total_seconds(), 3),
            "night": self.night.to_dict(tz),
            "startup": self.startup.to_dict(tz),
            "targets": [t.to_dict(tz) for t in self.targets],
            "shutdown": self.shutdown.to_dict(tz),
            "totals": {
                "exposure_s": round(self.exposure, 3),
                "overhead_s": round(self.overhead, 3),
                "idle_s": round(self.idle, 3),
                "light_frames": sum(p.light_frames() for p in self.phases),
            },
            "warnings": list(self.warnings),
            "assumptions": list(self.assumptions),
        }


def _iso(t: datetime | None, tz: tzinfo) -> str | None:
    return None if t is None else t.astimezone(tz).isoformat(timespec="seconds")
