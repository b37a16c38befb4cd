"""ASCOM Alpaca focuser → :class:`runner.devices.interfaces.Focuser` (positions in steps).

Moves are checked against the equipment profile's ``min_position``/``max_position`` and the
driver's ``MaxStep`` before they are sent. A relative-only focuser is driven by the difference
to its reported position.
"""

from __future__ import annotations

from alpaca.focuser import Focuser as _AlpycaFocuser

from runner.devices.alpaca.base import AlpacaDevice
from runner.devices.alpaca.transport import DEFAULT_TIMEOUT
from runner.devices.interfaces import Focuser
from runner.errors import DeviceError


class AlpacaFocuser(AlpacaDevice, Focuser):
    def __init__(
        self,
        address: str,
        number: int,
        *,
        min_position: int = 0,
        max_position: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(
            _AlpycaFocuser(address, number),
            f"Alpaca focuser {number} at {address}",
            timeout=timeout,
        )
        self.min_position = min_position
        self.limit = max_position
        self._absolute = True

    async def _on_connect(self) -> None:
        self._absolute = bool(await self._get("Absolute"))

    async def position(self) -> int:
        return int(await self._get("Position"))

    async def max_position(self) -> int:
        device_max = int(await self._get("MaxStep"))
        return device_max if self.limit is None else min(device_max, self.limit)

    async def move_to(self, position: int) -> None:
        """Start an absolute move to ``position`` steps and return.

        Raises:
            DeviceError: the position is outside the profile's or the driver's range.
        """
        top = await self.max_position()
        if not self.min_position <= position <= top:
            raise DeviceError(
                f"{self.label}: position {position} outside {self.min_position}…{top}"
            )
        if self._absolute:
            await self._do("Move", int(position))
        else:
            await self._do("Move", int(position) - await self.position())

    async def is_moving(self) -> bool:
        return bool(await self._get("IsMoving"))

    async def halt(self) -> None:
        await self._do("Halt")

    async def temperature(self) -> float | None:
        value = await self._get_optional("Temperature")
        return None if value is None else float(value)
