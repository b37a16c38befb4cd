"""INDI focuser → :class:`runner.devices.interfaces.Focuser` (``ABS_FOCUS_POSITION``, steps).

Moves are checked against the equipment profile's range and the driver's limits before they are
sent. ``halt`` needs ``FOCUS_ABORT_MOTION``; drivers without it raise
:class:`~runner.devices.indi.client.Unsupported`.
"""

from __future__ import annotations

from runner.devices.indi.base import FOCUSER, IndiDevice
from runner.devices.indi.client import BUSY, DEFAULT_TIMEOUT, IndiServer
from runner.devices.interfaces import Focuser
from runner.errors import DeviceError


class IndiFocuser(IndiDevice, Focuser):
    interface = FOCUSER
    key_property = "ABS_FOCUS_POSITION"
    kind = "focuser"

    def __init__(
        self,
        server: IndiServer,
        name: str | None = None,
        *,
        min_position: int = 0,
        max_position: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(server, name, timeout=timeout)
        self.min_position = min_position
        self.limit = max_position

    async def position(self) -> int:
        return round(self._number("ABS_FOCUS_POSITION", "FOCUS_ABSOLUTE_POSITION"))

    async def max_position(self) -> int:
        if self._has("FOCUS_MAX"):
            device_max = int(self._number("FOCUS_MAX", "FOCUS_MAX_VALUE"))
        else:
            device_max = int(self._prop("ABS_FOCUS_POSITION").limits["FOCUS_ABSOLUTE_POSITION"][1])
        return device_max if self.limit is None else min(device_max, self.limit)

    async def move_to(self, position: int) -> None:
        """Start an absolute move and return once the driver accepted it.

        Raises:
            DeviceError: the position is outside the allowed range, or the driver refused.
        """
        top = await self.max_position()
        if not self.min_position <= position <= top:
            raise DeviceError(
                f"{self.label}: position {position} outside {self.min_position}…{top}"
            )
        await self._send(
            "ABS_FOCUS_POSITION", {"FOCUS_ABSOLUTE_POSITION": int(position)}, until="started"
        )

    async def is_moving(self) -> bool:
        moving = self._prop("ABS_FOCUS_POSITION").state == BUSY
        if not moving and self._has("REL_FOCUS_POSITION"):
            moving = self._prop("REL_FOCUS_POSITION").state == BUSY
        return moving

    async def halt(self) -> None:
        self._prop("FOCUS_ABORT_MOTION")  # Unsupported when the driver cannot halt
        await self._send("FOCUS_ABORT_MOTION", {"ABORT": True}, until="answered")

    async def temperature(self) -> float | None:
        if not self._has("FOCUS_TEMPERATURE"):
            return None
        return self._number("FOCUS_TEMPERATURE", "TEMPERATURE")
