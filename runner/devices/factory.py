"""Build the devices an equipment profile names, by back-end.

The engine asks for a ``DeviceSet`` and never for a back-end by name. Simulated devices share
one ``SimWorld`` (also handed out, for the guider simulator and for tests); real back-ends are
added here by their adapters, one ``_build_<backend>`` per device kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.clock import Clock
from runner.devices.interfaces import Camera, Device, FilterWheel, Focuser, Mount, SafetyMonitor
from runner.devices.sim import (
    SimCamera,
    SimFilterWheel,
    SimFocuser,
    SimMount,
    SimSafetyMonitor,
    SimWorld,
)
from runner.errors import DeviceError
from runner.plan.equipment import Connection, Equipment
from runner.plan.models import Site


@dataclass
class DeviceSet:
    """The rig: a camera always, the rest when the profile has them."""

    camera: Camera
    filter_wheel: FilterWheel | None = None
    focuser: Focuser | None = None
    mount: Mount | None = None
    safety: SafetyMonitor | None = None
    #: The simulated world when any device is simulated (the guider simulator joins it).
    world: SimWorld | None = None

    def all(self) -> list[Device]:
        return [
            d
            for d in (self.camera, self.filter_wheel, self.focuser, self.mount, self.safety)
            if d is not None
        ]

    async def connect_all(self) -> None:
        """Connect every device; the first failure propagates (already-connected stay so)."""
        for device in self.all():
            await device.connect()

    async def disconnect_all(self) -> None:
        """Disconnect everything, each device on its own: one failure does not stop the rest.

        Raises the first ``DeviceError`` after all were tried.
        """
        first: DeviceError | None = None
        for device in self.all():
            try:
                await device.disconnect()
            except DeviceError as exc:
                first = first or exc
        for device in self.all():
            close = getattr(device, "close", None)
            if close is not None and asyncio.iscoroutinefunction(close):
                await close()
        if first is not None:
            raise first


def build_devices(equipment: Equipment, clock: Clock, *, site: Site | None = None) -> DeviceSet:
    """Instantiate (not connect) the devices of ``equipment`` on ``clock``.

    Raises:
        PlanError: a device identifier in the profile is unusable.
    """
    profiles: dict[str, Connection | None] = {
        "camera": equipment.camera,
        "filter_wheel": equipment.filter_wheel,
        "focuser": equipment.focuser,
        "mount": equipment.mount,
        "safety": equipment.safety,
    }
    backends = {c.backend for c in profiles.values() if c is not None}
    real: dict[str, Device] = {}
    # adapters are imported only when a profile names them: `validate` and the simulators
    # never pay for alpyca or pyindi-client
    if "alpaca" in backends:
        from runner.devices.alpaca import build_alpaca_devices

        real.update(build_alpaca_devices(equipment, clock))
    if "indi" in backends:
        from runner.devices.indi import build_indi_devices

        real.update(build_indi_devices(equipment, clock))
    world = SimWorld(clock, equipment)
    if site is not None:
        world.site_latitude = site.latitude
        world.site_longitude = site.longitude

    def pick(name: str, make: Callable[[], Device]) -> Any:
        conn = profiles[name]
        if conn is None:
            return None
        return real[name] if conn.backend != "simulator" else make()

    fw, foc, mnt = equipment.filter_wheel, equipment.focuser, equipment.mount
    return DeviceSet(
        camera=pick("camera", lambda: SimCamera(world, equipment.camera)),
        filter_wheel=pick("filter_wheel", lambda: SimFilterWheel(world, fw)),
        focuser=pick("focuser", lambda: SimFocuser(world, foc)),
        mount=pick("mount", lambda: SimMount(world, mnt)),
        safety=pick("safety", lambda: SimSafetyMonitor(world)),
        world=world if "simulator" in backends else None,
    )
