"""An asyncio client for PHD2's event server (JSON-RPC 2.0 over TCP, one JSON object per line).

Why it is shaped this way (docs/guiding.md has the full story):

* **One reader task** owns the socket's read side. It matches responses to requests by ``id``
  and dispatches events in wire order, so state changes are applied exactly in the order PHD2
  sent them — including the events PHD2 sends *before* the response to ``dither`` or ``guide``.
* **State is derived from events.** PHD2 sends ``AppState`` once, at connect; afterwards the
  client maps events to states (GuideStep → Guiding, StarLost → LostLock …) as PHD2's own
  documentation prescribes. ``get_app_state`` is only polled to re-sync after a lost event.
* **Waiters are registered before requests are sent**, so a ``SettleDone`` that precedes the
  ``{"result": 0}`` of its ``guide`` is never missed.
* **Never dither while settling**: guide/dither from this client are serialised, and before each
  one the client waits for a settle it knows about (own flag, or ``get_settling``).
* **Timeouts are clock seconds** (``runner.clock``) so the simulator and the client speed up
  together; a floor in real seconds keeps an accelerated clock from turning ordinary network
  latency into timeouts.
* A dropped socket fails every pending call and waiter with ``GuiderConnectionError`` and, unless
  the caller disconnected on purpose, reconnects with exponential back-off; the catch-up events
  rebuild the state and ``get_settling`` is asked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from runner.clock import Clock, ScaledClock
from runner.devices.interfaces import GuiderState, GuideStats
from runner.errors import GuiderConnectionError, GuiderError, SettleFailed
from runner.guiding.phd2_types import (
    EquipmentDevice,
    GuideStatsAccumulator,
    GuideStepInfo,
    NotGuidingError,
    PHD2Profile,
    PHD2RpcError,
    SettleParams,
    SettleProgress,
    SettleResult,
    StarImage,
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


class PHD2Client:
    """A connection to one PHD2 instance (or the simulator), with the whole seed-001 surface.

    ``pixel_scale_arcsec`` (guide camera, arcsec/px) turns RMS into arcsec; when None it is asked
    from PHD2 (``get_pixel_scale``) on connect and stats stay in pixels if PHD2 does not know it.
    """

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
            return await asyncio.wait_for(fut, self._real_timeout(timeout_s))
        except TimeoutError as exc:
            raise GuiderError(f"no matching PHD2 event within {timeout_s:g} s") from exc

    # ------------------------------------------------------------------ connection

    async def connect_server(self, port: int | None = None, host: str | None = None) -> None:
        """Open the connection and wait for PHD2's catch-up events (ending with AppState)."""
        if port is not None:
            self.port = port
        if host is not None:
            self.host = host
        if self.connected:
            return
        self._closing = False
        try:
            await self._open()
        except BaseException:
            self._closing = True
            raise

    async def disconnect_server(self) -> None:
        """Close on purpose: no reconnect; pending calls fail with GuiderConnectionError."""
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
            self._reconnect_task = None
        writer, task = self._writer, self._reader_task
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._on_connection_lost(self._generation, None)

    async def reconnect_server(self) -> None:
        await self.disconnect_server()
        await self.connect_server()

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the (re)connection is up; raises GuiderConnectionError on timeout."""
        try:
            await asyncio.wait_for(self._connected.wait(), self._real_timeout(timeout_s))
        except TimeoutError as exc:
            raise GuiderConnectionError(
                f"PHD2 at {self.host}:{self.port} did not come back within {timeout_s:g} s"
            ) from exc

    async def _open(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=_READ_LIMIT_BYTES),
                self._real_timeout(self.connect_timeout_s),
            )
        except (OSError, TimeoutError) as exc:
            raise GuiderConnectionError(
                f"cannot connect to PHD2 at {self.host}:{self.port}: {exc}"
            ) from exc
        self._generation += 1
        gen = self._generation
        loop = asyncio.get_running_loop()
        self._catchup_done = loop.create_future()
        self._writer = writer
        self._reader_task = asyncio.create_task(
            self._read_loop(reader, gen), name=f"phd2-reader-{self.host}:{self.port}"
        )
        try:
            await asyncio.wait_for(
                asyncio.shield(self._catchup_done), self._real_timeout(self.connect_timeout_s)
            )
        except TimeoutError as exc:
            writer.close()
            raise GuiderConnectionError(
                f"{self.host}:{self.port} accepted the connection but sent no PHD2 AppState"
            ) from exc
        # Facts other calls depend on, fetched before anyone sees the connection as up.
        if not self._pixel_scale_given:
            self.pixel_scale_arcsec = await self.get_pixel_scale()
        await self.get_exposure_s()
        self._connected.set()
        log.info("connected to PHD2 %s at %s:%s (%s)", self.version, self.host, self.port,
                 self._app_state)

    async def _read_loop(self, reader: asyncio.StreamReader, gen: int) -> None:
        error: BaseException | None = None
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                self._handle_line(line)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError, ValueError) as exc:
            # ValueError: a line longer than the read limit — the stream is unusable.
            error = exc
        finally:
            if gen == self._generation:
                self._on_connection_lost(gen, error)

    def _on_connection_lost(self, gen: int, error: BaseException | None) -> None:
        if gen != self._generation:
            return
        self._generation += 1
        was_connected = self.connected
        self._connected.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        reason = f": {error}" if error else ""
        err_text = f"connection to PHD2 at {self.host}:{self.port} lost{reason}"
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(GuiderConnectionError(err_text))
        self._pending.clear()
        for w in self._waiters:
            if not w.future.done():
                w.future.set_exception(GuiderConnectionError(err_text))
        self._waiters.clear()
        if self._catchup_done is not None and not self._catchup_done.done():
            self._catchup_done.set_exception(GuiderConnectionError(err_text))
            self._catchup_done.exception()  # retrieved here; _open reports the failure itself
        if self._closing:
            return
        if was_connected:
            log.warning("%s", err_text)
        if self.auto_reconnect and (self._reconnect_task is None or self._reconnect_task.done()):
            self._reconnect_task = asyncio.create_task(
                self._reconnect_loop(), name="phd2-reconnect"
            )

    async def _reconnect_loop(self) -> None:
        delay = self.reconnect_initial_s
        while not self._closing:
            await self.clock.sleep(delay)
            if self._closing:
                return
            try:
                await self._open()
            except GuiderConnectionError as exc:
                log.warning("PHD2 reconnect failed (%s); next try in %g s", exc, delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            self.reconnects += 1
            try:
                self._settling = bool(await self.call("get_settling"))
            except GuiderError as exc:
                log.warning("PHD2 re-sync after reconnect failed: %s", exc)
            return

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
            reply = await asyncio.wait_for(fut, self._real_timeout(limit))
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

    # ------------------------------------------------------------------ state queries

    async def get_app_state(self) -> GuiderState:
        """Ask PHD2 (a poll, used to re-sync); also refreshes the derived state."""
        raw = await self.call("get_app_state")
        try:
            state = GuiderState(raw)
        except ValueError as exc:
            raise GuiderError(f"PHD2 reported an unknown state {raw!r}") from exc
        self._app_state = state
        return state

    async def get_settling(self) -> bool:
        return bool(await self.call("get_settling"))

    async def get_pixel_scale(self) -> float | None:
        """Guide camera scale, arcsec/px, or None when PHD2 does not know it."""
        v = await self.call("get_pixel_scale")
        return float(v) if isinstance(v, int | float) else None

    async def get_exposure_s(self) -> float:
        ms = await self.call("get_exposure")
        self._exposure_s = float(ms) / 1000.0
        return self._exposure_s

    async def set_exposure_s(self, seconds: float) -> None:
        await self.call("set_exposure", [round(seconds * 1000)])
        self._exposure_s = round(seconds * 1000) / 1000.0

    async def _exposure(self) -> float:
        return self._exposure_s if self._exposure_s is not None else await self.get_exposure_s()

    # ------------------------------------------------------------------ profiles & equipment

    async def get_profiles(self) -> list[PHD2Profile]:
        """All profiles; the selected one carries its devices (PHD2 exposes no others)."""
        raw = await self.call("get_profiles")
        devices = await self._current_devices()
        out: list[PHD2Profile] = []
        for p in raw or []:
            selected = bool(p.get("selected", False))
            out.append(PHD2Profile(
                id=int(p["id"]), name=str(p["name"]), selected=selected,
                devices=devices if selected else {},
            ))
        return out

    async def get_current_profile(self) -> PHD2Profile:
        raw = await self.call("get_profile")
        return PHD2Profile(
            id=int(raw["id"]), name=str(raw["name"]), selected=True,
            devices=await self._current_devices(),
        )

    async def _current_devices(self) -> dict[str, EquipmentDevice]:
        try:
            raw = await self.call("get_current_equipment")
        except PHD2RpcError as exc:
            if exc.code == -32601:  # older PHD2 without the method
                return {}
            raise
        return {
            str(k): EquipmentDevice(name=str(v.get("name", "")), connected=bool(v.get("connected")))
            for k, v in (raw or {}).items()
            if isinstance(v, dict)
        }

    async def set_profile(self, profile: int | str) -> PHD2Profile:
        """Select a profile by id or name; equipment is disconnected first, as PHD2 requires."""
        profiles = await self.get_profiles()
        match = [p for p in profiles if p.id == profile or p.name == profile]
        if not match:
            names = ", ".join(f"{p.id}:{p.name}" for p in profiles)
            raise GuiderError(f"PHD2 has no profile {profile!r} (has {names})")
        target = match[0]
        if not target.selected:
            if await self.equipment_connected():
                await self.disconnect_equipment()
            await self.call("set_profile", [target.id])
        return await self.get_current_profile()

    async def equipment_connected(self) -> bool:
        return bool(await self.call("get_connected"))

    async def connect_equipment(self) -> None:
        """``set_connected true`` — synchronous and slow in PHD2, hence its own timeout."""
        await self.call("set_connected", [True], timeout_s=self.equipment_timeout_s)

    async def disconnect_equipment(self) -> None:
        await self.call("set_connected", [False], timeout_s=self.equipment_timeout_s)

    async def reconnect_equipment(self) -> None:
        await self.disconnect_equipment()
        await self.connect_equipment()

    # ------------------------------------------------------------------ calibration

    async def is_calibrated(self) -> bool:
        return bool(await self.call("get_calibrated"))

    async def clear_calibration(self, which: str = "both") -> None:
        if which not in ("mount", "ao", "both"):
            raise ValueError(f"which must be mount, ao or both, not {which!r}")
        await self.call("clear_calibration", [which])

    async def flip_calibration(self) -> None:
        await self.call("flip_calibration")

    async def start_calibration(self, settle: SettleParams) -> None:
        """Calibrate now. PHD2 calibrates only as part of ``guide``, so this sends ``guide`` with
        ``recalibrate=true`` and returns at ``CalibrationComplete``; guiding then continues and
        settles on its own (a later guide/dither waits for that settle)."""
        async with self._op_lock:
            await self._wait_no_settle(settle)
            waiter = self.expect_event(lambda ev: ev.get("Event") in (
                "CalibrationComplete", "CalibrationFailed", "SettleDone"))
            try:
                await self.call("guide", {"settle": settle.to_wire(), "recalibrate": True})
                ev = await asyncio.wait_for(
                    asyncio.shield(waiter), self._real_timeout(self.calibration_timeout_s)
                )
            except TimeoutError as exc:
                raise GuiderError(
                    f"calibration did not finish within {self.calibration_timeout_s:g} s"
                ) from exc
            finally:
                waiter.cancel()
            if ev.get("Event") == "CalibrationFailed":
                raise GuiderError(f"calibration failed: {ev.get('Reason', 'no reason given')}")
            if ev.get("Event") == "SettleDone" and ev.get("Status", 1) != 0:
                raise GuiderError(f"calibration did not start: {ev.get('Error', '')}")

    async def stop_calibration(self) -> None:
        await self.stop_capture()

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
            await asyncio.wait_for(waiter, self._real_timeout(limit))
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
                await asyncio.wait_for(
                    asyncio.shield(waiter), self._real_timeout(exposure + self.settle_margin_s)
                )
        finally:
            waiter.cancel()
        deadline = self.clock.monotonic() + timeout_s
        while True:
            state = await self.get_app_state()
            if state is GuiderState.stopped:
                return
            if self.clock.monotonic() >= deadline:
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

    # ------------------------------------------------------------------ looping & images

    async def start_looping(self) -> None:
        await self.call("loop")

    async def stop_looping(self, timeout_s: float = 60.0) -> None:
        await self.stop_capture(timeout_s)

    async def find_star(
        self, roi: tuple[int, int, int, int] | None = None
    ) -> tuple[float, float]:
        res = await self.call("find_star", [list(roi)] if roi else None)
        return float(res[0]), float(res[1])

    async def get_lock_position(self) -> tuple[float, float] | None:
        res = await self.call("get_lock_position")
        return None if res is None else (float(res[0]), float(res[1]))

    async def set_lock_position(self, x_px: float, y_px: float, *, exact: bool = True) -> None:
        await self.call("set_lock_position", [x_px, y_px, exact])

    async def get_image(self, size_px: int = 15) -> StarImage:
        """Star stamp around the guide star (PHD2 clips it to 15…63 px and to the frame)."""
        if size_px < 15:
            raise ValueError("PHD2 star images are at least 15 px")
        res = await self.call("get_star_image", [size_px])
        pos = res["star_pos"]
        return StarImage(
            frame=int(res["frame"]), width=int(res["width"]), height=int(res["height"]),
            star_x_px=float(pos[0]), star_y_px=float(pos[1]), pixels_base64=str(res["pixels"]),
        )

    async def save_image(self) -> Path:
        """PHD2 writes the current guide frame to a FITS file and names it; the caller owns
        (and should delete) the file."""
        res = await self.call("save_image")
        return Path(res["filename"])

    async def capture_single_frame(
        self, exposure_s: float | None = None, *, path: Path | None = None,
        timeout_s: float | None = None,
    ) -> Path | None:
        """One exposure while not looping; returns the saved path (when ``path`` given)."""
        params: dict[str, Any] = {}
        if exposure_s is not None:
            params["exposure"] = round(exposure_s * 1000)
        if path is not None:
            params["path"] = str(path)
            params["save"] = True
        waiter = self.expect_event(lambda ev: ev.get("Event") == "SingleFrameComplete")
        try:
            await self.call("capture_single_frame", params)
            limit = timeout_s or (exposure_s or await self._exposure()) + self.settle_margin_s
            ev = await asyncio.wait_for(asyncio.shield(waiter), self._real_timeout(limit))
        except TimeoutError as exc:
            raise GuiderError("PHD2 sent no SingleFrameComplete") from exc
        finally:
            waiter.cancel()
        if not ev.get("Success", False):
            raise GuiderError(f"single frame failed: {ev.get('Error', 'unknown error')}")
        p = ev.get("Path")
        return Path(p) if isinstance(p, str) else None

    # ------------------------------------------------------------------ stats

    def start_stats(self) -> None:
        """Start a fresh RMS interval (the engine calls this when an exposure starts)."""
        self._stats.reset()
        self._stats_active = True

    def stats(self) -> GuideStats | None:
        return self._stats.result(self.pixel_scale_arcsec)

    # ------------------------------------------------------------------ server discovery

    async def shutdown_phd2(self) -> None:
        """Ask PHD2 to exit; the connection then closes (no reconnect is attempted)."""
        self._closing = True
        # PHD2 may close the socket before its reply arrives: that is success too.
        with contextlib.suppress(GuiderConnectionError):
            await self.call("shutdown")
        await self.disconnect_server()


async def scan_servers(
    host: str = "127.0.0.1", ports: Iterable[int] = range(4400, 4410), *,
    timeout_s: float = 1.0,
) -> list[int]:
    """Ports on ``host`` where a PHD2 event server answers (its first line is a Version event).

    ``timeout_s`` is real time: it bounds network probing, not simulated activity.
    """

    async def probe(port: int) -> int | None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError):
            return None
        try:
            line = await asyncio.wait_for(reader.readline(), timeout_s)
            msg = json.loads(line)
            return port if isinstance(msg, dict) and msg.get("Event") == "Version" else None
        except (OSError, TimeoutError, ValueError):
            return None
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    found = await asyncio.gather(*(probe(p) for p in ports))
    return sorted(p for p in found if p is not None)
