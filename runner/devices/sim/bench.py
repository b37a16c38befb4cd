"""The reference side of the engine benchmark, and a quick measure of the simulator's cost.

Issue 3's bar: a 200-frame plan on the simulator camera (zero-length exposures, 2048×2048)
takes at most 1.10× the time of a *bare loop* that drives the same simulator objects and writes
the same FITS files. :func:`bare_loop` is that loop — expose, poll, download, write, nothing
else — so the benchmark and the engine share one definition of "the same work".

``python -m runner.devices.sim.bench`` prints render and write times per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from runner.clock import Clock, ScaledClock
from runner.devices.interfaces import Camera, ExposureState, Frame, RoiBox
from runner.devices.sim.sensor import Exposure, Sensor
from runner.plan.equipment import CameraProfile, Equipment, Simulation
from runner.storage.fits import FrameMeta, write_fits
from runner.storage.naming import DEFAULT_TEMPLATE, expand, frame_path


def bench_equipment(width: int = 2048, height: int = 2048) -> Equipment:
    """A camera-only simulator rig for benchmarks: no readout delay, default sky."""
    return Equipment(
        name="benchmark",
        camera=CameraProfile(width=width, height=height, download_time=0.0),
        simulation=Simulation(),
    )


def poll_interval(seconds: float) -> float:
    """Clock seconds between status polls: the engine's rule (runner.engine.actions)."""
    return min(0.5, max(0.02, seconds / 20))


async def expose(camera: Camera, clock: Clock, seconds: float, frame_type: str = "light") -> Frame:
    """Start, poll until ready, download — the minimum any driver loop does."""
    await camera.start_exposure(seconds, frame_type)
    poll = poll_interval(seconds)
    while (state := await camera.exposure_status()) is not ExposureState.ready:
        if state in (ExposureState.error, ExposureState.idle):
            return await camera.exposure_result()  # raises the camera's error
        await clock.sleep(poll)
    return await camera.exposure_result()


async def bare_loop(
    camera: Camera,
    clock: Clock,
    data_dir: Path,
    frames: int,
    *,
    exposure: float = 0.0,
    target: str = "Benchmark",
    filter_name: str | None = None,
    meta: FrameMeta | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> list[Path]:
    """``frames`` exposures written as FITS under ``data_dir``; returns the paths."""
    meta = meta or FrameMeta(object_name=target, filter=filter_name)
    paths = []
    for seq in range(1, frames + 1):
        frame = await expose(camera, clock, exposure)
        rel = expand(
            template,
            target=target,
            filter=filter_name,
            exposure=exposure,
            frame_type=frame.frame_type,
            seq=seq,
            when=frame.start,
            gain=frame.gain,
            binning=frame.binning,
        )
        paths.append(await asyncio.to_thread(_measure_and_write, frame_path(data_dir, rel),
                                             frame, meta))
    return paths


def _measure_and_write(path: Path, frame: Frame, meta: FrameMeta) -> Path:
    """What the engine stores for every light: the file with its HFR card."""
    from dataclasses import replace

    from runner.stacking.detect import measure_hfr

    hfr = measure_hfr(frame.data) if frame.frame_type == "light" else None
    return write_fits(path, frame, replace(meta, hfr=None if hfr is None else round(hfr, 2)))


def _measure(width: int, height: int, n: int) -> None:
    profile = CameraProfile(width=width, height=height)
    sensor = Sensor(profile, 42)
    roi = RoiBox(0, 0, width, height)
    for label, seconds in (("zero-length light", 0.0), ("dark 300 s", 300.0)):
        exp = Exposure(
            seconds, "light" if seconds == 0 else "dark", seconds == 0, roi, 1, 1.0, 50.0, -10.0
        )
        sensor.render(exp, np.random.default_rng(0))  # warm the caches
        t = time.perf_counter()
        for i in range(n):
            data, _ = sensor.render(exp, np.random.default_rng(i))
        print(f"render {label} {width}×{height}: {(time.perf_counter() - t) / n * 1e3:.1f} ms")
    frame = Frame(
        data=data,
        exposure=0.0,
        start=ScaledClock().now(),
        frame_type="light",
        binning=1,
        gain=0,
        offset=50,
        ccd_temp=-10.0,
        set_temp=-10.0,
        roi=roi,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        for i in range(n):
            write_fits(Path(tmp) / f"f{i}.fits", frame, FrameMeta(object_name="x"))
        print(
            f"write FITS (atomic, fsync) {width}×{height}: "
            f"{(time.perf_counter() - t) / n * 1e3:.1f} ms"
        )

    async def cycle() -> None:
        eq = bench_equipment(width, height)
        from runner.devices.sim.camera import SimCamera
        from runner.devices.sim.world import SimWorld

        clk = ScaledClock(1.0)
        cam = SimCamera(SimWorld(clk, eq))
        await cam.connect()
        with tempfile.TemporaryDirectory() as tmp:
            await bare_loop(cam, clk, Path(tmp), 2)
            t = time.perf_counter()
            await bare_loop(cam, clk, Path(tmp), n)
            print(
                f"bare loop (expose 0 s + poll + write) {width}×{height}: "
                f"{(time.perf_counter() - t) / n * 1e3:.1f} ms/frame"
            )

    asyncio.run(cycle())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--frames", type=int, default=20)
    args = ap.parse_args()
    _measure(args.size, args.size, args.frames)


if __name__ == "__main__":
    main()
