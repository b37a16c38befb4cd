"""The guider a run uses: PHD2 (real, or the simulator started in-process) behind the
``Guider`` interface."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from runner.clock import Clock
from runner.devices.interfaces import Guider
from runner.engine.events import EventBus
from runner.plan.equipment import Equipment


@contextlib.asynccontextmanager
async def open_guider(
    eq: Equipment, clock: Clock, world: Any, bus: EventBus
) -> AsyncIterator[Guider]:
    from runner.guiding.session import open_guider as open_phd2

    assert eq.guider is not None
    where = "simulator (in-process)" if eq.guider.backend == "simulator" else (
        f"PHD2 at {eq.guider.host}:{eq.guider.port}"
    )
    async with open_phd2(eq, clock, world) as guider:
        bus.emit("guider_connected", guider=where)
        yield guider
