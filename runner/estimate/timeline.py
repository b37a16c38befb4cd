"""The estimate's timeline, read off a virtual night (:mod:`runner.estimate.replay`).

Nothing here decides what runs when — the executor did. This module only tells where the time
went: each stretch between two executor state changes is charged by what the executor was
doing (its state: cooling, guiding, a dither, an autofocus, a flip …) and, inside steps that
use several devices (an exposure, a filter change, a slew), by which nominal device was busy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo

from runner.clock import VIRTUAL_HORIZON_S
from runner.estimate.model import FrameTally, Phase, TargetEstimate, TargetStatus
from runner.estimate.replay import Replay
from runner.plan.models import CoolStep, Plan, WarmStep

#: Executor actions whose whole time is one overhead category.
_WHOLE = {
    "cool": "cooling", "warm": "cooling", "guide": "guide", "dither": "dither",
    "trigger_dither": "dither", "trigger_autofocus": "autofocus", "meridian_flip": "flip",
    "recover_guiding": "guide",
}
#: Actions charged by busy device; what no device explains is the action's own category
#: (a slew's settle time is the slew's) or, for None, idle.
_BY_DEVICE: dict[str, str | None] = {
    "slew": "slew", "park": "slew", "filter": "filter", "focus": "focus",
    "expose": None, "calibration": None,
}
#: Busy-log entries → categories ("settle" is the guider settling after a slew: guide).
_DEVICE = {"download": "download", "filter": "filter", "focus": "focus", "slew": "slew",
           "settle": "guide", "autofocus": "autofocus", "exposure": "exposure"}


def _hhmm(t: datetime | None, tz: tzinfo) -> str:
    return "—" if t is None else t.astimezone(tz).strftime("%H:%M")


def duration_text(seconds: float) -> str:
    """'1h05m', '12m30s', '8s': durations the way the table shows them."""
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{sec:02d}s" if sec else f"{m}m"
    return f"{sec}s"


class _Charger:
    """Charges clock stretches to a phase, using the busy log (spans in start order)."""

    def __init__(self, rp: Replay) -> None:
        self.spans = sorted(rp.busy.spans, key=lambda s: s[1])
        self.first = 0

    def charge(self, phase: Phase, action: str | None, a: float, b: float) -> None:
        if b <= a:
            return
        if action in _WHOLE:
            self._add(phase, _WHOLE[action], b - a)
            return
        rest = b - a
        if action in _BY_DEVICE:
            while self.first < len(self.spans) and self.spans[self.first][2] <= a:
                self.first += 1
            for i in range(self.first, len(self.spans)):
                what, s0, s1 = self.spans[i]
                if s0 >= b:
                    break
                overlap = min(b, s1) - max(a, s0)
                if overlap > 0:
                    self._add(phase, _DEVICE[what], overlap)
                    rest -= overlap
            own = _BY_DEVICE[action]
            if own is not None:
                self._add(phase, own, rest)
                return
        if action == "focus":  # pragma: no cover - focus is charged by device above
            return
        phase.idle += max(0.0, rest)

    @staticmethod
    def _add(phase: Phase, category: str, seconds: float) -> None:
        if seconds <= 1e-9:
            return
        if category == "exposure":
            phase.exposure += seconds
        else:
            phase.overheads[category] = phase.overheads.get(category, 0.0) + seconds


def _note(phase: Phase, text: str) -> None:
    if text not in phase.notes:
        phase.notes.append(text)


def _reasons(text: str) -> list[str]:
    return text.split(": ", 1)[1].split("; ") if ": " in text else [text]


def read_timeline(
    rp: Replay, plan: Plan, tz: tzinfo, windows: list[list[tuple[datetime, datetime]]]
) -> tuple[Phase, list[TargetEstimate], Phase, list[str]]:
    """Startup, targets, shutdown and warnings of the virtual night ``rp``."""
    def at(t: float) -> datetime:
        return rp.start + timedelta(seconds=t)

    charger = _Charger(rp)
    startup = Phase("startup", start=rp.start)
    targets = [TargetEstimate(name=t.name, index=i, windows=windows[i])
               for i, t in enumerate(plan.targets)]
    shutdown = Phase("shutdown")
    warnings: list[str] = []
    phase: Phase = startup
    current: TargetEstimate | None = None
    action: str | None = None
    cursor = 0.0
    step_kind: str | None = None
    step_id: str | None = None
    key_phase: dict[str, Phase] = {}
    waited_from: float | None = None

    def close_target(t: float, status: TargetStatus, ended_by: str,
                     reasons: list[str] | None = None) -> None:
        nonlocal current
        if current is None:
            return
        current.status = status
        current.ended_by = ended_by
        current.reasons = reasons or []
        if status is TargetStatus.skipped:
            current.start = None
            current.waited = 0.0
        else:
            current.end = at(t)
        current = None

    for ev in rp.events:
        t = float(ev["t"])
        name = ev["event"]
        charger.charge(phase, action, cursor, t)
        cursor = t
        if name == "state":
            state = str(ev["state"])
            new = state.split(":", 1)[1] if ":" in state else state
            if action == "waiting" and new != "waiting" and current is not None:
                assert waited_from is not None
                current.waited = t - waited_from
                current.start = at(t)
            if new == "waiting":
                waited_from = t
            action = new
        elif name == "step":
            step_kind, step_id = str(ev["kind"]), str(ev["id"])
        elif name == "startup_done":
            startup.end = at(t)
        elif name == "target_start":
            current = targets[int(ev["index"])]
            current.start = at(t)
            phase = current
        elif name == "target_end" and current is not None:
            reason = str(ev.get("reason") or "")
            if ev["status"] == "completed":
                close_target(t, TargetStatus.complete, "sequence complete")
            elif reason.startswith("constraints not met"):
                close_target(t, TargetStatus.skipped, _skip_text(plan, current, reason, t, at, tz),
                             _reasons(reason))
            elif reason.startswith("constraint no longer holds"):
                close_target(t, TargetStatus.ended,
                             f"constraints stopped holding at {_hhmm(at(t), tz)}",
                             _reasons(reason))
            else:
                close_target(t, TargetStatus.ended, reason)
        elif name == "exposure_start":
            key_phase[str(ev["key"])] = phase
        elif name == "frame":
            owner = key_phase.get(str(ev["key"]), phase)
            k = (ev.get("filter"), str(ev["type"]))
            tally = owner.frames.get(k)
            if tally is None:
                tally = owner.frames[k] = FrameTally(ev.get("filter"), str(ev["type"]))
            tally.add(float(ev["exposure"]))
        elif name == "loop_zero_iterations":
            _note(phase, f"repeat until: already true at entry ({ev['reason']}): zero iterations")
        elif name == "loop_end":
            reason = str(ev["reason"])
            if "takes no time" in reason:
                text = f"{phase.name}: repeat until {reason}"
                warnings.append(text)
                if isinstance(phase, TargetEstimate):
                    phase.warnings.append(text)
            else:
                last = " (the last one cut short)" if ev.get("cut") else ""
                _note(phase, f"repeat until: {ev.get('iterations')} iteration(s){last}, ended at "
                             f"{_hhmm(at(t), tz)} ({reason})")
        elif name == "trigger" and ev.get("kind") == "meridian_flip":
            _note(phase, f"meridian flip at {_hhmm(at(t), tz)}")
        elif name == "warning" and str(ev.get("message", "")).startswith("dither skipped"):
            _note(phase, "dither skipped: not guiding")
        elif name == "error" and step_kind in ("cool", "warm") and step_id is not None:
            step = rp.steps.get(step_id)
            if isinstance(step, CoolStep | WarmStep) and "did not reach" in str(ev["message"]):
                args = step.cool if isinstance(step, CoolStep) else step.warm
                verb = "cooling" if isinstance(step, CoolStep) else "warming"
                rate = f" at {args.rate:g} °C/min" if args.rate else ""
                _note(phase, f"{verb} to {args.to:g} °C{rate} takes longer than its timeout "
                             f"({duration_text(args.timeout)}): the step would fail")
        elif name == "phase" and ev.get("phase") == "shutdown":
            if startup.end is None:
                startup.end = at(t)
            if current is not None:
                _close_open_target(rp, current, t, at, tz, plan)
                current = None
            phase = shutdown
            shutdown.start = at(t)
    charger.charge(phase, action, cursor, rp.end)
    shutdown.end = at(rp.end)
    if shutdown.start is None:
        shutdown.start = shutdown.end
    if startup.end is None:
        startup.end = shutdown.start
    _not_run(rp, targets, plan, warnings)
    return startup, targets, shutdown, warnings


def _skip_text(plan: Plan, te: TargetEstimate, reason: str, t: float,
               at: Callable[[float], datetime], tz: tzinfo) -> str:
    wait = plan.targets[te.index].wait
    now = at(t)
    if wait is None:
        text = f"constraints do not hold at {_hhmm(now, tz)} (no wait)"
    else:
        limit = now + timedelta(seconds=wait.max)
        text = (f"constraints do not hold between {_hhmm(now, tz)} and {_hhmm(limit, tz)} "
                f"(wait max {duration_text(wait.max)})")
    later = next((a for a, _ in te.windows if a > now), None)
    if later is not None:
        text += f"; they hold from {_hhmm(later, tz)}"
    return text


def _close_open_target(rp: Replay, te: TargetEstimate, t: float,
                       at: Callable[[float], datetime], tz: tzinfo, plan: Plan) -> None:
    """A target the night left without a ``target_end``: a fatal error or the horizon."""
    fatal = rp.fatal or ""
    if fatal.startswith("constraints not met"):
        te.status = TargetStatus.skipped
        te.reasons = _reasons(fatal)
        te.ended_by = _skip_text(plan, te, fatal, t, at, tz)
        te.start = None
        return
    te.status = TargetStatus.ended
    te.end = at(t)
    te.ended_by = "still running at the walk's horizon" if rp.horizon_hit else fatal


def _not_run(rp: Replay, targets: list[TargetEstimate], plan: Plan, warnings: list[str]) -> None:
    reached = [te for te in targets if te.ended_by is not None]
    if rp.outcome != "failed":
        return
    last = reached[-1] if reached else None
    if rp.horizon_hit and last is not None:
        text = (f"target '{last.name}' does not end within "
                f"{duration_text(VIRTUAL_HORIZON_S)} of the start: does a repeat loop never stop?")
        warnings.append(text)
        last.warnings.append(text)
    for te in targets:
        if te.ended_by is None:
            if rp.horizon_hit:
                te.ended_by = "the walk's horizon was reached"
            elif last is not None and rp.fatal and rp.fatal.startswith("constraints not met"):
                te.ended_by = f"plan aborted: '{last.name}' could not start (wait then: abort)"
            else:
                te.ended_by = f"plan aborted: {rp.fatal}"
