"""The camera's cooler through the night: a ``cooler`` event every minute of clock time.

The cool and warm steps say where the sensor temperature ended; nothing said what the cooler
did in between. The morning report plots sensor temperature, set point and cooler power over
the whole night (a cooler at 100 % cannot hold its set point: the darks will not match), so
the run samples them on its own task, beside the night's. The exposure path is untouched: the
readings are the camera's ordinary getters, which every back-end serves while it exposes
(the control plane's telemetry reads them every second during a night).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from runner.clock import Clock
from runner.engine.events import EventBus

#: Clock seconds between two samples: 600 events in a ten-hour night.
PERIOD_S = 60.0
#: A reading slower than this (real seconds) is left out of its sample.
READ_TIMEOUT_S = 2.0


async def _reading(getter: Any) -> float | None:
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            value = await getter()
    except Exception:  # unsupported or unreachable: absent from this sample
        return None
    return None if value is None else round(float(value), 2)


async def sample(camera: Any) -> dict[str, float | None]:
    """One reading of the cooler: sensor temperature, set point (None: cooler off) and power."""
    return {"ccd_temp": await _reading(camera.temperature),
            "set_temp": await _reading(camera.set_point),
            "cooler_power": await _reading(camera.cooler_power)}


async def watch_cooler(camera: Any, clock: Clock, bus: EventBus,
                       period_s: float = PERIOD_S) -> None:
    """Until cancelled (after the shutdown, whose warm-up it records too): a ``cooler``
    event each ``period_s`` of clock time from the night's start; a sample with no reading
    at all (a camera away, or without a cooler) is left out."""
    if camera is None:
        return
    while True:
        got = await sample(camera)
        if any(v is not None for v in got.values()):
            with contextlib.suppress(Exception):  # the record is best-effort, never the night
                bus.emit("cooler", **got)
        await clock.sleep(period_s)
