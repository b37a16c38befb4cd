"""Policies several parts of a plan share: what a failing step does (``on_error``) and when
the guider counts as settled (``settle``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from runner.plan.models.base import Model
from runner.plan.units import Duration


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
