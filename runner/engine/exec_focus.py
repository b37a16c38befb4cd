"""Filters and focus: filter changes with their focus offsets, focuser moves, autofocus
(which resets every autofocus baseline)."""

from __future__ import annotations

import contextlib
import logging

from runner.engine import actions
from runner.engine import triggers as trig
from runner.engine.exec_guiding import GuidingMixin
from runner.errors import (
    DeviceError,
)
from runner.plan.models import (
    FocusAuto,
    FocusStep,
)

log = logging.getLogger("nightrunner.engine")


class FocusMixin(GuidingMixin):
    """Filter wheel and focuser."""

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
        # apply the focus offset between filters (relative to the previous filter)
        if moved and s.focuser is not None and old is not None and old != name:
            delta = self._focus_offset(name) - self._focus_offset(old)
            if delta:
                pos = await s.focuser.position()
                await actions.move_focuser(s.focuser, s.clock, pos + delta,
                                           self.p.equipment.focuser.move_timeout
                                           if self.p.equipment.focuser else 120)
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
