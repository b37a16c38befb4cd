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
from collections.abc import Sequence

from runner.clock import timeout_real
from runner.engine import triggers as trig
from runner.engine.compiler import CompiledTarget, FilterLoop, Leaf, Loop, Node, Program
from runner.engine.events import EventBus
from runner.engine.exec_policy import PolicyMixin
from runner.engine.exec_types import (
    SAFETY_KINDS,
    Autofocuser,
    Counters,
    FatalRunError,
    FrameSink,
    LoopExit,
    Scope,
    Services,
    SkipTarget,
    Stacking,
    StackSink,
    Visibility,
)
from runner.engine.journal import Journal, ResumeState
from runner.engine.rig_restore import RigKeeper

log = logging.getLogger("nightrunner.engine")

__all__ = ["SAFETY_KINDS", "Autofocuser", "Counters", "Executor", "FatalRunError", "FrameSink",
           "LoopExit", "Scope", "Services", "SkipTarget", "StackSink", "Stacking", "Visibility"]

class Executor(PolicyMixin):
    """The night's flow: startup, targets (constraints, waits), loops, shutdown.

    The parts, one concern a module, stack up as base classes: exec_core (state, constraints,
    until-conditions) → exec_guiding → exec_focus (filters, focus) → exec_mount (slews,
    flips) → exec_gaps (between lights: pause, rig check, triggers) → exec_frames
    (exposures, frames, calibration) → exec_policy (retries, timeouts, step dispatch).
    """

    def __init__(
        self,
        program: Program,
        services: Services,
        bus: EventBus,
        journal: Journal,
        resume: ResumeState | None = None,
    ) -> None:
        super().__init__(program, services, bus, journal, resume)
        self.keeper = RigKeeper(self)

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
        # straight to the moment they hold, then (a sky that disagrees by a second) minutes
        await self.s.clock.sleep((start - now).total_seconds())
        while True:
            ok, reasons = self._constraints(ct.target)
            if ok:
                break
            if self.s.clock.monotonic() >= deadline:
                raise SkipTarget("constraints not met within the wait limit")
            await self.s.clock.sleep(min(60.0, max(1.0, deadline - self.s.clock.monotonic())))
        self._fire("begin_target")

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
                        self.bus.emit("loop_end", loop=loop.id, reason=reason, iterations=ran,
                                      cut=False)
                    return
            inner = Scope(scope.target, f"{scope.suffix}#i{i}", inner_loops, scope.phase)
            began = self.s.clock.monotonic()
            lights = self._loop_lights(loop.id, scope.suffix) if spec.until is not None else 0
            try:
                await self._run_nodes(loop.body, inner)
            except LoopExit as exc:
                if exc.loop_id != loop.id:
                    raise
                self.bus.emit("loop_end", loop=loop.id, reason=exc.reason, iterations=ran + 1,
                              cut=True)
                return
            self.journal.record("iteration_done", key=key)
            i += 1
            ran += 1
            if (spec.until is not None and self.s.clock.monotonic() == began
                    and self._loop_lights(loop.id, scope.suffix) == lights):
                # a body that takes no time would spin for ever: stop it, and say so
                reason = "its body takes no time (stopped to avoid looping for ever)"
                self.bus.emit("warning", message=f"repeat until {reason}", loop=loop.id)
                self.bus.emit("loop_end", loop=loop.id, reason=reason, iterations=ran, cut=False)
                return

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

