"""What a night's executor works with (:class:`Services`): the rig's devices, guider, frame
store, stacker, solver, autofocus and sky — or, for a dry run and the estimate, the nominal rig.

Built here for every kind of night, so that the real night, ``run --dry-run`` and the estimate
differ only in the devices they are handed, never in how the executor is wired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.clock import Clock
from runner.devices.interfaces import Guider
from runner.engine.events import EventBus
from runner.engine.executor import Services
from runner.errors import NightrunnerError
from runner.plan.equipment import Equipment
from runner.plan.models import Plan, Target

if TYPE_CHECKING:
    from runner.devices.sim.nominal import NominalRig
    from runner.engine.run import Run


def nominal_services(
    rig: NominalRig, eq: Equipment, clock: Clock, visibility: Callable[[Target], Any],
    tz: tzinfo, frames: Any,
) -> Services:
    """The executor's collaborators on a nominal rig: no HFR, nominal autofocus, no stacks."""
    return Services(
        clock=clock, camera=rig.camera, filter_wheel=rig.filter_wheel, focuser=rig.focuser,
        mount=rig.mount, safety=rig.safety, guider=rig.guider, frames=frames,
        measure_hfr=None, autofocus=rig.autofocuser(eq, clock),
        visibility=visibility, site_tz=tz, filter_slots=rig.filter_slots,
    )


@contextlib.asynccontextmanager
async def night_services(
    run: Run, data: Path, bus: EventBus, run_id: str
) -> AsyncIterator[Services]:
    """The run's services for the length of the night (devices connected when the run owns
    them, and closed after)."""
    if run.opt.dry_run:
        async with _dry_run_services(run) as services:
            yield services
        return
    from runner.devices.factory import build_devices
    from runner.engine.framestore import FrameStore
    from runner.engine.reconcile import journalled_frames

    eq = run.equipment
    own = run.owns_devices
    if own:
        devices = build_devices(eq, run.clock, site=run.plan.site)
        await devices.connect_all()
    else:
        devices = run.devices
    run.devices = devices
    guider: Guider | None = None
    stack = contextlib.AsyncExitStack()
    try:
        if eq.guider is not None:
            guider = await stack.enter_async_context(_guider(eq, run.clock, devices.world, bus))
        resume = run.resume_from
        frames = FrameStore(data, run.plan, eq, run_id,
                            reserved=resume.used_paths if resume else (),
                            notify=lambda kind, message: bus.emit(kind, message=message))
        frames.forget(run.lost_frames)
        frames.catch_up(journalled_frames(data))
        stack.callback(frames.close)
        slots: dict[str, int] = {}
        if devices.filter_wheel is not None and eq.filter_wheel is not None:
            # the profile names the slots (plans use these names); the wheel's own names
            # are only compared, since drivers often report "Filter 1", "Red" …
            slots = {f.name: i for i, f in enumerate(eq.filter_wheel.filters)}
            reported = await devices.filter_wheel.names()
            if reported[: len(slots)] != list(slots):
                bus.emit("warning", message="filter wheel reports slots "
                         f"{reported}; using the profile's names {list(slots)} in order")
        tz = site_tz(run.plan)
        visibility = visibility_factory(run.plan, run.clock.now(), tz)
        # the sky grids take a second or two to compute: do it now, off the event loop
        await asyncio.to_thread(prefetch, visibility, run.plan, run.clock.now())
        from runner.stacking.night_masters import plan_builds_masters

        stacking = None
        if any(t.stack for t in run.plan.targets) or plan_builds_masters(run.plan):
            from runner.engine.stacking_link import StackingLink

            stacking = StackingLink(data, bus, run.journal, resume)
            stack.push_async_callback(stacking.close)
        from runner.solve.frames import FrameSolver
        from runner.stacking.detect import measure_hfr

        solver = FrameSolver(data / "solve", focal_length=eq.focal_length,
                             pixel_size=eq.camera.pixel_size,
                             instrument=eq.camera.name, telescope=eq.telescope)
        yield Services(
            clock=run.clock,
            camera=devices.camera,
            filter_wheel=devices.filter_wheel,
            focuser=devices.focuser,
            mount=devices.mount,
            safety=devices.safety,
            guider=guider,
            frames=frames,
            measure_hfr=measure_hfr,
            autofocus=_autofocuser(devices, eq, run.clock),
            visibility=visibility,
            stacking=stacking,
            site_tz=tz,
            filter_slots=slots,
            solver=solver,
        )
    finally:
        await stack.aclose()
        if own:
            with contextlib.suppress(NightrunnerError):
                await devices.disconnect_all()


@contextlib.asynccontextmanager
async def _dry_run_services(run: Run) -> AsyncIterator[Services]:
    """--dry-run on the virtual clock: nominal devices, no frames written, no stacks, and
    slews centre nominally (no solver)."""
    from runner.devices.sim.nominal import NominalRig
    from runner.engine.framestore import NullFrameStore

    clock = run.clock
    rig = NominalRig.build(run.equipment, clock, run.plan.site.latitude,
                           run.plan.site.longitude)
    await rig.connect()
    run.devices = rig  # the control plane reads the dry run's (nominal) rig
    tz = site_tz(run.plan)
    visibility = visibility_factory(run.plan, clock.now(), tz)
    await asyncio.to_thread(prefetch, visibility, run.plan, clock.now())
    yield nominal_services(rig, run.equipment, clock, visibility, tz, NullFrameStore())


def site_tz(plan: Plan) -> Any:
    from runner.sky.timeutil import site_timezone

    return site_timezone(plan.site)


def visibility_factory(plan: Plan, start: datetime, tz: Any) -> Callable[[Target], Any]:
    """Constraint evaluation per target. Clock times resolve after the start of the night
    (local noon), so a run resumed after midnight keeps the night's windows."""
    from runner.sky import night_start
    from runner.sky.visibility import TargetVisibility

    reference = night_start(start, tz)
    cache: dict[int, TargetVisibility] = {}

    def get(t: Target) -> TargetVisibility:
        v = cache.get(id(t))
        if v is None:
            v = cache[id(t)] = TargetVisibility(t, plan.site, reference)
        return v

    return get


def prefetch(visibility: Callable[[Target], Any], plan: Plan, start: datetime) -> None:
    views = [visibility(t) for t in plan.targets]
    if plan.trigger_set().meridian_flip is None:  # hour angles are needed only for flips
        views = [v for v in views if v.constraints]
    if views:
        views[0].prefetch(views[1:], start, start + timedelta(hours=24))


def _autofocuser(devices: Any, eq: Equipment, clock: Clock) -> Any:
    if devices.focuser is None:
        return None

    async def autofocus(settings: Any, filter_name: str | None) -> dict[str, Any]:
        from runner.engine.autofocus import run_autofocus
        from runner.stacking.detect import measure_hfr

        result = await run_autofocus(
            devices.camera, devices.focuser, clock=clock, steps=settings.steps,
            step_size=settings.step_size or (eq.focuser.step_size if eq.focuser else 100),
            exposure=settings.exposure, fit=settings.fit,
            backlash=eq.focuser.backlash if eq.focuser else 0, measure_hfr=measure_hfr,
        )
        return result.to_dict() if hasattr(result, "to_dict") else dict(vars(result))

    return autofocus


@contextlib.asynccontextmanager
async def _guider(eq: Equipment, clock: Clock, world: Any, bus: EventBus) -> AsyncIterator[Guider]:
    from runner.engine.guider_link import open_guider

    async with open_guider(eq, clock, world, bus) as g:
        yield g
