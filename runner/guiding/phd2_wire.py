"""The PHD2 client's wire: state, listeners and waiters, reading lines and events in wire
order (state derived from events), and sending calls and notifications. See phd2_client."""


import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runner.clock import Clock, ScaledClock
from runner.devices.interfaces import GuiderState
from runner.errors import GuiderConnectionError, GuiderError
from runner.guiding.phd2_types import (
    GuideStatsAccumulator,
    GuideStepInfo,
    PHD2RpcError,
    SettleProgress,
)

log = logging.getLogger(__name__)

Event = Mapping[str, Any]


EventListener = Callable[[Event], None]

#: How PHD2's documentation says a client keeps its notion of AppState current.
_STATE_AFTER_EVENT: dict[str, GuiderState] = {
    "GuideStep": GuiderState.guiding,
    "StartGuiding": GuiderState.guiding,
    "Resumed": GuiderState.guiding,
    "Paused": GuiderState.paused,
    "StartCalibration": GuiderState.calibrating,
    "LoopingExposures": GuiderState.looping,
    "LoopingExposuresStopped": GuiderState.stopped,
    "GuidingStopped": GuiderState.stopped,
    "StarLost": GuiderState.lost_lock,
}

#: A single JSON line from PHD2 can hold a 63×63 star stamp; leave generous room.
_READ_LIMIT_BYTES = 1 << 20


def _encode(obj: object) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\r\n").encode("utf-8")


class _EventWaiter:
    """A future resolved by the first event that satisfies ``predicate``."""

    __slots__ = ("future", "predicate")

    def __init__(self, predicate: Callable[[Event], bool]) -> None:
        self.predicate = predicate
        self.future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()



class PHD2Wire:
    """Messages in and out of one PHD2 connection, and the state they carry."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4400,
        *,
        clock: Clock | None = None,
        pixel_scale_arcsec: float | None = None,
        auto_reconnect: bool = True,
        call_timeout_s: float = 15.0,
        connect_timeout_s: float = 10.0,
        equipment_timeout_s: float = 120.0,
        calibration_timeout_s: float = 600.0,
        settle_margin_s: float = 10.0,
        min_real_timeout_s: float = 2.0,
        reconnect_initial_s: float = 1.0,
        reconnect_max_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.clock: Clock = clock or ScaledClock()
        self.pixel_scale_arcsec = pixel_scale_arcsec
        self._pixel_scale_given = pixel_scale_arcsec is not None
        self.auto_reconnect = auto_reconnect
        self.call_timeout_s = call_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.equipment_timeout_s = equipment_timeout_s
        self.calibration_timeout_s = calibration_timeout_s
        self.settle_margin_s = settle_margin_s
        self.min_real_timeout_s = min_real_timeout_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s

        self._ids = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._generation = 0
        self._closing = True
        self._connected = asyncio.Event()
        self._catchup_done: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[_EventWaiter] = []
        self._listeners: list[EventListener] = []
        self._op_lock = asyncio.Lock()

        self._app_state: GuiderState | None = None
        self._settling = False
        self._settle_begun_at: float | None = None
        self._settle_progress: SettleProgress | None = None
        self._settle_done_seq = 0
        self._last_settle_done: Event | None = None
        self._exposure_s: float | None = None
        self.version: str | None = None
        self.lock_position_px: tuple[float, float] | None = None
        self.reconnects = 0
        self._stats = GuideStatsAccumulator()
        self._stats_active = False
        self.last_guide_step: GuideStepInfo | None = None

    # ------------------------------------------------------------------ properties

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def app_state(self) -> GuiderState | None:
        """PHD2's state as derived from events; None before the first connect."""
        return self._app_state

    @property
    def settling(self) -> bool:
        """True between SettleBegin (or our own guide/dither request) and SettleDone."""
        return self._settling or self._op_lock.locked()

    @property
    def settle_progress(self) -> SettleProgress | None:
        """The latest ``Settling`` report of the settle in progress (None outside settles)."""
        return self._settle_progress

    # ------------------------------------------------------------------ timing helpers

    def _real_timeout(self, clock_s: float) -> float:
        return max(self.clock.to_real(clock_s), self.min_real_timeout_s)

    def _grace_s(self) -> float:
        """Clock seconds that correspond to the real-time floor (network latency allowance)."""
        return self.min_real_timeout_s * self.clock.speed

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener(event)`` for every PHD2 event; returns a function that removes it.

        Listeners run on the reader task, after the client updated its own state; they must
        not block. An exception in a listener is logged, never propagated into the reader.
        """
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def expect_event(self, predicate: Callable[[Event], bool]) -> asyncio.Future[Event]:
        """A future for the first *future* event matching ``predicate``.

        Register it before sending the request that causes the event: PHD2 may send the event
        before its response. Cancel the future if it is no longer wanted.
        """
        w = _EventWaiter(predicate)
        self._waiters.append(w)
        return w.future

    async def wait_event(self, predicate: Callable[[Event], bool], timeout_s: float) -> Event:
        fut = self.expect_event(predicate)
        try:
            async with asyncio.timeout(self._real_timeout(timeout_s)):
                return await fut
        except TimeoutError as exc:
            raise GuiderError(f"no matching PHD2 event within {timeout_s:g} s") from exc


    # ------------------------------------------------------------------ wire in

    def _handle_line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        try:
            msg = json.loads(text)
        except ValueError:
            log.warning("PHD2 sent a line that is not JSON, ignored: %.200s", text)
            return
        if isinstance(msg, list):  # a batch reply
            for item in msg:
                self._handle_message(item)
        else:
            self._handle_message(msg)

    def _handle_message(self, msg: object) -> None:
        if not isinstance(msg, dict):
            log.warning("PHD2 sent a JSON value that is neither event nor response: %.200r", msg)
            return
        if "Event" in msg:
            self._handle_event(msg)
        elif "jsonrpc" in msg or "id" in msg:
            self._handle_response(msg)
        else:
            log.warning("PHD2 sent an unrecognised message: %.200r", msg)

    def _handle_response(self, msg: dict[str, Any]) -> None:
        req_id = msg.get("id")
        fut = self._pending.pop(req_id, None) if isinstance(req_id, int) else None
        if fut is None:
            # PHD2 answers parse errors and over-long lines with id null; we never send those,
            # so such a reply means a bug on one side — make it visible.
            log.error("PHD2 response matches no request: %.300r", msg)
            return
        if not fut.done():
            fut.set_result(msg)

    def _handle_event(self, ev: dict[str, Any]) -> None:
        name = ev.get("Event")
        if not isinstance(name, str):
            log.warning("PHD2 event without a name: %.200r", ev)
            return
        self._apply_event(name, ev)
        for w in list(self._waiters):
            if w.future.done():
                self._waiters.remove(w)
                continue
            try:
                matched = w.predicate(ev)
            except Exception:
                log.exception("event predicate failed on %s", name)
                matched = False
            if matched:
                w.future.set_result(ev)
                self._waiters.remove(w)
        for listener in list(self._listeners):
            try:
                listener(ev)
            except Exception:
                log.exception("PHD2 event listener failed on %s", name)

    def _apply_event(self, name: str, ev: dict[str, Any]) -> None:
        if name == "AppState":
            try:
                self._app_state = GuiderState(str(ev.get("State")))
            except ValueError:
                log.warning("PHD2 reported an unknown AppState %r", ev.get("State"))
            if self._catchup_done is not None and not self._catchup_done.done():
                self._catchup_done.set_result(None)
            return
        state = _STATE_AFTER_EVENT.get(name)
        if state is not None:
            self._app_state = state
        if name == "Version":
            self.version = f"{ev.get('PHDVersion', '?')}{ev.get('PHDSubver', '')}"
        elif name == "LockPositionSet":
            self.lock_position_px = (float(ev.get("X", 0.0)), float(ev.get("Y", 0.0)))
        elif name == "LockPositionLost":
            self.lock_position_px = None
        elif name == "SettleBegin":
            self._settling = True
            self._settle_begun_at = self.clock.monotonic()
            self._settle_progress = None
        elif name == "Settling":
            self._settle_progress = SettleProgress(
                distance_px=float(ev.get("Distance", 0.0)),
                time_in_range_s=float(ev.get("Time", 0.0)),
                settle_time_s=float(ev.get("SettleTime", 0.0)),
                star_locked=bool(ev.get("StarLocked", False)),
            )
        elif name == "SettleDone":
            self._settle_done_seq += 1
            self._last_settle_done = ev
            self._settling = False
            self._settle_begun_at = None
            self._settle_progress = None
        elif name == "GuideStep":
            step = GuideStepInfo.from_event(ev)
            self.last_guide_step = step
            if self._stats_active:
                self._stats.add(step.ra_px, step.dec_px)

    # ------------------------------------------------------------------ wire out

    def _require_writer(self) -> asyncio.StreamWriter:
        if self._writer is None:
            raise GuiderConnectionError(f"not connected to PHD2 at {self.host}:{self.port}")
        return self._writer

    async def call(
        self, method: str, params: Sequence[Any] | Mapping[str, Any] | None = None,
        *, timeout_s: float | None = None,
    ) -> Any:
        """Send one request and return its ``result``; raise PHD2RpcError on an error reply."""
        writer = self._require_writer()
        req_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        msg: dict[str, Any] = {"method": method, "id": req_id}
        if params is not None:
            msg["params"] = params
        try:
            writer.write(_encode(msg))
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            self._pending.pop(req_id, None)
            raise GuiderConnectionError(f"cannot send {method} to PHD2: {exc}") from exc
        limit = self.call_timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(self._real_timeout(limit)):
                reply = await fut
        except TimeoutError as exc:
            raise GuiderError(f"PHD2 did not answer {method} within {limit:g} s") from exc
        finally:
            self._pending.pop(req_id, None)
        err = reply.get("error")
        if err is not None:
            code = err.get("code", 0) if isinstance(err, dict) else 0
            text = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            raise PHD2RpcError(method, int(code), str(text))
        return reply.get("result")

    async def notify(
        self, method: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> None:
        """Send a request without ``id``: PHD2 runs it and sends no reply."""
        writer = self._require_writer()
        msg: dict[str, Any] = {"method": method}
        if params is not None:
            msg["params"] = params
        try:
            writer.write(_encode(msg))
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            raise GuiderConnectionError(f"cannot send {method} to PHD2: {exc}") from exc

