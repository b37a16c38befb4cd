"""The live stacker as the engine and the control plane use it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationLibrary
from runner.stacking.fitsio import FrameMeta
from runner.stacking.live import LiveStacker
from runner.stacking.replay import replay
from runner.stacking.synthetic import Sensor, StarField, Transform

WriteFits = Callable[..., Path]


def _lights(
    sensor: Sensor, field: StarField, write_fits: WriteFits, n: int, prefix: str = "light"
) -> list[Path]:
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        flip = 180.0 if i >= n // 2 else 0.0  # a meridian flip half-way
        tr = Transform(rng.uniform(-5, 5), rng.uniform(-5, 5), flip + rng.uniform(-0.3, 0.3))
        paths.append(
            write_fits(f"{prefix}{i:03d}.fits", sensor.light(field, 30.0, transform=tr, seed=i))
        )
    return paths


def test_a_night_of_lights_becomes_seed_004_outputs_that_replay_exactly(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    darks = [
        write_fits(f"d{i}.fits", sensor.dark(30.0, seed=40 + i), kind="Dark Frame")
        for i in range(5)
    ]
    data = tmp_path / "data"
    dark_id = CalibrationLibrary(data).build_master("dark", darks).id
    lights = _lights(sensor, field, write_fits, 12)
    stacker = LiveStacker(data, queue_size=len(lights), intermediate_every=5)
    sid = stacker.start("M 42", calibration=[dark_id])
    assert sid == "M_42"
    assert all(stacker.submit(p) for p in lights)
    paths = stacker.save()

    status = stacker.status()
    assert status["status"] == "finished"
    assert (status["frames"], status["processed"], status["stacked"], status["dropped"]) == (
        12,
        12,
        12,
        0,
    )
    stacked = data / "stacked"
    assert paths.jpeg == stacked / "M_42_final.jpeg"
    with Image.open(paths.jpeg) as im:
        assert im.size == (sensor.shape[1], sensor.shape[0])
    assert (stacked / "M_42_intermediate_01.jpeg").exists()
    assert (stacked / "M_42_intermediate_02.json").exists()
    tiff = tifffile.imread(paths.tiff)
    assert tiff.dtype == np.float32 and tiff.shape == sensor.shape
    meta = json.loads(paths.json.read_text())
    assert meta["stacking_id"] == "M_42"
    assert (meta["total_frames"], meta["stacked_frames"]) == (12, 12)
    assert meta["stacking"]["calibration"]["darks"] == dark_id
    assert {"camera", "settings", "date", "date_finish", "path"} <= set(meta)

    rebuilt, _ = replay(data / "debug" / "M_42" / "log.txt")
    covered = np.isfinite(rebuilt)
    np.testing.assert_array_equal(rebuilt[covered], tiff[covered])
    # Dark subtracted: no bias pedestal and no hot pixels left in the stack.
    assert abs(float(np.median(tiff)) - 200.0 * float(np.median(sensor.flat_map))) < 15


def test_submit_never_waits_it_drops_and_counts_when_the_worker_falls_behind(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _lights(sensor, field, write_fits, 40)
    stacker = LiveStacker(tmp_path / "data", queue_size=1, intermediate_every=0)
    stacker.start("busy")
    accepted = [stacker.submit(p) for p in lights]  # far faster than 40 registrations
    stacker.save()
    st = stacker.status()
    assert st["frames"] == 40
    assert st["dropped_overload"] == accepted.count(False) > 0
    assert st["stacked"] + st["dropped"] == 40


def test_unregistrable_and_unreadable_frames_are_dropped_never_stacked(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _lights(sensor, field, write_fits, 8)
    cloudy = write_fits("cloudy.fits", sensor.light(StarField.random(sensor.shape, 0), seed=9))
    broken = tmp_path / "frames" / "broken.fits"
    broken.write_bytes(b"not a FITS file: the disk filled up")
    stacker = LiveStacker(tmp_path / "data", queue_size=20, intermediate_every=0)
    stacker.start("mixed")
    for p in [*lights[:4], cloudy, broken, *lights[4:]]:
        stacker.submit(p)
    stacker.save()
    st = stacker.status()
    assert (st["stacked"], st["unregistered"], st["failed"], st["dropped"]) == (8, 1, 1, 2)


def test_paused_frames_are_counted_but_not_stacked(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _lights(sensor, field, write_fits, 9)
    stacker = LiveStacker(tmp_path / "data", queue_size=20, intermediate_every=0)
    stacker.start("paused")
    for p in lights[:3]:
        stacker.submit(p)
    stacker.pause()
    assert stacker.status()["status"] == "paused"
    assert not any(stacker.submit(p) for p in lights[3:6])
    stacker.resume()
    for p in lights[6:]:
        stacker.submit(p)
    stacker.save()
    st = stacker.status()
    assert (st["frames"], st["stacked"]) == (9, 6)


async def test_the_engine_submits_from_the_event_loop_and_saves_without_blocking_it(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _lights(sensor, field, write_fits, 6)
    stacker = LiveStacker(tmp_path / "data", queue_size=10, intermediate_every=0)
    stacker.start("async")
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    beat = asyncio.create_task(heartbeat())
    for p in lights:
        assert stacker.submit(p)
    before = ticks
    paths = await stacker.save_async()
    beat.cancel()
    assert paths.tiff is not None and paths.tiff.exists()
    assert ticks > before  # the loop kept running while the worker finished the queue


def test_colour_frames_stack_in_rgb_with_rgb_histograms(
    tmp_path: Path, write_fits: WriteFits
) -> None:
    sensor = Sensor(shape=(240, 320), bayer="RGGB")
    field = StarField.random(sensor.shape, 150, seed=12)
    lights = []
    for i in range(6):
        raw = sensor.light(field, transform=Transform(1.5 * i, -1.1 * i), seed=i)
        lights.append(write_fits(f"osc{i}.fits", raw, BAYERPAT="RGGB"))
    stacker = LiveStacker(tmp_path / "data", queue_size=10, intermediate_every=0)
    stacker.start("osc", auto_stretch=False)
    for p in lights:
        stacker.submit(p)
    assert stacker.wait_idle(60)
    hist = stacker.histograms()
    assert hist["stacked"]["type"] == "rgb" and hist["live"]["type"] == "rgb"
    assert all(len(hist["stacked"][c]) == 256 for c in "RGB")
    assert sum(hist["stacked"]["G"]) == pytest.approx(1.0)
    stacker.stretch(low=0.01, high=0.2, gamma=0.5)
    jpeg = stacker.preview_jpeg()
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    paths = stacker.save()
    assert tifffile.imread(paths.tiff).shape == (240, 320, 3)
    assert json.loads(paths.json.read_text())["stacking"]["stretch_gamma"] == 0.5


def test_cancel_discards_the_stack_and_a_new_one_can_start(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    lights = _lights(sensor, field, write_fits, 4)
    stacker = LiveStacker(tmp_path / "data", queue_size=10, intermediate_every=0)
    stacker.start("discard")
    for p in lights:
        stacker.submit(p)
    stacker.cancel()
    assert stacker.status()["status"] == "idle"
    assert not (tmp_path / "data" / "stacked" / "discard_final.jpeg").exists()
    with pytest.raises(StackingError):
        stacker.save()
    stacker.start("again")
    stacker.submit(sensor.light(field, 30.0, seed=77), meta=FrameMeta(exposure=30.0))
    assert stacker.save().jpeg.name == "again_final.jpeg"


def test_with_save_data_the_debug_directory_alone_recreates_the_stack(
    tmp_path: Path, sensor: Sensor, field: StarField, write_fits: WriteFits
) -> None:
    flats = [
        write_fits(f"f{i}.fits", sensor.flat(seed=60 + i), kind="Flat Frame", exposure=1.0)
        for i in range(4)
    ]
    data = tmp_path / "data"
    flat_id = CalibrationLibrary(data).build_master("flat", flats).id
    lights = _lights(sensor, field, write_fits, 6)
    stacker = LiveStacker(data, queue_size=10, intermediate_every=0)
    stacker.start("kept", flats=flat_id, save_data=True)
    for p in lights:
        stacker.submit(p)
    tiff = tifffile.imread(stacker.save().tiff)
    for p in [*lights, *flats, *(data / "calibration").glob("*.fits")]:
        p.unlink()  # originals and masters gone: only debug/kept/ remains
    rebuilt, again = replay(data / "debug" / "kept" / "log.txt")
    assert again.stacked == 6
    covered = np.isfinite(rebuilt)
    np.testing.assert_array_equal(rebuilt[covered], tiff[covered])
