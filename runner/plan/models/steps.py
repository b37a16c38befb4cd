"""Steps: one model per kind key, the kind registry, and the discriminated ``Step`` union.

A step is a YAML mapping with exactly one *kind key* from a closed registry (``expose``,
``filter``, ``repeat`` …) plus optional common keys (``timeout``, ``on_error``) and, for
structural steps, ``steps``. YAML never names Python classes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from runner.plan.models.base import Model, Shorthand
from runner.plan.models.policies import ErrorPolicy
from runner.plan.models.step_args import (
    CalibrationArgs,
    CoolArgs,
    DitherArgs,
    ExposeArgs,
    FocusArgs,
    GuideArgs,
    RepeatArgs,
    SlewArgs,
    WaitArgs,
)
from runner.plan.units import Duration


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
