"""One call for the engine: the guider an equipment profile asks for, connected and ready.

``backend: simulator`` starts the PHD2 simulator in-process on a free port, sharing the engine's
clock and ``SimWorld`` (so dithers move the simulated camera's field); ``backend: phd2`` connects
to a real PHD2 at ``host:port``. Either way the engine gets a ``PHD2Guider`` and never knows
which — the client code path is the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from runner.clock import Clock
from runner.devices.sim.world import SimWorld
from runner.errors import GuiderError
from runner.guiding.phd2_guider import PHD2Guider
from runner.guiding.sim import PHD2Simulator, SimFaults
from runner.plan.equipment import Equipment


@contextlib.asynccontextmanager
async def open_guider(
    equipment: Equipment, clock: Clock, world: SimWorld | None = None,
    *, faults: SimFaults | None = None,
) -> AsyncIterator[PHD2Guider]:
    """Yield a connected ``PHD2Guider``; disconnect (and stop the simulator) on exit."""
    profile = equipment.guider
    if profile is None:
        raise GuiderError(f"equipment profile {equipment.name!r} has no guider")
    async with contextlib.AsyncExitStack() as stack:
        port: int | None = None
        if profile.backend == "simulator":
            sim = PHD2Simulator.from_equipment(equipment, clock=clock, world=world, faults=faults)
            await stack.enter_async_context(sim)
            port = sim.port
        guider = PHD2Guider.from_profile(profile, clock, port=port,
                                         host="127.0.0.1" if port else None)
        await guider.connect()
        stack.push_async_callback(guider.disconnect)
        yield guider
