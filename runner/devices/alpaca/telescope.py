"""ASCOM Alpaca telescope → :class:`runner.devices.interfaces.Mount`.

Our side speaks J2000 degrees; ASCOM speaks RA in hours in the mount's ``EquatorialSystem``:
J2000 (2) is passed through, topocentric/"JNow" (1) and J2050 (3) are precessed
(:mod:`runner.devices.alpaca.coords`), B1950 (4) is refused. ``equOther`` (0) — what many
simulators report — is taken as J2000.

A slew needs tracking on (ASCOM raises otherwise), so :meth:`AlpacaMount.slew_to` switches it
on when the driver allows it. Parking may be synchronous on pre-Platform-7 drivers, so it gets
the profile's slew timeout rather than the per-request one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alpaca.telescope import Telescope as _AlpycaTelescope

from runner.clock import Clock
from runner.devices.alpaca.base import AlpacaDevice
from runner.devices.alpaca.coords import date_to_j2000, j2000_to_date
from runner.devices.alpaca.transport import DEFAULT_TIMEOUT
from runner.devices.interfaces import Mount, MountSync, PierSide
from runner.errors import DeviceError

_EQU_OTHER, _EQU_TOPOCENTRIC, _EQU_J2000, _EQU_J2050, _EQU_B1950 = range(5)
_J2050 = datetime(2050, 1, 1, 12, 0, tzinfo=UTC)
_PIER = {0: PierSide.east, 1: PierSide.west}


class AlpacaMount(AlpacaDevice, Mount, MountSync):
    def __init__(
        self,
        address: str,
        number: int,
        clock: Clock,
        *,
        slew_timeout: float = 300.0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(
            _AlpycaTelescope(address, number),
            f"Alpaca telescope {number} at {address}",
            timeout=timeout,
        )
        self.clock = clock
        self.slew_timeout = slew_timeout
        self._system = _EQU_J2000

    async def _on_connect(self) -> None:
        system = await self._get_optional("EquatorialSystem")
        self._system = _EQU_OTHER if system is None else int(system)
        if self._system == _EQU_B1950:
            raise DeviceError(f"{self.label}: B1950 mount coordinates are not supported")

    def _epoch(self) -> datetime | None:
        """The equinox the mount works in, None for J2000."""
        if self._system == _EQU_TOPOCENTRIC:
            return self.clock.now()
        if self._system == _EQU_J2050:
            return _J2050
        return None

    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        """Start a slew to J2000 ``ra_deg``/``dec_deg`` and return.

        Raises:
            DeviceError: the mount is parked, cannot slew asynchronously, or refused the target.
        """
        if not bool(await self._get("CanSlewAsync")):
            raise DeviceError(f"{self.label} cannot slew asynchronously")
        ra_h, dec = await self._ready_for(ra_deg, dec_deg, "slewing")
        await self._do("SlewToCoordinatesAsync", ra_h, dec)

    async def _ready_for(self, ra_deg: float, dec_deg: float, doing: str) -> tuple[float, float]:
        """J2000 degrees as the mount's RA hours and Dec, with the mount unparked and
        tracking (ASCOM refuses a goto or a sync to equatorial coordinates otherwise)."""
        if not -90.0 <= dec_deg <= 90.0:
            raise DeviceError(f"{self.label}: declination {dec_deg} outside -90…90")
        if await self.is_parked():
            raise DeviceError(f"{self.label} is parked: unpark before {doing}")
        epoch = self._epoch()
        ra, dec = ra_deg % 360.0, dec_deg
        if epoch is not None:
            ra, dec = await asyncio.to_thread(j2000_to_date, ra, dec, epoch)
        if not await self.tracking() and bool(await self._get("CanSetTracking")):
            await self.set_tracking(True)
        return (ra / 15.0) % 24.0, dec

    async def can_sync(self) -> bool:
        return bool(await self._get_optional("CanSync"))

    async def sync_to(self, ra_deg: float, dec_deg: float) -> None:
        """``SyncToCoordinates`` with J2000 ``ra_deg``/``dec_deg`` (in the mount's equinox).

        Raises:
            DeviceError: the driver cannot sync, the mount is parked, or it refused.
        """
        if not await self.can_sync():
            raise DeviceError(f"{self.label} cannot sync")
        ra_h, dec = await self._ready_for(ra_deg, dec_deg, "syncing")
        await self._do("SyncToCoordinates", ra_h, dec)

    async def is_slewing(self) -> bool:
        return bool(await self._get("Slewing"))

    async def abort_slew(self) -> None:
        await self._do("AbortSlew")

    async def coordinates(self) -> tuple[float, float]:
        ra = (float(await self._get("RightAscension")) * 15.0) % 360.0
        dec = float(await self._get("Declination"))
        epoch = self._epoch()
        if epoch is not None:
            ra, dec = await asyncio.to_thread(date_to_j2000, ra, dec, epoch)
        return ra, dec

    async def set_tracking(self, on: bool) -> None:
        await self._set("Tracking", bool(on))

    async def tracking(self) -> bool:
        return bool(await self._get("Tracking"))

    async def park(self) -> None:
        if not bool(await self._get("CanPark")):
            raise DeviceError(f"{self.label} cannot park")
        await self._do("Park", time_limit=self.slew_timeout)

    async def unpark(self) -> None:
        if not bool(await self._get("CanUnpark")):
            raise DeviceError(f"{self.label} cannot unpark")
        await self._do("Unpark", time_limit=self.slew_timeout)

    async def is_parked(self) -> bool:
        return bool(await self._get("AtPark"))

    async def side_of_pier(self) -> PierSide:
        value = await self._get_optional("SideOfPier")
        return PierSide.unknown if value is None else _PIER.get(int(value), PierSide.unknown)
