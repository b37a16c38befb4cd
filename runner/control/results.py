"""What the night's methods answer, as models: the OpenAPI document's response types, and a
check on the handlers (``status`` is validated against :class:`Status` on every call).

Keys that only some phases have (an idle hub has no plan) are optional and left out of the
answer when absent, never sent as ``null``: the dump excludes what was not set."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def answer(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` checked against the model, with exactly the keys it had."""
        return cls.model_validate(fields).model_dump(mode="json", exclude_unset=True)


class GuideRms(_Result):
    ra: float | None
    dec: float | None
    total: float | None
    unit: str


class FrameCounts(_Result):
    light: int
    dark: int
    flat: int
    bias: int
    planned_light: int | None


class Status(_Result):
    """Everything a dashboard shows, in one answer."""

    server: str
    version: str
    running: bool
    phase: str  # idle | starting | startup | imaging | shutdown | …
    rig: dict[str, Any]  # the rig's readings, refreshed once a second
    subscribers: int
    plan: str | None = None
    run_id: str | None = None
    clock: str | None = None  # the engine clock, ISO 8601
    speed: float | None = None
    state: str | None = None
    outcome: str | None = None
    paused: bool | None = None
    pause_requested: bool | None = None
    target: str | None = None
    filter: str | None = None
    guiding: bool | None = None
    guide_rms: GuideRms | None = None
    exposure: dict[str, Any] | None = None
    exposure_remaining: float | None = None
    frames: FrameCounts | None = None
    per_target: dict[str, dict[str, int]] | None = None
    last_frame: dict[str, Any] | None = None
    errors: list[str] | None = None
    error_count: int | None = None
    step: dict[str, Any] | None = None  # the step running now: id, kind, phase
    warnings: list[str] | None = None  # the night's last 20 warnings
    warning_count: int | None = None
    #: events that slow subscribers lost (each has a bounded queue; the engine never waits)
    events_dropped: int | None = None
    stacker: dict[str, Any] | None = None
    #: when the current target and the night (its shutdown) end, ISO 8601: the estimate
    #: re-run from the night's current state (runner.estimate.eta)
    eta_target: str | None = None
    eta_night: str | None = None


class AbortResult(_Result):
    aborting: bool
    done: bool | None = None
    outcome: str | None = None
    message: str | None = None


class PauseResult(_Result):
    pause_requested: bool


class ResumeResult(_Result):
    resumed: bool


class SkipResult(_Result):
    skip_requested: str


class PlanResult(_Result):
    path: str | None
    plan: dict[str, Any]


class EventsResult(_Result):
    events: list[dict[str, Any]]
    next: int


class LogResult(_Result):
    lines: list[str]


class FramesResult(_Result):
    frames: list[dict[str, Any]]


class ValidateResult(_Result):
    valid: bool
    diagnostics: list[str]


class RunPlanResult(_Result):
    started: bool
    plan: str
    # a dry run's answer only (a night's answer is the two fields above, as it always was)
    dry_run: bool | None = None
    summary: dict[str, Any] | None = None  # the dry run's, once it is over


class CameraInfo(_Result):
    """Seed 000's camera info: binning, unbinned frame size, ROI in binned pixels."""

    binning: int
    framesize: tuple[int, int]
    roi: tuple[int, int, int, int]


class FocuserStopped(_Result):
    stop: bool


class GuiderDone(_Result):
    """Seed 001's answer to a command: ``{"message": null}``."""

    message: None = None


class Phd2Started(_Result):
    message: None = None
    port: int


class ScanResult(_Result):
    list: list[int] | None  # the seed's: null when no port answers


class GuideStamp(_Result):
    frame: int
    width: int
    height: int
    image: str  # base64 of little-endian uint16, row-major
    star_position: tuple[float, float]


class SavedPath(_Result):
    path: str
