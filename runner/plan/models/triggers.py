"""Triggers: what happens between exposures (dither, refocus, meridian flip) and how the
night reacts to guiding trouble and an unsafe sky (the plan's ``triggers:`` list)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from runner.plan.models.base import Model, not_implemented
from runner.plan.models.policies import Settle, SettleFailure, Then
from runner.plan.models.step_args import FocusAuto
from runner.plan.units import Duration


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
