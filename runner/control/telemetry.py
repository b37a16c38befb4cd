"""The rig's readings, refreshed in the background once a second, so that ``status`` answers
from memory in microseconds however slow a device server is (N.I.N.A.'s Advanced API users
poll each value separately, ~87 requests a minute per rig)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

log = logging.getLogger("nightrunner.control")

PERIOD = 1.0  # s, real time


async def _read(fn: Any) -> Any:
    try:
        async with asyncio.timeout(2.0):
            value = await fn()
    except Exception:  # a reading that fails is simply absent from this snapshot
        return None
    if hasattr(value, "value"):
        value = value.value
    return value


async def snapshot(devices: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"read_at": time.time()}
    cam = getattr(devices, "camera", None)
    if cam is not None:
        out["camera"] = {
            "temperature": await _read(cam.temperature),
            "set_point": await _read(cam.set_point),
            "cooler_on": await _read(cam.cooler_on),
            "cooler_power": await _read(cam.cooler_power),
            "exposure_state": await _read(cam.exposure_status),
        }
    foc = getattr(devices, "focuser", None)
    if foc is not None:
        out["focuser"] = {"position": await _read(foc.position),
                          "temperature": await _read(foc.temperature),
                          "moving": await _read(foc.is_moving)}
    fw = getattr(devices, "filter_wheel", None)
    if fw is not None:
        out["filter_wheel"] = {"position": await _read(fw.position)}
    mnt = getattr(devices, "mount", None)
    if mnt is not None:
        coords = await _read(mnt.coordinates)
        out["mount"] = {
            "ra": coords[0] if coords else None, "dec": coords[1] if coords else None,
            "slewing": await _read(mnt.is_slewing), "tracking": await _read(mnt.tracking),
            "parked": await _read(mnt.is_parked), "pier_side": await _read(mnt.side_of_pier),
        }
    return out


class Telemetry:
    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.latest: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="telemetry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            devices = self.hub.devices
            if devices is not None:
                try:
                    self.latest = await snapshot(devices)
                except Exception:
                    log.exception("telemetry snapshot failed")
            await asyncio.sleep(PERIOD)
