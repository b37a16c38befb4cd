"""The arguments of each step kind: what follows the kind key (``expose: {count: 10, …}``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from runner.plan.models.base import Model
from runner.plan.models.policies import Settle
from runner.plan.units import RA, ClockTimeField, Dec, Duration


class FrameType(StrEnum):
    light = "light"
    dark = "dark"
    bias = "bias"
    flat = "flat"


class Roi(Model):
    """Region of interest in unbinned sensor pixels."""

    x: int = Field(0, ge=0, description="Left edge, pixels.")
    y: int = Field(0, ge=0, description="Top edge, pixels.")
    width: int = Field(..., gt=0, description="Width, pixels.")
    height: int = Field(..., gt=0, description="Height, pixels.")


class CoolArgs(Model):
    to: float = Field(..., ge=-60, le=40, description="Sensor set point, °C.")
    rate: float | None = Field(
        None, gt=0, le=60, description="Ramp rate, °C per minute (default: as fast as allowed)."
    )
    timeout: Duration = Field(900.0, description="Seconds to reach the set point (±0.5 °C).")


class FocusAuto(Model):
    """A V-curve autofocus run around the current position."""

    steps: int = Field(9, ge=5, le=31, description="Number of focuser positions sampled.")
    step_size: int | None = Field(
        None, gt=0, description="Focuser steps between samples (default from equipment)."
    )
    exposure: Duration = Field(3.0, description="Exposure per sample, s.")
    fit: Literal["hyperbola", "parabola"] = Field("hyperbola", description="Curve fitted.")


class FocusArgs(Model):
    """Exactly one of `position`, `by` or `auto`."""

    position: int | None = Field(None, ge=0, description="Absolute focuser position, steps.")
    by: int | None = Field(None, description="Relative move, focuser steps (+ outward).")
    auto: FocusAuto | None = Field(None, description="Run an autofocus V-curve.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data == "auto":
            return {"auto": {}}
        if isinstance(data, dict) and data.get("auto") is True:
            return {**data, "auto": {}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> FocusArgs:
        given = [k for k in ("position", "by", "auto") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("focus needs exactly one of 'position', 'by' or 'auto'")
        return self


class ExposeArgs(Model):
    count: int = Field(1, ge=1, le=100_000, description="Number of frames.")
    exposure: float = Field(
        ..., ge=0, le=86_400, description="Exposure time, s (0 allowed for bias frames)."
    )
    type: FrameType = Field(FrameType.light, description="Frame type written to IMAGETYP.")
    filter: str | None = Field(None, description="Filter to use (default: the current one).")
    gain: int | None = Field(None, ge=0, description="Gain; default from `defaults.expose`.")
    offset: int | None = Field(None, ge=0, description="Offset; default from `defaults.expose`.")
    binning: int | None = Field(None, ge=1, le=16, description="Binning; default from defaults.")
    roi: Roi | None = Field(None, description="Sub-frame, unbinned pixels; default full frame.")

    @model_validator(mode="after")
    def _positive_for_lights(self) -> ExposeArgs:
        if self.exposure <= 0 and self.type in (FrameType.light, FrameType.flat, FrameType.dark):
            raise ValueError(f"exposure must be > 0 s for {self.type.value} frames")
        return self


class GuideArgs(Model):
    action: Literal["start", "stop"] = Field(..., description="Start or stop guiding.")
    settle: Settle | None = Field(None, description="Settle criteria; default from defaults.")
    recalibrate: bool = Field(False, description="Force a new calibration before guiding.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"action": data} if isinstance(data, str) else data


class DitherArgs(Model):
    amount: float = Field(5.0, gt=0, le=100, description="Dither amplitude, guide-camera px.")
    ra_only: bool = Field(False, description="Dither in RA only.")
    settle: Settle | None = Field(None, description="Settle criteria; default from defaults.")


class WaitArgs(Model):
    """Exactly one of `for`, `until` or `altitude`."""

    for_: Duration | None = Field(None, alias="for", description="Wait this long, s.")
    until: ClockTimeField | None = Field(None, description="Wait until this clock time.")
    altitude: float | None = Field(
        None, ge=-90, le=90, description="Wait until the current target is above this, degrees."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitArgs:
        given = [k for k in ("for_", "until", "altitude") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("wait needs exactly one of 'for', 'until' or 'altitude'")
        return self


def _boolean_too(schema: dict[str, Any]) -> None:
    """The schema of an option that also takes `true`/`false` (editors must accept both)."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        options.insert(0, {"type": "boolean"})


class CenterArgs(Model):
    """Plate-solved centring after the slew (N.I.N.A.'s "slew and center"): expose, solve,
    sync the mount (or re-slew by the offset), until the field centre is within ``tolerance``
    of the coordinates; the step fails when ``attempts`` run out."""

    tolerance: float = Field(
        30.0, gt=0, le=3600, description="Largest accepted distance of the solved field centre "
        "from the coordinates, arcsec."
    )
    attempts: int = Field(5, ge=1, le=20, description="Solves before the step fails.")
    exposure: Duration = Field(5.0, description="Exposure of each centring frame, s.")
    solve_timeout: Duration = Field(
        30.0, description="Time limit of one plate solve, s (the solver is then killed)."
    )

    @field_validator("exposure", "solve_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0 s")
        return value


class SlewArgs(Model):
    ra: RA | None = Field(None, description="Default: the current target's RA.")
    dec: Dec | None = Field(None, description="Default: the current target's Dec.")
    center: CenterArgs | None = Field(
        None, description="Plate-solve and correct until centred: `true` (the defaults) or "
        "`{tolerance, attempts, exposure, solve_timeout}`; needs astrometry.net.",
        json_schema_extra=_boolean_too,
    )

    @field_validator("center", mode="before")
    @classmethod
    def _center_flag(cls, value: Any) -> Any:
        # `center: true` is the defaults, `false` a plain slew: one model either way, so a
        # wrong option is reported once, at its own line (not also as "not a boolean")
        if value is True:
            return {}
        if value is False:
            return None
        return value


class CalibrationArgs(Model):
    """A set of calibration frames, saved under `calibration/`; ``master`` combines them during
    the night (offline: `nightrunner stack --darks/--flats/--bias`)."""

    kind: Literal["dark", "flat", "bias"] = Field(..., description="Calibration frame type.")
    count: int = Field(20, ge=1, le=10_000, description="Frames per exposure/filter.")
    exposures: list[float] = Field(
        default_factory=list,
        description="Exposure times, s: darks one set per value; flats one value per filter or "
        "a single value for all (default: 1 s flats); not for bias.",
    )
    filters: list[str] = Field(default_factory=list, description="Filters (flats only).")
    gain: int | None = Field(None, ge=0)
    offset: int | None = Field(None, ge=0)
    binning: int | None = Field(None, ge=1, le=16)
    master: bool = Field(
        False, description="Combine the set into a master as it is taken (σ-clipped mean, "
        "κ = 3), saved under `calibration/` and indexed; the night's later lights with "
        "matching settings are calibrated with it (see docs/stacking.md)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> CalibrationArgs:
        if self.kind == "dark" and not self.exposures:
            raise ValueError("darks need 'exposures': the exposure times to match, in s")
        if any(e <= 0 for e in self.exposures):
            raise ValueError("calibration exposures must be > 0 s")
        if self.filters and self.kind != "flat":
            raise ValueError("'filters' applies to flats only")
        if self.kind == "bias" and self.exposures:
            raise ValueError("bias frames are taken at the shortest exposure: remove "
                             "'exposures'")
        if self.kind == "flat" and len(self.exposures) > 1 and len(self.exposures) != max(
            1, len(self.filters)
        ):
            raise ValueError(f"flats take one exposure for all filters or one per filter: "
                             f"{len(self.exposures)} exposures for "
                             f"{len(self.filters) or 'the current'} filter"
                             f"{'s' if len(self.filters) > 1 else ''}")
        return self


class RepeatUntil(Model):
    """The loop stops when any given condition holds (checked before each exposure)."""

    time: ClockTimeField | None = Field(None, description="Stop at this clock time.")
    altitude_below: float | None = Field(
        None, ge=-90, le=90, description="Stop when the target sinks below this altitude, deg."
    )
    frames: int | None = Field(
        None, ge=1, description="Stop once this many light frames were taken in the loop."
    )

    @model_validator(mode="after")
    def _some(self) -> RepeatUntil:
        if self.time is None and self.altitude_below is None and self.frames is None:
            raise ValueError("'until' needs at least one of 'time', 'altitude_below', 'frames'")
        return self


class RepeatArgs(Model):
    """Exactly one of `count` or `until`."""

    count: int | None = Field(None, ge=1, le=1_000_000, description="Number of iterations.")
    until: RepeatUntil | None = Field(None, description="Loop until a condition holds.")

    @model_validator(mode="after")
    def _exactly_one(self) -> RepeatArgs:
        if (self.count is None) == (self.until is None):
            raise ValueError("repeat needs exactly one of 'count' or 'until'")
        return self
