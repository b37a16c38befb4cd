"""``estimate``: the night of a plan, as the executor runs it on nominal devices.

What runs when is the executor's business (:mod:`runner.estimate.replay` runs it on a virtual
clock); this module chooses the night (date, start at dusk), prepares the sky, and adds what
only the sky can say: windows, targets that never meet their constraints, frames below the
horizon, imaging past sunrise. See docs/estimate.md.

Only :func:`estimate` touches the sky (astropy), and only when called: importing this module
stays cheap for ``nightrunner validate``.
"""

from __future__ import annotations

from datetime import date as Date
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from runner.estimate.model import Assumptions, NightSummary, TargetEstimate, Timeline
from runner.estimate.timeline import duration_text
from runner.plan.equipment import Equipment
from runner.plan.models import Plan, Target

if TYPE_CHECKING:
    from runner.sky.events import NightEvents
    from runner.sky.visibility import TargetVisibility

#: A meridian flip turns the RA axis half a revolution.
_FLIP_DEGREES = 180.0

__all__ = ["default_start", "duration_text", "estimate", "needed_darkness"]


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
    from runner.estimate.replay import replay
    from runner.estimate.timeline import read_timeline
    from runner.sky.events import night_events
    from runner.sky.timeutil import local_noon, night_of, require_aware, site_timezone
    from runner.sky.visibility import TargetVisibility

    a = assumptions or Assumptions()
    _check_assumptions(a, equipment)
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
    night_from = events.sunset.dusk or events.start
    night_to = events.sunset.dawn or events.end
    visibilities = [
        TargetVisibility(t, plan.site, night_start, step=a.grid_step) for t in plan.targets
    ]
    if visibilities:
        visibilities[0].prefetch(visibilities[1:], min(night_from, t0), max(night_to, t0))
    by_id = {id(t): v for t, v in zip(plan.targets, visibilities, strict=True)}

    def visibility(t: Target) -> TargetVisibility:
        return by_id[id(t)]

    windows = [v.windows(night_from, night_to) for v in visibilities]
    rp = replay(plan, equipment, t0, visibility, tz, horizon=a.horizon)
    startup, targets, shutdown, warnings = read_timeline(rp, plan, tz, windows)
    for te, target, vis in zip(targets, plan.targets, visibilities, strict=True):
        if not te.windows:
            why = "; ".join(vis.never_reasons(night_from, night_to))
            text = f"target '{target.name}' never meets its constraints on {day.isoformat()}: {why}"
            warnings.insert(0, text)
            te.warnings.insert(0, text)
        _check_horizon_altitude(warnings, te, target, vis)
    sunrise = events.sunset.dawn
    last = max((t.end for t in targets if t.end is not None and t.light_frames()), default=None)
    if sunrise is not None and last is not None and last > sunrise:
        warnings.append(
            f"imaging runs past sunrise ({_hhmm(sunrise, tz)}) until {_hhmm(last, tz)}"
        )
    ambient = equipment.simulation.ambient
    lines = [how, *_assumption_lines(equipment, a, ambient)]
    return Timeline(
        plan=plan.name,
        date=day,
        tz=tz,
        start=t0,
        end=shutdown.end or t0,
        night=_night_summary(events),
        startup=startup,
        targets=targets,
        shutdown=shutdown,
        warnings=warnings,
        assumptions=lines,
    )


def _hhmm(t: datetime | None, tz: tzinfo) -> str:
    return "—" if t is None else t.astimezone(tz).strftime("%H:%M")


def _check_assumptions(a: Assumptions, eq: Equipment) -> None:
    """The nominal devices implement these figures; other values are not supported."""
    from runner.devices.sim.nominal import (
        DEFAULT_COOL_RATE,
        GUIDE_CALIBRATION_S,
        SETTLE_GUIDE_FRAMES,
    )

    fixed = {"cool_rate": (a.cool_rate, DEFAULT_COOL_RATE),
             "settle_guide_frames": (a.settle_guide_frames, SETTLE_GUIDE_FRAMES),
             "guide_calibration": (a.guide_calibration, GUIDE_CALIBRATION_S),
             "ambient": (a.ambient if a.ambient is not None else eq.simulation.ambient,
                         eq.simulation.ambient),
             "guide_exposure": (a.guide_exposure, Assumptions.guide_exposure)}
    for name, (given, nominal) in fixed.items():
        if given != nominal:
            raise ValueError(f"Assumptions.{name} = {given:g}: the nominal devices use {nominal:g}")


def _check_horizon_altitude(
    warnings: list[str], te: TargetEstimate, target: Target, vis: TargetVisibility
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
        text = (f"target '{target.name}' is below the horizon during its run (lowest "
                f"{lowest:.1f}°): add min_altitude to its constraints")
        warnings.append(text)
        te.warnings.append(text)
