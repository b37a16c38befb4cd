"""Live-stacking bars, measured side by side with astroalign + numpy.

Run:  .venv/bin/pip install -e .[bench]      # astroalign is a benchmark-only dependency
      .venv/bin/python benchmarks/bench_stacking.py [--quick] [--sections speed,accuracy,...]

Sections (all frames synthetic, with known truth, from runner.stacking.synthetic):

1. speed     calibrate + register + accumulate one 4096×4096 uint16 mono frame, ours (one
             OpenCV thread, single process) vs ``astroalign.register`` + a numpy running mean
             on the same frames; the ratio is the bar (≥ 10×).
2. accuracy  registration error (RMS over the frame, px) on known shifts/rotations incl. 180°,
             ours and astroalign's ``find_transform`` on the same 2048×2048 frames (≤ 0.1 px).
3. noise     background noise of the κσ stack × √N for N = 5…80 (flat within 10 %).
4. trail     a satellite trail in one frame of 20: its residual in the mean and κσ stacks.
5. memory    peak RSS after 200 frames vs after 20 (κσ stack, 1024×1024 frames to keep the run
             to a couple of minutes; per-frame state is per pixel, so size does not change the
             conclusion), measured in a fresh process.
6. worker    thread vs process worker beside an asyncio loop: frames/s and the loop's worst
             and 99th-percentile lag while 4k frames are stacked.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from astropy.io import fits

from runner.stacking.accumulate import MeanStack, SigmaClipStack
from runner.stacking.calibrate import CalibrationSet, Calibrator
from runner.stacking.fitsio import FrameMeta
from runner.stacking.live import LiveStacker
from runner.stacking.pipeline import Stacker, StackSettings
from runner.stacking.register import find_transform, registration_stars, warp
from runner.stacking.synthetic import Sensor, StarField, Trail, Transform

try:
    import astroalign as aa
except ImportError:  # pragma: no cover - told to the user below
    aa = None


def _row(label: str, *cols: str) -> None:
    print(f"  {label:<44}" + "".join(f"{c:>18}" for c in cols))


def _grid_error(matrix: np.ndarray, truth: Transform, shape: tuple[int, int]) -> float:
    h, w = shape
    gx, gy = np.meshgrid(np.linspace(0, w - 1, 16), np.linspace(0, h - 1, 16))
    ref = np.column_stack([gx.ravel(), gy.ravel()])
    frame = truth.apply(ref, shape)
    back = frame @ matrix[:2, :2].T + matrix[:2, 2]
    return float(np.sqrt(np.mean(np.sum((back - ref) ** 2, axis=1))))


# --------------------------------------------------------------------------- 1. speed


def bench_speed(n_frames: int) -> None:
    print("\n1. Speed: one 4096×4096 uint16 mono frame (median of", n_frames, "frames)")
    shape = (4096, 4096)
    sensor = Sensor(shape=shape, dark_current=0.05)
    stars = StarField.random(shape, 4000, seed=1)
    rng = np.random.default_rng(2)
    print("   rendering frames …", flush=True)
    frames = [
        sensor.light(
            stars,
            30.0,
            transform=Transform(rng.uniform(-15, 15), rng.uniform(-15, 15), rng.uniform(-0.5, 0.5)),
            seed=i,
        )
        for i in range(n_frames + 1)
    ]
    masters = CalibrationSet(
        dark=(sensor.bias_level + sensor.dark_map * 30.0).astype(np.float32),
        dark_exposure=30.0,
        flat=(sensor.flat_map / np.median(sensor.flat_map)).astype(np.float32),
    )

    cv2.setNumThreads(1)
    cal = Calibrator(masters)
    ref = cal.apply(frames[0], 30.0)
    ref_stars = registration_stars(ref)
    stages: dict[str, list[float]] = {k: [] for k in ("calibrate", "stars", "match", "warp")}
    acc_mean = MeanStack()
    acc_mean.add(ref)
    acc_clip = SigmaClipStack()
    for f in frames[:5]:  # warm-up frames of the κσ stack, not timed
        acc_clip.add(cal.apply(f, 30.0), noise=ref_stars.background_rms)
    mean_t: list[float] = []
    clip_t: list[float] = []
    total_mean: list[float] = []
    for raw in frames[1:]:
        t0 = time.perf_counter()
        img = cal.apply(raw, 30.0)
        t1 = time.perf_counter()
        st = registration_stars(img)
        t2 = time.perf_counter()
        reg = find_transform(st.xy, ref_stars.xy)
        t3 = time.perf_counter()
        warped = warp(img, reg)
        t4 = time.perf_counter()
        acc_mean.add(warped)
        t5 = time.perf_counter()
        acc_clip.add(warped, noise=st.background_rms)
        t6 = time.perf_counter()
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[k].append(v)
        mean_t.append(t5 - t4)
        clip_t.append(t6 - t5)
        total_mean.append(t5 - t0)
    med = {k: statistics.median(v) for k, v in stages.items()}
    ours_mean = statistics.median(total_mean)
    ours_clip = ours_mean - statistics.median(mean_t) + statistics.median(clip_t)

    cv2.setNumThreads(cv2.getNumberOfCPUs())
    t_mt = []
    for raw in frames[1:3]:
        t0 = time.perf_counter()
        img = cal.apply(raw, 30.0)
        reg = find_transform(registration_stars(img).xy, ref_stars.xy)
        acc_mean.add(warp(img, reg))
        t_mt.append(time.perf_counter() - t0)
    cv2.setNumThreads(1)

    if aa is None:
        print("   astroalign is not installed: .venv/bin/pip install -e .[bench]")
        theirs = float("nan")
    else:
        ref_f = frames[0].astype(np.float32)
        mean = ref_f.astype(np.float64)
        times = []
        for n, raw in enumerate(frames[1:], start=2):
            t0 = time.perf_counter()
            registered, _footprint = aa.register(raw.astype(np.float32), ref_f)
            mean += (registered - mean) / n
            times.append(time.perf_counter() - t0)
        theirs = statistics.median(times)

    _row("", "ours", "astroalign+numpy")
    _row("calibrate (dark, flat, hot pixels)", f"{med['calibrate'] * 1e3:.0f} ms", "—")
    _row("find stars", f"{med['stars'] * 1e3:.0f} ms", "")
    _row("match + fit transform", f"{med['match'] * 1e3:.0f} ms", "")
    _row("warp (bilinear)", f"{med['warp'] * 1e3:.0f} ms", "")
    _row("accumulate: running mean", f"{statistics.median(mean_t) * 1e3:.0f} ms", "")
    _row("accumulate: incremental κσ", f"{statistics.median(clip_t) * 1e3:.0f} ms", "")
    _row("TOTAL, running mean, 1 thread", f"{ours_mean * 1e3:.0f} ms", f"{theirs * 1e3:.0f} ms")
    _row("  speed-up", f"{theirs / ours_mean:.1f}×", "(bar: ≥ 10×)")
    _row("TOTAL, κσ rejection, 1 thread", f"{ours_clip * 1e3:.0f} ms", f"{theirs * 1e3:.0f} ms")
    _row("  speed-up", f"{theirs / ours_clip:.1f}×", "")
    _row(
        f"TOTAL, running mean, {cv2.getNumberOfCPUs()} OpenCV threads",
        f"{statistics.median(t_mt) * 1e3:.0f} ms",
        "",
    )


# --------------------------------------------------------------------------- 2. accuracy


def bench_accuracy(size: int) -> None:
    print(f"\n2. Registration accuracy on {size}×{size} frames (RMS error over the frame, px)")
    shape = (size, size)
    sensor = Sensor(shape=shape)
    stars = StarField.random(shape, int(900 * (size / 2048) ** 2), seed=3)
    ref_raw = sensor.light(stars, seed=100).astype(np.float32)
    ref_xy = registration_stars(ref_raw).xy
    cases = [
        Transform(3.37, -5.81),
        Transform(-40.2, 17.6, 0.4),
        Transform(12.5, -8.25, 180.0),
        Transform(-3.3, 2.9, 179.2),
        Transform(7.7, 6.1, 33.0, 1.01),
        Transform(-1.2, 0.4, -90.0, 0.99),
        Transform(0.25, 0.75, 1.5),
        Transform(25.0, -25.0, 180.0, 1.005),
    ]
    _row("transform (dx, dy, rot°, scale)", "ours", "astroalign")
    ours_all, theirs_all = [], []
    for i, tr in enumerate(cases):
        frame = sensor.light(stars, transform=tr, seed=200 + i).astype(np.float32)
        reg = find_transform(registration_stars(frame).xy, ref_xy)
        e_ours = _grid_error(reg.matrix, tr, shape)
        ours_all.append(e_ours)
        e_theirs = float("nan")
        if aa is not None:
            try:
                t, _ = aa.find_transform(frame, ref_raw)
                e_theirs = _grid_error(np.asarray(t.params), tr, shape)
            except Exception as exc:  # astroalign raises bare errors; report, do not hide
                print(f"     astroalign failed on {tr}: {exc}")
            theirs_all.append(e_theirs)
        label = f"{tr.dx:+.2f}, {tr.dy:+.2f}, {tr.rotation_deg:+.1f}, {tr.scale:.3f}"
        _row(label, f"{e_ours:.4f}", f"{e_theirs:.4f}")
    rms_o = math.sqrt(statistics.fmean(e * e for e in ours_all))
    rms_t = math.sqrt(statistics.fmean(e * e for e in theirs_all)) if theirs_all else math.nan
    _row("RMS over all cases (bar: ≤ 0.1 px)", f"{rms_o:.4f}", f"{rms_t:.4f}")


# --------------------------------------------------------------------------- 3/4. noise, trail


def _stack_pair(
    n: int, shape: tuple[int, int], trail_at: int | None = None, reject: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    sensor = Sensor(shape=shape, hot_fraction=0.0)
    stars = StarField.random(shape, int(250 * shape[0] * shape[1] / 512**2), seed=4)
    rng = np.random.default_rng(5)
    noisy = Stacker(StackSettings(reject=reject))
    clean = Stacker(StackSettings(reject=False))
    trail = Trail(0.0, shape[0] * 0.4, 14.0, brightness=1500.0)
    for i in range(n):
        tr = Transform(rng.uniform(-8, 8), rng.uniform(-8, 8), rng.uniform(-0.5, 0.5))
        meta = FrameMeta(exposure=10.0)
        r = noisy.process(
            sensor.light(stars, transform=tr, seed=i, trail=trail if i == trail_at else None),
            meta,
        )
        if not r.stacked or r.matrix is None:
            raise SystemExit(f"frame {i} not stacked: {r.reason}")
        clean.add_registered(
            sensor.light(stars, transform=tr, noise=False), meta, r.matrix, r.offset, r.noise
        )
    return noisy.result(), clean.result()


def bench_noise(counts: list[int]) -> None:
    print(
        "\n3. Background noise of the κσ stack vs N (512×512, dithered, noise = std(stack − truth))"
    )
    _row("N", "σ", "σ·√N / σ₅·√5")
    base = None
    for n in counts:
        s, t = _stack_pair(n, (512, 512))
        sigma = float(np.std((s - t)[24:-24, 24:-24]))
        norm = sigma * math.sqrt(n)
        base = base or norm
        _row(str(n), f"{sigma:.3f}", f"{norm / base:.3f}")
    print("   bar: the last column stays within 1 ± 0.10")


def bench_trail() -> None:
    print("\n4. Satellite trail in frame 13 of 20 (512×512): residual on its sky pixels")
    plain, plain_t = _stack_pair(20, (512, 512), trail_at=13, reject=False)
    clip, clip_t = _stack_pair(20, (512, 512), trail_at=13, reject=True)
    sigma = float(np.std((clip - clip_t)[24:-24, 24:-24]))
    # Trail pixels on the sky (a star's own shot noise is not the trail's residual), inside
    # every dithered frame.
    sky = float(np.median(clip_t))
    mask = ((plain - plain_t) > 8 * sigma) & (clip_t < sky + 30.0)
    mask[:24] = mask[-24:] = False
    mask[:, :24] = mask[:, -24:] = False
    _row("", "running mean", "κσ rejection")
    _row(
        "mean residual on trail (σ of the stack)",
        f"{np.mean((plain - plain_t)[mask]) / sigma:.1f}",
        f"{np.mean((clip - clip_t)[mask]) / sigma:.2f}",
    )
    _row(
        "max |residual| on trail (σ)",
        f"{np.max(np.abs((plain - plain_t)[mask])) / sigma:.1f}",
        f"{np.max(np.abs((clip - clip_t)[mask])) / sigma:.2f}",
    )
    print(f"   trail pixels: {int(mask.sum())}")


# --------------------------------------------------------------------------- 5. memory


def _rss_mb() -> float:
    """Peak RSS of this process image, MB.

    /proc's VmHWM, not ``getrusage``: Linux carries ``ru_maxrss`` across fork+exec, so a
    fresh child would report its (large) parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_child(n_frames: int, size: int) -> None:
    shape = (size, size)
    sensor = Sensor(shape=shape)
    stars = StarField.random(shape, 600, seed=6)
    rng = np.random.default_rng(7)
    # Pre-render a pool of frames: the generator's memory must not drift either.
    pool = [
        sensor.light(
            stars,
            transform=Transform(rng.uniform(-10, 10), rng.uniform(-10, 10), rng.uniform(-1, 1)),
            seed=i,
        )
        for i in range(16)
    ]
    with tempfile.TemporaryDirectory() as d:
        stacker = LiveStacker(d, queue_size=4, intermediate_every=50)
        stacker.start("memory")
        marks = {}
        for i in range(n_frames):
            while stacker.status()["queued"] >= 3:  # about memory, not overload: no drops
                time.sleep(0.002)
            stacker.submit(pool[i % len(pool)])
            if i + 1 in (20, n_frames):
                stacker.wait_idle()
                marks[i + 1] = _rss_mb()
        st = stacker.status()
        stacker.save()
    print(
        f"   stacked {st['stacked']} of {st['frames']}; "
        f"peak RSS after 20: {marks[20]:.0f} MB, after {n_frames}: {marks[n_frames]:.0f} MB, "
        f"growth {100 * (marks[n_frames] / marks[20] - 1):+.1f} % (bar: within 10 %)"
    )


def bench_memory(n_frames: int, size: int) -> None:
    print(f"\n5. Memory: κσ live stack of {n_frames} {size}×{size} frames, fresh process")
    subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n_frames), str(size)], check=True
    )


# --------------------------------------------------------------------------- 6. worker


def _process_worker(paths: Any, done: Any) -> None:
    cv2.setNumThreads(1)
    stacker = Stacker(StackSettings())
    from runner.stacking.fitsio import read_frame

    while True:
        p = paths.get()
        if p is None:
            break
        raw, meta = read_frame(p)
        stacker.process(raw, meta)
        done.put(1)


async def _lag_probe(stop: asyncio.Event, lags: list[float]) -> None:
    period = 0.005
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - t0 - period)


async def _run_thread(paths: list[Path]) -> tuple[float, list[float]]:
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_lag_probe(stop, lags))
    with tempfile.TemporaryDirectory() as d:
        stacker = LiveStacker(d, queue_size=len(paths), intermediate_every=0)
        stacker.start("thread")
        stacker.submit(paths[0])  # the reference frame, untimed as in the process run
        await asyncio.to_thread(stacker.wait_idle)
        lags.clear()
        t0 = time.perf_counter()
        for p in paths[1:]:
            stacker.submit(p)
        await asyncio.to_thread(stacker.wait_idle)
        elapsed = time.perf_counter() - t0
        stacker.cancel()
    stop.set()
    await probe
    return (len(paths) - 1) / elapsed, lags


def _wait_done(q_done: Any, proc: Any) -> None:
    """One completion from the child; raise if it died instead of hanging forever."""
    import queue as queue_mod

    while True:
        try:
            q_done.get(timeout=1.0)
            return
        except queue_mod.Empty:
            if not proc.is_alive():
                raise SystemExit(f"process worker died (exit code {proc.exitcode})") from None


async def _run_process(paths: list[Path]) -> tuple[float, list[float]]:
    ctx = mp.get_context("spawn")
    q_in: Any = ctx.Queue()
    q_done: Any = ctx.Queue()
    proc = ctx.Process(target=_process_worker, args=(q_in, q_done))
    proc.start()
    q_in.put(str(paths[0]))  # let it import and build the reference before timing
    await asyncio.to_thread(_wait_done, q_done, proc)
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_lag_probe(stop, lags))
    t0 = time.perf_counter()
    for p in paths[1:]:
        q_in.put(str(p))
    for _ in paths[1:]:
        await asyncio.to_thread(_wait_done, q_done, proc)
    elapsed = time.perf_counter() - t0
    q_in.put(None)
    proc.join()
    stop.set()
    await probe
    return (len(paths) - 1) / elapsed, lags


def bench_worker(n_frames: int) -> None:
    print(f"\n6. Worker beside the asyncio loop: {n_frames} 4096×4096 FITS frames, κσ stack")
    shape = (4096, 4096)
    sensor = Sensor(shape=shape)
    stars = StarField.random(shape, 4000, seed=8)
    rng = np.random.default_rng(9)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(n_frames):
            tr = Transform(rng.uniform(-10, 10), rng.uniform(-10, 10), rng.uniform(-0.5, 0.5))
            p = Path(d) / f"f{i:03d}.fits"
            header = fits.Header()
            header["EXPTIME"] = 30.0
            fits.PrimaryHDU(sensor.light(stars, transform=tr, seed=i), header).writeto(p)
            paths.append(p)
        fps_t, lag_t = asyncio.run(_run_thread(paths))
        fps_p, lag_p = asyncio.run(_run_process(paths))

    def p99(v: list[float]) -> float:
        return sorted(v)[int(0.99 * (len(v) - 1))] if v else math.nan

    _row("", "thread", "process")
    _row("frames per second", f"{fps_t:.2f}", f"{fps_p:.2f}")
    _row("loop lag p99", f"{p99(lag_t) * 1e3:.1f} ms", f"{p99(lag_p) * 1e3:.1f} ms")
    _row("loop lag max", f"{max(lag_t) * 1e3:.1f} ms", f"{max(lag_p) * 1e3:.1f} ms")


# --------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        memory_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer frames (a smoke run)")
    ap.add_argument(
        "--sections",
        default="speed,accuracy,noise,trail,memory,worker",
        help="comma-separated subset to run",
    )
    args = ap.parse_args()
    run = set(args.sections.split(","))
    print(f"numpy {np.__version__}, OpenCV {cv2.__version__}, {cv2.getNumberOfCPUs()} CPUs")
    if aa is None:
        print("astroalign not installed — comparisons skipped (.venv/bin/pip install -e .[bench])")
    else:
        print(f"astroalign {aa.__version__}")
    if "speed" in run:
        bench_speed(3 if args.quick else 6)
    if "accuracy" in run:
        bench_accuracy(1024 if args.quick else 2048)
    if "noise" in run:
        bench_noise([5, 10, 20] if args.quick else [5, 10, 20, 40, 80])
    if "trail" in run:
        bench_trail()
    if "memory" in run:
        bench_memory(60 if args.quick else 200, 1024)
    if "worker" in run:
        bench_worker(4 if args.quick else 12)


if __name__ == "__main__":
    main()
