"""INDI weather station → :class:`runner.devices.interfaces.SafetyMonitor`.

INDI weather drivers summarise their parameters in the ``WEATHER_STATUS`` light vector:
Ok (safe), Busy (warning: still safe), Alert (danger: unsafe). A driver that has not yet
evaluated anything (Idle) is not declared safe.
"""

from __future__ import annotations

from runner.devices.indi.base import WEATHER, IndiDevice
from runner.devices.indi.client import ALERT, IDLE
from runner.devices.interfaces import SafetyMonitor


class IndiSafetyMonitor(IndiDevice, SafetyMonitor):
    interface = WEATHER
    key_property = "WEATHER_STATUS"
    kind = "weather station"

    async def is_safe(self) -> bool:
        status = self._prop("WEATHER_STATUS")
        return status.state not in (ALERT, IDLE) and ALERT not in status.values.values()
