"""What the executor works with: its collaborators (protocols the run wires up), the scope a
step runs in, the counters, and the exceptions that steer the flow."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from runner.clock import Clock
from runner.devices.interfaces import Frame, Guider, GuideStats
from runner.engine.compiler import CompiledTarget
from runner.errors import (
    NightrunnerError,
)
from runner.plan.models import (
    FocusAuto,
    FrameType,
    RepeatUntil,
    Target,
)

log = logging.getLogger("nightrunner.engine")




# ----------------------------------------------------------------------------- collaborators


class Visibility(Protocol):
    """Constraint evaluation for one target (runner.sky)."""

    def holds_at(self, t: datetime) -> tuple[bool, list[str]]: ...

    def next_start(self, t: datetime) -> datetime | None: ...

    def altitude_at(self, t: datetime) -> float: ...

    def hour_angle_at(self, t: datetime) -> float: ...

    def when_altitude(self, t: datetime, altitude: float, limit: datetime) -> datetime | None:
        """The first instant from ``t`` (up to ``limit``) at which the target is that high."""
        ...


class FrameSink(Protocol):
    """Names frames, writes them to disk atomically and indexes them."""

    def allocate(self, frame: Frame, meta: dict[str, Any]) -> Path: ...

    async def save(self, frame: Frame, meta: dict[str, Any], path: Path | None = None) -> Path:
        ...


class StackSink(Protocol):
    def submit(self, path: Path) -> bool: ...


class Stacking(Protocol):
    """Per-target live stacks (runner.engine.stacking_link)."""

    def begin(self, ct: CompiledTarget) -> StackSink | None: ...

    async def end(self) -> dict[str, Any] | None: ...

    def end_later(self) -> None:
        """Save the stack while the shutdown runs (``close`` waits for it)."""

    def calibration_frame(self, path: Path, kind: str) -> None:
        """A frame of a ``master: true`` set: combined into a master once the set is
        complete, and applied to the lights after it."""


class FrameSolver(Protocol):
    """``runner.solve.frames.FrameSolver``: a frame written, solved and given a WCS."""

    def scale_arcsec(self, binning: int) -> float: ...

    async def solve(
        self, frame: Frame, name: str, hints: Any, timeout: float
    ) -> tuple[Any, Path]: ...


class Autofocuser(Protocol):
    async def __call__(self, settings: FocusAuto, filter_name: str | None) -> dict[str, Any]: ...


@dataclass
class Services:
    clock: Clock
    camera: Any
    filter_wheel: Any | None
    focuser: Any | None
    mount: Any | None
    safety: Any | None
    guider: Guider | None
    frames: FrameSink
    #: None: HFR is not measured (dry runs, the estimate: nominal frames have no stars)
    measure_hfr: Callable[[npt.NDArray[np.uint16]], float | None] | None
    autofocus: Autofocuser | None
    visibility: Callable[[Target], Visibility] | None
    stacking: Stacking | None = None
    site_tz: tzinfo | None = None
    filter_slots: dict[str, int] = field(default_factory=dict)
    #: None: frames are not plate-solved (dry runs, the estimate: nominal frames have no
    #: stars); centring then costs one attempt's time (``runner/engine/exec_centre.py``)
    solver: FrameSolver | None = None


# ----------------------------------------------------------------------------- control flow


# shutdown step kinds whose failure can leave the rig unsafe (cold camera, guiding, unparked)
SAFETY_KINDS = frozenset({"warm", "park", "guide"})


@dataclass
class _Taken:
    """A frame in memory, on its way to the disk (FrameWriter), with what it was taken under."""

    key: str
    frame: Frame
    frame_type: FrameType
    meta: dict[str, Any]
    path: Path
    seconds: float
    stats: GuideStats | None
    target: str | None
    filter: str | None
    triggers: dict[str, Any]
    focus_generation: int
    stack: StackSink | None


class SkipTarget(Exception):
    """Leave the current target (constraint ended it, or policy said skip_target)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LoopExit(Exception):
    """A ``repeat: until`` condition holds: leave that loop."""

    def __init__(self, loop_id: str, reason: str) -> None:
        super().__init__(reason)
        self.loop_id = loop_id
        self.reason = reason


class FatalRunError(NightrunnerError):
    """A step failed with policy ``abort``: the night ends (after shutdown)."""


@dataclass(frozen=True)
class Scope:
    target: CompiledTarget | None
    suffix: str = ""  # iteration path, e.g. "#i2#i0"
    #: enclosing until-loops: (loop id, condition, the loop's own scope suffix, start)
    loops: tuple[tuple[str, RepeatUntil, str, float], ...] = ()
    phase: str = "imaging"


@dataclass
class Counters:
    lights: int = 0
    darks: int = 0
    flats: int = 0
    biases: int = 0
    skipped_resume: int = 0
    dithers: int = 0
    dithers_skipped: int = 0
    autofocus_runs: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    per_target: dict[str, dict[str, int]] = field(default_factory=dict)

