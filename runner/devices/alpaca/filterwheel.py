"""ASCOM Alpaca filter wheel → :class:`runner.devices.interfaces.FilterWheel` (0-based slots)."""

from __future__ import annotations

from alpaca.filterwheel import FilterWheel as _AlpycaFilterWheel

from runner.devices.alpaca.base import AlpacaDevice
from runner.devices.alpaca.transport import DEFAULT_TIMEOUT
from runner.devices.interfaces import FilterWheel
from runner.errors import DeviceError


class AlpacaFilterWheel(AlpacaDevice, FilterWheel):
    def __init__(self, address: str, number: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(
            _AlpycaFilterWheel(address, number),
            f"Alpaca filter wheel {number} at {address}",
            timeout=timeout,
        )

    async def names(self) -> list[str]:
        return [str(n) for n in await self._get("Names")]

    async def position(self) -> int | None:
        """Current slot; ASCOM reports -1 while the wheel moves (None here)."""
        pos = int(await self._get("Position"))
        return None if pos < 0 else pos

    async def move_to(self, slot: int) -> None:
        count = len(await self.names())
        if not 0 <= slot < count:
            raise DeviceError(f"{self.label}: slot {slot} outside 0…{count - 1}")
        await self._set("Position", int(slot))
