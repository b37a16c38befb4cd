"""The simulated German equatorial mount: slews take time, the side of pier follows the hour
angle at the end of each slew, parking points at the celestial pole.

Side of pier (ASCOM convention): a target east of the meridian (hour angle < 0) is observed
from the *west* side of the pier, one west of it from the east side. The side is chosen by a
slew and kept while tracking through the meridian — which is why a meridian flip is a new slew
to the same coordinates, after which the camera sees the field turned 180°.

The hour angle needs the site longitude; without a site, Greenwich is assumed (the rule stays
the same, only the clock time of the flip moves).
"""

from __future__ import annotations

import math

from runner.devices.interfaces import Mount, MountSync, PierSide
from runner.devices.sim.base import SimDevice
from runner.devices.sim.world import SimWorld
from runner.errors import DeviceBusy, DeviceError
from runner.plan.equipment import MountProfile


def _ra_distance(a: float, b: float) -> float:
    return abs((b - a + 180.0) % 360.0 - 180.0)


class SimMount(SimDevice, Mount, MountSync):
    kind = "mount"

    def __init__(self, world: SimWorld, profile: MountProfile | None = None) -> None:
        super().__init__(world)
        self.profile = profile or world.profile.mount or MountProfile()
        self._parked = False
        self._parking = False
        # A slew in progress: (clock start, duration, from ra/dec, to ra/dec).
        self._slew: tuple[float, float, float, float, float, float] | None = None
        if world.ra is None:  # power-on: at home (the pole), not tracking
            world.set_tracking(False)
            ra, dec = self._home()
            world.set_pointing(ra, dec, PierSide.east)

    def _home(self) -> tuple[float, float]:
        south = (self.world.site_latitude or 0.0) < 0
        return self.world.local_sidereal_deg(), -90.0 if south else 90.0

    def _pier_side_for(self, ra: float) -> PierSide:
        return PierSide.west if self.world.hour_angle_deg(ra) < 0 else PierSide.east

    def _interpolated(self) -> tuple[float, float]:
        assert self._slew is not None
        t0, duration, ra0, dec0, ra1, dec1 = self._slew
        f = 1.0 if duration <= 0 else min(1.0, (self.clock.monotonic() - t0) / duration)
        dra = (ra1 - ra0 + 180.0) % 360.0 - 180.0
        return (ra0 + f * dra) % 360.0, dec0 + f * (dec1 - dec0)

    def _begin_slew(self, ra: float, dec: float, name: str) -> None:
        if self._moving:
            raise DeviceBusy("mount is slewing")
        ra0, dec0 = self.world.pointing()
        # Both axes move at once; the longer one sets the duration.
        duration = max(_ra_distance(ra0, ra), abs(dec - dec0)) / self.profile.slew_rate
        self._slew = (self.clock.monotonic(), duration, ra0, dec0, ra % 360.0, dec)
        deadline = self.clock.monotonic() + duration
        self._start_motion(self._run(deadline, name == "park"), f"sim-mount-{name}")

    async def _run(self, deadline: float, parking: bool) -> None:
        await self.clock.sleep(deadline - self.clock.monotonic())
        assert self._slew is not None
        ra, dec = self._slew[4], self._slew[5]
        self._slew = None
        if parking:
            self.world.set_tracking(False)
            self.world.set_pointing(ra, dec, PierSide.east)
            self._parked, self._parking = True, False
        else:
            self.world.set_tracking(True)
            self.world.set_pointing(ra, dec, self._pier_side_for(ra))

    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        self._require()
        if self._parked or self._parking:
            raise DeviceError("mount is parked: unpark it before slewing")
        if not (math.isfinite(ra_deg) and -90.0 <= dec_deg <= 90.0):
            raise DeviceError(f"invalid coordinates RA {ra_deg}, Dec {dec_deg}")
        # the axes go where the mount's model says (ra, dec) is: off by its pointing error
        self._begin_slew(*self.world.true_from_mount(ra_deg, dec_deg), "slew")

    async def sync_to(self, ra_deg: float, dec_deg: float) -> None:
        self._require()
        if self._moving:
            raise DeviceBusy("cannot sync while the mount is moving")
        if self._parked:
            raise DeviceError("mount is parked: unpark it before syncing")
        if not (math.isfinite(ra_deg) and -90.0 <= dec_deg <= 90.0):
            raise DeviceError(f"invalid coordinates RA {ra_deg}, Dec {dec_deg}")
        self.world.sync_mount(ra_deg, dec_deg)

    async def is_slewing(self) -> bool:
        self._require()
        return self._moving

    async def abort_slew(self) -> None:
        self._require()
        if not self._moving or self._slew is None:
            return
        ra, dec = self._interpolated()
        self._stop_motion()
        self._slew = None
        self._parking = False
        self.world.set_pointing(ra, dec, self._pier_side_for(ra))

    async def coordinates(self) -> tuple[float, float]:
        self._require()
        if self._moving and self._slew is not None:
            return self.world.mount_from_true(*self._interpolated())
        return self.world.mount_from_true(*self.world.pointing())

    async def set_tracking(self, on: bool) -> None:
        self._require()
        if on and (self._parked or self._parking):
            raise DeviceError("a parked mount cannot track")
        self.world.set_tracking(on)

    async def tracking(self) -> bool:
        self._require()
        return self.world.tracking

    async def park(self) -> None:
        self._require()
        if self._parked:
            return
        if self._moving:
            await self.abort_slew()
        self._parking = True
        ra, dec = self._home()
        self._begin_slew(ra, dec, "park")

    async def unpark(self) -> None:
        self._require()
        if self._parking:
            raise DeviceBusy("mount is parking")
        self._parked = False

    async def is_parked(self) -> bool:
        self._require()
        return self._parked

    async def side_of_pier(self) -> PierSide:
        self._require()
        return self.world.pier_side
