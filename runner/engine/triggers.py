"""Trigger bookkeeping: what is due between two exposures.

Pure logic, no devices: the executor asks ``due()`` after a light frame and before the next
exposure, and performs what it returns in the fixed order safety → meridian flip → autofocus →
dither (SEMANTICS.md). Any autofocus — triggered or a ``focus: auto`` step — resets every
autofocus baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.plan.models import Triggers


@dataclass
class TriggerState:
    frames_since_dither: int = 0
    frames_since_focus: int = 0
    focus_time: float | None = None  # clock seconds of the last autofocus
    focus_temperature: float | None = None  # °C at the last autofocus
    focus_hfr: float | None = None  # px, first HFR measured after the last autofocus
    focus_filter: str | None = None
    #: the next light's filter differs from the last autofocus's (or, before any, from the
    #: last light's): the night's first filter is not a change
    filter_changed: bool = False
    light_filter: str | None = None  # the filter of the last light frame
    last_hfr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))  # scalar fields: a shallow copy is asdict's result, cheaper

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TriggerState:
        if not d:
            return cls()
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Due:
    autofocus: str | None = None  # the reason, when due
    dither: bool = False
    reasons: list[str] = field(default_factory=list)


def light_frame_done(state: TriggerState, hfr: float | None) -> None:
    state.frames_since_dither += 1
    state.frames_since_focus += 1
    state.filter_changed = False
    hfr_measured(state, hfr)


def hfr_measured(state: TriggerState, hfr: float | None) -> None:
    """A light's HFR, measured behind the exposure loop (so possibly a frame late: an HFR
    trigger acts on the newest measured frame, as N.I.N.A.'s does)."""
    if hfr is not None:
        state.last_hfr = hfr
        if state.focus_hfr is None:
            state.focus_hfr = hfr


def autofocus_done(
    state: TriggerState, *, now: float, temperature: float | None, filter_name: str | None
) -> None:
    state.frames_since_focus = 0
    state.focus_time = now
    state.focus_temperature = temperature
    state.focus_hfr = None  # the next light frame's HFR is the new baseline
    state.focus_filter = filter_name
    state.filter_changed = False


def dither_done(state: TriggerState) -> None:
    state.frames_since_dither = 0


def new_target(state: TriggerState) -> None:
    """A new target starts with a fresh guide/settle: the dither counter restarts."""
    state.frames_since_dither = 0


def due(
    triggers: Triggers,
    state: TriggerState,
    *,
    now: float,
    temperature: float | None,
    guiding: bool,
    any_light_yet: bool,
) -> Due:
    """What fires before the next light exposure (call only between light frames)."""
    out = Due()
    af = triggers.autofocus
    if af is not None:
        reason = None
        if af.filter_change and state.filter_changed:
            reason = "filter changed"
        elif (
            af.temperature_change is not None
            and temperature is not None
            and state.focus_temperature is not None
            and abs(temperature - state.focus_temperature) >= af.temperature_change
        ):
            reason = (
                f"temperature changed {temperature - state.focus_temperature:+.2f} °C "
                "since last focus"
            )
        elif (
            af.hfr_increase is not None
            and state.focus_hfr is not None
            and state.last_hfr is not None
            and state.last_hfr >= state.focus_hfr * (1 + af.hfr_increase)
        ):
            reason = f"HFR rose to {state.last_hfr:.2f} px from {state.focus_hfr:.2f} px"
        elif (
            af.every_minutes is not None
            and state.focus_time is not None
            and now - state.focus_time >= af.every_minutes * 60
        ):
            reason = f"{af.every_minutes:g} min since last focus"
        elif af.every_frames is not None and state.frames_since_focus >= af.every_frames:
            reason = f"{state.frames_since_focus} frames since last focus"
        out.autofocus = reason
    d = triggers.dither
    if d is not None and any_light_yet and state.frames_since_dither >= d.every:
        out.dither = True
    return out
