"""The plan language: pydantic models that are the single source of truth.

The JSON Schema in ``schemas/plan.schema.json`` and the reference in ``docs/plan-reference.md``
are generated from these classes. Every field with a unit names it in its description.

One module per part of the language: ``plan`` (the top level: site, defaults, the main plan
and included fragments), ``targets`` (coordinates, constraints, stacking options), ``steps``
(the step kinds, their registry and the ``Step`` union) with ``step_args`` (what each kind
takes), ``triggers``, ``notify``, and ``policies`` (``on_error`` and ``settle``, which several
of those share); ``base`` holds the strict ``Model`` they all derive from. Import the names from
here.
"""

from runner.plan.models.base import Model, Shorthand, not_implemented
from runner.plan.models.notify import NOTIFY_EVENTS, Notify, NotifyEmail, NotifyEvent
from runner.plan.models.plan import (
    Defaults,
    ExposeSettings,
    GuidingOptions,
    IncludedPlan,
    Plan,
    Site,
)
from runner.plan.models.policies import ErrorPolicy, Settle, SettleFailure, Then
from runner.plan.models.step_args import (
    CalibrationArgs,
    CenterArgs,
    CoolArgs,
    DitherArgs,
    ExposeArgs,
    FocusArgs,
    FocusAuto,
    FrameType,
    GuideArgs,
    RepeatArgs,
    RepeatUntil,
    Roi,
    SlewArgs,
    WaitArgs,
)
from runner.plan.models.steps import (
    STEP_KINDS,
    CalibrationStep,
    CoolStep,
    DitherStep,
    EachFilterStep,
    ExposeStep,
    FilterStep,
    FocusStep,
    GuideStep,
    ParkStep,
    RepeatStep,
    SlewStep,
    StackStep,
    Step,
    StepBase,
    UseStep,
    WaitStep,
    WarmStep,
    step_kind,
)
from runner.plan.models.targets import (
    Constraints,
    Coordinates,
    StackOptions,
    Target,
    Twilight,
    WaitPolicy,
)
from runner.plan.models.triggers import (
    AutofocusTrigger,
    DitherTrigger,
    GuidingRmsTrigger,
    MeridianFlipTrigger,
    SafetyTrigger,
    StarLostTrigger,
    TriggerItem,
    Triggers,
)

__all__ = [
    "NOTIFY_EVENTS",
    "STEP_KINDS",
    "AutofocusTrigger",
    "CalibrationArgs",
    "CalibrationStep",
    "CenterArgs",
    "Constraints",
    "CoolArgs",
    "CoolStep",
    "Coordinates",
    "Defaults",
    "DitherArgs",
    "DitherStep",
    "DitherTrigger",
    "EachFilterStep",
    "ErrorPolicy",
    "ExposeArgs",
    "ExposeSettings",
    "ExposeStep",
    "FilterStep",
    "FocusArgs",
    "FocusAuto",
    "FocusStep",
    "FrameType",
    "GuideArgs",
    "GuideStep",
    "GuidingOptions",
    "GuidingRmsTrigger",
    "IncludedPlan",
    "MeridianFlipTrigger",
    "Model",
    "Notify",
    "NotifyEmail",
    "NotifyEvent",
    "ParkStep",
    "Plan",
    "RepeatArgs",
    "RepeatStep",
    "RepeatUntil",
    "Roi",
    "SafetyTrigger",
    "Settle",
    "SettleFailure",
    "Shorthand",
    "Site",
    "SlewArgs",
    "SlewStep",
    "StackOptions",
    "StackStep",
    "StarLostTrigger",
    "Step",
    "StepBase",
    "Target",
    "Then",
    "TriggerItem",
    "Triggers",
    "Twilight",
    "UseStep",
    "WaitArgs",
    "WaitPolicy",
    "WaitStep",
    "WarmStep",
    "not_implemented",
    "step_kind",
]
