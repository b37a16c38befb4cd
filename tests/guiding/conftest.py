"""Fixtures for the guiding tests: an accelerated clock, the simulator, raw and real clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from phd2_testkit import RawClient

from runner.clock import ScaledClock
from runner.guiding import PHD2Client, PHD2Simulator

#: Simulated seconds per real second. One 1 s guide frame takes 20 ms of real time.
SPEED = 50.0


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(speed=SPEED)


@pytest.fixture
async def sim(clock: ScaledClock, tmp_path: Path) -> AsyncIterator[PHD2Simulator]:
    async with PHD2Simulator(
        clock=clock, port=0, exposure_s=1.0, calibration_steps=2, save_dir=tmp_path
    ) as s:
        yield s


@pytest.fixture
async def raw(sim: PHD2Simulator) -> AsyncIterator[Callable[[], Awaitable[RawClient]]]:
    """Open raw socket clients to the simulator (closed at teardown)."""
    opened: list[RawClient] = []

    async def open_raw() -> RawClient:
        c = await RawClient.open(sim.port)
        opened.append(c)
        return c

    yield open_raw
    for c in opened:
        await c.close()


@pytest.fixture
async def client(sim: PHD2Simulator, clock: ScaledClock) -> AsyncIterator[PHD2Client]:
    c = PHD2Client("127.0.0.1", sim.port, clock=clock, reconnect_initial_s=0.5)
    await c.connect_server()
    yield c
    await c.disconnect_server()
