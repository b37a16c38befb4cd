"""Helpers for the device tests: a hand-driven clock, a small simulated rig, star matching."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from runner.devices.interfaces import Camera, ExposureState, Frame
from runner.plan.equipment import (
    CameraProfile,
    Equipment,
    FilterSpec,
    FilterWheelProfile,
    FocuserProfile,
    MountProfile,
    SafetyProfile,
    Simulation,
)


class ManualClock:
    """A clock that moves only when the test says so: exact, with no timing in the asserts."""

    def __init__(self, start: datetime | None = None) -> None:
        self._t = 0.0
        self._start = start or datetime(2025, 1, 15, 21, 0, tzinfo=UTC)
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def speed(self) -> float:
        return 1.0

    def monotonic(self) -> float:
        return self._t

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)

    def to_real(self, seconds: float) -> float:
        return max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        deadline = self._t + seconds
        while self._t < deadline:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut

    async def advance(self, seconds: float) -> None:
        """Move time on and let every task that was waiting for it run."""
        self._t += seconds
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


async def take(
    camera: Camera, clock: ManualClock, seconds: float, frame_type: str = "light", step: float = 0.5
) -> Frame:
    """Expose and wait until the frame is ready, advancing the manual clock."""
    await camera.start_exposure(seconds, frame_type)
    for _ in range(200_000):
        if await camera.exposure_status() is ExposureState.ready:
            return await camera.exposure_result()
        await clock.advance(step)
        await asyncio.sleep(0.0005)  # real time for the render thread
    raise AssertionError("frame never became ready")


def rig(**sim: object) -> Equipment:
    """A small full rig; ``sim`` overrides Simulation fields (drift off by default)."""
    settings: dict[str, object] = {"tracking_drift": 0.0, "ambient_drift": 0.0, **sim}
    return Equipment(
        name="test",
        camera=CameraProfile(width=640, height=480, download_time=2.0, read_noise=3.0),
        filter_wheel=FilterWheelProfile(
            filters=[
                FilterSpec(name="L"),
                FilterSpec(name="R", focus_offset=30),
                FilterSpec(name="Ha", focus_offset=80),
            ],
            change_time=3.0,
        ),
        focuser=FocuserProfile(speed=500.0, backlash=60, step_size=100),
        mount=MountProfile(slew_rate=2.0),
        safety=SafetyProfile(),
        simulation=Simulation(**settings),
    )


def star_shift(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Translation taking star list ``a`` (n×2) onto ``b``, found without a guess: the pairwise
    difference that most other pairs agree with, refined by the median of its matches."""
    d = (b[None, :, :] - a[:, None, :]).reshape(-1, 2)
    votes = (np.hypot(*(d[:, None, :] - d[None, :, :]).transpose(2, 0, 1)) < 1.0).sum(axis=1)
    best = d[np.argmax(votes)]
    close = d[np.hypot(*(d - best).T) < 1.0]
    return float(np.median(close[:, 0])), float(np.median(close[:, 1]))
