"""The simulated camera, specified by what a user of its frames can observe."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from devsim_helpers import ManualClock, rig, star_shift, take

from runner.devices.interfaces import ExposureState, RoiBox
from runner.devices.sim import SimCamera, SimWorld
from runner.devices.sim.sensor import COLUMN_PATTERN_ADU, dark_rate
from runner.errors import DeviceBusy, DeviceDisconnected, DeviceError
from runner.plan.equipment import CameraProfile, Equipment, Fault
from runner.stacking.detect import detect_stars, measure_hfr


async def camera_on(clock: ManualClock, equipment: Equipment | None = None) -> SimCamera:
    world = SimWorld(clock, equipment or rig())
    cam = SimCamera(world)
    await cam.connect()
    return cam


async def test_light_frame_is_16_bit_star_field_on_sky_background(clock: ManualClock) -> None:
    cam = await camera_on(clock)
    frame = await take(cam, clock, 30.0)
    assert frame.data.dtype == np.uint16 and frame.data.shape == (480, 640)
    assert frame.frame_type == "light" and frame.exposure == 30.0 and frame.binning == 1
    assert frame.start.tzinfo is not None and frame.start < clock.now()
    stars = detect_stars(frame.data)
    assert len(stars) >= 30, "a few hundred stars in the field, dozens above 5σ in 30 s"
    # More faint stars than bright ones (dN/dm grows with magnitude).
    flux = np.sort(stars.flux)
    assert (flux < np.median(flux) * 4).sum() > (flux > np.median(flux) * 4).sum()
    # Sky: offset 50 ADU + 8 e-/s·30 s·vignetting (egain 1) → ~ 50 + 200…240.
    assert 230 < np.median(frame.data) < 300


async def test_same_seed_same_frames_other_seed_other_sky(clock: ManualClock) -> None:
    a = await take(await camera_on(clock, rig(seed=7)), clock, 10.0)
    b = await take(await camera_on(clock, rig(seed=7)), clock, 10.0)
    c = await take(await camera_on(clock, rig(seed=8)), clock, 10.0)
    assert np.array_equal(a.data, b.data)
    sa, sc = detect_stars(a.data, max_stars=20), detect_stars(c.data, max_stars=20)
    nearest = np.min(np.hypot(sa.x[:, None] - sc.x, sa.y[:, None] - sc.y), axis=1)
    assert np.median(nearest) > 3, "another seed is another star field"


async def test_bias_dark_and_hot_pixels(clock: ManualClock) -> None:
    warm = await camera_on(clock, rig(ambient=25.0))
    bias = await take(warm, clock, 5.0, "bias")
    assert bias.exposure == 0.0
    rn = warm.profile.read_noise
    assert abs(float(np.median(bias.data)) - 50) <= 1
    assert abs(bias.data.astype(float).std() - math.hypot(rn, COLUMN_PATTERN_ADU)) < 0.3
    dark = await take(warm, clock, 600.0, "dark")
    level = float(np.median(dark.data.astype(float) - bias.data))
    assert level == pytest.approx(dark_rate(25.0) * 600, rel=0.1)  # 60 e-
    hot = np.argwhere(dark.data.astype(float) - bias.data > level + 200)
    assert len(hot) > 10, "hot pixels stand out in a long dark"
    dark2 = await take(warm, clock, 600.0, "dark")
    assert all(dark2.data[y, x] > level + 100 + 50 for y, x in hot), "hot pixels stay put"
    assert len(detect_stars(dark.data - np.minimum(dark.data, 0))) < len(hot) + 5  # no sky

    cool = await camera_on(clock, rig(ambient=19.0))
    dark_cool = await take(cool, clock, 600.0, "dark")
    level_cool = float(np.median(dark_cool.data.astype(float) - bias.data))
    assert level / level_cool == pytest.approx(2.0, rel=0.15), "dark doubles every 6 °C"


async def test_binning_and_roi_shape_and_place_the_stars(clock: ManualClock) -> None:
    cam = await camera_on(clock)
    full = await take(cam, clock, 30.0)
    await cam.set_roi(RoiBox(100, 60, 320, 240))
    sub = await take(cam, clock, 30.0)
    assert sub.data.shape == (240, 320) and sub.roi == RoiBox(100, 60, 320, 240)
    s_full, s_sub = detect_stars(full.data, max_stars=40), detect_stars(sub.data, max_stars=15)
    dx, dy = star_shift(s_sub.xy, s_full.xy)
    assert (dx, dy) == pytest.approx((100, 60), abs=0.15)

    await cam.set_roi(None)
    await cam.set_binning(2)
    binned = await take(cam, clock, 30.0)
    assert binned.data.shape == (240, 320) and binned.binning == 2
    s_bin = detect_stars(binned.data, max_stars=15)
    dx, dy = star_shift(s_bin.xy * 2 + 0.5, s_full.xy)
    assert (dx, dy) == pytest.approx((0, 0), abs=0.3)
    # A binned pixel sums four: sky (above the offset) is four times higher.
    sky1 = np.median(full.data) - 50
    sky2 = np.median(binned.data) - 50
    assert sky2 / sky1 == pytest.approx(4.0, rel=0.05)
    with pytest.raises(DeviceError):
        await cam.set_binning(5)
    with pytest.raises(DeviceError):
        await cam.set_roi(RoiBox(600, 0, 100, 100))


async def test_psf_follows_the_focuser_v_curve(clock: ManualClock) -> None:
    cam = await camera_on(clock)
    world = cam.world
    best = world.best_focus()
    hfr = {}
    for d in (-600, -300, 0, 300, 600):
        world.focuser_position = best + d
        frame = await take(cam, clock, 20.0)
        measured = measure_hfr(frame.data)
        assert measured is not None
        assert measured == pytest.approx(world.optics.hfr_px(best + d, best), rel=0.1)
        hfr[d] = measured
    assert hfr[0] < hfr[300] < hfr[600] and hfr[0] < hfr[-300] < hfr[-600]
    # A hyperbola, as autofocus fits it: the defocus term sqrt(HFR² − HFR₀²) grows linearly.
    for side in (1, -1):
        near, far = ((hfr[side * d] ** 2 - hfr[0] ** 2) ** 0.5 for d in (300, 600))
        assert far / near == pytest.approx(2.0, rel=0.1)


async def test_best_focus_drifts_with_temperature_and_filter() -> None:
    clock = ManualClock()
    world = SimWorld(clock, rig(ambient=15.0, ambient_drift=-2.0, focus_drift=-40.0))
    at_start = world.best_focus()
    await clock.advance(3 * 3600)  # 6 °C colder
    assert world.best_focus() - at_start == 240
    world.filter_name = "Ha"
    assert world.best_focus() - at_start == 240 + 80


async def test_frames_shift_with_dithers_and_unguided_drift(clock: ManualClock) -> None:
    cam = await camera_on(clock, rig(tracking_drift=0.05))
    world = cam.world
    world.set_guiding(True)
    a = await take(cam, clock, 20.0)
    world.add_offset_arcsec(12.0, -7.0)
    b = await take(cam, clock, 20.0)
    world.set_guiding(False)  # drift starts now
    await clock.advance(100.0)
    c = await take(cam, clock, 20.0)
    sa, sb, sc = (detect_stars(f.data, max_stars=30).xy for f in (a, b, c))
    for first, second, sx, sy in ((a, b, sa, sb), (b, c, sb, sc)):
        ox0, oy0 = first.extra["sim_offset_px"]
        ox1, oy1 = second.extra["sim_offset_px"]
        dx, dy = star_shift(sx, sy)
        assert dx == pytest.approx(ox1 - ox0, abs=0.1) and dy == pytest.approx(oy1 - oy0, abs=0.1)
    scale = world.profile.pixel_scale
    assert b.extra["sim_offset_px"] == pytest.approx((12.0 / scale, -7.0 / scale))
    assert math.hypot(*np.subtract(c.extra["sim_offset_px"], b.extra["sim_offset_px"])) > 5


async def test_exposure_cycle_busy_abort_and_result(clock: ManualClock) -> None:
    cam = await camera_on(clock)
    await cam.start_exposure(10.0)
    assert await cam.exposure_status() is ExposureState.exposing
    with pytest.raises(DeviceBusy):
        await cam.start_exposure(1.0)
    with pytest.raises(DeviceBusy):
        await cam.set_gain(100)
    await clock.advance(10.5)
    assert await cam.exposure_status() is ExposureState.downloading  # 2 s readout
    await cam.abort_exposure()
    assert await cam.exposure_status() is ExposureState.idle
    with pytest.raises(DeviceError):
        await cam.exposure_result()  # aborted: discarded
    frame = await take(cam, clock, 1.0)
    assert frame.exposure == 1.0
    assert await cam.exposure_status() is ExposureState.idle  # the result was consumed
    await cam.disconnect()
    with pytest.raises(DeviceDisconnected):
        await cam.start_exposure(1.0)


async def test_gain_and_offset_scale_the_signal(clock: ManualClock) -> None:
    cam = await camera_on(clock)
    low = await take(cam, clock, 30.0)
    await cam.set_gain(200)  # 20 dB: ten times the ADU per electron
    await cam.set_offset(100)
    high = await take(cam, clock, 30.0)
    assert (np.median(high.data) - 100) / (np.median(low.data) - 50) == pytest.approx(10, rel=0.05)
    assert (high.gain, high.offset) == (200, 100)
    assert (await cam.info()).egain == pytest.approx(0.1)
    with pytest.raises(DeviceError):
        await cam.set_gain(9999)


async def test_cooler_ramps_at_limited_rate_and_power_tracks_delta(clock: ManualClock) -> None:
    cam = await camera_on(clock, rig(ambient=20.0))
    assert await cam.temperature() == 20.0 and await cam.cooler_power() == 0.0
    await cam.set_temperature(-10.0)
    await clock.advance(120.0)  # 3 °C/min
    assert await cam.temperature() == pytest.approx(14.0)
    await clock.advance(900.0)
    assert await cam.temperature() == -10.0 and await cam.set_point() == -10.0
    assert await cam.cooler_power() == pytest.approx(100 * 30 / 35, abs=0.1)
    frame = await take(cam, clock, 1.0, "dark")
    assert (frame.ccd_temp, frame.set_temp) == (-10.0, -10.0)
    await cam.set_temperature(-30.0)  # 50 °C below ambient: beyond the cooler
    await clock.advance(3600.0)
    assert await cam.temperature() == pytest.approx(-15.0) and await cam.cooler_power() == 100
    await cam.set_cooler(False)  # warms back to ambient at the same limited rate
    await clock.advance(60.0)
    assert await cam.temperature() == pytest.approx(-12.0)
    assert await cam.set_point() is None and await cam.cooler_power() == 0.0


async def test_fault_camera_disconnect_at_frame_then_reconnect_works(clock: ManualClock) -> None:
    cam = await camera_on(clock, rig(faults=[Fault(kind="camera_disconnect", at_frame=2)]))
    await take(cam, clock, 5.0)
    await cam.start_exposure(5.0)
    await clock.advance(6.0)
    with pytest.raises(DeviceDisconnected):
        await cam.exposure_status()
    assert not cam.connected
    await cam.reconnect()
    frame = await take(cam, clock, 5.0)
    assert frame.data.shape == (480, 640) and cam.world.light_frames == 2


async def test_fault_exposure_hang_never_ready_until_abort(clock: ManualClock) -> None:
    cam = await camera_on(clock, rig(faults=[Fault(kind="exposure_hang", at_frame=1)]))
    await cam.start_exposure(5.0)
    await clock.advance(3600.0)
    assert await cam.exposure_status() is ExposureState.exposing
    await cam.abort_exposure()
    frame = await take(cam, clock, 5.0)  # the fault happened once
    assert frame.exposure == 5.0


async def test_flat_shows_vignetting_and_no_stars(clock: ManualClock) -> None:
    cam = await camera_on(clock)
    flat = await take(cam, clock, 1.0, "flat")
    data = flat.data.astype(float) - 50
    centre = np.median(data[220:260, 300:340])
    corner = np.median(data[:20, :20])
    assert centre == pytest.approx(20_000, rel=0.02)
    assert corner / centre == pytest.approx(0.76, abs=0.02)
    assert len(detect_stars(flat.data)) < 3


async def test_one_shot_colour_camera_writes_a_bayer_mosaic() -> None:
    clock = ManualClock()
    eq = rig()
    eq = eq.model_copy(update={"camera": CameraProfile(width=640, height=480, bayer="RGGB")})
    cam = await camera_on(clock, eq)
    frame = await take(cam, clock, 30.0)
    assert frame.bayer == "RGGB"
    sky = frame.data.astype(float) - 50
    r, g, b = np.median(sky[0::2, 0::2]), np.median(sky[0::2, 1::2]), np.median(sky[1::2, 1::2])
    assert r / g == pytest.approx(0.85, abs=0.03) and b / g == pytest.approx(0.75, abs=0.03)
    await cam.set_binning(2)
    assert (await take(cam, clock, 5.0)).bayer is None  # binning mixes the colours


def test_two_k_frame_renders_as_uint16() -> None:
    """The engine benchmark's frame: 2048×2048, zero-length, straight from the sensor."""
    from runner.devices.sim.sensor import Exposure, Sensor

    profile = CameraProfile(width=2048, height=2048)
    sensor = Sensor(profile, 1)
    exp = Exposure(0.0, "light", True, RoiBox(0, 0, 2048, 2048), 1, 1.0, 50.0, 0.0)
    data, n = sensor.render(exp, np.random.default_rng(0))
    assert data.shape == (2048, 2048) and data.dtype == np.uint16 and n == 0
    assert abs(float(data.mean()) - 50.0) < 0.1


async def test_benchmark_bare_loop_writes_one_fits_per_frame(tmp_path: Path) -> None:
    """The reference loop of the engine benchmark: same simulator, same FITS files."""
    from astropy.io import fits

    from runner.clock import ScaledClock
    from runner.devices.sim.bench import bare_loop, bench_equipment

    clock = ScaledClock(1000.0)
    cam = SimCamera(SimWorld(clock, bench_equipment(256, 256)))
    await cam.connect()
    paths = await bare_loop(cam, clock, tmp_path, 3, target="Bench")
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        f"Bench/NoFilter/Bench_NoFilter_0s_{i:04d}.fits" for i in (1, 2, 3)
    ]
    with fits.open(paths[-1]) as hdul:
        assert hdul[0].data.shape == (256, 256) and hdul[0].header["OBJECT"] == "Bench"
