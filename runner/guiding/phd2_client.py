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


import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runner.devices.interfaces import GuideStats
from runner.errors import GuiderConnectionError, GuiderError
from runner.guiding.phd2_guiding_ops import PHD2Guiding
from runner.guiding.phd2_types import (
    EquipmentDevice,
    PHD2Profile,
    PHD2RpcError,
    SettleParams,
    StarImage,
)

log = logging.getLogger(__name__)


class PHD2Client(PHD2Guiding):
    """A connection to one PHD2 instance (or the simulator), with the whole seed-001 surface.

    ``pixel_scale_arcsec`` (guide camera, arcsec/px) turns RMS into arcsec; when None it is asked
    from PHD2 (``get_pixel_scale``) on connect and stats stay in pixels if PHD2 does not know it."""

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
                async with asyncio.timeout(self._real_timeout(self.calibration_timeout_s)):
                    ev = await asyncio.shield(waiter)
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
            async with asyncio.timeout(self._real_timeout(limit)):
                ev = await asyncio.shield(waiter)
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
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            return None
        try:
            async with asyncio.timeout(timeout_s):
                line = await reader.readline()
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
