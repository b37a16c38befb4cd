"""Device actions the executor composes: each starts a device operation, polls it on the
engine clock and honours cancellation (an abort cancels the task; the device is told to stop).
"""

from __future__ import annotations

import asyncio
import contextlib

from runner.clock import Clock, Deadline
from runner.devices.interfaces import Camera, ExposureState, FilterWheel, Focuser, Frame, Mount
from runner.errors import DeviceError, DeviceTimeout

POLL = 0.5  # clock seconds between status polls


async def _poll_until(clock: Clock, done: object, what: str, timeout: float | None) -> None:
    """Poll ``done()`` (an async predicate) every POLL clock seconds until true or timeout."""
    deadline = None if timeout is None else Deadline(clock, timeout)
    while not await done():  # type: ignore[operator]
        if deadline is not None and deadline.expired():
            raise DeviceTimeout(f"{what} did not finish within {timeout:g} s")
        await clock.sleep(POLL)


async def expose(
    camera: Camera, clock: Clock, seconds: float, frame_type: str, timeout: float
) -> Frame:
    """One exposure; an abort (task cancellation) aborts it on the camera and discards it."""
    await camera.start_exposure(seconds, frame_type, light=frame_type in ("light", "flat"))
    try:
        deadline = Deadline(clock, timeout)
        poll = min(POLL, max(0.02, seconds / 20))
        while True:
            state = await camera.exposure_status()
            if state is ExposureState.ready:
                return await camera.exposure_result()
            if state is ExposureState.error:
                await camera.exposure_result()  # raises the camera's own error
                raise DeviceError("camera reported an exposure error")
            if state is ExposureState.idle:
                raise DeviceError("camera went idle without delivering the frame")
            if deadline.expired():
                raise DeviceTimeout(f"exposure of {seconds:g} s not complete after {timeout:g} s")
            await clock.sleep(poll)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(camera.abort_exposure())
        raise


async def move_filter(wheel: FilterWheel, clock: Clock, slot: int, timeout: float) -> bool:
    """Move to ``slot``; True when the wheel actually moved."""
    if await wheel.position() == slot:
        return False
    await wheel.move_to(slot)

    async def arrived() -> bool:
        return await wheel.position() == slot

    await _poll_until(clock, arrived, f"filter wheel move to slot {slot}", timeout)
    return True


async def move_focuser(focuser: Focuser, clock: Clock, position: int, timeout: float) -> None:
    await focuser.move_to(position)

    async def stopped() -> bool:
        return not await focuser.is_moving()

    try:
        await _poll_until(clock, stopped, f"focuser move to {position}", timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(focuser.halt())
        raise


async def slew(mount: Mount, clock: Clock, ra: float, dec: float, timeout: float) -> None:
    if await mount.is_parked():
        await mount.unpark()

        async def unparked() -> bool:
            return not await mount.is_parked()

        await _poll_until(clock, unparked, "unpark", timeout)
    # each back-end's slew_to leaves the mount tracking the target, the way its protocol does
    # it (ASCOM: Tracking before SlewToCoordinatesAsync; INDI: ON_COORD_SET=TRACK)
    await mount.slew_to(ra, dec)

    async def stopped() -> bool:
        return not await mount.is_slewing()

    try:
        await _poll_until(clock, stopped, "slew", timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(mount.abort_slew())
        raise


async def park(mount: Mount, clock: Clock, timeout: float) -> None:
    await mount.park()
    await _poll_until(clock, mount.is_parked, "park", timeout)


async def set_temperature(
    camera: Camera,
    clock: Clock,
    target: float,
    rate: float | None,
    timeout: float,
    *,
    tolerance: float = 0.5,
    cooler_off_at_end: bool = False,
) -> float:
    """Ramp the set point at ``rate`` °C/min (sent at least every 10 s, computed from the
    elapsed clock time, so the ramp reaches ``target`` exactly |Δ| / rate after it began) and
    wait until the sensor is within ``tolerance`` of ``target``. Returns the final temperature.
    The step fails when that has not happened ``timeout`` seconds after it began."""
    began = clock.monotonic()
    current = await camera.temperature()
    ramp_s = 0.0 if rate is None else abs(target - current) / rate * 60.0
    step_s = 10.0
    while True:
        elapsed = clock.monotonic() - began
        if elapsed >= timeout:
            raise DeviceTimeout(
                f"camera at {await camera.temperature():.1f} °C, did not reach {target:g} °C "
                f"within {timeout:g} s"
            )
        setpoint = target if elapsed >= ramp_s else current + (target - current) * elapsed / ramp_s
        await camera.set_temperature(setpoint)
        temp = await camera.temperature()
        if setpoint == target and abs(temp - target) <= tolerance:
            if cooler_off_at_end:
                await camera.set_cooler(False)
            return temp
        pause = step_s if setpoint != target else 2.0
        if setpoint != target:
            pause = min(pause, ramp_s - elapsed)  # land on the ramp's end exactly
        await clock.sleep(min(pause, timeout - elapsed))
