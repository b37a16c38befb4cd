"""The top level of a plan file: the main ``Plan`` (site, defaults, startup, triggers,
targets, blocks, shutdown, notify) and ``IncludedPlan``, a fragment named in ``include:``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from runner.plan.models.base import Model
from runner.plan.models.notify import Notify
from runner.plan.models.policies import ErrorPolicy, Settle
from runner.plan.models.steps import Step
from runner.plan.models.targets import Target
from runner.plan.models.triggers import TriggerItem, Triggers


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
