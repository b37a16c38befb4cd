"""The simulated safety monitor: unsafe while the ``unsafe_weather`` fault is active."""

from __future__ import annotations

from runner.devices.interfaces import SafetyMonitor
from runner.devices.sim.base import SimDevice


class SimSafetyMonitor(SimDevice, SafetyMonitor):
    kind = "safety monitor"

    async def is_safe(self) -> bool:
        self._require()
        return not self.world.fault_active("unsafe_weather")
