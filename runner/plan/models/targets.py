"""Targets: coordinates, the constraints that say when a target may be imaged, its stacking
options, and its sequence of steps."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from runner.plan.models.base import Model, Shorthand
from runner.plan.models.policies import ErrorPolicy
from runner.plan.models.steps import Step
from runner.plan.units import RA, ClockTimeField, Dec, Duration


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
