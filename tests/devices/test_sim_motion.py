"""Focuser, filter wheel, mount and safety monitor of the simulator, and the device factory."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from devsim_helpers import ManualClock, rig, star_shift, take

from runner.clock import ScaledClock
from runner.devices.factory import build_devices
from runner.devices.interfaces import PierSide
from runner.devices.sim import (
    SimCamera,
    SimFilterWheel,
    SimFocuser,
    SimMount,
    SimSafetyMonitor,
    SimWorld,
)
from runner.errors import DeviceBusy, DeviceError
from runner.plan.equipment import Equipment, Fault, FocuserProfile
from runner.plan.models import Site
from runner.stacking.detect import detect_stars


async def focuser_on(clock: ManualClock, **sim: object) -> SimFocuser:
    f = SimFocuser(SimWorld(clock, rig(**sim)))
    await f.connect()
    return f


async def settle(dev: SimFocuser, clock: ManualClock) -> None:
    while await dev.is_moving():
        await clock.advance(0.5)


async def test_focuser_moves_at_its_speed(clock: ManualClock) -> None:
    foc = await focuser_on(clock)
    start = await foc.position()
    await foc.move_to(start + 1000)  # 500 steps/s
    await clock.advance(1.0)
    assert await foc.is_moving() and await foc.position() == start + 500
    with pytest.raises(DeviceBusy):
        await foc.move_to(start)
    await clock.advance(1.0)
    assert not await foc.is_moving() and await foc.position() == start + 1000
    with pytest.raises(DeviceError):
        await foc.move_to(await foc.max_position() + 1)
    assert await foc.temperature() == pytest.approx(foc.world.ambient_temperature(), abs=0.05)


async def test_focuser_backlash_lags_the_optics_on_reversal(clock: ManualClock) -> None:
    foc = await focuser_on(clock)  # backlash 60 steps
    world = foc.world
    await foc.move_to(20_000)
    await settle(foc, clock)
    await foc.move_to(21_000)  # outward: the play is taken up, optics trail by 60
    await settle(foc, clock)
    assert world.focuser_position == 21_000 - 60
    await foc.move_to(20_970)  # reverse by less than the backlash: optics do not move
    await settle(foc, clock)
    assert await foc.position() == 20_970 and world.focuser_position == 21_000 - 60
    await foc.move_to(20_900)  # the rest of the way inward moves them
    await settle(foc, clock)
    assert world.focuser_position == 20_900
    # Approaching from the same side twice lands the optics on the same spot.
    for target in (20_500, 20_500):
        await foc.move_to(target - 200)
        await settle(foc, clock)
        await foc.move_to(target)
        await settle(foc, clock)
        assert world.focuser_position == 20_500 - 60


async def test_focuser_stuck_fault_keeps_moving_until_halt(clock: ManualClock) -> None:
    foc = await focuser_on(clock, faults=[Fault(kind="focuser_stuck")])
    start = await foc.position()
    await foc.move_to(start + 100)
    await clock.advance(3600.0)
    assert await foc.is_moving() and await foc.position() == start
    await foc.halt()
    assert not await foc.is_moving()
    await foc.move_to(start + 100)  # the fault happened once
    await settle(foc, clock)
    assert await foc.position() == start + 100


async def test_filter_wheel_change_takes_time_and_moves_best_focus(clock: ManualClock) -> None:
    world = SimWorld(clock, rig())
    wheel = SimFilterWheel(world)
    await wheel.connect()
    assert await wheel.names() == ["L", "R", "Ha"] and await wheel.position() == 0
    focus_l = world.best_focus()
    await wheel.move_to(2)
    assert await wheel.position() is None and world.filter_name == "L"
    await clock.advance(3.0)
    assert await wheel.position() == 2 and world.filter_name == "Ha"
    assert world.best_focus() == focus_l + 80
    with pytest.raises(DeviceError):
        await wheel.move_to(3)


async def test_narrowband_filter_dims_sky_and_stars(clock: ManualClock) -> None:
    world = SimWorld(clock, rig())
    cam, wheel = SimCamera(world), SimFilterWheel(world)
    await cam.connect()
    await wheel.connect()
    lum = await take(cam, clock, 60.0)
    await wheel.move_to(2)
    await clock.advance(3.0)
    ha = await take(cam, clock, 60.0)
    assert (np.median(ha.data) - 50) < 0.05 * (np.median(lum.data) - 50)
    assert ha.extra["sim_filter"] == "Ha"


async def test_mount_slew_time_pier_side_and_flip_rotates_field() -> None:
    # 2025-01-15 21:00 UTC at longitude 0: local sidereal time ≈ 4.7 h = 70.6°.
    clock = ManualClock(datetime(2025, 1, 15, 21, 0, tzinfo=UTC))
    world = SimWorld(clock, rig())
    world.site_latitude, world.site_longitude = 52.0, 0.0
    mount, cam = SimMount(world), SimCamera(world)
    await mount.connect()
    await cam.connect()
    lst = world.local_sidereal_deg()
    assert lst == pytest.approx(70.6, abs=0.5)
    ra = (lst + 10.0) % 360  # 10° east of the meridian (hour angle -40 min)
    ra0, dec0 = await mount.coordinates()
    await mount.slew_to(ra, 40.0)
    assert await mount.is_slewing()
    duration = max(abs((ra - ra0 + 180) % 360 - 180), abs(40.0 - dec0)) / 2.0
    await clock.advance(duration - 1.0)
    assert await mount.is_slewing()
    await clock.advance(1.0)
    assert not await mount.is_slewing() and await mount.tracking()
    assert await mount.coordinates() == pytest.approx((ra, 40.0))
    assert await mount.side_of_pier() is PierSide.west
    before = await take(cam, clock, 20.0)
    await clock.advance(3600.0)  # now 5° past the meridian: still west until a flip
    assert await mount.side_of_pier() is PierSide.west
    await mount.slew_to(ra, 40.0)  # the meridian flip
    await clock.advance(1.0)
    assert await mount.side_of_pier() is PierSide.east
    after = await take(cam, clock, 20.0)
    # The field is turned 180° about the sensor centre.
    sb = detect_stars(before.data, max_stars=25).xy
    sa = detect_stars(after.data, max_stars=25).xy
    turned = np.array([639.0, 479.0]) - sa
    dx, dy = star_shift(sb, turned)
    assert abs(dx) < 0.2 and abs(dy) < 0.2


async def test_mount_park_unpark_and_slew_resets_offsets(clock: ManualClock) -> None:
    world = SimWorld(clock, rig())
    mount = SimMount(world)
    await mount.connect()
    await mount.slew_to(10.0, 20.0)
    await clock.advance(120.0)
    world.add_offset_arcsec(30.0, 30.0)
    await mount.slew_to(12.0, 20.0)
    await clock.advance(5.0)
    assert (world.offset_ra, world.offset_dec) == (0.0, 0.0)
    await mount.park()
    assert not await mount.is_parked()
    await clock.advance(120.0)
    assert await mount.is_parked() and not await mount.tracking()
    assert (await mount.coordinates())[1] == 90.0
    with pytest.raises(DeviceError):
        await mount.slew_to(10.0, 20.0)
    await mount.unpark()
    await mount.slew_to(10.0, 20.0)
    await clock.advance(120.0)
    assert await mount.coordinates() == pytest.approx((10.0, 20.0))


async def test_mount_not_tracking_lets_the_sky_drift(clock: ManualClock) -> None:
    world = SimWorld(clock, rig())
    mount = SimMount(world)
    await mount.connect()
    await mount.slew_to(100.0, 0.0)
    await clock.advance(60.0)
    await mount.set_tracking(False)
    await clock.advance(240.0)  # four minutes: one degree of sidereal motion
    ra, _ = await mount.coordinates()
    assert ra == pytest.approx(101.0027, abs=1e-3)


async def test_safety_monitor_unsafe_during_weather_fault(clock: ManualClock) -> None:
    world = SimWorld(clock, rig(faults=[Fault(kind="unsafe_weather", at_time=100, duration=50)]))
    safety = SimSafetyMonitor(world)
    await safety.connect()
    assert await safety.is_safe()
    await clock.advance(120.0)
    assert not await safety.is_safe()
    await clock.advance(60.0)
    assert await safety.is_safe()


async def test_factory_builds_simulators_on_one_world() -> None:
    eq = rig()
    devices = build_devices(eq, ScaledClock(100.0), site=Site(latitude=-33.0, longitude=151.0))
    assert devices.world is not None and devices.world.site_latitude == -33.0
    assert isinstance(devices.camera, SimCamera) and isinstance(devices.mount, SimMount)
    assert all(d.world is devices.world for d in devices.all())  # type: ignore[attr-defined]
    await devices.connect_all()
    assert all(d.connected for d in devices.all())
    assert (await devices.mount.coordinates())[1] == -90.0
    await devices.disconnect_all()
    assert not any(d.connected for d in devices.all())
    bare = build_devices(Equipment(name="camera only"), ScaledClock())
    assert bare.focuser is None and bare.mount is None and bare.safety is None


def test_factory_mixes_real_back_ends_with_simulators_per_device() -> None:
    from runner.devices.alpaca.camera import AlpacaCamera
    from runner.devices.indi.focuser import IndiFocuser
    from runner.devices.sim import SimCamera as Sim
    from runner.plan.equipment import CameraProfile

    eq = Equipment(name="mixed", focuser=FocuserProfile(backend="indi"))
    devices = build_devices(eq, ScaledClock())
    assert isinstance(devices.focuser, IndiFocuser) and isinstance(devices.camera, Sim)
    assert not devices.focuser.connected  # building does no I/O
    eq = Equipment(name="alpaca cam", camera=CameraProfile(backend="alpaca", device=0))
    devices = build_devices(eq, ScaledClock())
    assert isinstance(devices.camera, AlpacaCamera) and devices.world is None
