"""Guiding: start/stop, dithers under the settle policy, star-lost recovery and the RMS
gate, and pausing guiding around filter changes and autofocus."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from runner.devices.interfaces import GuiderState
from runner.engine import triggers as trig
from runner.engine.exec_core import ExecutorCore
from runner.engine.exec_types import (
    FatalRunError,
    SkipTarget,
)
from runner.errors import (
    DeviceError,
    GuiderError,
    SettleFailed,
)
from runner.plan.models import (
    Settle,
    SettleFailure,
    Then,
)

log = logging.getLogger("nightrunner.engine")


class GuidingMixin(ExecutorCore):
    """The guider as the night uses it."""

    async def _start_guiding(self, settle: Settle | None, recalibrate: bool) -> None:
        g = self.s.guider
        if g is None:
            raise GuiderError("no guider configured")
        st = settle or self.p.settle
        began = self.s.clock.now()
        await g.guide(st.pixels, st.time, st.timeout, recalibrate)
        self.guiding = True
        self.bus.emit("guiding", state="guiding")
        self._settled("guide", began, st)

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
                began = self.s.clock.now()
                await g.dither(amount, ra_only, st.pixels, st.time, st.timeout)
                self.counters.dithers += 1
                trig.dither_done(self.state)
                self.bus.emit("dithered", amount=amount)
                self._settled("dither", began, st)
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

    def _settled(self, after: str, began: datetime, st: Settle) -> None:
        """The guider settled (within ``pixels`` for ``time`` s) after a start or a dither."""
        self.bus.emit("settled", after=after, pixels=st.pixels,
                      seconds=round((self.s.clock.now() - began).total_seconds(), 1))

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
