"""Checks beyond the schema: things only knowable with the whole plan and its equipment.

Filters must exist on the wheel, ``use:`` must name a block (without cycles), values must be
within the camera's and focuser's limits, steps need the device they drive, constraints must be
satisfiable at all. These are pure arithmetic — no astropy — so ``validate`` stays fast; the sky
check (does a target ever meet its constraints tonight) is ``validate --sky``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from runner.plan.diagnostics import Diagnostic, Severity
from runner.plan.equipment import Equipment
from runner.plan.models import (
    CalibrationStep,
    CoolStep,
    DitherStep,
    EachFilterStep,
    ExposeStep,
    FilterStep,
    FocusStep,
    GuideStep,
    ParkStep,
    Plan,
    RepeatStep,
    SlewStep,
    StepBase,
    UseStep,
    WaitStep,
    WarmStep,
    step_kind,
)
from runner.plan.yamlsource import PathKey, Positions


def iter_steps(steps: Sequence[StepBase], path: PathKey) -> Iterator[tuple[PathKey, StepBase]]:
    """Every step with its path, depth-first, including loop bodies."""
    for i, step in enumerate(steps):
        p = (*path, i)
        yield p, step
        if isinstance(step, RepeatStep | EachFilterStep):
            yield from iter_steps(step.steps, (*p, "steps"))


def all_steps(plan: Plan) -> Iterator[tuple[PathKey, StepBase]]:
    yield from iter_steps(plan.startup, ("startup",))
    for t, target in enumerate(plan.targets):
        yield from iter_steps(target.sequence, ("targets", t, "sequence"))
    for name, body in plan.blocks.items():
        yield from iter_steps(body, ("blocks", name))
    yield from iter_steps(plan.shutdown, ("shutdown",))


def max_altitude(latitude: float, dec: float) -> float:
    """Highest altitude (deg) an object at ``dec`` reaches from ``latitude`` (at transit)."""
    return 90.0 - abs(latitude - dec)


def min_altitude(latitude: float, dec: float) -> float:
    """Lowest altitude (deg) an object at ``dec`` sinks to from ``latitude`` (lower transit)."""
    return abs(latitude + dec) - 90.0


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable IANA zone (with the nearest names), or None.

    zoneinfo, not astropy: ``validate`` must stay fast. The list of zones is read only when the
    name is wrong.
    """
    import difflib
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    try:
        ZoneInfo(name)
        return None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    zones = sorted(available_timezones())
    by_lower = {z.lower(): z for z in zones}
    close = [by_lower[z] for z in difflib.get_close_matches(name.lower(), by_lower, n=3,
                                                           cutoff=0.6)]
    hint = f"; did you mean {', '.join(close)}?" if close else " (e.g. Europe/Amsterdam)"
    return f"unknown time zone '{name}': use an IANA name{hint}"


def clock_time_paths(plan: Plan) -> list[PathKey]:
    """Where the plan gives clock times (read in the site's zone)."""
    out: list[PathKey] = []
    for t, target in enumerate(plan.targets):
        for key in ("after", "until"):
            if getattr(target.constraints, key) is not None:
                out.append(("targets", t, "constraints", key))
    for path, step in all_steps(plan):
        if isinstance(step, WaitStep) and step.wait.until is not None:
            out.append((*path, "wait", "until"))
        if isinstance(step, RepeatStep) and step.repeat.until and step.repeat.until.time:
            out.append((*path, "repeat", "until", "time"))
    return out


def check_site(plan: Plan, pos: Positions) -> list[Diagnostic]:
    """An unknown zone is an error; no zone at all, with clock times in the plan, a warning:
    they would be read in whatever zone the machine running the night is set to."""
    tz = plan.site.timezone
    if tz is not None:
        problem = timezone_problem(tz)
        return [Diagnostic.at(pos.mark(("site", "timezone")), problem)] if problem else []
    uses = clock_time_paths(plan)
    if not uses:
        return []
    first = pos.mark(uses[0])
    return [Diagnostic.at(
        pos.mark(("site",)),
        f"site has no 'timezone': clock times (first at line {first.line}) are read in the "
        "time zone of the machine running the night; name the site's zone, e.g. "
        "'timezone: Europe/Amsterdam'",
        Severity.warning,
    )]


def check_plan(plan: Plan, eq: Equipment, pos: Positions) -> list[Diagnostic]:
    out: list[Diagnostic] = []

    def err(path: PathKey, msg: str, *, key: bool = False) -> None:
        out.append(Diagnostic.at(pos.key_mark(path) if key else pos.mark(path), msg))

    def warn(path: PathKey, msg: str) -> None:
        out.append(Diagnostic.at(pos.mark(path), msg, Severity.warning))

    filters = eq.filter_names()
    cam = eq.camera

    def check_filter(path: PathKey, name: str) -> None:
        if not filters:
            err(path, f"filter '{name}' used, but equipment '{eq.name}' has no filter wheel")
        elif name not in filters:
            err(path, f"unknown filter '{name}'; equipment '{eq.name}' has: {', '.join(filters)}")

    def check_settings(
        path: PathKey, binning: int | None, gain: int | None, offset: int | None
    ) -> None:
        if binning is not None and binning > cam.max_binning:
            err((*path, "binning"), f"binning {binning} exceeds the camera's maximum "
                f"{cam.max_binning}")
        if gain is not None and not cam.gain_range[0] <= gain <= cam.gain_range[1]:
            err((*path, "gain"), f"gain {gain} outside the camera's range "
                f"{cam.gain_range[0]}–{cam.gain_range[1]}")
        if offset is not None and not cam.offset_range[0] <= offset <= cam.offset_range[1]:
            err((*path, "offset"), f"offset {offset} outside the camera's range "
                f"{cam.offset_range[0]}–{cam.offset_range[1]}")

    d = plan.defaults.expose
    check_settings(("defaults", "expose"), d.binning, d.gain, d.offset)

    uses_guiding = False
    for path, step in all_steps(plan):
        kind = step_kind(step)
        if isinstance(step, FilterStep):
            check_filter((*path, "filter"), step.filter)
        elif isinstance(step, EachFilterStep):
            for j, f in enumerate(step.each_filter):
                check_filter((*path, "each_filter", j), f)
        elif isinstance(step, ExposeStep):
            a = step.expose
            if a.filter is not None:
                check_filter((*path, "expose", "filter"), a.filter)
            check_settings((*path, "expose"), a.binning, a.gain, a.offset)
            if a.roi is not None:
                r = a.roi
                if r.x + r.width > cam.width or r.y + r.height > cam.height:
                    err((*path, "expose", "roi"), f"ROI {r.width}×{r.height}+{r.x}+{r.y} exceeds "
                        f"the sensor ({cam.width}×{cam.height})")
            if a.type == "bias" and a.exposure > 0:
                warn((*path, "expose", "exposure"), "bias frames are taken at the shortest "
                     "exposure; the exposure time is ignored")
        elif isinstance(step, CalibrationStep):
            c = step.calibration
            for j, f in enumerate(c.filters):
                check_filter((*path, "calibration", "filters", j), f)
            check_settings((*path, "calibration"), c.binning, c.gain, c.offset)
        elif isinstance(step, UseStep):
            if step.use not in plan.blocks:
                known = ", ".join(plan.blocks) or "none defined"
                err((*path, "use"), f"no block named '{step.use}' (blocks: {known})")
        elif isinstance(step, FocusStep):
            if eq.focuser is None:
                err(path, f"focus step, but equipment '{eq.name}' has no focuser")
            elif step.focus.position is not None and not (
                eq.focuser.min_position <= step.focus.position <= eq.focuser.max_position
            ):
                err((*path, "focus", "position"), f"focuser position {step.focus.position} "
                    f"outside {eq.focuser.min_position}–{eq.focuser.max_position}")
        elif isinstance(step, SlewStep | ParkStep):
            if eq.mount is None:
                err(path, f"{kind} step, but equipment '{eq.name}' has no mount")
            if (
                isinstance(step, SlewStep)
                and (step.slew.ra is None or step.slew.dec is None)
                and path[0] in ("startup", "shutdown")
            ):
                err((*path, "slew"), "slew without ra/dec goes to the current target; "
                    f"there is none in {path[0]}")
            if (
                isinstance(step, SlewStep)
                and step.slew.center is not None
                and cam.backend == "simulator"
                and eq.simulation.sky != "catalogue"
            ):
                warn((*path, "slew", "center"), "the simulated camera draws a synthetic sky, "
                     "which no plate solver can solve: centring will fail; set "
                     "'simulation: {sky: catalogue}' in the equipment profile")
        elif isinstance(step, GuideStep | DitherStep):
            if eq.guider is None:
                err(path, f"{kind} step, but equipment '{eq.name}' has no guider")
            if isinstance(step, GuideStep) and step.guide.action == "start":
                uses_guiding = True
            if isinstance(step, GuideStep) and step.guide.action == "stop":
                # stopping neither settles nor calibrates: the options would be ignored
                for opt, given in (("settle", step.guide.settle is not None),
                                   ("recalibrate", step.guide.recalibrate)):
                    if given:
                        err((*path, "guide", opt), f"'{opt}' applies to 'guide: start'; "
                            "stopping guiding neither settles nor calibrates")
        elif isinstance(step, CoolStep | WarmStep):
            if not cam.cooler:
                err(path, f"{kind} step, but camera '{cam.name}' has no cooler")
        elif (
            isinstance(step, WaitStep)
            and step.wait.altitude is not None
            and path[0] in ("startup", "shutdown")
        ):
            err((*path, "wait", "altitude"), "wait for altitude needs a target; use it in "
                    "a target's sequence")
        if (
            isinstance(step, RepeatStep)
            and step.repeat.until is not None
            and step.repeat.until.altitude_below is not None
            and path[0] in ("startup", "shutdown")
        ):
            # without a target there is no altitude: the loop would never end by it
            err((*path, "repeat", "until", "altitude_below"), "repeat until altitude_below "
                "needs a target; use it in a target's sequence")

    # blocks: use-cycles
    def block_uses(name: str) -> list[str]:
        body = plan.blocks.get(name, [])
        return [s.use for _, s in iter_steps(body, ()) if isinstance(s, UseStep)]

    for name in plan.blocks:
        seen: list[str] = [name]
        frontier = block_uses(name)
        while frontier:
            nxt = frontier.pop()
            if nxt == name:
                err(("blocks", name), f"block '{name}' uses itself (through "
                    f"{' → '.join([*seen, name])})", key=True)
                break
            if nxt not in seen and nxt in plan.blocks:
                seen.append(nxt)
                frontier.extend(block_uses(nxt))

    # triggers
    kinds_seen: dict[str, int] = {}
    for i, item in enumerate(plan.triggers):
        for k in type(item).model_fields:
            if getattr(item, k) is not None:
                if k in kinds_seen:
                    err(("triggers", i, k), f"trigger '{k}' is already configured (entry "
                        f"{kinds_seen[k] + 1})", key=True)
                kinds_seen[k] = i
                if k in ("dither", "guiding_rms", "star_lost") and eq.guider is None:
                    err(("triggers", i, k), f"{k} trigger, but equipment '{eq.name}' has no "
                        "guider", key=True)
                if k == "dither" and not uses_guiding:
                    warn(("triggers", i, k), "dither trigger, but no step starts guiding: "
                         "dithers will be skipped")
                if k == "meridian_flip" and eq.mount is None:
                    err(("triggers", i, k), "meridian_flip trigger needs a mount", key=True)
                if k == "autofocus" and eq.focuser is None:
                    err(("triggers", i, k), "autofocus trigger needs a focuser", key=True)
                af = item.autofocus
                if k == "autofocus" and af is not None and not (
                    af.temperature_change is not None or af.hfr_increase is not None
                    or af.filter_change or af.every_minutes is not None
                    or af.every_frames is not None
                ):
                    err(("triggers", i, k), "autofocus trigger never fires: give it "
                        "temperature_change, hfr_increase, filter_change, every_minutes or "
                        "every_frames", key=True)
                if k == "safety" and eq.safety is None:
                    err(("triggers", i, k), f"safety trigger, but equipment '{eq.name}' has no "
                        "safety monitor ('safety:' in the profile)", key=True)

    def check_loops_end(t: int, name: str, *, low: float, floor: float | None) -> None:
        """A loop that only waits for a circumpolar target to sink below an altitude it never
        reaches would image through the dawn and on (and hang the estimate): unless one of the
        target's constraints ends it, it is refused."""
        cons = plan.targets[t].constraints
        if (cons.until is not None or cons.twilight is not None
                or cons.max_sun_altitude is not None or (floor is not None and low < floor)):
            return
        for path, step in iter_steps(plan.targets[t].sequence, ("targets", t, "sequence")):
            if not isinstance(step, RepeatStep) or step.repeat.until is None:
                continue
            u = step.repeat.until
            if u.time is None and u.frames is None and u.altitude_below is not None \
                    and low >= u.altitude_below:
                err((*path, "repeat", "until", "altitude_below"), f"'{name}' never sinks below "
                    f"{u.altitude_below:g}° at latitude {plan.site.latitude:g}° (lowest "
                    f"{low:.1f}°): this loop would never end; add 'time' or 'frames' to "
                    "'until', or a 'twilight' or 'until' constraint to the target")

    # targets
    names: dict[str, int] = {}
    for t, target in enumerate(plan.targets):
        if target.name in names:
            warn(("targets", t, "name"), f"target name '{target.name}' repeats target "
                 f"{names[target.name] + 1}: their frames share file names and counters")
        names.setdefault(target.name, t)
        cons = target.constraints
        cpath: PathKey = ("targets", t, "constraints")
        top = max_altitude(plan.site.latitude, target.coordinates.dec)
        floor = cons.min_altitude
        if cons.max_airmass is not None:
            air_alt = math.degrees(math.asin(1.0 / cons.max_airmass))
            floor = max(floor or 0.0, air_alt)
        if top < 0:
            err(("targets", t, "coordinates", "dec"), f"'{target.name}' never rises at latitude "
                f"{plan.site.latitude:g}° (highest altitude {top:.1f}°)")
        elif floor is not None and top < floor:
            err(cpath, f"'{target.name}' never gets above {top:.1f}° at latitude "
                f"{plan.site.latitude:g}°, but the constraints need {floor:.1f}°")
        check_loops_end(t, target.name, low=min_altitude(plan.site.latitude,
                        target.coordinates.dec), floor=floor)
        if cons.after is not None and cons.until is not None and str(cons.after) == str(
            cons.until
        ):
            err((*cpath, "until"), "'after' and 'until' are the same time: an empty window")
        if cons.twilight is not None and cons.max_sun_altitude is not None:
            warn((*cpath, "max_sun_altitude"), "both 'twilight' and 'max_sun_altitude' given: "
                 "the stricter one applies")

    # shutdown safety
    cools = any(isinstance(s, CoolStep) for _, s in all_steps(plan))
    warms = any(isinstance(s, WarmStep) for _, s in iter_steps(plan.shutdown, ("shutdown",)))
    if cools and not warms:
        warn(("shutdown",) if plan.shutdown else (), "the plan cools the camera but shutdown "
             "does not warm it; add '- warm: {to: 5}' to shutdown")
    stops = any(
        isinstance(s, GuideStep) and s.guide.action == "stop"
        for _, s in iter_steps(plan.shutdown, ("shutdown",))
    )
    if uses_guiding and not stops:
        warn(("shutdown",) if plan.shutdown else (), "the plan starts guiding but shutdown "
             "does not stop it; add '- guide: stop' to shutdown")
    return out
