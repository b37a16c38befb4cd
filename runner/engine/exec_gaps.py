"""The gap before a light exposure: pause, skip requests, constraints, loop ends, the rig
check (RigKeeper), then the triggers in SEMANTICS' order: meridian flip → guiding health →
autofocus → dither."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from runner.engine import actions
from runner.engine import triggers as trig
from runner.engine.exec_mount import MountMixin
from runner.engine.exec_types import (
    FatalRunError,
    LoopExit,
    Scope,
    SkipTarget,
)
from runner.engine.rig_restore import RigNotRestored
from runner.errors import (
    DeviceError,
    NightrunnerError,
)

log = logging.getLogger("nightrunner.engine")


class GapsMixin(MountMixin):
    """What happens between light frames."""

    async def _before_light(self, scope: Scope, exposure: float | None = None) -> None:
        """The gap before a light exposure: pause, skip requests, the enclosing loops' ends (a
        loop that is done ends normally), the target's constraints, the rig, the triggers —
        and if the triggers took time, the loops and constraints again, since the exposure
        starts only after them."""
        await self._pause_gate()
        if self.skip_requested is not None and scope.target is not None:
            reason, self.skip_requested = self.skip_requested, None
            raise SkipTarget(reason)
        self._check_loops_and_constraints(scope)
        try:  # a restarted device server: reconnect it and restore what the night set
            await self.keeper.ensure()
        except RigNotRestored as exc:
            if scope.target is None:
                raise FatalRunError(str(exc)) from exc
            raise SkipTarget(str(exc)) from exc
        before = self.s.clock.monotonic()
        await self._triggers(scope, exposure)
        if self.s.clock.monotonic() != before:
            self._check_loops_and_constraints(scope)

    def _check_loops_and_constraints(self, scope: Scope) -> None:
        for loop_id, until, outer_suffix, _ in scope.loops:
            reason = self._until_holds(until, loop_id, outer_suffix, scope.target)
            if reason:
                raise LoopExit(loop_id, reason)
        if scope.target is not None:
            ok, reasons = self._constraints(scope.target.target)
            if not ok:
                raise SkipTarget("constraint no longer holds: " + "; ".join(reasons))

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

    async def _triggers(self, scope: Scope, exposure: float | None = None) -> None:
        s = self.s
        tr = self.p.triggers
        # meridian flip (before autofocus and dither)
        if tr.meridian_flip is not None and scope.target is not None:
            await self._maybe_flip(scope.target, exposure)
        # guiding health: star lost, RMS gate
        if self.guiding and s.guider is not None:
            await self._guiding_health()
        temperature = None
        if s.focuser is not None:
            with contextlib.suppress(DeviceError):
                temperature = await s.focuser.temperature()
        if self.state.focus_temperature is None:
            self.state.focus_temperature = temperature
        reference = self.state.focus_filter or self.state.light_filter
        self.state.filter_changed = reference is not None and self.filter != reference
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

