"""INDI telescope → :class:`runner.devices.interfaces.Mount`.

INDI mounts take and report ``EQUATORIAL_EOD_COORD`` — RA in hours, Dec in degrees, mean
equinox of date ("JNow") — which is precessed from/to our J2000 degrees
(:mod:`runner.devices.alpaca.coords`). A driver that offers J2000 ``EQUATORIAL_COORD`` instead
is used directly. Slews use ``ON_COORD_SET`` = TRACK (slew, then track) where offered.
"""

from __future__ import annotations

import asyncio

from runner.clock import Clock
from runner.devices.alpaca.coords import date_to_j2000, j2000_to_date
from runner.devices.indi.base import TELESCOPE, IndiDevice
from runner.devices.indi.client import BUSY, DEFAULT_TIMEOUT, IndiServer
from runner.devices.interfaces import Mount, MountSync, PierSide
from runner.errors import DeviceError

_JNOW, _J2000 = "EQUATORIAL_EOD_COORD", "EQUATORIAL_COORD"


class IndiMount(IndiDevice, Mount, MountSync):
    interface = TELESCOPE
    key_property = "TELESCOPE_ABORT_MOTION"
    kind = "mount"

    def __init__(
        self,
        server: IndiServer,
        name: str | None,
        clock: Clock,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(server, name, timeout=timeout)
        self.clock = clock

    def _coord_property(self) -> str:
        if self._has(_JNOW):
            return _JNOW
        if self._has(_J2000):
            return _J2000
        raise DeviceError(f"{self.label} reports no equatorial coordinates")

    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        """Start a slew to J2000 ``ra_deg``/``dec_deg`` and return once the driver accepted it.

        Raises:
            DeviceError: the mount is parked or refused the target.
        """
        prop, ra_h, dec = await self._ready_for(ra_deg, dec_deg, "slewing")
        if self._has("ON_COORD_SET"):
            mode = "TRACK" if "TRACK" in self._prop("ON_COORD_SET").values else "SLEW"
            if not self._switch("ON_COORD_SET", mode):
                await self._send("ON_COORD_SET", {mode: True})
        await self._send(prop, {"RA": ra_h, "DEC": dec}, until="started")

    async def _ready_for(self, ra_deg: float, dec_deg: float, doing: str
                         ) -> tuple[str, float, float]:
        """The coordinate property, and J2000 degrees as its RA hours and Dec (JNow where the
        driver speaks it), with the mount unparked."""
        if not -90.0 <= dec_deg <= 90.0:
            raise DeviceError(f"{self.label}: declination {dec_deg} outside -90…90")
        if await self.is_parked():
            raise DeviceError(f"{self.label} is parked: unpark before {doing}")
        prop = self._coord_property()
        ra, dec = ra_deg % 360.0, dec_deg
        if prop == _JNOW:
            ra, dec = await asyncio.to_thread(j2000_to_date, ra, dec, self.clock.now())
        return prop, (ra / 15.0) % 24.0, dec

    async def can_sync(self) -> bool:
        return self._has("ON_COORD_SET") and "SYNC" in self._prop("ON_COORD_SET").values

    async def sync_to(self, ra_deg: float, dec_deg: float) -> None:
        """Coordinates sent with ``ON_COORD_SET`` = SYNC, then the switch back to what slews
        use (a driver keeps the switch: the next slew would otherwise only sync).

        Raises:
            DeviceError: the driver has no SYNC, the mount is parked, or it refused.
        """
        if not await self.can_sync():
            raise DeviceError(f"{self.label} cannot sync")
        prop, ra_h, dec = await self._ready_for(ra_deg, dec_deg, "syncing")
        values = self._prop("ON_COORD_SET").values
        before = next((m for m in ("TRACK", "SLEW") if m in values), None)
        await self._send("ON_COORD_SET", {"SYNC": True})
        try:
            await self._send(prop, {"RA": ra_h, "DEC": dec})
        finally:
            if before is not None:
                await self._send("ON_COORD_SET", {before: True})

    async def is_slewing(self) -> bool:
        return self._prop(self._coord_property()).state == BUSY

    async def abort_slew(self) -> None:
        await self._send("TELESCOPE_ABORT_MOTION", {"ABORT": True}, until="answered")

    async def coordinates(self) -> tuple[float, float]:
        prop = self._coord_property()
        view = self._prop(prop)
        ra, dec = (view.number("RA") * 15.0) % 360.0, view.number("DEC")
        if prop == _JNOW:
            ra, dec = await asyncio.to_thread(date_to_j2000, ra, dec, self.clock.now())
        return ra, dec

    async def set_tracking(self, on: bool) -> None:
        await self._send("TELESCOPE_TRACK_STATE", {"TRACK_ON" if on else "TRACK_OFF": True})

    async def tracking(self) -> bool:
        return self._switch("TELESCOPE_TRACK_STATE", "TRACK_ON")

    async def park(self) -> None:
        await self._send("TELESCOPE_PARK", {"PARK": True}, until="started")

    async def unpark(self) -> None:
        await self._send("TELESCOPE_PARK", {"UNPARK": True})

    async def is_parked(self) -> bool:
        if not self._has("TELESCOPE_PARK"):
            return False
        park = self._prop("TELESCOPE_PARK")
        return park.values.get("PARK") is True and park.state != BUSY

    async def side_of_pier(self) -> PierSide:
        if not self._has("TELESCOPE_PIER_SIDE"):
            return PierSide.unknown
        on = self._prop("TELESCOPE_PIER_SIDE").on()
        if on == ["PIER_EAST"]:
            return PierSide.east
        if on == ["PIER_WEST"]:
            return PierSide.west
        return PierSide.unknown
