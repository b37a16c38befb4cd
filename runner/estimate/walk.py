"""Walk a plan through a night on paper, the way the engine will run it.

The walker follows SEMANTICS step by step — startup, targets in order, shutdown — and keeps the
state the engine keeps (current filter, camera temperature, guiding, pointing, trigger
counters, enclosing ``repeat: until`` loops) so that overheads land where the engine would pay
them. Every duration comes from the equipment profile or from :class:`Assumptions`; nothing is
a magic number. See docs/estimate.md for the rules and their limits.

Only :func:`estimate` touches the sky (astropy), and only when called: importing this module
stays cheap for ``nightrunner validate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from runner.estimate.model import (
    Assumptions,
    FrameTally,
    NightSummary,
    Phase,
    TargetEstimate,
    TargetStatus,
    Timeline,
)
from runner.plan.equipment import Equipment
from runner.plan.models import (
    CalibrationStep,
    CoolArgs,
    CoolStep,
    DitherStep,
    EachFilterStep,
    ExposeStep,
    FilterStep,
    FocusAuto,
    FocusStep,
    FrameType,
    GuideStep,
    ParkStep,
    Plan,
    RepeatStep,
    RepeatUntil,
    Settle,
    SlewStep,
    StackStep,
    Step,
    Target,
    UseStep,
    WaitStep,
    WarmStep,
)

if TYPE_CHECKING:
    from runner.sky.events import NightEvents
    from runner.sky.visibility import TargetVisibility

#: One sidereal day in SI seconds: hour angle advances 1 h per this/24 seconds.
_SIDEREAL = 86_164.0905 / 86_400.0
#: A meridian flip turns the RA axis half a revolution.
_FLIP_DEGREES = 180.0


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


def angular_distance(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (haversine, stable for small angles)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dp = p2 - p1
    dl = math.radians(ra2 - ra1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


class _TargetEnded(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class _LoopExit(Exception):
    def __init__(self, depth: int, reason: str) -> None:
        super().__init__(reason)
        self.depth = depth
        self.reason = reason


class _Horizon(Exception):
    pass


@dataclass
class _Loop:
    until: RepeatUntil
    end_time: datetime | None
    frames: int = 0


@dataclass
class _TargetContext:
    target: Target
    vis: TargetVisibility
    flip_at: datetime | None = None
    flipped: bool = False


class _Walker:
    def __init__(
        self,
        plan: Plan,
        equipment: Equipment,
        assumptions: Assumptions,
        *,
        tz: tzinfo,
        night_start: datetime,
        start: datetime,
        events: NightEvents,
    ) -> None:
        self.plan = plan
        self.eq = equipment
        self.a = assumptions
        self.tz = tz
        self.night_start = night_start
        self.events = events
        self.t = start
        self.horizon = start + timedelta(seconds=assumptions.horizon)
        self.triggers = plan.trigger_set()
        self.phase: Phase = Phase("startup")
        self.ctx: _TargetContext | None = None
        ambient = assumptions.ambient
        self.ambient = equipment.simulation.ambient if ambient is None else ambient
        self.temperature = self.ambient
        self.filter: str | None = None
        self.guiding = False
        self.pointing: tuple[float, float] | None = None
        self.focus_position = equipment.simulation.best_focus
        self.af_time = start
        self.af_frames = 0
        self.af_filter: str | None = None
        self.last_light_filter: str | None = None
        self.dither_count = 0
        self.gap_pending = False
        self.loops: list[_Loop] = []
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ time and records

    def hhmm(self, t: datetime | None) -> str:
        return "—" if t is None else t.astimezone(self.tz).strftime("%H:%M")

    def _tick(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        if self.t > self.horizon:
            raise _Horizon

    def _spend(self, seconds: float, category: str) -> None:
        if seconds <= 0:
            return
        self.phase.overheads[category] = self.phase.overheads.get(category, 0.0) + seconds
        self._tick(seconds)

    def _idle(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self.phase.idle += seconds
        self._tick(seconds)

    def warn(self, text: str, target: TargetEstimate | None = None) -> None:
        self.warnings.append(text)
        if target is not None:
            target.warnings.append(text)

    def _note(self, text: str) -> None:
        if text not in self.phase.notes:
            self.phase.notes.append(text)

    def _settle_cost(self, settle: Settle | None) -> float:
        s = settle or self.plan.defaults.settle
        guide_exposure = self.eq.guider.exposure if self.eq.guider else self.a.guide_exposure
        return s.time + self.a.settle_guide_frames * guide_exposure

    # ------------------------------------------------------------------ steps

    def steps(self, steps: list[Step]) -> None:
        for step in steps:
            self.step(step)

    def step(self, step: Step) -> None:
        match step:
            case ExposeStep():
                e = step.expose
                if e.filter is not None:
                    self._change_filter(e.filter)
                self._shoot(e.type, e.exposure, e.count)
            case FilterStep():
                self._change_filter(step.filter)
            case RepeatStep():
                self._repeat(step)
            case EachFilterStep():
                for name in step.each_filter:
                    self._change_filter(name)
                    self.steps(step.steps)
            case UseStep():
                block = self.plan.blocks.get(step.use)
                if block is None:
                    self._note(f"block '{step.use}' is not defined: skipped")
                else:
                    self.steps(block)
            case CoolStep():
                self._temperature(step.cool, warming=False)
            case WarmStep():
                self._temperature(step.warm, warming=True)
            case FocusStep():
                f = step.focus
                if f.auto is not None:
                    self._autofocus(f.auto)
                elif f.position is not None:
                    self._move_focuser(f.position - self.focus_position)
                elif f.by is not None:
                    self._move_focuser(f.by)
            case GuideStep():
                self._guide(step)
            case DitherStep():
                self._dither(step.dither.settle)
            case WaitStep():
                self._wait(step)
            case SlewStep():
                self._slew_step(step)
            case ParkStep():
                self._park()
            case StackStep():
                pass
            case CalibrationStep():
                self._calibration(step)
            case _:  # pragma: no cover - the registry is closed; a new kind must be added here
                self._note(f"step kind {type(step).__name__} is not estimated")

    # ------------------------------------------------------------------ exposures

    def _shoot(self, kind: FrameType, exposure: float, count: int) -> None:
        light = kind is FrameType.light
        download = self.eq.camera.download_time
        for _ in range(count):
            self._before_exposure(exposure if light else None)
            key = (self.filter, kind.value)
            tally = self.phase.frames.get(key)
            if tally is None:
                tally = self.phase.frames[key] = FrameTally(self.filter, kind.value)
            tally.add(exposure)
            self.phase.exposure += exposure
            self._tick(exposure)
            self._spend(download, "download")
            if light:
                self.gap_pending = True
                self.dither_count += 1
                self.af_frames += 1
                self.last_light_filter = self.filter
                for loop in self.loops:
                    loop.frames += 1

    def _before_exposure(self, light_exposure: float | None) -> None:
        """Loops first (a loop that is done ends normally, and the steps after it run), then
        the target's constraints, then the triggers of the gap — and if those took time,
        both checks again, since the exposure starts only after them."""
        self._check_loops()
        self._check_constraints()
        if light_exposure is None:
            return
        before = self.t
        self._triggers(light_exposure)
        if self.t != before:
            self._check_loops()
            self._check_constraints()

    def _check_constraints(self) -> None:
        if self.ctx is None:
            return
        ok, reasons = self.ctx.vis.holds_at(self.t)
        if not ok:
            raise _TargetEnded(reasons)

    def _check_loops(self) -> None:
        for depth, loop in enumerate(self.loops):
            reason = self._until_reason(loop)
            if reason is not None:
                raise _LoopExit(depth, reason)

    # ------------------------------------------------------------------ triggers

    def _triggers(self, next_exposure: float) -> None:
        """SEMANTICS order: (safety) → meridian flip → autofocus → dither."""
        self._meridian_flip(next_exposure)
        af = self.triggers.autofocus
        reference = self.af_filter if self.af_filter is not None else self.last_light_filter
        filter_due = bool(
            af is not None
            and af.filter_change
            and reference is not None
            and self.filter != reference
        )
        if not (self.gap_pending or filter_due):
            return
        self.gap_pending = False
        if af is not None:
            elapsed = (self.t - self.af_time).total_seconds()
            due = (
                filter_due
                or (af.every_minutes is not None and elapsed >= af.every_minutes * 60.0)
                or (af.every_frames is not None and self.af_frames >= af.every_frames)
            )
            if due:
                self._autofocus(af.settings)
        dither = self.triggers.dither
        if dither is not None and self.dither_count >= dither.every:
            self.dither_count = 0
            self._dither(dither.settle)

    def _meridian_flip(self, next_exposure: float) -> None:
        flip = self.triggers.meridian_flip
        ctx = self.ctx
        mount = self.eq.mount
        if flip is None or ctx is None or mount is None or ctx.flip_at is None or ctx.flipped:
            return
        stop_at = ctx.flip_at - timedelta(minutes=flip.pause_before)
        if self.t + timedelta(seconds=next_exposure) <= stop_at:
            return
        self._idle((ctx.flip_at - self.t).total_seconds())
        self._spend(_FLIP_DEGREES / mount.slew_rate + mount.settle_time, "flip")
        if self.guiding:
            self._spend(self._settle_cost(None), "flip")
        ctx.flipped = True
        self._note(f"meridian flip at {self.hhmm(ctx.flip_at)}")

    def _autofocus(self, settings: FocusAuto) -> None:
        focuser = self.eq.focuser
        if focuser is None:
            self._note("autofocus needs a focuser; the profile has none: not estimated")
            return
        per_sample = settings.exposure + self.eq.camera.download_time + self.eq.autofocus_overhead
        step = settings.step_size or focuser.step_size
        travel = 2 * (settings.steps - 1) * step + focuser.backlash
        self._spend(settings.steps * per_sample + travel / focuser.speed, "autofocus")
        self.af_time = self.t
        self.af_frames = 0
        self.af_filter = self.filter

    def _dither(self, settle: Settle | None) -> None:
        if not self.guiding:
            self._note("dither skipped: not guiding")
            return
        self._spend(self._settle_cost(settle), "dither")

    # ------------------------------------------------------------------ devices

    def _change_filter(self, name: str) -> None:
        if name == self.filter:
            return
        wheel = self.eq.filter_wheel
        if wheel is not None:
            offsets = {f.name: f.focus_offset for f in wheel.filters}
            self._spend(wheel.change_time, "filter")
            if self.eq.focuser is not None and self.filter is not None:
                delta = offsets.get(name, 0) - offsets.get(self.filter, 0)
                self._move_focuser(delta)
        self.filter = name

    def _move_focuser(self, delta: int) -> None:
        focuser = self.eq.focuser
        if focuser is None or delta == 0:
            return
        steps = abs(delta) + (focuser.backlash if delta < 0 else 0)
        self._spend(steps / focuser.speed, "focus")
        self.focus_position += delta

    def _temperature(self, args: CoolArgs, *, warming: bool) -> None:
        if not self.eq.camera.cooler:
            self._note("the camera has no cooler: cool/warm steps take no time")
            return
        rate = args.rate or self.a.cool_rate
        delta = (args.to - self.temperature) if warming else (self.temperature - args.to)
        seconds = max(0.0, delta) / rate * 60.0
        if seconds > args.timeout:
            verb = "warming" if warming else "cooling"
            self._note(
                f"{verb} to {args.to:g} °C at {rate:g} °C/min takes {duration_text(seconds)}, "
                f"longer than its timeout ({duration_text(args.timeout)}): the step would fail"
            )
            seconds = args.timeout
        self._spend(seconds, "cooling")
        self.temperature = args.to

    def _guide(self, step: GuideStep) -> None:
        g = step.guide
        if g.action == "stop":
            self.guiding = False
            return
        if self.eq.guider is None:
            self._note("guide start: the equipment profile has no guider")
            return
        cost = self._settle_cost(g.settle)
        if g.recalibrate:
            cost += self.a.guide_calibration
        self._spend(cost, "guide")
        self.guiding = True

    def _slew_to(self, ra: float, dec: float) -> None:
        mount = self.eq.mount
        if mount is None:
            return
        if self.pointing is None:
            pole = 90.0 if self.plan.site.latitude >= 0 else -90.0
            distance = abs(pole - dec)
        else:
            distance = angular_distance(self.pointing[0], self.pointing[1], ra, dec)
        if self.pointing is not None and distance < 1e-6:
            return
        self._spend(distance / mount.slew_rate + mount.settle_time, "slew")
        self.pointing = (ra, dec)
        if self.guiding:
            self._spend(self._settle_cost(None), "guide")

    def _slew_step(self, step: SlewStep) -> None:
        s = step.slew
        coords = self.ctx.target.coordinates if self.ctx is not None else None
        ra = s.ra if s.ra is not None else (coords.ra if coords else None)
        dec = s.dec if s.dec is not None else (coords.dec if coords else None)
        if ra is None or dec is None:
            self._note("slew without coordinates outside a target: not estimated")
            return
        if self.eq.mount is None:
            self._note("slew: the equipment profile has no mount")
            return
        self._slew_to(ra, dec)
        if s.center:
            self._spend(self.a.center_time, "center")

    def _park(self) -> None:
        mount = self.eq.mount
        if mount is None:
            return
        if self.pointing is not None:
            pole = 90.0 if self.plan.site.latitude >= 0 else -90.0
            self._spend(abs(pole - self.pointing[1]) / mount.slew_rate, "slew")
        self.pointing = None
        self.guiding = False

    def _calibration(self, step: CalibrationStep) -> None:
        c = step.calibration
        if c.kind == "bias":
            self._shoot(FrameType.bias, 0.0, c.count)
        elif c.kind == "dark":
            for exposure in c.exposures:
                self._shoot(FrameType.dark, exposure, c.count)
        else:
            filters: list[str | None] = list(c.filters) or [self.filter]
            exposures = c.exposures or [1.0]
            for i, name in enumerate(filters):
                if name is not None:
                    self._change_filter(name)
                exposure = exposures[i] if len(exposures) == len(filters) else exposures[0]
                self._shoot(FrameType.flat, exposure, c.count)

    # ------------------------------------------------------------------ waits and loops

    def _wait(self, step: WaitStep) -> None:
        w = step.wait
        if w.for_ is not None:
            self._idle(w.for_)
        elif w.until is not None:
            until = w.until.next_after(self.night_start, self.tz)
            self._idle((until - self.t).total_seconds())
        elif w.altitude is not None:
            if self.ctx is None:
                self._note("wait for altitude outside a target: ignored")
                return
            limit = self.t + timedelta(seconds=step.timeout or 86_400.0)
            when = self.ctx.vis.when_altitude(self.t, w.altitude, limit)
            if when is None:
                raise _TargetEnded(
                    [f"altitude {w.altitude:g}° not reached before {self.hhmm(limit)}"]
                )
            self._idle((when - self.t).total_seconds())

    def _until_reason(self, loop: _Loop) -> str | None:
        u = loop.until
        if loop.end_time is not None and self.t >= loop.end_time:
            return f"time {u.time} reached"
        if u.frames is not None and loop.frames >= u.frames:
            return f"{u.frames} light frames taken"
        if u.altitude_below is not None and self.ctx is not None:
            alt = self.ctx.vis.altitude_at(self.t)
            if alt < u.altitude_below:
                return f"altitude {alt:.1f}° < {u.altitude_below:g}°"
        return None

    def _repeat(self, step: RepeatStep) -> None:
        r = step.repeat
        if r.count is not None:
            for _ in range(r.count):
                self.steps(step.steps)
            return
        assert r.until is not None  # the model guarantees exactly one of count/until
        until = r.until
        if until.altitude_below is not None and self.ctx is None:
            self._note("repeat until altitude_below outside a target: that condition is ignored")
        end_time = None if until.time is None else until.time.next_after(self.night_start, self.tz)
        loop = _Loop(until, end_time)
        depth = len(self.loops)
        self.loops.append(loop)
        iterations = 0
        cut = False
        reason: str | None = None
        try:
            while True:
                reason = self._until_reason(loop)
                if reason is not None:
                    break
                before = (self.t, loop.frames)
                try:
                    self.steps(step.steps)
                except _LoopExit as exc:
                    if exc.depth != depth:
                        raise
                    reason = exc.reason
                    iterations += 1
                    cut = True
                    break
                iterations += 1
                if (self.t, loop.frames) == before:
                    reason = "its body takes no time (stopped to avoid looping for ever)"
                    target = self.phase if isinstance(self.phase, TargetEstimate) else None
                    self.warn(f"{self.phase.name}: repeat until {reason}", target)
                    break
        finally:
            self.loops.pop()
        if iterations == 0:
            self._note(f"repeat until: already true at entry ({reason}): zero iterations")
        else:
            last = " (the last one cut short)" if cut else ""
            self._note(
                f"repeat until: {iterations} iteration(s){last}, ended at "
                f"{self.hhmm(self.t)} ({reason})"
            )

    # ------------------------------------------------------------------ targets

    def start_target(self, target: Target, vis: TargetVisibility) -> None:
        self.ctx = _TargetContext(target, vis)
        self.dither_count = 0
        self._slew_to(target.coordinates.ra, target.coordinates.dec)
        flip = self.triggers.meridian_flip
        if flip is not None and self.eq.mount is not None:
            ha = vis.hour_angle_at(self.t)
            after_h = flip.after / 60.0
            if ha < after_h:
                wait = (after_h - ha) * 3600.0 * _SIDEREAL
                self.ctx.flip_at = self.t + timedelta(seconds=wait)


def _night_summary(ev: NightEvents) -> NightSummary:
    return NightSummary(
        sunset=ev.sunset.dusk,
        civil_dusk=ev.civil.dusk,
        nautical_dusk=ev.nautical.dusk,
        astronomical_dusk=ev.astronomical.dusk,
        astronomical_dawn=ev.astronomical.dawn,
        nautical_dawn=ev.nautical.dawn,
        civil_dawn=ev.civil.dawn,
        sunrise=ev.sunset.dawn,
        moon_illumination=ev.moon_illumination,
        moon_altitude=ev.moon_altitude,
    )


def needed_darkness(plan: Plan) -> tuple[float, str]:
    """The Sun altitude the plan waits for first: the sun limit of the first target that has
    one (twilight or ``max_sun_altitude``, the stricter of the two), else sunset."""
    from runner.sky.constraints import TWILIGHT_ALTITUDE
    from runner.sky.ephemeris import SUNSET_ALTITUDE

    for target in plan.targets:
        c = target.constraints
        limits: list[tuple[float, str]] = []
        if c.twilight is not None:
            limits.append((TWILIGHT_ALTITUDE[c.twilight], f"{c.twilight.value} dusk"))
        if c.max_sun_altitude is not None:
            limits.append((c.max_sun_altitude, f"sun below {c.max_sun_altitude:g}°"))
        if limits:
            limit, label = min(limits)
            return limit, f"{label}, needed by '{target.name}'"
    return SUNSET_ALTITUDE, "sunset"


def default_start(plan: Plan, events: NightEvents) -> tuple[datetime, str]:
    """Where an estimate without ``start`` begins, and the sentence that says so.

    At dusk: the moment the Sun goes below what the first sun-constrained target needs, or
    sunset — the moment a scheduler would start the run. Polar day or night (no such moment)
    starts at 18:00 local time.
    """
    from runner.sky import events as sky_events

    altitude, label = needed_darkness(plan)
    dusk = sky_events.dusk_at(plan.site, events.date, altitude)
    if dusk is not None:
        return dusk, f"starts at {dusk.strftime('%H:%M')} ({label})"
    start = datetime.combine(events.date, time(18, 0), tzinfo=events.tz)
    return start, (
        f"starts at 18:00 local time: the sun does not reach {altitude:g}° "
        f"({label}) on {events.date.isoformat()}"
    )


def _assumption_lines(eq: Equipment, a: Assumptions, ambient: float) -> list[str]:
    lines = [f"download {eq.camera.download_time:g} s per frame (camera.download_time)"]
    if eq.filter_wheel is not None:
        lines.append(f"filter change {eq.filter_wheel.change_time:g} s (+ focus offset move)")
    guide_exposure = eq.guider.exposure if eq.guider else a.guide_exposure
    lines.append(
        f"settle (guide start, dither, after a slew) = settle.time + {a.settle_guide_frames} "
        f"× {guide_exposure:g} s guide exposures"
    )
    if eq.mount is not None:
        lines.append(
            f"slews at {eq.mount.slew_rate:g}°/s + {eq.mount.settle_time:g} s settle; "
            f"meridian flip = {_FLIP_DEGREES:g}° slew + settle + guide settle"
        )
    lines.append(
        f"autofocus = steps × (exposure + download + {eq.autofocus_overhead:g} s) + focuser travel"
    )
    lines.append(
        f"cooling from {ambient:g} °C ambient, {a.cool_rate:g} °C/min where no rate is given"
    )
    lines.append("autofocus on temperature change or HFR rise cannot be predicted: not included")
    lines.append("every step succeeds: retries and error policies are not modelled")
    return lines


def estimate(
    plan: Plan,
    equipment: Equipment,
    *,
    date: Date | None = None,
    start: datetime | None = None,
    assumptions: Assumptions | None = None,
) -> Timeline:
    """The timeline of ``plan`` run with ``equipment``.

    ``start`` (an aware datetime) is when the run begins; without it the run begins at sunset
    of ``date`` (site-local; default today at the site). Clock times resolve after local noon
    of the night (see :func:`runner.sky.timeutil.night_start`).

    Raises:
        runner.sky.timeutil.SiteTimezoneError: the site's time zone is unknown.
        ValueError: ``start`` is a naive datetime.
    """
    from runner.sky.events import night_events
    from runner.sky.timeutil import local_noon, night_of, require_aware, site_timezone
    from runner.sky.visibility import TargetVisibility

    a = assumptions or Assumptions()
    tz = site_timezone(plan.site)
    if start is not None:
        require_aware(start, "start")
        day = night_of(start, tz)
        events = night_events(plan.site, day)
        t0, how = start, f"starts at {start.astimezone(tz).strftime('%H:%M')} (given)"
    else:
        day = date if date is not None else datetime.now(tz).date()
        events = night_events(plan.site, day)
        t0, how = default_start(plan, events)
    t0 = t0.astimezone(tz)
    night_start = local_noon(day, tz)
    walker = _Walker(plan, equipment, a, tz=tz, night_start=night_start, start=t0, events=events)
    night_from = events.sunset.dusk or events.start
    night_to = events.sunset.dawn or events.end
    visibilities = [
        TargetVisibility(t, plan.site, night_start, step=a.grid_step) for t in plan.targets
    ]
    if visibilities:
        visibilities[0].prefetch(visibilities[1:], min(night_from, t0), max(night_to, t0))

    startup = walker.phase
    startup.start = t0
    targets: list[TargetEstimate] = []
    aborted: str | None = None
    try:
        walker.steps(plan.startup)
    except _Horizon:
        aborted = "the startup does not end within the walk's horizon"
    except (_TargetEnded, _LoopExit) as exc:  # pragma: no cover - no target context here
        startup.notes.append(str(exc))
    startup.end = walker.t

    for i, (target, vis) in enumerate(zip(plan.targets, visibilities, strict=True)):
        te = TargetEstimate(name=target.name, index=i)
        targets.append(te)
        te.windows = vis.windows(night_from, night_to)
        if not te.windows:
            why = "; ".join(vis.never_reasons(night_from, night_to))
            walker.warn(
                f"target '{target.name}' never meets its constraints on {day.isoformat()}: {why}",
                te,
            )
        if aborted is not None:
            te.ended_by = aborted
            continue
        aborted = _run_target(walker, te, target, vis)
    walker.ctx = None

    shutdown = Phase("shutdown")
    walker.phase = shutdown
    walker.horizon = walker.t + timedelta(seconds=a.horizon)
    shutdown.start = walker.t
    try:
        walker.steps(plan.shutdown)
    except _Horizon:
        walker.warnings.append("the shutdown does not end within the walk's horizon")
    shutdown.end = walker.t

    sunrise = events.sunset.dawn
    last = max((t.end for t in targets if t.end is not None and t.light_frames()), default=None)
    if sunrise is not None and last is not None and last > sunrise:
        walker.warnings.append(
            f"imaging runs past sunrise ({walker.hhmm(sunrise)}) until {walker.hhmm(last)}"
        )
    lines = [how, *_assumption_lines(equipment, a, walker.ambient)]
    return Timeline(
        plan=plan.name,
        date=day,
        tz=tz,
        start=t0,
        end=walker.t,
        night=_night_summary(events),
        startup=startup,
        targets=targets,
        shutdown=shutdown,
        warnings=walker.warnings,
        assumptions=lines,
    )


def _run_target(
    walker: _Walker, te: TargetEstimate, target: Target, vis: TargetVisibility
) -> str | None:
    """Walk one target; the reason the plan aborts when it does (``wait.then: abort``)."""
    walker.phase = te
    walker.ctx = None
    t = walker.t
    ok, reasons = vis.holds_at(t)
    if not ok:
        wait = target.wait
        limit = t + timedelta(seconds=wait.max if wait is not None else 0.0)
        begin = vis.next_start(t, limit) if wait is not None else None
        if begin is None:
            te.status = TargetStatus.skipped
            te.reasons = reasons
            later = next((a for a, _ in te.windows if a > t), None)
            if wait is None:
                te.ended_by = f"constraints do not hold at {walker.hhmm(t)} (no wait)"
            else:
                te.ended_by = (
                    f"constraints do not hold between {walker.hhmm(t)} and {walker.hhmm(limit)} "
                    f"(wait max {duration_text(wait.max)})"
                )
            if later is not None:
                te.ended_by += f"; they hold from {walker.hhmm(later)}"
            if wait is not None and wait.then == "abort":
                return f"plan aborted: '{target.name}' could not start (wait then: abort)"
            return None
        te.notes.append(f"waits {duration_text((begin - t).total_seconds())} for its constraints")
        te.waited = (begin - t).total_seconds()
        walker.t = begin
    te.start = walker.t
    try:
        walker.start_target(target, vis)
        walker.steps(target.sequence)
        te.status = TargetStatus.complete
        te.ended_by = "sequence complete"
    except _TargetEnded as exc:
        te.status = TargetStatus.ended
        te.reasons = exc.reasons
        te.ended_by = f"constraints stopped holding at {walker.hhmm(walker.t)}"
    except _Horizon:
        te.status = TargetStatus.ended
        te.ended_by = "still running at the walk's horizon"
        walker.warn(
            f"target '{target.name}' does not end within "
            f"{duration_text(walker.a.horizon)} of the start: does a repeat loop never stop?",
            te,
        )
        te.end = walker.t
        return "the walk's horizon was reached"
    te.end = walker.t
    _check_horizon_altitude(walker, te, target, vis)
    return None


def _check_horizon_altitude(
    walker: _Walker, te: TargetEstimate, target: Target, vis: TargetVisibility
) -> None:
    """Warn when light frames are taken below the horizon and no constraint prevents it."""
    c = target.constraints
    if c.min_altitude is not None or c.max_airmass is not None or te.start is None:
        return
    if not te.light_frames() or te.end is None:
        return
    span = (te.end - te.start).total_seconds()
    n = max(2, int(span // 300) + 1)
    lowest = min(
        vis.altitude_at(te.start + timedelta(seconds=span * k / (n - 1))) for k in range(n)
    )
    if lowest < 0:
        walker.warn(
            f"target '{target.name}' is below the horizon during its run (lowest {lowest:.1f}°):"
            " add min_altitude to its constraints",
            te,
        )
