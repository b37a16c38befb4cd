"""What every simulated device shares: the connection flag and a task for a timed motion."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from runner.devices.sim.world import SimWorld
from runner.errors import DeviceDisconnected


class SimDevice:
    """Connection state plus at most one background motion task per device."""

    kind = "device"

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.clock = world.clock
        self._connected = False
        self._motion: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def _require(self) -> None:
        if not self._connected:
            raise DeviceDisconnected(f"simulated {self.kind} is not connected")

    def _start_motion(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._stop_motion()
        self._motion = asyncio.create_task(coro, name=name)

    def _stop_motion(self) -> None:
        if self._motion is not None and not self._motion.done():
            self._motion.cancel()
        self._motion = None

    @property
    def _moving(self) -> bool:
        return self._motion is not None and not self._motion.done()

    async def close(self) -> None:
        """Cancel a motion in progress and wait for it (simulator teardown)."""
        task, self._motion = self._motion, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
