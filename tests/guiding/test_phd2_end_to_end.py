"""Our client and ``PHD2Guider`` against the simulator: the conformance scenarios end to end,
the guider the engine uses (with ``SimWorld``), and the rest of seed 001's API."""

from __future__ import annotations

import asyncio
import math
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from astropy.io import fits
from phd2_testkit import RawClient, is_event
from typer.testing import CliRunner

from runner.clock import ScaledClock
from runner.devices.interfaces import GuiderState
from runner.devices.sim.world import SimWorld
from runner.errors import GuiderError, SettleFailed
from runner.guiding import (
    NotGuidingError,
    PHD2Client,
    PHD2Guider,
    PHD2RpcError,
    PHD2Simulator,
    SettleParams,
    StarLostRecovery,
    open_guider,
    scan_servers,
    start_phd2,
    stop_phd2,
)
from runner.guiding.cli import app as sim_cli
from runner.guiding.sim import GuideCameraParams
from runner.plan.equipment import Equipment, Fault, GuiderProfile, Simulation

SETTLE = SettleParams(pixels=1.5, time_s=1, timeout_s=30)
OpenRaw = Callable[[], Awaitable[RawClient]]


def recorder(client: PHD2Client) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    client.add_listener(lambda e: events.append(dict(e)))
    return events


async def fresh_client(sim: PHD2Simulator, clock: ScaledClock) -> PHD2Client:
    c = PHD2Client("127.0.0.1", sim.port, clock=clock)
    await c.connect_server()
    return c


# ------------------------------------------------------------------ 1. state


async def test_the_client_tracks_the_simulator_state_from_events(
    sim: PHD2Simulator, client: PHD2Client, clock: ScaledClock
) -> None:
    async def check(expected: GuiderState) -> None:
        late = await fresh_client(sim, clock)  # catch-up path
        assert late.app_state is expected and sim.app_state == expected.value
        await late.disconnect_server()
        assert client.app_state is expected  # event path

    await check(GuiderState.stopped)
    await client.connect_equipment()
    looping = client.expect_event(is_event("LoopingExposures"))
    await client.start_looping()
    await asyncio.wait_for(looping, 5)
    await check(GuiderState.looping)
    await client.start_guiding(SETTLE)
    await check(GuiderState.guiding)
    await client.pause_guiding()
    await check(GuiderState.paused)
    await client.resume_guiding()
    lost = client.expect_event(is_event("StarLost"))
    sim.faults.star_lost_at_s = clock.monotonic()
    await asyncio.wait_for(lost, 5)
    await check(GuiderState.lost_lock)
    sim.faults.star_lost_at_s = None
    await client.stop_capture()
    await check(GuiderState.stopped)


# ------------------------------------------------------------------ 2–3. settle ops


async def test_guide_and_dither_return_after_settledone_and_never_overlap(
    sim: PHD2Simulator, client: PHD2Client, raw: OpenRaw
) -> None:
    events = recorder(client)
    await client.connect_equipment()
    first = await client.start_guiding(SETTLE)
    assert events[-1]["Event"] == "SettleDone" and first.total_frames >= 1
    assert first.duration_s > 8  # calibration (8 steps of 1 s) happened first

    # Two dithers at once from one client: the second waits, PHD2 never refuses one.
    a, b = await asyncio.gather(client.dither(2.0, SETTLE), client.dither(2.0, SETTLE))
    done = [e for e in events if e["Event"] == "SettleDone"]
    assert len(done) == 3 and all(e["Status"] == 0 for e in done)
    assert a.total_frames >= 1 and b.total_frames >= 1

    # Another client's dither is settling: ours waits for its SettleDone before dithering.
    other = await raw()
    await other.catchup()
    long_settle = {"pixels": 0.5, "time": 4, "timeout": 60}
    assert (await other.call("dither", [2, False, long_settle]))[0]["result"] == 0
    mark = len(events)
    await client.dither(2.0, SETTLE)
    names = [e["Event"] for e in events[mark:]]
    assert names.index("SettleDone") < names.index("GuidingDithered")
    assert not client.settling and not sim.core.settling


# ------------------------------------------------------------------ 4–5. failures


async def test_settle_failures_stops_and_refusals_surface_as_errors(
    sim: PHD2Simulator, client: PHD2Client, clock: ScaledClock
) -> None:
    await client.connect_equipment()
    await client.start_guiding(SETTLE)
    sim.faults.settle_never = 1
    t0 = clock.monotonic()
    with pytest.raises(SettleFailed, match="timed-out waiting for guider to settle"):
        await client.dither(2.0, SettleParams(pixels=1.0, time_s=2, timeout_s=6))
    assert clock.monotonic() - t0 >= 6

    guide = asyncio.create_task(client.start_guiding(SettleParams(0.3, 30, 60)))
    await asyncio.sleep(0.1)
    await client.stop_capture()
    with pytest.raises(SettleFailed, match="Stopped capturing"):
        await guide
    assert client.app_state is GuiderState.stopped
    with pytest.raises(NotGuidingError):
        await client.dither(2.0, SETTLE)


async def test_a_drop_mid_settle_is_survived_and_slow_set_connected_blocks_no_one(
    sim: PHD2Simulator, client: PHD2Client, raw: OpenRaw, clock: ScaledClock
) -> None:
    sim.faults.set_connected_delay_s = 20.0
    other = await raw()
    await other.catchup()
    t0 = clock.monotonic()
    connecting = asyncio.create_task(client.connect_equipment())
    await asyncio.sleep(0.05)
    assert await other.result("get_app_state") == "Stopped"  # served meanwhile
    await connecting
    assert clock.monotonic() - t0 >= 20.0 and await client.equipment_connected()

    await client.start_guiding(SETTLE)
    sim.faults.drop_mid_settle = 1
    result = await client.dither(2.0, SettleParams(pixels=1.0, time_s=5, timeout_s=60))
    assert client.reconnects == 1 and client.connected
    assert result.total_frames >= 5
    assert client.app_state is GuiderState.guiding


# ------------------------------------------------------------------ the engine's guider


def rig(**sim_kw: Any) -> Equipment:
    return Equipment(
        name="test rig",
        guider=GuiderProfile(backend="simulator", pixel_scale=2.5, exposure=1.0),
        simulation=Simulation(**sim_kw),
    )


async def test_phd2_guider_on_the_simulator_moves_the_world_and_measures_rms() -> None:
    clock = ScaledClock(speed=50)
    equipment = rig()
    world = SimWorld(clock=clock, profile=equipment)
    async with open_guider(equipment, clock, world) as guider:
        assert isinstance(guider, PHD2Guider)
        assert await guider.state() is GuiderState.stopped and not world.guiding
        await guider.guide(1.5, 1, 30)
        assert await guider.state() is GuiderState.guiding and world.guiding
        guider.start_stats()
        await clock.sleep(15)
        stats = guider.stats()
        assert stats is not None and stats.unit == "arcsec" and stats.frames >= 8
        # Seeing 0.15 px per axis at 2.5"/px, corrected by a 0.7 proportional loop.
        assert 0.2 < stats.rms_total < 1.5

        before = (world.offset_ra, world.offset_dec)
        dithered = guider.client.expect_event(is_event("GuidingDithered"))
        await guider.dither(4.0, False, 0.5, 2, 60)
        d = (await dithered)
        shift_arcsec = math.hypot(world.offset_ra - before[0], world.offset_dec - before[1])
        assert abs(shift_arcsec - math.hypot(d["dx"], d["dy"]) * 2.5) < 2.0

        await guider.pause(True)
        assert await guider.state() is GuiderState.paused and not world.guiding
        await guider.pause(False)
        await guider.client.wait_event(is_event("GuideStep"), 10)
        assert world.guiding
        await guider.stop()
        assert await guider.state() is GuiderState.stopped and not world.guiding


async def test_the_star_lost_fault_is_surfaced_and_recovery_restarts_guiding() -> None:
    clock = ScaledClock(speed=50)
    # Five guide frames without a star, once guiding has run for a while.
    equipment = rig(faults=[Fault(kind="star_lost", at_time=25.0, times=5)])
    world = SimWorld(clock=clock, profile=equipment)
    async with open_guider(equipment, clock, world) as guider:
        await guider.guide(1.5, 1, 30)
        await guider.client.wait_event(is_event("StarLost"), 60)
        assert guider.star_lost and await guider.state() is GuiderState.lost_lock
        assert not world.guiding
        outcome = await guider.recover_lost_star(
            wait_s=1.5, restart_guiding=True, settle_pixels=1.5, settle_time=1,
            settle_timeout=30)
        assert outcome is StarLostRecovery.restarted
        assert not guider.star_lost and world.guiding
        assert guider.star_lost_events == 5 and guider.star_lost_for_s() == 0.0


async def test_settle_and_drop_faults_of_the_world_reach_the_guider() -> None:
    clock = ScaledClock(speed=50)
    equipment = rig(faults=[Fault(kind="settle_never", at_frame=2),
                            Fault(kind="guider_drop", at_frame=3)])
    world = SimWorld(clock=clock, profile=equipment)
    async with open_guider(equipment, clock, world) as guider:
        await guider.guide(1.5, 1, 30)  # light frame 1 is next: no fault due
        world.light_frames = 1
        with pytest.raises(SettleFailed, match="timed-out"):
            await guider.dither(2.0, False, 1.0, 1, 5)
        world.light_frames = 2
        await guider.dither(2.0, False, 1.0, 5, 60)  # the link drops mid-settle
        assert guider.client.reconnects == 1 and await guider.state() is GuiderState.guiding


async def test_without_a_known_pixel_scale_stats_are_in_pixels(clock: ScaledClock) -> None:
    camera = GuideCameraParams(pixel_scale_arcsec=None)
    async with PHD2Simulator(clock=clock, port=0, exposure_s=1.0, camera=camera,
                             calibration_steps=1) as sim:
        guider = PHD2Guider.from_profile(GuiderProfile(pixel_scale=None, exposure=1.0), clock,
                                         port=sim.port)
        await guider.connect()
        await guider.guide(1.5, 1, 30)
        guider.start_stats()
        await guider.client.wait_event(is_event("GuideStep"), 10)
        stats = guider.stats()
        assert stats is not None and stats.unit == "px" and stats.frames == 1
        assert await guider.wait_star_regained(1) is True
        await guider.disconnect()


# ------------------------------------------------------------------ seed 001's API


async def test_profiles_equipment_and_calibration(
    sim: PHD2Simulator, client: PHD2Client
) -> None:
    profiles = await client.get_profiles()
    assert [p.name for p in profiles] == ["Nightrunner Simulator", "Backyard EQ6"]
    selected = [p for p in profiles if p.selected]
    assert len(selected) == 1 and set(selected[0].devices) == {"camera", "mount"}
    assert profiles[1].devices == {}  # PHD2 shows devices of the selected profile only

    await client.connect_equipment()
    current = await client.set_profile("Backyard EQ6")  # disconnects equipment first
    assert current.id == 2 and current.devices["mount"].name == "EQMOD ASCOM HEQ5/6"
    assert not current.devices["camera"].connected and not await client.equipment_connected()
    with pytest.raises(GuiderError, match="no profile"):
        await client.set_profile(99)
    await client.reconnect_equipment()
    assert await client.equipment_connected()

    with pytest.raises(PHD2RpcError, match="could not flip calibration"):
        await client.flip_calibration()
    flipped = client.expect_event(is_event("CalibrationDataFlipped"))
    await client.start_calibration(SETTLE)
    assert await client.is_calibrated()
    await client.flip_calibration()
    await asyncio.wait_for(flipped, 5)
    await client.stop_calibration()
    await client.clear_calibration()
    assert not await client.is_calibrated()


async def test_looping_star_image_saved_frames_and_pause(
    sim: PHD2Simulator, client: PHD2Client, tmp_path: Path
) -> None:
    await client.connect_equipment()
    single = await client.capture_single_frame(0.5, path=tmp_path / "single.fits")
    assert single == tmp_path / "single.fits"
    with fits.open(single) as hdul:
        assert hdul[0].data.shape == (480, 640) and hdul[0].header["EXPTIME"] == 0.5

    await client.start_looping()
    await client.wait_event(is_event("LoopingExposures"), 5)
    x, y = await client.find_star()
    image = await client.get_image(31)
    pixels = image.pixels()
    assert pixels.shape == (31, 31) and pixels.dtype == np.uint16
    peak_y, peak_x = np.unravel_index(int(np.argmax(pixels)), pixels.shape)
    assert abs(peak_x - image.star_x_px) <= 1.0 and abs(peak_y - image.star_y_px) <= 1.0
    assert 1000 < float(np.median(pixels)) < 1500  # sky background, not an empty stamp
    assert (await client.get_image()).width == 15

    saved = await client.save_image()
    assert saved.parent == tmp_path
    with fits.open(saved) as hdul:
        data = hdul[0].data
        assert data.shape == (480, 640) and data.max() > 10_000
        # The guide star is in it, where find_star said.
        assert abs(int(np.argmax(data.max(axis=0))) - x) <= 2
        assert abs(int(np.argmax(data.max(axis=1))) - y) <= 2

    await client.pause_guiding(full=True)
    assert await client.is_paused() and client.app_state is GuiderState.paused
    await client.resume_guiding()
    assert not await client.is_paused()
    await client.stop_looping()
    assert client.app_state is GuiderState.stopped


async def test_scanning_finds_servers_and_start_stop_drive_an_executable(
    sim: PHD2Simulator, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert await scan_servers("127.0.0.1", [sim.port, free], timeout_s=2.0) == [sim.port]

    # A stand-in "PHD2 executable": the simulator's command line on a free port.
    exe = tmp_path / "phd2"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m runner.guiding.cli phd2 "
                   f"--port {free} --speed 20\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    proc = await start_phd2(exe, port=free, startup_timeout_s=60)
    try:
        assert proc.running and await scan_servers("127.0.0.1", [free]) == [free]
        client = PHD2Client("127.0.0.1", free)
        await client.connect_server()
        assert client.app_state is GuiderState.stopped
        await stop_phd2(proc, client=client)
        assert proc.process.returncode == 0
    finally:
        if proc.running:
            proc.process.kill()
            await proc.process.wait()
    with pytest.raises(GuiderError, match="not found"):
        await start_phd2(tmp_path / "missing")


def test_the_cli_mounts_as_nightrunner_sim_phd2() -> None:
    root = typer.Typer()
    root.add_typer(sim_cli, name="sim")
    result = CliRunner().invoke(root, ["sim", "phd2", "--help"])
    assert result.exit_code == 0, result.output
    assert "--port" in result.output and "--speed" in result.output
