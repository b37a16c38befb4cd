"""Which devices a back-end offers (seed 003's ``scanning``): names to put in a profile.

Alpaca servers list their devices through the management API; an indiserver through the
devices it defines; the simulator offers one of each kind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from runner.errors import DeviceDisconnected, DeviceError

SIM_DEVICES = (
    ("camera", "Nightrunner Sim Camera"),
    ("filter_wheel", "Nightrunner Sim Filter Wheel"),
    ("focuser", "Nightrunner Sim Focuser"),
    ("mount", "Nightrunner Sim Mount"),
    ("safety", "Nightrunner Sim Safety Monitor"),
)

#: ASCOM device types → our device kinds
_ALPACA_KINDS = {
    "camera": "camera", "filterwheel": "filter_wheel", "focuser": "focuser",
    "telescope": "mount", "safetymonitor": "safety",
}


@dataclass(frozen=True)
class FoundDevice:
    kind: str  # camera | filter_wheel | focuser | mount | safety | other
    name: str
    device: str | int  # what goes into the profile's `device:` field


async def scan(backend: str, address: str | None = None, *, timeout: float = 10.0) -> list[
    FoundDevice
]:
    """The devices ``backend`` offers at ``address``.

    Raises:
        DeviceDisconnected: nothing answers at the address.
        DeviceError: the back-end is unknown.
    """
    if backend == "simulator":
        return [FoundDevice(kind, name, name) for kind, name in SIM_DEVICES]
    if backend == "alpaca":
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(_alpaca, address or "127.0.0.1:11111")
    if backend == "indi":
        return await _indi(address, timeout)
    raise DeviceError(f"unknown back-end '{backend}' (simulator, alpaca or indi)")


def _alpaca(address: str) -> list[FoundDevice]:
    from alpaca import management
    from alpaca.exceptions import AlpacaRequestException

    try:
        listed = management.configureddevices(address)
    except AlpacaRequestException:
        return _alpaca_probe(address)  # servers without the management API (some simulators)
    except Exception as exc:  # requests/alpyca errors: the boundary converts them
        raise DeviceDisconnected(f"no Alpaca server answers at {address}: {exc}") from exc
    return [
        FoundDevice(_ALPACA_KINDS.get(str(d["DeviceType"]).lower(), "other"),
                    str(d["DeviceName"]), int(d["DeviceNumber"]))
        for d in listed
    ]


def _alpaca_probe(address: str, max_number: int = 8) -> list[FoundDevice]:
    """Ask each device type for numbers 0, 1, … until one is missing."""
    from alpaca.camera import Camera
    from alpaca.filterwheel import FilterWheel
    from alpaca.focuser import Focuser
    from alpaca.safetymonitor import SafetyMonitor
    from alpaca.telescope import Telescope

    found = []
    for kind, cls in (("camera", Camera), ("filter_wheel", FilterWheel), ("focuser", Focuser),
                      ("mount", Telescope), ("safety", SafetyMonitor)):
        for number in range(max_number):
            try:
                name = cls(address, number).Name
            except Exception:  # 4xx/5xx: no such device number
                break
            found.append(FoundDevice(kind, str(name), number))
    if not found:
        raise DeviceDisconnected(f"no Alpaca devices answer at {address}")
    return found


async def _indi(address: str | None, timeout: float) -> list[FoundDevice]:
    from runner.devices.indi.client import IndiServer

    server = IndiServer(address, timeout=timeout)
    await server.acquire()
    try:
        await asyncio.sleep(1.0)  # let the server define its devices
        return [FoundDevice("other", name, name) for name in server.devices()]
    finally:
        await server.release()
