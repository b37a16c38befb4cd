"""The executor: walks a compiled ``Program`` on the devices, following SEMANTICS.md.

It is the only place that decides order: startup, then targets (each gated by its
constraints), then shutdown — always. Between light frames it runs triggers in the fixed order
safety → meridian flip → autofocus → dither. Every step runs under its error policy (retry with
doubling backoff, then skip step / skip target / abort) and its timeout, all on the engine clock.

Abort is task cancellation: the running device operation is cancelled, which aborts the
exposure (its frame is never written) and the shutdown sequence runs next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from runner.clock import Clock, timeout_real
from runner.devices.interfaces import Frame, Guider, GuiderState, GuideStats
from runner.engine import actions
from runner.engine import triggers as trig
from runner.engine.compiler import CompiledTarget, FilterLoop, Leaf, Loop, Node, Program
from runner.engine.events import EventBus
from runner.engine.frame_writer import FrameWriter
from runner.engine.journal import Journal, ResumeState, frame_entry
from runner.engine.machine import RunModel
from runner.engine.rig_restore import RigKeeper, RigNotRestored
from runner.errors import (
    DeviceError,
    GuiderError,
    NightrunnerError,
    SettleFailed,
)
from runner.plan.models import (
    CalibrationStep,
    CoolStep,
    DitherStep,
    ExposeArgs,
    ExposeStep,
    FilterStep,
    FocusAuto,
    FocusStep,
    FrameType,
    GuideStep,
    ParkStep,
    RepeatUntil,
    Settle,
    SettleFailure,
    SlewStep,
    StackStep,
    Target,
    Then,
    WaitStep,
    WarmStep,
)

log = logging.getLogger("nightrunner.engine")


# ----------------------------------------------------------------------------- collaborators


class Visibility(Protocol):
    """Constraint evaluation for one target (runner.sky)."""

    def holds_at(self, t: datetime) -> tuple[bool, list[str]]: ...

    def next_start(self, t: datetime) -> datetime | None: ...

    def altitude_at(self, t: datetime) -> float: ...

    def hour_angle_at(self, t: datetime) -> float: ...


class FrameSink(Protocol):
    """Names frames, writes them to disk atomically and indexes them."""

    def allocate(self, frame: Frame, meta: dict[str, Any]) -> Path: ...

    async def save(self, frame: Frame, meta: dict[str, Any], path: Path | None = None) -> Path:
        ...


class StackSink(Protocol):
    def submit(self, path: Path) -> bool: ...


class Stacking(Protocol):
    """Per-target live stacks (runner.engine.stacking_link)."""

    def begin(self, ct: CompiledTarget) -> StackSink | None: ...

    async def end(self) -> dict[str, Any] | None: ...

    def end_later(self) -> None:
        """Save the stack while the shutdown runs (``close`` waits for it)."""


class Autofocuser(Protocol):
    async def __call__(self, settings: FocusAuto, filter_name: str | None) -> dict[str, Any]: ...


@dataclass
class Services:
    clock: Clock
    camera: Any
    filter_wheel: Any | None
    focuser: Any | None
    mount: Any | None
    safety: Any | None
    guider: Guider | None
    frames: FrameSink
    measure_hfr: Callable[[npt.NDArray[np.uint16]], float | None]
    autofocus: Autofocuser | None
    visibility: Callable[[Target], Visibility] | None
    stacking: Stacking | None = None
    site_tz: tzinfo | None = None
    filter_slots: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------- control flow


# shutdown step kinds whose failure can leave the rig unsafe (cold camera, guiding, unparked)
SAFETY_KINDS = frozenset({"warm", "park", "guide"})


@dataclass
class _Taken:
    """A frame in memory, on its way to the disk (FrameWriter), with what it was taken under."""

    key: str
    frame: Frame
    frame_type: FrameType
    meta: dict[str, Any]
    path: Path
    seconds: float
    stats: GuideStats | None
    target: str | None
    filter: str | None
    triggers: dict[str, Any]
    focus_generation: int
    stack: StackSink | None


class SkipTarget(Exception):
    """Leave the current target (constraint ended it, or policy said skip_target)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LoopExit(Exception):
    """A ``repeat: until`` condition holds: leave that loop."""

    def __init__(self, loop_id: str, reason: str) -> None:
        super().__init__(reason)
        self.loop_id = loop_id
        self.reason = reason


class FatalRunError(NightrunnerError):
    """A step failed with policy ``abort``: the night ends (after shutdown)."""


@dataclass(frozen=True)
class Scope:
    target: CompiledTarget | None
    suffix: str = ""  # iteration path, e.g. "#i2#i0"
    #: enclosing until-loops: (loop id, condition, the loop's own scope suffix, start)
    loops: tuple[tuple[str, RepeatUntil, str, float], ...] = ()
    phase: str = "imaging"


@dataclass
class Counters:
    lights: int = 0
    darks: int = 0
    flats: int = 0
    biases: int = 0
    skipped_resume: int = 0
    dithers: int = 0
    dithers_skipped: int = 0
    autofocus_runs: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    per_target: dict[str, dict[str, int]] = field(default_factory=dict)


class Executor:
    def __init__(
        self,
        program: Program,
        services: Services,
        bus: EventBus,
        journal: Journal,
        resume: ResumeState | None = None,
    ) -> None:
        self.p = program
        self.s = services
        self.bus = bus
        self.journal = journal
        self.model = RunModel()
        self.resume = resume or ResumeState(run_id="")
        self.done_frames: dict[str, str] = dict(self.resume.frames)
        self.light_keys: set[str] = set(self.resume.lights)
        self.state = trig.TriggerState.from_dict(self.resume.trigger_state)
        self.counters = Counters()
        self.filter: str | None = None
        self.guiding = False
        self.target: CompiledTarget | None = None
        self.stack: StackSink | None = None
        self.pause_requested = False
        self.skip_requested: str | None = None  # reason: leave the target at the next gap
        self._resumed = asyncio.Event()
        self.abort_reason: str | None = None
        self.outcome: str = "running"
        self.last_frame: dict[str, Any] = {}
        self.start_clock = services.clock.monotonic()
        self.current_exposure: dict[str, Any] | None = None
        self._sent_settings: tuple[Any, ...] | None = None
        self._connections = 0  # bumped on every reconnect
        self.unsafe: list[str] = []  # shutdown steps that failed to make the rig safe
        # bumped by every autofocus: an HFR measured behind the loop on a frame taken before
        # it must not become the new focus's baseline
        self._focus_generation = 0
        self._lights_taken = 0  # this run's lights in memory or on disk (counters: on disk)
        self.writer = FrameWriter(bus)
        self.keeper = RigKeeper(self)
        self._step: tuple[Leaf, asyncio.Future[bool]] | None = None  # the step running now
        self._skip_step_reason: str | None = None
        self.stack_ending: asyncio.Future[None] | None = None  # a stack ended by an abort

    # ------------------------------------------------------------------ public control

    def request_pause(self) -> None:
        """Takes effect between exposures (SEMANTICS: guiding and cooling keep running)."""
        self.pause_requested = True
        self._resumed.clear()
        self.bus.emit("pause_requested")

    def request_skip_target(self, reason: str = "skipped on request") -> bool:
        """Leave the current target before its next light (False: no target is running)."""
        if self.target is None:
            return False
        self.skip_requested = reason
        self.bus.emit("skip_requested", what="target", target=self.target.target.name)
        self._resumed.set()  # a paused night leaves the pause gate, then the target
        return True

    def request_skip_step(self, reason: str = "skipped on request") -> str | None:
        """End the step running now and go on with the next one; returns its id (None: no
        step of the plan is running, or it is a shutdown step, which is never skipped)."""
        if self._step is None or self.model.state.startswith("shutdown"):
            return None
        leaf, work = self._step
        if work.done():
            return None
        self._skip_step_reason = reason
        self.bus.emit("skip_requested", what="step", step=leaf.id, kind=leaf.kind)
        work.cancel()
        return leaf.id

    def request_resume(self) -> None:
        self.pause_requested = False
        self._resumed.set()
        self.bus.emit("resume_requested")

    # ------------------------------------------------------------------ the night

    async def run_night(self) -> None:
        """Startup and targets; raises RunAborted / FatalRunError / CancelledError."""
        self._fire("begin_startup")
        self.bus.emit("phase", phase="startup")
        await self._run_nodes(self.p.startup, Scope(None, phase="startup"))
        self.journal.record("startup_done")
        self.bus.emit("startup_done")
        if self.state.focus_time is None:
            self.state.focus_time = self.s.clock.monotonic()
        for ct in self.p.targets:
            if ct.id in self.resume.targets_done:
                self.bus.emit("target_skipped", target=ct.target.name, reason="completed before")
                continue
            await self._run_target(ct)
        await self.writer.drain()

    async def run_shutdown(self) -> None:
        """Every shutdown step runs with its own timeout and its own retries (reconnecting
        between them); one stuck or unreachable device never blocks the next step. A step
        that makes the rig safe and still fails is recorded in ``unsafe``: the outcome then
        says the rig may not be safe. Nothing here needs the disk (events are best-effort)."""
        with contextlib.suppress(Exception):
            self._fire("begin_shutdown")
        self.bus.emit("phase", phase="shutdown")
        scope = Scope(None, phase="shutdown")
        with contextlib.suppress(Exception):
            await self._reconnect()
        for node in self.p.shutdown:
            if not isinstance(node, Leaf):
                continue
            try:
                ok = await self._run_leaf(node, scope)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # shutdown goes on whatever happens
                self._error(f"shutdown step {node.id} ({node.kind}) failed: {exc}")
                ok = False
            if not ok and node.kind in SAFETY_KINDS:
                self.unsafe.append(f"{node.kind} failed ({node.id})")
        # never leave guiding running, whatever the plan's shutdown said
        if self.guiding and self.s.guider is not None:
            try:
                async with asyncio.timeout(timeout_real(self.s.clock, 30)):
                    await self.s.guider.stop()
                self.guiding = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._error(f"shutdown: guiding could not be stopped: {exc}")
                self.unsafe.append("guiding may still be running")
        if self.unsafe:
            self.bus.emit("rig_unsafe", reasons=list(self.unsafe))

    # ------------------------------------------------------------------ targets

    async def _run_target(self, ct: CompiledTarget) -> None:
        t = ct.target
        self.target = ct
        self._fire("begin_target")
        self.bus.emit("target_start", target=t.name, index=ct.index)
        trig.new_target(self.state)
        self.counters.per_target.setdefault(t.name, {})
        await self._reconnect()  # a device lost by the previous target gets another chance
        try:
            await self._wait_for_constraints(ct)
            if self.s.stacking is not None and t.stack is not None:
                self.stack = self.s.stacking.begin(ct)
            await self._run_nodes(ct.body, Scope(ct))
        except SkipTarget as exc:
            await self.writer.drain()
            await self._end_stack()
            self.bus.emit("target_end", target=t.name, status="skipped", reason=exc.reason)
            return
        except BaseException:
            # an abort or a failure: the safe shutdown must not wait for the stack's final
            # images (a second or more on big frames); they are written while it runs
            self.stack = None
            if self.s.stacking is not None:
                self.stack_ending = asyncio.ensure_future(
                    self._end_stack_behind_writes(self.s.stacking))
            raise
        await self.writer.drain()  # every frame of the target in its stack and journal first
        await self._end_stack()
        self.journal.record("target_done", key=ct.id)
        self.bus.emit("target_end", target=t.name, status="completed")

    async def _end_stack_behind_writes(self, stacking: Stacking) -> None:
        """After an abort: frames taken before it are still being written (FrameWriter), and
        still reach their stack; then the stack ends, saved while the shutdown runs."""
        await self.writer.drain_quietly()
        stacking.end_later()

    async def _end_stack(self) -> None:
        self.stack = None
        if self.s.stacking is not None:
            await asyncio.shield(self.s.stacking.end())

    async def _wait_for_constraints(self, ct: CompiledTarget) -> None:
        ok, reasons = self._constraints(ct.target)
        if ok:
            return
        wait = ct.target.wait
        if wait is None:
            raise SkipTarget("constraints not met: " + "; ".join(reasons))
        vis = self.s.visibility(ct.target) if self.s.visibility else None
        now = self.s.clock.now()
        start = vis.next_start(now) if vis else None
        deadline = self.s.clock.monotonic() + wait.max
        if start is None or (start - now).total_seconds() > wait.max:
            msg = "constraints not met within the wait limit: " + "; ".join(reasons)
            if wait.then == "abort":
                raise FatalRunError(msg)
            raise SkipTarget(msg)
        self._fire("wait_constraints")
        self.bus.emit("waiting", target=ct.target.name, until=start.isoformat(), reasons=reasons)
        while True:
            ok, reasons = self._constraints(ct.target)
            if ok:
                break
            if self.s.clock.monotonic() >= deadline:
                raise SkipTarget("constraints not met within the wait limit")
            await self.s.clock.sleep(min(60.0, max(1.0, deadline - self.s.clock.monotonic())))
        self._fire("begin_target")

    def _constraints(self, t: Target) -> tuple[bool, list[str]]:
        if self.s.visibility is None:
            return True, []
        return self.s.visibility(t).holds_at(self.s.clock.now())

    # ------------------------------------------------------------------ structure

    async def _run_nodes(self, nodes: Sequence[Node], scope: Scope) -> None:
        for node in nodes:
            if isinstance(node, Leaf):
                await self._run_leaf(node, scope)
            elif isinstance(node, Loop):
                await self._run_loop(node, scope)
            else:
                await self._run_filter_loop(node, scope)

    async def _run_loop(self, loop: Loop, scope: Scope) -> None:
        spec = loop.spec
        prefix = f"{loop.id}{scope.suffix}#i"
        inner_loops = scope.loops
        if spec.until is not None:
            inner_loops = (*scope.loops, (loop.id, spec.until, scope.suffix,
                                          self.s.clock.monotonic()))
        i = 0
        ran = 0
        while spec.count is None or i < spec.count:
            key = f"{prefix}{i}"
            if key in self.resume.iterations:
                i += 1
                continue
            if spec.until is not None:
                reason = self._until_holds(spec.until, loop.id, scope.suffix, scope.target)
                if reason:
                    if ran == 0 and i == 0:
                        self.bus.emit("loop_zero_iterations", loop=loop.id, reason=reason)
                    else:
                        self.bus.emit("loop_end", loop=loop.id, reason=reason)
                    return
            inner = Scope(scope.target, f"{scope.suffix}#i{i}", inner_loops, scope.phase)
            try:
                await self._run_nodes(loop.body, inner)
            except LoopExit as exc:
                if exc.loop_id != loop.id:
                    raise
                self.bus.emit("loop_end", loop=loop.id, reason=exc.reason)
                return
            self.journal.record("iteration_done", key=key)
            i += 1
            ran += 1
            if spec.until is not None and self._loop_lights(loop.id, scope.suffix) == 0:
                # a body without exposures would spin; give the clock a chance to move
                await self.s.clock.sleep(1.0)

    def _loop_lights(self, loop_id: str, outer_suffix: str) -> int:
        """Light frames taken inside one run of a loop (all its iterations, resumed ones too).

        Frame keys are ``<step id>#i…#f<n>``; steps inside the loop have ids below
        ``<loop id>/steps`` and iteration suffixes that extend the loop's own scope suffix.
        """
        head = f"{loop_id}/steps"
        mark = f"{outer_suffix}#i"
        n = 0
        for k in self.light_keys:
            if k.startswith(head) and k[k.index("#"):].startswith(mark):
                n += 1
        return n

    async def _run_filter_loop(self, node: FilterLoop, scope: Scope) -> None:
        for j, name in enumerate(node.filters):
            key = f"{node.id}{scope.suffix}#i{j}"
            if key in self.resume.iterations:
                continue
            inner = Scope(scope.target, f"{scope.suffix}#i{j}", scope.loops, scope.phase)
            self._fire("begin_filter")
            try:
                await self._with_policy(
                    f"{node.id}:filter", "filter", node.policy, None,
                    lambda name=name: self._change_filter(name),  # type: ignore[misc]
                )
            finally:
                self._fire("step_done")
            await self._run_nodes(node.body, inner)
            self.journal.record("iteration_done", key=key)

    def _until_holds(
        self, until: RepeatUntil, loop_id: str, outer_suffix: str, ct: CompiledTarget | None
    ) -> str:
        now = self.s.clock.now()
        if until.time is not None:
            tz = self.s.site_tz
            assert tz is not None
            deadline = until.time.next_after(self._night_reference(), tz)
            if now >= deadline:
                return f"time {until.time} reached"
        if until.altitude_below is not None and ct is not None and self.s.visibility:
            alt = self.s.visibility(ct.target).altitude_at(now)
            if alt < until.altitude_below:
                return f"altitude {alt:.1f}° below {until.altitude_below:g}°"
        if until.frames is not None:
            n = self._loop_lights(loop_id, outer_suffix)
            if n >= until.frames:
                return f"{n} light frames taken"
        return ""

    def _night_reference(self) -> datetime:
        """What clock times resolve after: the start of the night the run began in (local
        noon), which equals "the next occurrence after the run starts" for an evening start
        and keeps the night's meaning for a run resumed after midnight."""
        from datetime import timedelta

        from runner.sky import night_start

        assert self.s.site_tz is not None
        started = self.s.clock.now() - timedelta(
            seconds=self.s.clock.monotonic() - self.start_clock
        )
        return night_start(started, self.s.site_tz)

    # ------------------------------------------------------------------ policies

    async def _with_policy(
        self,
        step_id: str,
        kind: str,
        policy: Any,
        timeout: float | None,
        action: Callable[[], Awaitable[None]],
    ) -> bool:
        """True when the step succeeded, False when its policy skipped it."""
        attempt = 0
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # (an abort) that lands as the step finishes
                async with asyncio.timeout(
                    None if timeout is None else timeout_real(self.s.clock, timeout)
                ):
                    await action()
                return True
            except TimeoutError:
                exc: Exception = DeviceError(f"{kind} step timed out after {timeout:g} s")
            except (DeviceError, GuiderError) as e:
                exc = e
            self._error(f"{step_id} ({kind}): {exc}")
            if attempt < policy.retry:
                delay = policy.backoff * (2**attempt)
                attempt += 1
                self.counters.retries += 1
                self.bus.emit("retry", step=step_id, attempt=attempt, delay=delay, error=str(exc))
                await self.s.clock.sleep(delay)
                await self._reconnect()
                continue
            then = Then(policy.then)
            self.bus.emit("policy", step=step_id, action=then.value, error=str(exc))
            if then is Then.skip_step:
                return False
            if then is Then.skip_target and self.target is not None:
                raise SkipTarget(f"{kind} failed: {exc}") from exc
            raise FatalRunError(f"{kind} failed: {exc}") from exc

    async def _reconnect(self) -> None:
        """Before a retry, a target and the shutdown: reconnect every device of a server that
        dropped one (what the night set is restored before the next light, rig_restore)."""
        await self.keeper.reconnect()

    def _error(self, message: str) -> None:
        log.warning(message)
        self.counters.errors.append(message)
        self.bus.emit("error", message=message)

    def _fire(self, trigger: str) -> None:
        self.model.fire(trigger)
        self.bus.emit("state", state=self.model.state)

    # ------------------------------------------------------------------ leaves

    async def _run_leaf(self, leaf: Leaf, scope: Scope) -> bool:
        timeout = leaf.timeout if leaf.timeout is not None else self._default_timeout(leaf)
        self._fire(f"begin_{leaf.kind}")
        self.bus.emit("step", id=leaf.id, kind=leaf.kind, phase=scope.phase)
        # the step runs as its own task so that a user's "skip step" can end it alone (an
        # exposure in progress is aborted and discarded), while an abort still ends the night
        work = asyncio.ensure_future(self._with_policy(
            leaf.id, leaf.kind, leaf.policy, timeout, lambda: self._do_leaf(leaf, scope)
        ))
        self._step = (leaf, work)
        me = asyncio.current_task()
        try:
            ok = await work
            if me is not None and me.cancelling():
                # the abort reached the step's task and something in it swallowed it (a
                # timeout finishing in the same iteration): the night must stop all the same
                raise asyncio.CancelledError
            return ok
        except asyncio.CancelledError:
            if self._skip_step_reason is None or (me is not None and me.cancelling()):
                raise
            reason, self._skip_step_reason = self._skip_step_reason, None
            self.bus.emit("step_skipped", id=leaf.id, kind=leaf.kind, reason=reason)
            return False
        finally:
            self._step = None
            if self.model.action is not None:
                self._fire("step_done")

    def _default_timeout(self, leaf: Leaf) -> float | None:
        eq = self.p.equipment
        step = leaf.step
        if isinstance(step, CoolStep):
            return step.cool.timeout + 30
        if isinstance(step, WarmStep):
            return step.warm.timeout + 30
        if isinstance(step, FilterStep):
            return (eq.filter_wheel.change_time * 4 + 30) if eq.filter_wheel else 60
        if isinstance(step, FocusStep) and step.focus.auto is None:
            return eq.focuser.move_timeout if eq.focuser else 120
        if isinstance(step, SlewStep | ParkStep):
            return eq.mount.slew_timeout if eq.mount else 300
        if isinstance(step, GuideStep):
            settle = step.guide.settle or self.p.settle
            return settle.timeout + 120
        if isinstance(step, DitherStep):
            settle = step.dither.settle or self.p.settle
            return settle.timeout + 60
        return None  # exposures time out per frame; waits bound themselves

    async def _do_leaf(self, leaf: Leaf, scope: Scope) -> None:
        step = leaf.step
        s = self.s
        if isinstance(step, ExposeStep):
            await self._expose_step(leaf, step.expose, scope)
        elif isinstance(step, FilterStep):
            await self._change_filter(step.filter)
        elif isinstance(step, CoolStep | WarmStep):
            args = step.cool if isinstance(step, CoolStep) else step.warm
            temp = await actions.set_temperature(
                s.camera, s.clock, args.to, args.rate, args.timeout,
                cooler_off_at_end=isinstance(step, WarmStep),
            )
            self.bus.emit("temperature", ccd_temp=temp, set_temp=args.to)
        elif isinstance(step, FocusStep):
            await self._focus(step)
        elif isinstance(step, GuideStep):
            if step.guide.action == "start":
                await self._start_guiding(step.guide.settle, step.guide.recalibrate)
            else:
                await self._stop_guiding()
        elif isinstance(step, DitherStep):
            d = step.dither
            await self._dither(d.amount, d.ra_only, d.settle, SettleFailure.go_on)
        elif isinstance(step, WaitStep):
            await self._wait(step, scope)
        elif isinstance(step, SlewStep):
            await self._slew(step, scope)
        elif isinstance(step, ParkStep):
            assert s.mount is not None
            if self.guiding:  # PHD2 gone must not keep the mount from parking
                try:
                    await self._stop_guiding()
                except (GuiderError, DeviceError) as exc:
                    self._error(f"{leaf.id} (park): stopping guiding first failed: {exc}; "
                                "parking anyway")
            await actions.park(s.mount, s.clock, self.p.equipment.mount.slew_timeout
                               if self.p.equipment.mount else 300)
            self.bus.emit("parked")
        elif isinstance(step, StackStep):
            if s.stacking is None or self.target is None:
                return
            if step.stack == "off":
                self.stack = None
                await self.writer.drain()
                await s.stacking.end()
            else:
                self.stack = s.stacking.begin(self.target)
        elif isinstance(step, CalibrationStep):
            await self._calibration(leaf, step, scope)
        else:  # pragma: no cover - the compiler only emits known kinds
            raise NightrunnerError(f"cannot execute step kind {leaf.kind}")

    # ------------------------------------------------------------------ exposures

    def _settings(self, a: ExposeArgs) -> tuple[int, int | None, int | None]:
        d = self.p.plan.defaults.expose
        binning = a.binning or d.binning
        gain = a.gain if a.gain is not None else d.gain
        offset = a.offset if a.offset is not None else d.offset
        return binning, gain, offset

    async def _expose_step(self, leaf: Leaf, a: ExposeArgs, scope: Scope) -> None:
        if a.filter is not None:
            await self._change_filter(a.filter)
        for n in range(a.count):
            key = f"{leaf.id}{scope.suffix}#f{n}"
            if key in self.done_frames:
                self.counters.skipped_resume += 1
                continue
            await self._take_frame(key, a, a.type, a.exposure, scope)

    async def _take_frame(
        self, key: str, a: ExposeArgs, frame_type: FrameType, seconds: float, scope: Scope,
        *, subdir: str | None = None,
    ) -> Path:
        light = frame_type is FrameType.light
        if light:
            await self._before_light(scope)
        s = self.s
        cam = s.camera
        await self._apply_settings(a)
        timeout = seconds + self.p.equipment.camera.download_time + self.p.equipment.exposure_margin
        if s.guider is not None and self.guiding:
            s.guider.start_stats()
        self.current_exposure = {"key": key, "seconds": seconds, "type": frame_type.value,
                                 "started": s.clock.now().isoformat()}
        self.bus.emit("exposure_start", key=key, seconds=seconds, type=frame_type.value,
                      filter=self.filter, target=self.target.target.name if self.target else None)
        frame = await actions.expose(cam, s.clock, seconds, frame_type.value, timeout)
        self.current_exposure = None
        self.bus.emit("exposure_end", key=key)
        stats: GuideStats | None = (
            s.guider.stats() if (s.guider is not None and self.guiding) else None
        )
        meta = await self._frame_meta(frame, stats, None, subdir)
        meta["key"] = key  # written into the file: --resume keeps a frame the journal lost
        target_path = s.frames.allocate(frame, meta)
        # intent first: --resume adopts a file that was written but never journalled
        self.journal.record("writing", key=key, path=str(target_path), durable=False)
        # what the loop logic counts is taken now (the frame is in memory); what survives a
        # crash (the journal) only once the file is on disk
        self.done_frames[key] = str(target_path)
        if light:
            self.light_keys.add(key)
            self._lights_taken += 1
            trig.light_frame_done(self.state, None)  # counts now; the HFR when measured
        taken = _Taken(key, frame, frame_type, meta, target_path, seconds, stats,
                       self.target.target.name if self.target else None, self.filter,
                       self.state.to_dict(), self._focus_generation, self.stack)
        await self.writer.submit(lambda: self._write_frame(taken), frame.data.nbytes, key)
        return target_path

    async def _write_frame(self, t: _Taken) -> None:
        """Behind the exposure loop (FrameWriter): measure, write, journal, announce, stack."""
        s = self.s
        light = t.frame_type is FrameType.light
        hfr = None
        if light:  # every light, for the FITS card, the index and the report
            hfr = await asyncio.to_thread(s.measure_hfr, t.frame.data)
            if hfr is not None:
                hfr = round(hfr, 2)
            t.meta["hfr"] = hfr
            if t.focus_generation == self._focus_generation:  # not a frame from before a refocus
                trig.hfr_measured(self.state, hfr)
        path = await s.frames.save(t.frame, t.meta, t.path)
        # the journal is written only after the file is in place
        self.journal.record("frame", **frame_entry(
            t.key, str(path), frame_type=t.frame_type.value, filter_name=t.filter,
            target=t.target, triggers=t.triggers))
        self._count(t.frame_type, t.target, t.filter)
        rms = t.stats.rms_total if t.stats else None
        self.last_frame = {"path": str(path), "hfr": hfr, "type": t.frame_type.value,
                           "filter": t.filter, "guiding_rms": rms}
        self.bus.emit("frame", key=t.key, path=str(path), hfr=hfr, type=t.frame_type.value,
                      filter=t.filter, exposure=t.seconds, guiding_rms=rms)
        if light and t.stack is not None:
            accepted = t.stack.submit(path)
            if not accepted:
                self.bus.emit("stack_dropped", path=str(path))

    async def _apply_settings(self, a: ExposeArgs) -> None:
        """Send binning, gain, offset and ROI — only what differs from the last exposure (a
        reconnect forgets what was sent)."""
        from runner.devices.interfaces import RoiBox

        cam = self.s.camera
        binning, gain, offset = self._settings(a)
        roi = None if a.roi is None else RoiBox(a.roi.x, a.roi.y, a.roi.width, a.roi.height)
        wanted = (binning, gain, offset, roi, id(cam), self._connections)
        if wanted == self._sent_settings:
            return
        await cam.set_binning(binning)
        if gain is not None:
            await cam.set_gain(gain)
        if offset is not None:
            await cam.set_offset(offset)
        await cam.set_roi(roi)
        self._sent_settings = wanted

    def _count(self, frame_type: FrameType, target: str | None, filter_name: str | None) -> None:
        c = self.counters
        if frame_type is FrameType.light:
            c.lights += 1
        elif frame_type is FrameType.dark:
            c.darks += 1
        elif frame_type is FrameType.flat:
            c.flats += 1
        else:
            c.biases += 1
        if target is not None:
            per = c.per_target.setdefault(target, {})
            label = f"{frame_type.value}:{filter_name or '-'}"
            per[label] = per.get(label, 0) + 1

    async def _frame_meta(
        self, frame: Frame, stats: GuideStats | None, hfr: float | None, subdir: str | None
    ) -> dict[str, Any]:
        s = self.s
        focus_pos = focus_temp = None
        if s.focuser is not None:
            with contextlib.suppress(DeviceError):
                focus_pos = await s.focuser.position()
                focus_temp = await s.focuser.temperature()
        t = self.target.target if self.target else None
        return {
            "target": t.name if t else None,
            "ra": t.coordinates.ra if t else None,
            "dec": t.coordinates.dec if t else None,
            "filter": self.filter,
            "focus_position": focus_pos,
            "focus_temperature": focus_temp,
            "hfr": hfr,
            "guide_stats": stats,
            "subdir": subdir,
        }

    async def _before_light(self, scope: Scope) -> None:
        """The gap before a light exposure: pause, constraints, loop ends, triggers."""
        await self._pause_gate()
        if self.skip_requested is not None and scope.target is not None:
            reason, self.skip_requested = self.skip_requested, None
            raise SkipTarget(reason)
        if scope.target is not None:
            ok, reasons = self._constraints(scope.target.target)
            if not ok:
                raise SkipTarget("constraint no longer holds: " + "; ".join(reasons))
        for loop_id, until, outer_suffix, _ in scope.loops:
            reason = self._until_holds(until, loop_id, outer_suffix, scope.target)
            if reason:
                raise LoopExit(loop_id, reason)
        try:  # a restarted device server: reconnect it and restore what the night set
            await self.keeper.ensure()
        except RigNotRestored as exc:
            if scope.target is None:
                raise FatalRunError(str(exc)) from exc
            raise SkipTarget(str(exc)) from exc
        await self._triggers(scope)

    async def _pause_gate(self) -> None:
        if not self.pause_requested or self.model.state != "imaging:expose":
            return  # pause takes effect between exposures of the imaging phase
        await self.writer.drain()  # paused means quiet: every frame taken is on disk
        self._fire("pause")
        self.bus.emit("paused")
        before = await self._rig_snapshot()
        reported = False
        while not self._resumed.is_set():
            try:
                async with asyncio.timeout(self.s.clock.to_real(30.0)):
                    await self._resumed.wait()
            except TimeoutError:
                # constraints keep being evaluated while paused (SEMANTICS); the target ends
                # at resume if they no longer hold
                if self.target is not None and not reported:
                    ok, reasons = self._constraints(self.target.target)
                    if not ok:
                        reported = True
                        self.bus.emit("warning", message="while paused, constraints stopped "
                                      "holding: " + "; ".join(reasons))
        await self._restore_rig(before)
        self._fire("resume")
        self.bus.emit("resumed")

    async def _rig_snapshot(self) -> dict[str, Any]:
        """What a client may change while the night is paused (the control plane lends the
        rig): restored before the next exposure."""
        s = self.s
        snap: dict[str, Any] = {"focus": None, "set_point": None}
        with contextlib.suppress(NightrunnerError):
            if s.focuser is not None:
                snap["focus"] = await s.focuser.position()
            if await s.camera.cooler_on():
                snap["set_point"] = await s.camera.set_point()
        return snap

    async def _restore_rig(self, before: dict[str, Any]) -> None:
        s = self.s
        self._sent_settings = None  # gain, offset, binning, ROI are sent again
        restored: list[str] = []
        if self.filter is not None and s.filter_wheel is not None:
            slot = s.filter_slots.get(self.filter)
            if slot is not None and await s.filter_wheel.position() != slot:
                await self._move_filter(self.filter)
                restored.append("filter")
        if s.focuser is not None and await s.focuser.is_moving():
            await s.focuser.halt()  # a client's move is still running: stop it first
            for _ in range(100):
                if not await s.focuser.is_moving():
                    break
                await s.clock.sleep(0.5)
        if (before["focus"] is not None and s.focuser is not None
                and await s.focuser.position() != before["focus"]):
            await actions.move_focuser(s.focuser, s.clock, before["focus"],
                                       self.p.equipment.focuser.move_timeout
                                       if self.p.equipment.focuser else 120)
            restored.append("focus")
        if before["set_point"] is not None and (
            not await s.camera.cooler_on() or await s.camera.set_point() != before["set_point"]
        ):
            await s.camera.set_temperature(before["set_point"])
            restored.append("temperature")
        if restored:
            self.bus.emit("restored", what=restored)

    async def _triggers(self, scope: Scope) -> None:
        s = self.s
        tr = self.p.triggers
        # meridian flip (before autofocus and dither)
        if tr.meridian_flip is not None and scope.target is not None:
            await self._maybe_flip(scope.target)
        # guiding health: star lost, RMS gate
        if self.guiding and s.guider is not None:
            await self._guiding_health()
        temperature = None
        if s.focuser is not None:
            with contextlib.suppress(DeviceError):
                temperature = await s.focuser.temperature()
        if self.state.focus_temperature is None:
            self.state.focus_temperature = temperature
        due = trig.due(tr, self.state, now=s.clock.monotonic(), temperature=temperature,
                       guiding=self.guiding, any_light_yet=self._lights_taken > 0)
        if due.autofocus and tr.autofocus is not None:
            self.bus.emit("trigger", kind="autofocus", reason=due.autofocus)
            self._fire("begin_trigger_autofocus")
            try:
                await self._autofocus(tr.autofocus.settings)
            except DeviceError as exc:
                # the focuser is back where it was; reset the baselines so a failing
                # autofocus is not retried before every frame, and go on imaging
                self._error(f"triggered autofocus failed, keeping the previous focus: {exc}")
                self._focus_done(temperature)
            finally:
                self._fire("gap_done")
        if due.dither and tr.dither is not None:
            d = tr.dither
            self._fire("begin_trigger_dither")
            try:
                await self._dither(d.amount, d.ra_only, d.settle, d.on_settle_failure)
            finally:
                self._fire("gap_done")

    # ------------------------------------------------------------------ guiding

    async def _start_guiding(self, settle: Settle | None, recalibrate: bool) -> None:
        g = self.s.guider
        if g is None:
            raise GuiderError("no guider configured")
        st = settle or self.p.settle
        await g.guide(st.pixels, st.time, st.timeout, recalibrate)
        self.guiding = True
        self.bus.emit("guiding", state="guiding")

    async def _stop_guiding(self) -> None:
        g = self.s.guider
        if g is None:
            return
        await g.stop()
        self.guiding = False
        self.bus.emit("guiding", state="stopped")

    async def _dither(
        self, amount: float, ra_only: bool, settle: Settle | None, on_fail: SettleFailure
    ) -> None:
        g = self.s.guider
        if g is None or not self.guiding or await g.state() is not GuiderState.guiding:
            self.counters.dithers_skipped += 1
            self.bus.emit("warning", message="dither skipped: the guider is not guiding")
            trig.dither_done(self.state)
            return
        st = settle or self.p.settle
        attempts = 2 if on_fail is SettleFailure.retry_dither else 1
        for attempt in range(attempts):
            try:
                await g.dither(amount, ra_only, st.pixels, st.time, st.timeout)
                self.counters.dithers += 1
                trig.dither_done(self.state)
                self.bus.emit("dithered", amount=amount)
                return
            except SettleFailed as exc:
                self._error(f"dither settle failed: {exc}")
                if attempt + 1 < attempts:
                    continue
                trig.dither_done(self.state)
                if on_fail is SettleFailure.go_on or on_fail is SettleFailure.retry_dither:
                    return
                if on_fail is SettleFailure.skip_target:
                    raise SkipTarget(f"settling failed after dither: {exc}") from exc
                raise FatalRunError(f"settling failed after dither: {exc}") from exc

    async def _guiding_health(self) -> None:
        g = self.s.guider
        assert g is not None
        tr = self.p.triggers
        state = await g.state()
        if state is GuiderState.lost_lock or state is GuiderState.stopped:
            sl = tr.star_lost
            wait_s = sl.wait if sl else 30.0
            self.bus.emit("warning", message=f"guide star lost ({state.value}); recovering")
            self._fire("begin_recover_guiding")
            try:
                deadline = self.s.clock.monotonic() + wait_s
                while self.s.clock.monotonic() < deadline:
                    if await g.state() is GuiderState.guiding:
                        return
                    await self.s.clock.sleep(2.0)
                if sl is None or sl.restart_guiding:
                    try:
                        await self._start_guiding(None, False)
                        return
                    except (GuiderError, DeviceError) as exc:
                        self._error(f"restarting guiding failed: {exc}")
                then = sl.then if sl else Then.skip_target
                if then is Then.skip_step:
                    return
                if then is Then.skip_target:
                    raise SkipTarget("guide star lost and guiding could not be restored")
                raise FatalRunError("guide star lost and guiding could not be restored")
            finally:
                self._fire("gap_done")
        gate = tr.guiding_rms
        if gate is not None:
            deadline = self.s.clock.monotonic() + gate.wait
            while True:
                stats = g.stats()
                if stats is None or stats.rms_total <= gate.max_rms:
                    return
                if self.s.clock.monotonic() >= deadline:
                    self.bus.emit("warning", message=f"guiding RMS {stats.rms_total:.2f} above "
                                  f"{gate.max_rms:g} after {gate.wait:g} s; exposing anyway")
                    return
                g.start_stats()
                await self.s.clock.sleep(min(10.0, gate.wait))

    # ------------------------------------------------------------------ filter, focus, mount

    @contextlib.asynccontextmanager
    async def _guiding_paused(self, during: str) -> AsyncIterator[None]:
        """Pause guiding around an operation when ``defaults.guiding.pause_during`` says so;
        resuming waits for the guider to settle again before anything is exposed."""
        g = self.s.guider
        wanted = during in self.p.plan.defaults.guiding.pause_during
        if not (wanted and self.guiding and g is not None):
            yield
            return
        await g.pause(True)
        self.bus.emit("guiding", state="paused", during=during)
        try:
            yield
        finally:
            await g.pause(False)
            self.bus.emit("guiding", state="guiding", during=during)

    async def _change_filter(self, name: str) -> None:
        async with self._guiding_paused("filter"):
            await self._move_filter(name)

    async def _move_filter(self, name: str) -> None:
        s = self.s
        if s.filter_wheel is None:
            raise DeviceError("no filter wheel")
        slot = s.filter_slots[name]
        old = self.filter
        moved = await actions.move_filter(
            s.filter_wheel, s.clock, slot, self.p.equipment.filter_wheel.change_time * 4 + 30
            if self.p.equipment.filter_wheel else 60,
        )
        self.filter = name
        if moved or old is None:
            # apply the focus offset between filters (relative to the previous filter)
            if s.focuser is not None and old is not None and old != name:
                delta = self._focus_offset(name) - self._focus_offset(old)
                if delta:
                    pos = await s.focuser.position()
                    await actions.move_focuser(s.focuser, s.clock, pos + delta,
                                               self.p.equipment.focuser.move_timeout
                                               if self.p.equipment.focuser else 120)
            if moved:
                self.state.filter_changed = True
        self.bus.emit("filter", filter=name, moved=moved)

    def _focus_offset(self, name: str) -> int:
        fw = self.p.equipment.filter_wheel
        if fw is None:
            return 0
        return next((f.focus_offset for f in fw.filters if f.name == name), 0)

    async def _focus(self, step: FocusStep) -> None:
        s = self.s
        f = step.focus
        if s.focuser is None:
            raise DeviceError("no focuser")
        timeout = self.p.equipment.focuser.move_timeout if self.p.equipment.focuser else 120
        if f.auto is not None:
            await self._autofocus(f.auto)
            return
        if f.position is not None:
            await actions.move_focuser(s.focuser, s.clock, f.position, timeout)
        elif f.by is not None:
            pos = await s.focuser.position()
            await actions.move_focuser(s.focuser, s.clock, pos + f.by, timeout)
        self.bus.emit("focus", position=await s.focuser.position())

    async def _autofocus(self, settings: FocusAuto) -> None:
        s = self.s
        if s.autofocus is None or s.focuser is None:
            raise DeviceError("autofocus needs a focuser")
        async with self._guiding_paused("autofocus"):
            result = await s.autofocus(settings, self.filter)
        self.counters.autofocus_runs += 1
        temperature = None
        with contextlib.suppress(DeviceError):
            temperature = await s.focuser.temperature()
        self._focus_done(temperature)
        self.journal.record("trigger_state", state=self.state.to_dict())
        self.bus.emit("autofocus", **result)

    def _focus_done(self, temperature: float | None) -> None:
        self._focus_generation += 1
        trig.autofocus_done(self.state, now=self.s.clock.monotonic(), temperature=temperature,
                            filter_name=self.filter)

    async def _slew(self, step: SlewStep, scope: Scope) -> None:
        s = self.s
        if s.mount is None:
            raise DeviceError("no mount")
        ra, dec = step.slew.ra, step.slew.dec
        if ra is None or dec is None:
            if scope.target is None:
                raise DeviceError("slew without coordinates outside a target")
            ra = ra if ra is not None else scope.target.target.coordinates.ra
            dec = dec if dec is not None else scope.target.target.coordinates.dec
        was_guiding = self.guiding
        if was_guiding:
            await self._stop_guiding()
        eq = self.p.equipment
        await actions.slew(s.mount, s.clock, ra, dec, eq.mount.slew_timeout if eq.mount else 300)
        if eq.mount is not None:
            await s.clock.sleep(eq.mount.settle_time)
        self.bus.emit("slewed", ra=ra, dec=dec)
        if was_guiding:
            await self._start_guiding(None, False)

    async def _maybe_flip(self, ct: CompiledTarget) -> None:
        s = self.s
        mf = self.p.triggers.meridian_flip
        if mf is None or s.mount is None or s.visibility is None:
            return
        ha_hours = s.visibility(ct.target).hour_angle_at(s.clock.now())
        side = await s.mount.side_of_pier()
        minutes_past = ha_hours * 60.0
        # ASCOM convention: a target slewed to before the meridian is on pier side "west" and
        # stays so as it crosses; the flip puts the mount on "east"
        if mf.after <= minutes_past < 12 * 60 and side.value == "west":
            self.bus.emit("trigger", kind="meridian_flip", hour_angle=ha_hours)
            self._fire("begin_meridian_flip")
            try:
                await self._slew(SlewStep.model_validate({"slew": {}}), Scope(ct))
            finally:
                self._fire("gap_done")

    async def _wait(self, step: WaitStep, scope: Scope) -> None:
        s = self.s
        w = step.wait
        if w.for_ is not None:
            await s.clock.sleep(w.for_)
        elif w.until is not None:
            assert s.site_tz is not None
            now = s.clock.now()
            target_time = w.until.next_after(self._night_reference(), s.site_tz)
            if target_time < now:
                self.bus.emit("warning", message=f"wait until {w.until}: already past")
                return
            self.bus.emit("waiting", until=target_time.isoformat())
            await s.clock.sleep((target_time - now).total_seconds())
        elif w.altitude is not None and scope.target is not None and s.visibility is not None:
            vis = s.visibility(scope.target.target)
            while vis.altitude_at(s.clock.now()) < w.altitude:
                await s.clock.sleep(60.0)

    async def _calibration(self, leaf: Leaf, step: CalibrationStep, scope: Scope) -> None:
        c = step.calibration
        kind = FrameType(c.kind)
        args = ExposeArgs(count=c.count, exposure=1.0 if kind is not FrameType.bias else 0.0,
                          type=kind, gain=c.gain, offset=c.offset, binning=c.binning)
        plans: list[tuple[str | None, float]] = []
        if kind is FrameType.dark:
            plans = [(None, e) for e in c.exposures]
        elif kind is FrameType.bias:
            plans = [(None, 0.0)]
        else:
            filters = c.filters or ([self.filter] if self.filter else [None])  # type: ignore[list-item]
            exps = c.exposures or [1.0]
            for i, f in enumerate(filters):
                plans.append((f, exps[i] if len(exps) == len(filters) else exps[0]))
        for j, (filt, seconds) in enumerate(plans):
            if filt is not None:
                await self._change_filter(filt)
            for n in range(c.count):
                key = f"{leaf.id}{scope.suffix}#c{j}#f{n}"
                if key in self.done_frames:
                    continue
                await self._take_frame(key, args, kind, seconds, scope, subdir="calibration")
        self.bus.emit("calibration_set", kind=c.kind, sets=len(plans), count=c.count)
