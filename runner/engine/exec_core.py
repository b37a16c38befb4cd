"""The executor's state and the questions every part of it asks: do the target's constraints
hold, does a loop's until-condition hold, what clock times resolve after; and the helpers
every part uses (errors, the state machine, reconnecting)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runner.engine import triggers as trig
from runner.engine.compiler import CompiledTarget, Leaf, Program
from runner.engine.events import EventBus
from runner.engine.exec_types import (
    Counters,
    Services,
    StackSink,
)
from runner.engine.frame_writer import FrameWriter
from runner.engine.journal import Journal, ResumeState
from runner.engine.loop_lights import LoopLights
from runner.engine.machine import RunModel
from runner.plan.models import (
    RepeatUntil,
    Target,
)

if TYPE_CHECKING:
    from runner.engine.rig_restore import RigKeeper

log = logging.getLogger("nightrunner.engine")


class ExecutorCore:
    """State of one night; see executor.Executor for the whole."""

    keeper: RigKeeper  # set by Executor (it needs the whole executor)

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
        self.light_keys = LoopLights(self.resume.lights)
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
        self._step: tuple[Leaf, asyncio.Future[bool]] | None = None  # the step running now
        self._skip_step_reason: str | None = None
        self.stack_ending: asyncio.Future[None] | None = None  # a stack ended by an abort


    # ------------------------------------------------------------------ shared queries

    def _constraints(self, t: Target) -> tuple[bool, list[str]]:
        if self.s.visibility is None:
            return True, []
        return self.s.visibility(t).holds_at(self.s.clock.now())

    def _loop_lights(self, loop_id: str, outer_suffix: str) -> int:
        """Light frames taken inside one run of a loop (all its iterations, resumed ones too)."""
        return self.light_keys.in_loop(loop_id, outer_suffix)

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

