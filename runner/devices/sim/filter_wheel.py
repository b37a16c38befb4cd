"""The simulated filter wheel: every change takes the profile's ``change_time``.

The new filter (its throughput and focus offset) reaches the camera only when the wheel has
stopped; until then the camera still sees the old one.
"""

from __future__ import annotations

from runner.devices.interfaces import FilterWheel
from runner.devices.sim.base import SimDevice
from runner.devices.sim.world import SimWorld
from runner.errors import DeviceBusy, DeviceError
from runner.plan.equipment import FilterWheelProfile


class SimFilterWheel(SimDevice, FilterWheel):
    kind = "filter wheel"

    def __init__(self, world: SimWorld, profile: FilterWheelProfile | None = None) -> None:
        super().__init__(world)
        profile = profile or world.profile.filter_wheel
        if profile is None:
            raise DeviceError("the equipment profile has no filter wheel")
        self.profile = profile
        self._names = [f.name for f in profile.filters]
        self._slot = 0
        world.filter_name = self._names[0]

    async def names(self) -> list[str]:
        self._require()
        return list(self._names)

    async def position(self) -> int | None:
        self._require()
        return None if self._moving else self._slot

    async def move_to(self, slot: int) -> None:
        self._require()
        if self._moving:
            raise DeviceBusy("filter wheel is moving")
        if not 0 <= slot < len(self._names):
            raise DeviceError(f"filter slot {slot} outside 0…{len(self._names) - 1}")
        if slot == self._slot:
            return
        deadline = self.clock.monotonic() + float(self.profile.change_time)
        self._start_motion(self._run(slot, deadline), "sim-filter-wheel-move")

    async def _run(self, slot: int, deadline: float) -> None:
        try:
            await self.clock.sleep(deadline - self.clock.monotonic())
        finally:
            # An interrupted move still ends on a filter: the wheel settles in the target slot.
            self._slot = slot
            self.world.filter_name = self._names[slot]
