"""Build the devices an equipment profile names, by back-end.

The engine asks for a ``DeviceSet`` and never for a back-end by name. Simulated devices share
one ``SimWorld`` (also handed out, for the guider simulator and for tests); real back-ends are
added here by their adapters, one ``_build_<backend>`` per device kind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

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


def _unavailable(kind: str, conn: Connection) -> DeviceError:
    return DeviceError(
        f"{kind}: the '{conn.backend}' back-end is not available yet "
        "(use backend: simulator in the equipment profile)"
    )


def build_devices(equipment: Equipment, clock: Clock, *, site: Site | None = None) -> DeviceSet:
    """Instantiate (not connect) the devices of ``equipment`` on ``clock``.

    Raises:
        DeviceError: a device names a back-end that is not available.
    """
    profiles: list[tuple[str, Connection | None]] = [
        ("camera", equipment.camera),
        ("filter wheel", equipment.filter_wheel),
        ("focuser", equipment.focuser),
        ("mount", equipment.mount),
        ("safety monitor", equipment.safety),
    ]
    for kind, conn in profiles:
        if conn is not None and conn.backend != "simulator":
            raise _unavailable(kind, conn)
    world = SimWorld(clock, equipment)
    if site is not None:
        world.site_latitude = site.latitude
        world.site_longitude = site.longitude
    return DeviceSet(
        camera=SimCamera(world, equipment.camera),
        filter_wheel=SimFilterWheel(world, equipment.filter_wheel)
        if equipment.filter_wheel
        else None,
        focuser=SimFocuser(world, equipment.focuser) if equipment.focuser else None,
        mount=SimMount(world, equipment.mount) if equipment.mount else None,
        safety=SimSafetyMonitor(world) if equipment.safety else None,
        world=world,
    )
