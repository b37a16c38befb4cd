"""The simulated focuser: finite speed and real mechanical backlash.

Backlash is modelled as play between motor and draw tube: the reported (motor) position ``m``
and the optical position ``o`` satisfy ``m − backlash ≤ o ≤ m``. Moving out, the tube follows
once the play is taken up; after a reversal the first ``backlash`` steps move only the motor.
The camera sees ``o`` (``SimWorld.focuser_position``), so a V-curve sampled from both sides
shows the lag, and approaching every position from the same side (autofocus's overshoot)
removes it.
"""

from __future__ import annotations

import asyncio
import math

from runner.devices.interfaces import Focuser
from runner.devices.sim.base import SimDevice
from runner.devices.sim.world import SimWorld
from runner.errors import DeviceBusy, DeviceError
from runner.plan.equipment import FocuserProfile


class SimFocuser(SimDevice, Focuser):
    kind = "focuser"

    def __init__(self, world: SimWorld, profile: FocuserProfile | None = None) -> None:
        super().__init__(world)
        self.profile = profile or world.profile.focuser or FocuserProfile()
        self._motor = float(world.focuser_position)
        self._optical = float(world.focuser_position)
        # A move in progress: (clock start, motor start, optical start, target); None when still.
        self._move: tuple[float, float, float, int] | None = None
        self._stuck = False

    @property
    def backlash(self) -> int:
        return self.profile.backlash

    def _advance(self) -> None:
        """Bring motor and optical position up to the current clock time."""
        if self._move is None or self._stuck:
            return
        t0, m0, o0, target = self._move
        travelled = self.profile.speed * (self.clock.monotonic() - t0)
        if travelled >= abs(target - m0):
            m = float(target)
        else:
            m = m0 + math.copysign(travelled, target - m0)
        self._motor = m
        self._optical = min(max(o0, m - self.backlash), m)
        self.world.focuser_position = round(self._optical)

    async def position(self) -> int:
        self._require()
        self._advance()
        return round(self._motor)

    async def max_position(self) -> int:
        self._require()
        return self.profile.max_position

    async def move_to(self, position: int) -> None:
        self._require()
        if self._moving:
            raise DeviceBusy("focuser is moving")
        lo, hi = self.profile.min_position, self.profile.max_position
        if not lo <= position <= hi:
            raise DeviceError(f"focuser position {position} outside {lo}…{hi}")
        self._advance()
        self._stuck = self.world.take_fault("focuser_stuck")
        self._move = (self.clock.monotonic(), self._motor, self._optical, int(position))
        duration = abs(position - self._motor) / self.profile.speed
        self._start_motion(self._run(self.clock.monotonic() + duration), "sim-focuser-move")

    async def _run(self, deadline: float) -> None:
        if self._stuck:
            await asyncio.Event().wait()  # the motor stalls: is_moving stays true until halt
        await self.clock.sleep(deadline - self.clock.monotonic())
        self._advance()
        self._move = None

    async def is_moving(self) -> bool:
        self._require()
        return self._moving

    async def halt(self) -> None:
        self._require()
        self._advance()
        self._stop_motion()
        self._move = None
        self._stuck = False

    async def temperature(self) -> float | None:
        """The probe reads ambient air (0.1 °C resolution)."""
        self._require()
        return round(self.world.ambient_temperature(), 1)

    async def disconnect(self) -> None:
        if self._connected:
            await self.halt()
        await super().disconnect()
