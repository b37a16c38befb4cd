"""ASCOM Alpaca safety monitor → :class:`runner.devices.interfaces.SafetyMonitor`."""

from __future__ import annotations

from alpaca.safetymonitor import SafetyMonitor as _AlpycaSafetyMonitor

from runner.devices.alpaca.base import AlpacaDevice
from runner.devices.alpaca.transport import DEFAULT_TIMEOUT
from runner.devices.interfaces import SafetyMonitor


class AlpacaSafetyMonitor(AlpacaDevice, SafetyMonitor):
    def __init__(self, address: str, number: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(
            _AlpycaSafetyMonitor(address, number),
            f"Alpaca safety monitor {number} at {address}",
            timeout=timeout,
        )

    async def is_safe(self) -> bool:
        return bool(await self._get("IsSafe"))
