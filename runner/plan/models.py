"""The plan language: pydantic models that are the single source of truth.

The JSON Schema in ``schemas/plan.schema.json`` and the reference in ``docs/plan-reference.md``
are generated from these classes. Every field with a unit names it in its description.

A step is a YAML mapping with exactly one *kind key* from a closed registry (``expose``,
``filter``, ``repeat`` …) plus optional common keys (``timeout``, ``on_error``) and, for
structural steps, ``steps``. YAML never names Python classes.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    field_validator,
    model_validator,
)

from runner.plan.units import RA, ClockTimeField, Dec, Duration

if TYPE_CHECKING:
    from pydantic import GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema


class Shorthand:
    """Schema metadata: the field also accepts a short form (``guide: start``, ``focus: auto``,
    ``stack: true``) that a before-validator expands; editors must know it too."""

    def __init__(self, *alternatives: dict[str, Any]) -> None:
        self.alternatives = alternatives

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(core_schema), *self.alternatives]}


def not_implemented(what: str, instead: str, coming: str | None = None) -> ValueError:
    """The error for an option the language reserves but the engine does not do yet: a plan
    must never validate and then silently go without it."""
    note = f" ({coming})" if coming else ""
    return ValueError(f"{what} is not implemented yet{note}; {instead}")


class Model(BaseModel):
    """Base of every plan model: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, defer_build=True
    )


# --------------------------------------------------------------------------- common pieces


class FrameType(StrEnum):
    light = "light"
    dark = "dark"
    bias = "bias"
    flat = "flat"


class Then(StrEnum):
    """What happens once retries are used up."""

    skip_step = "skip_step"
    skip_target = "skip_target"
    abort = "abort"


class ErrorPolicy(Model):
    """How a failing step is handled; resolved step → target → plan."""

    retry: int = Field(0, ge=0, le=100, description="Retries before `then` applies.")
    backoff: Duration = Field(
        30.0, description="Seconds before the first retry; doubles on each further retry."
    )
    then: Then = Field(Then.skip_target, description="Action once retries are exhausted.")


class Roi(Model):
    """Region of interest in unbinned sensor pixels."""

    x: int = Field(0, ge=0, description="Left edge, pixels.")
    y: int = Field(0, ge=0, description="Top edge, pixels.")
    width: int = Field(..., gt=0, description="Width, pixels.")
    height: int = Field(..., gt=0, description="Height, pixels.")


class Settle(Model):
    """PHD2 settle criteria after guide start or dither."""

    pixels: float = Field(1.5, gt=0, description="Max guide distance to count as settled, px.")
    time: Duration = Field(8.0, description="Seconds the distance must stay within `pixels`.")
    timeout: Duration = Field(60.0, description="Seconds before settling is declared failed.")


class SettleFailure(StrEnum):
    """What to do when settling fails after a dither or guide start."""

    retry_dither = "retry_dither"
    go_on = "continue"
    skip_target = "skip_target"
    abort = "abort"


class ExposeSettings(Model):
    """Camera settings that steps inherit unless they set their own."""

    gain: int | None = Field(None, ge=0, description="Camera gain (driver units).")
    offset: int | None = Field(None, ge=0, description="Camera offset / pedestal (ADU).")
    binning: int = Field(1, ge=1, le=16, description="Binning, same in X and Y.")


class GuidingOptions(Model):
    """How guiding behaves around other operations."""

    pause_during: list[Literal["filter", "autofocus"]] = Field(
        default_factory=list,
        description="Pause guiding while the filter changes or an autofocus runs (for rigs "
        "whose guide camera sees through the filters, or an off-axis guider that loses the "
        "star while focusing); guiding resumes, and settles, afterwards.",
    )


class Defaults(Model):
    expose: ExposeSettings = Field(default_factory=ExposeSettings)
    settle: Settle = Field(default_factory=Settle)
    guiding: GuidingOptions = Field(default_factory=GuidingOptions)
    output: str = Field(
        "{target}/{filter}/{target}_{filter}_{exposure}s_{seq:04d}.fits",
        description="Frame path template, relative to the data directory. Fields: target, "
        "filter, exposure (s), type, seq (frame number within target/filter/type), date "
        "(YYYY-MM-DD of the night), time (HHMMSS UTC), gain, binning.",
    )


class Site(Model):
    latitude: float = Field(..., ge=-90, le=90, description="Geodetic latitude, degrees north.")
    longitude: float = Field(..., ge=-180, le=180, description="Longitude, degrees east.")
    elevation: float = Field(0.0, ge=-500, le=9000, description="Height above sea level, m.")
    timezone: str | None = Field(
        None,
        description="IANA time zone of the site (e.g. Europe/Amsterdam) for clock times; "
        "default: the machine's local time zone.",
    )


# --------------------------------------------------------------------------- step arguments


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


# --------------------------------------------------------------------------- steps


class StepBase(Model):
    timeout: Duration | None = Field(
        None, description="Seconds this step may take (default: per device, see SEMANTICS)."
    )
    on_error: ErrorPolicy | None = Field(None, description="Overrides the target/plan policy.")


class CoolStep(StepBase):
    cool: CoolArgs


class WarmStep(StepBase):
    warm: CoolArgs


class FilterStep(StepBase):
    filter: str = Field(..., min_length=1, description="Filter name from the equipment profile.")


class FocusStep(StepBase):
    focus: Annotated[FocusArgs, Shorthand({"const": "auto"})]


class ExposeStep(StepBase):
    expose: ExposeArgs


class GuideStep(StepBase):
    guide: Annotated[GuideArgs, Shorthand({"enum": ["start", "stop"]})]


class DitherStep(StepBase):
    dither: DitherArgs


class WaitStep(StepBase):
    wait: WaitArgs


class SlewStep(StepBase):
    slew: SlewArgs


class ParkStep(StepBase):
    park: dict[str, Any] = Field(
        default_factory=dict, description="Park the mount (no options); write `park: {}`."
    )

    @model_validator(mode="after")
    def _empty(self) -> ParkStep:
        if self.park:
            raise ValueError("park takes no options; write 'park: {}'")
        return self


class StackStep(StepBase):
    stack: Literal["on", "off"] = Field(..., description="Turn live stacking on or off.")


class CalibrationStep(StepBase):
    calibration: CalibrationArgs


def _no_timeout(kind: str, value: float | None) -> float | None:
    if value is not None:
        raise ValueError(f"'timeout' applies to single steps; a {kind} step has none: put "
                         "'timeout' on the steps inside")
    return value


class UseStep(StepBase):
    use: str = Field(..., min_length=1, description="Name of a block under `blocks:`.")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float | None) -> float | None:
        return _no_timeout("use", value)


class RepeatStep(StepBase):
    repeat: RepeatArgs
    steps: list[Step] = Field(..., min_length=1, description="The loop body.")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float | None) -> float | None:
        return _no_timeout("repeat", value)


class EachFilterStep(StepBase):
    each_filter: list[str] = Field(
        ..., min_length=1, description="Run `steps` once per filter, switching filter first."
    )
    steps: list[Step] = Field(..., min_length=1)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float | None) -> float | None:
        return _no_timeout("each_filter", value)


STEP_KINDS: dict[str, type[StepBase]] = {
    "cool": CoolStep,
    "warm": WarmStep,
    "filter": FilterStep,
    "focus": FocusStep,
    "expose": ExposeStep,
    "guide": GuideStep,
    "dither": DitherStep,
    "wait": WaitStep,
    "slew": SlewStep,
    "park": ParkStep,
    "stack": StackStep,
    "calibration": CalibrationStep,
    "use": UseStep,
    "repeat": RepeatStep,
    "each_filter": EachFilterStep,
}


def step_kind(value: Any) -> str | None:
    """The kind key of a raw or validated step (the one key found in STEP_KINDS)."""
    if isinstance(value, StepBase):
        for kind, cls in STEP_KINDS.items():
            if type(value) is cls:
                return kind
        return None
    if isinstance(value, dict):
        kinds = [str(k) for k in value if k in STEP_KINDS]
        if len(kinds) == 1:
            return kinds[0]
    return None


Step = Annotated[
    Annotated[CoolStep, Tag("cool")]
    | Annotated[WarmStep, Tag("warm")]
    | Annotated[FilterStep, Tag("filter")]
    | Annotated[FocusStep, Tag("focus")]
    | Annotated[ExposeStep, Tag("expose")]
    | Annotated[GuideStep, Tag("guide")]
    | Annotated[DitherStep, Tag("dither")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[SlewStep, Tag("slew")]
    | Annotated[ParkStep, Tag("park")]
    | Annotated[StackStep, Tag("stack")]
    | Annotated[CalibrationStep, Tag("calibration")]
    | Annotated[UseStep, Tag("use")]
    | Annotated[RepeatStep, Tag("repeat")]
    | Annotated[EachFilterStep, Tag("each_filter")],
    Discriminator(
        step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step is a mapping with exactly one of: " + ", ".join(STEP_KINDS),
    ),
]



# --------------------------------------------------------------------------- triggers


class DitherTrigger(Model):
    every: int = Field(..., ge=1, description="Dither after this many light frames.")
    amount: float = Field(5.0, gt=0, le=100, description="Dither amplitude, guide-camera px.")
    ra_only: bool = Field(False, description="Dither in RA only.")
    settle: Settle | None = Field(None, description="Settle criteria; default from defaults.")
    on_settle_failure: SettleFailure = Field(
        SettleFailure.go_on, description="What to do when settling fails."
    )


class AutofocusTrigger(Model):
    """Refocus when any enabled condition is met (between exposures)."""

    temperature_change: float | None = Field(
        None, gt=0, description="Focuser temperature change since last focus, °C."
    )
    hfr_increase: float | None = Field(
        None, gt=0, description="Relative HFR rise since last focus (0.15 = +15 %)."
    )
    filter_change: bool = Field(False, description="Refocus when the filter changed.")
    every_minutes: float | None = Field(None, gt=0, description="Refocus after this long, min.")
    every_frames: int | None = Field(None, ge=1, description="Refocus after this many frames.")
    settings: FocusAuto = Field(default_factory=FocusAuto)


class MeridianFlipTrigger(Model):
    after: float = Field(
        5.0, ge=0, le=60, description="Flip this many minutes after the meridian."
    )
    pause_before: float = Field(
        0.0, ge=0, le=60, description="Stop exposing this many minutes before the flip time "
        "— not implemented yet: only 0 is accepted."
    )

    @field_validator("pause_before")
    @classmethod
    def _no_pause(cls, value: float) -> float:
        if value:
            raise not_implemented(
                "'pause_before'",
                "remove it: the flip happens between exposures once the target is `after` "
                "minutes past the meridian",
            )
        return value


class GuidingRmsTrigger(Model):
    """Gate exposures on guiding quality."""

    max_rms: float = Field(..., gt=0, description="Total RMS limit, arcsec (px if unknown).")
    wait: Duration = Field(120.0, description="Seconds to wait for RMS to recover.")


class StarLostTrigger(Model):
    """Recovery when the guide star is lost: wait, re-select, restart guiding, then policy."""

    wait: Duration = Field(30.0, description="Seconds to wait for the star to come back.")
    restart_guiding: bool = Field(True, description="Restart guiding (re-select star).")
    then: Then = Field(Then.skip_target, description="If recovery fails.")


class SafetyTrigger(Model):
    """Behaviour when the safety monitor reports unsafe: the night is aborted at once and the
    safe shutdown runs. The equipment profile must have a `safety` device; the monitor is
    watched whenever the profile has one, with or without this trigger."""

    wait_for_safe: Duration = Field(
        0.0, description="Seconds to wait for safe conditions before shutdown — not "
        "implemented yet: only 0 (shut down at once) is accepted."
    )

    @field_validator("wait_for_safe")
    @classmethod
    def _no_wait(cls, value: float) -> float:
        if value:
            raise not_implemented(
                "'wait_for_safe'",
                "remove it: an unsafe report aborts the night and runs the safe shutdown",
            )
        return value


class Triggers(Model):
    dither: DitherTrigger | None = None
    autofocus: AutofocusTrigger | None = None
    meridian_flip: MeridianFlipTrigger | None = None
    guiding_rms: GuidingRmsTrigger | None = None
    star_lost: StarLostTrigger | None = None
    safety: SafetyTrigger | None = None


class TriggerItem(Model):
    """One trigger, written as a single-key mapping in the `triggers:` list."""

    dither: DitherTrigger | None = None
    autofocus: AutofocusTrigger | None = None
    meridian_flip: MeridianFlipTrigger | None = None
    guiding_rms: GuidingRmsTrigger | None = None
    star_lost: StarLostTrigger | None = None
    safety: SafetyTrigger | None = None

    @model_validator(mode="after")
    def _one(self) -> TriggerItem:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("each trigger is a mapping with exactly one trigger kind")
        return self


# --------------------------------------------------------------------------- targets


class Twilight(StrEnum):
    civil = "civil"
    nautical = "nautical"
    astronomical = "astronomical"


class Constraints(Model):
    min_altitude: float | None = Field(None, ge=0, le=90, description="Degrees.")
    max_airmass: float | None = Field(None, ge=1, le=10, description="Airmass (sec z).")
    twilight: Twilight | None = Field(None, description="Sun below this twilight's limit.")
    max_sun_altitude: float | None = Field(None, ge=-90, le=90, description="Degrees.")
    moon_separation: float | None = Field(None, ge=0, le=180, description="Minimum, degrees.")
    max_moon_illumination: float | None = Field(
        None, ge=0, le=1, description="Maximum illuminated fraction of the Moon, 0–1."
    )
    after: ClockTimeField | None = Field(None, description="Not before this clock time.")
    until: ClockTimeField | None = Field(None, description="Not after this clock time.")


class Coordinates(Model):
    ra: RA
    dec: Dec


class StackOptions(Model):
    align: Literal["stars", "none"] = Field("stars", description="Register frames on stars.")
    reject: Literal["none", "sigma"] = Field("sigma", description="Outlier rejection.")
    kappa: float = Field(3.0, gt=0, le=10, description="Rejection threshold, σ.")
    flip: bool = Field(False, description="Frames are mirrored (flip the stack).")
    field_rotation: bool = Field(False, description="Allow field rotation (alt-az mounts).")
    auto_stretch: bool = Field(True, description="Automatic stretch of the preview.")
    calibration: list[str] = Field(
        default_factory=list, description="Calibration master ids to apply."
    )


class WaitPolicy(Model):
    max: Duration = Field(3600.0, description="Longest wait for constraints to hold, s.")
    then: Literal["skip", "abort"] = Field("skip", description="When the wait runs out.")


class Target(Model):
    @model_validator(mode="before")
    @classmethod
    def _stack_bool(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("stack"), bool):
            return {**data, "stack": {} if data["stack"] else None}
        return data

    name: str = Field(..., min_length=1, max_length=200)
    coordinates: Coordinates
    constraints: Constraints = Field(default_factory=Constraints)
    wait: WaitPolicy | None = Field(
        None,
        description="Wait for constraints to hold before starting (default: skip at once).",
    )
    stack: Annotated[StackOptions | None, Shorthand({"type": "boolean"})] = Field(
        None,
        description="Live-stack this target's lights: options, or true for defaults "
        "(false/absent: no stacking).",
    )
    on_error: ErrorPolicy | None = None
    sequence: list[Step] = Field(..., min_length=1)


# --------------------------------------------------------------------------- notify

NotifyEvent = Literal["start", "finish", "failure", "abort", "safety"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("start", "finish", "failure", "abort", "safety")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _env_name(v: Any, key: str) -> Any:
    """The plan names the variable; the secret itself never sits in a plan file."""
    if isinstance(v, str) and not re.match(_ENV_NAME, v):
        raise ValueError(f"`{key}` names an environment variable (letters, digits, _), "
                         f"it does not hold the secret itself")
    return v


class NotifyEmail(Model):
    """E-mail through SMTP; the password comes from the environment, never from the plan."""

    host: str = Field(..., min_length=1, description="SMTP server host name.")
    port: int = Field(25, ge=1, le=65535, description="SMTP port (587 with `starttls`).")
    from_: str = Field(..., alias="from", min_length=3, description="Sender address.")
    to: list[str] = Field(..., min_length=1, description="Recipient addresses.")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    username: str | None = Field(None, description="SMTP login (with `password_env`).")
    password_env: str | None = Field(
        None, pattern=_ENV_NAME,
        description="Name of the environment variable holding the SMTP password.",
    )

    @field_validator("to", mode="before")
    @classmethod
    def _one_address(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("password_env", mode="before")
    @classmethod
    def _env_name(cls, v: Any) -> Any:
        return _env_name(v, "password_env")

    @model_validator(mode="after")
    def _login_pair(self) -> NotifyEmail:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("`username` and `password_env` go together (an SMTP login)")
        return self


class Notify(Model):
    """Who hears about the night: a command and/or a webhook and/or an e-mail, in the
    background (a slow or failing endpoint never delays the night)."""

    command: list[str] | str | None = Field(
        None,
        description="Program run with the event's JSON on stdin (argv list, or a string "
        "split like a shell line, no shell); env NIGHTRUNNER_EVENT, _PLAN, _RUN, _OUTCOME.",
    )
    webhook: str | None = Field(
        None, pattern=r"^https?://[^\s/]+", description="URL the event's JSON is POSTed to.",
    )
    webhook_token_env: str | None = Field(
        None, pattern=_ENV_NAME,
        description="Name of the environment variable whose value is sent as "
        "`Authorization: Bearer …` with the webhook.",
    )
    email: NotifyEmail | None = None
    on: list[NotifyEvent] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS),
        description="Events that notify: start, finish (every end, with the summary), "
        "failure, abort (when requested), safety (the safety monitor said unsafe).",
    )
    retries: int = Field(3, ge=0, le=10, description="Retries of a failed delivery.")
    backoff: Duration = Field(
        2.0, description="Seconds before the first retry; doubles on each further retry."
    )
    timeout: Duration = Field(10.0, description="Seconds one delivery attempt may take.")

    @field_validator("webhook_token_env", mode="before")
    @classmethod
    def _token_env(cls, v: Any) -> Any:
        return _env_name(v, "webhook_token_env")

    @field_validator("webhook", mode="before")
    @classmethod
    def _url(cls, v: Any) -> Any:
        if isinstance(v, str) and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("`webhook` must be an http:// or https:// URL")
        return v

    @field_validator("command")
    @classmethod
    def _argv(cls, v: list[str] | str | None) -> list[str] | str | None:
        import shlex

        if v is None:
            return v
        try:
            argv = shlex.split(v) if isinstance(v, str) else v
        except ValueError as exc:
            raise ValueError(f"command cannot be split: {exc}") from None
        if not argv or not argv[0]:
            raise ValueError("command is empty")
        return v

    @model_validator(mode="after")
    def _some_channel(self) -> Notify:
        if self.command is None and self.webhook is None and self.email is None:
            raise ValueError("notify needs a `command`, a `webhook` or an `email`")
        if self.webhook_token_env is not None and self.webhook is None:
            raise ValueError("`webhook_token_env` without a `webhook`")
        return self

    def argv(self) -> list[str] | None:
        import shlex

        if self.command is None:
            return None
        return shlex.split(self.command) if isinstance(self.command, str) else list(self.command)


# --------------------------------------------------------------------------- plan


class Plan(Model):
    version: Literal[1] = Field(..., description="Plan language version.")
    name: str = Field(..., min_length=1, max_length=200)
    site: Site
    equipment: str = Field(
        "simulator", description="Equipment profile: a name, a path, or `simulator`."
    )
    include: list[str] = Field(
        default_factory=list,
        description="Fragment files whose blocks and targets are merged in, relative to this "
        "file. A fragment holds only `include`, `blocks` and `targets` (see IncludedPlan): "
        "version, name, site and the rest belong to the main plan.",
    )
    defaults: Defaults = Field(default_factory=Defaults)
    startup: list[Step] = Field(default_factory=list)
    triggers: list[TriggerItem] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    blocks: dict[str, list[Step]] = Field(default_factory=dict)
    shutdown: list[Step] = Field(default_factory=list)
    on_error: ErrorPolicy = Field(default_factory=ErrorPolicy)
    notify: Notify | None = Field(
        None, description="Notifications of the night's start, end, failure, abort, safety."
    )

    def trigger_set(self) -> Triggers:
        """The triggers as one object (each kind at most once; checked by validation)."""
        merged: dict[str, Any] = {}
        for item in self.triggers:
            for k in Triggers.model_fields:
                v = getattr(item, k)
                if v is not None:
                    merged[k] = v
        return Triggers(**merged)


class IncludedPlan(Model):
    """A fragment named in `include:`: only blocks, targets and further includes.

    Everything that describes the night (version, name, site, equipment, defaults, startup,
    triggers, shutdown, on_error) is the main plan's alone, so a night never has two; an
    included file that carries them is an error at the key, naming the main plan.
    """

    include: list[str] = Field(default_factory=list)
    blocks: dict[str, list[Step]] = Field(default_factory=dict)
    targets: list[Target] = Field(default_factory=list)
