"""Guiding operations: guide and dither (never while settling; waiters registered before the
request), waiting for SettleDone under a watchdog, resuming after a reconnect, stop and pause."""


import asyncio
import contextlib
import logging
from typing import Any, NoReturn

from runner.clock import Deadline
from runner.devices.interfaces import GuiderState
from runner.errors import GuiderConnectionError, GuiderError, SettleFailed
from runner.guiding.phd2_connection import PHD2Connection
from runner.guiding.phd2_types import (
    NotGuidingError,
    SettleParams,
    SettleResult,
)
from runner.guiding.phd2_wire import Event

log = logging.getLogger(__name__)


class PHD2Guiding(PHD2Connection):
    """Guide, dither, settle, stop, pause."""

    # ------------------------------------------------------------------ guiding

    async def start_guiding(
        self, settle: SettleParams, *, recalibrate: bool = False,
        roi: tuple[int, int, int, int] | None = None,
    ) -> SettleResult:
        """Start (or re-settle) guiding; returns at SettleDone Status 0, else SettleFailed."""
        async with self._op_lock:
            await self._wait_no_settle(settle)
            params: dict[str, Any] = {"settle": settle.to_wire(), "recalibrate": recalibrate}
            if roi is not None:
                params["roi"] = list(roi)
            return await self._settle_op("guide", params, settle)

    async def dither(
        self, amount_px: float, settle: SettleParams, *, ra_only: bool = False
    ) -> SettleResult:
        """The dither sequence of docs/guiding.md: only while guiding, never during a settle,
        SettleDone waiter registered before sending, watchdog beyond PHD2's own timeout."""
        async with self._op_lock:
            if not self.connected:
                raise GuiderConnectionError(f"not connected to PHD2 at {self.host}:{self.port}")
            if self._app_state is not GuiderState.guiding:
                raise NotGuidingError(f"cannot dither: PHD2 is {self._app_state or 'unknown'}")
            await self._wait_no_settle(settle)
            params = {"amount": amount_px, "raOnly": ra_only, "settle": settle.to_wire()}
            return await self._settle_op("dither", params, settle)

    async def _wait_no_settle(self, settle: SettleParams) -> None:
        """Wait out a settle already running (ours, another client's, or one from before a
        reconnect): PHD2 refuses guide/dither meanwhile and the settle's SettleDone would be
        mistaken for ours."""
        if not self._settling and not await self.get_settling():
            return
        waiter = self.expect_event(lambda ev: ev.get("Event") == "SettleDone")
        if not self._settling and not await self.get_settling():
            waiter.cancel()
            return
        limit = settle.timeout_s + await self._watchdog_extra_s()
        log.info("PHD2 is settling; waiting for its SettleDone before going on")
        try:
            async with asyncio.timeout(self._real_timeout(limit)):
                await waiter
        except TimeoutError as exc:
            if await self.get_settling():
                raise GuiderError(
                    f"PHD2 still settling after {limit:g} s; not starting another settle"
                ) from exc
            self._settling = False

    async def _watchdog_extra_s(self) -> float:
        """Beyond PHD2's own timeout: its check runs only when a frame arrives (up to one
        exposure late), plus a margin and the real-time latency floor."""
        return 3 * await self._exposure() + self.settle_margin_s + self._grace_s()

    async def _settle_op(
        self, method: str, params: dict[str, Any], settle: SettleParams
    ) -> SettleResult:
        started = self.clock.monotonic()
        extra = await self._watchdog_extra_s()
        waiter = self.expect_event(lambda ev: ev.get("Event") == "SettleDone")
        self._settle_begun_at = None
        try:
            await self.call(method, params)
        except BaseException:
            waiter.cancel()  # refused: no SettleDone follows
            raise
        if method == "dither":
            # PHD2 sent SettleBegin before its response; guide may still be calibrating.
            self._settle_begun_at = self._settle_begun_at or self.clock.monotonic()
        ev = await self._await_settle_done(waiter, settle, started, extra, self._settle_done_seq)
        status = ev.get("Status", 1)
        if status != 0:
            raise SettleFailed(f"{method} did not settle: {ev.get('Error') or 'unknown error'}")
        return SettleResult(
            total_frames=int(ev.get("TotalFrames", 0)),
            dropped_frames=int(ev.get("DroppedFrames", 0)),
            duration_s=self.clock.monotonic() - started,
        )

    async def _await_settle_done(
        self, waiter: asyncio.Future[Event], settle: SettleParams, started: float, extra: float,
        seq_at_send: int,
    ) -> Event:
        while True:
            begun = self._settle_begun_at
            deadline = (begun + settle.timeout_s + extra) if begun is not None else (
                started + self.calibration_timeout_s + extra)
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                waiter.cancel()
                await self._watchdog_expired(settle, extra)
            # Re-evaluate the deadline at least every few clock seconds: SettleBegin (end of
            # calibration) moves it.
            chunk = self.clock.to_real(min(remaining, 5.0))
            try:
                done, _ = await asyncio.wait({waiter}, timeout=max(chunk, 0.001))
            except asyncio.CancelledError:
                waiter.cancel()
                raise
            if not done:
                continue
            try:
                return waiter.result()
            except GuiderConnectionError:
                if not self.auto_reconnect or self._closing:
                    raise
                waiter = await self._resume_after_reconnect(deadline, seq_at_send)

    async def _resume_after_reconnect(
        self, deadline: float, seq_at_send: int
    ) -> asyncio.Future[Event]:
        """The socket dropped mid-settle: once reconnected, keep waiting if PHD2 still settles;
        otherwise the SettleDone went out while we were away and its outcome is unknown."""
        log.warning("PHD2 connection dropped during a settle; waiting for the reconnect")
        await self.wait_connected(max(deadline - self.clock.monotonic(), 0.0))
        waiter = self.expect_event(lambda ev: ev.get("Event") == "SettleDone")
        if self._settle_done_seq > seq_at_send and self._last_settle_done is not None:
            # SettleDone arrived right after the reconnect, before we got here.
            waiter.cancel()
            done: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
            done.set_result(self._last_settle_done)
            return done
        if await self.get_settling() or waiter.done():
            self._settling = True
            if self._settle_begun_at is None:
                self._settle_begun_at = self.clock.monotonic()
            return waiter
        waiter.cancel()
        self._settling = False
        raise SettleFailed(
            "connection to PHD2 dropped during the settle and PHD2 finished settling while "
            "disconnected; the outcome is unknown"
        )

    async def _watchdog_expired(self, settle: SettleParams, extra: float) -> NoReturn:
        settling = await self.get_settling()
        state = await self.get_app_state()
        self._settling = settling
        raise SettleFailed(
            f"no SettleDone within PHD2's timeout ({settle.timeout_s:g} s) + {extra:g} s; "
            f"PHD2 reports settling={settling}, state={state.value}"
        )

    async def stop_capture(self, timeout_s: float = 60.0) -> None:
        """Stop guiding and looping; returns once PHD2 is Stopped.

        PHD2 finishes the exposure in progress first, may still send a GuideStep, and
        GuidingStopped is not guaranteed: after one exposure's worth of waiting for the event,
        ``get_app_state`` is polled until it says Stopped.
        """
        waiter = self.expect_event(
            lambda ev: ev.get("Event") in ("GuidingStopped", "LoopingExposuresStopped"))
        try:
            await self.call("stop_capture")
            exposure = await self._exposure()
            # GuidingStopped may never come: on timeout, poll below.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._real_timeout(exposure + self.settle_margin_s)):
                    await asyncio.shield(waiter)
        finally:
            waiter.cancel()
        deadline = Deadline(self.clock, timeout_s)
        while True:
            state = await self.get_app_state()
            if state is GuiderState.stopped:
                return
            if deadline.expired():
                raise GuiderError(f"PHD2 still {state.value} {timeout_s:g} s after stop_capture")
            await self.clock.sleep(max(exposure / 2, 0.1))

    async def stop_guiding(self, timeout_s: float = 60.0) -> None:
        await self.stop_capture(timeout_s)

    async def pause_guiding(self, *, full: bool = False) -> None:
        """Pause guide output (``full`` also pauses the exposures)."""
        await self.call("set_paused", [True, "full"] if full else [True])

    async def resume_guiding(self) -> None:
        await self.call("set_paused", [False])

    async def is_paused(self) -> bool:
        return bool(await self.call("get_paused"))

