"""Autofocus: sample a V-curve of HFR against focuser position, fit it, go to the minimum.

How a run goes:

1. Sample ``steps`` positions ``step_size`` apart, centred on the current position, always
   moving *outward* (increasing position) into each one: the first is approached from
   ``backlash`` steps further in. A focuser then has its gear play taken up the same way at
   every sample, so the curve is not bent by backlash.
2. If the smallest HFR is not bracketed by worse samples on both sides, the focus is outside
   the window: estimate where from the slope of the curve (far from focus HFR grows
   linearly) and sample a new window there — up to ``max_rounds`` windows, so a start far
   off (or an overshooting estimate) still converges.
3. Fit the ``steps`` samples nearest the minimum: a *hyperbola*
   ``HFR = a·sqrt(1 + ((x − c)/b)²)`` (the true shape: linear asymptotes, round bottom;
   fitted exactly as the parabola ``HFR² = A x² + B x + C``, which is linear least squares) or
   a *parabola* ``HFR = A x² + B x + C`` (good only near focus).
4. Move to the fitted best, again arriving outward, and take one frame to measure the final
   HFR.

A run that cannot find focus (too few stars, a curve that does not open upwards, a minimum
outside the samples, a poor fit) moves back to where it started and raises
:class:`AutofocusFailed` carrying the result, so the step's error policy decides what happens.
numpy only: the fits are 3-parameter linear least squares.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NoReturn

import cv2
import numpy as np
import numpy.typing as npt

from runner.clock import Clock, Deadline
from runner.devices.interfaces import Camera, ExposureState, Focuser
from runner.errors import DeviceError, DeviceTimeout

HfrMeasure = Callable[[npt.NDArray[np.uint16]], float | None]
Fit = Literal["hyperbola", "parabola"]

POLL = 0.1  # clock seconds between status polls
DOWNLOAD_ALLOWANCE = 60.0  # clock seconds a frame may take beyond its exposure
MIN_R2 = 0.8


@dataclass
class AutofocusResult:
    ok: bool
    fit: str
    start_position: int
    positions: list[int] = field(default_factory=list)  # in the order sampled
    #: px, of the hot-pixel-filtered frames (a little wider than raw); None: no stars measured
    hfrs: list[float | None] = field(default_factory=list)
    best_position: int | None = None  # fitted minimum
    r2: float | None = None  # of the fit, on HFR
    final_position: int | None = None  # where the focuser was left
    final_hfr: float | None = None  # px, unfiltered: the baseline for HFR triggers
    temperature: float | None = None  # focuser probe at the start, °C
    duration: float = 0.0  # clock seconds
    reason: str | None = None  # why it failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AutofocusFailed(DeviceError):
    """The V-curve gave no usable focus; the focuser is back at its start position."""

    def __init__(self, message: str, result: AutofocusResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class CurveFit:
    best: float
    r2: float
    model: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


def fit_curve(positions: list[int], hfrs: list[float], kind: Fit) -> CurveFit | str:
    """Fit the V-curve; a string says why there is no usable fit."""
    x0 = float(np.mean(positions))
    scale = float(np.ptp(positions)) or 1.0
    x = (np.asarray(positions, dtype=np.float64) - x0) / scale
    y = np.asarray(hfrs, dtype=np.float64)
    if len(x) < 4:
        return f"only {len(x)} samples with stars (need 4)"
    target = y * y if kind == "hyperbola" else y
    design = np.column_stack([x * x, x, np.ones_like(x)])
    (a, b, c), *_ = np.linalg.lstsq(design, target, rcond=None)
    if a <= 0:
        return "the curve does not open upwards (no minimum in the samples)"
    xm = -b / (2 * a)

    def model(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        u = (p - x0) / scale
        v = a * u * u + b * u + c
        out: npt.NDArray[np.float64] = np.sqrt(np.clip(v, 0.0, None)) if kind == "hyperbola" else v
        return out

    if kind == "hyperbola" and c - b * b / (4 * a) <= 0:
        return "hyperbola fit has no positive minimum"
    pred = model(np.asarray(positions, dtype=np.float64))
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2)) or 1e-12
    return CurveFit(best=x0 + xm * scale, r2=1.0 - ss_res / ss_tot, model=model)


class _Run:
    def __init__(
        self,
        camera: Camera,
        focuser: Focuser,
        clock: Clock,
        backlash: int,
        exposure: float,
        measure_hfr: HfrMeasure,
        move_timeout: float,
        hot_pixel_filter: bool,
    ) -> None:
        self.camera, self.focuser, self.clock = camera, focuser, clock
        self.hot_pixel_filter = hot_pixel_filter
        self.backlash = backlash
        self.exposure = exposure
        self.measure = measure_hfr
        self.move_timeout = move_timeout
        self.outward = False  # did the last move end going outward?
        self.lo, self.hi = 0, 0

    async def _move(self, target: int) -> None:
        await self.focuser.move_to(target)
        deadline = Deadline(self.clock, self.move_timeout)  # never late for a busy machine
        while await self.focuser.is_moving():
            if deadline.expired():
                await self.focuser.halt()
                raise DeviceTimeout(f"focuser did not reach {target} in {self.move_timeout:g} s")
            await self.clock.sleep(POLL)

    async def approach(self, target: int) -> None:
        """Arrive at ``target`` moving outward (overshoot inward first when needed)."""
        target = min(max(target, self.lo), self.hi)
        here = await self.focuser.position()
        if self.backlash > 0 and (not self.outward or here > target):
            await self._move(max(self.lo, target - self.backlash))
        if await self.focuser.position() != target:
            await self._move(target)
        self.outward = True

    def _measure(self, data: npt.NDArray[np.uint16], filtered: bool) -> float | None:
        if filtered and self.hot_pixel_filter:
            smooth = np.asarray(cv2.medianBlur(np.ascontiguousarray(data), 3), dtype=np.uint16)
            return self.measure(smooth)
        return self.measure(data)

    async def hfr(self, *, filtered: bool = True) -> float | None:
        await self.camera.start_exposure(self.exposure, "light")
        deadline = Deadline(self.clock, self.exposure + DOWNLOAD_ALLOWANCE)
        while True:
            state = await self.camera.exposure_status()
            if state is ExposureState.ready:
                break
            if state is ExposureState.error:
                await self.camera.exposure_result()  # raises the camera's error
            if deadline.expired():
                await self.camera.abort_exposure()
                raise DeviceTimeout("autofocus exposure did not complete")
            await self.clock.sleep(min(POLL, max(self.exposure / 10, 0.01)))
        frame = await self.camera.exposure_result()
        value = await asyncio.to_thread(self._measure, frame.data, filtered)
        return None if value is None or not math.isfinite(value) else float(value)


async def run_autofocus(
    camera: Camera,
    focuser: Focuser,
    *,
    clock: Clock,
    steps: int = 9,
    step_size: int = 100,
    exposure: float = 3.0,
    fit: Fit = "hyperbola",
    backlash: int = 0,
    measure_hfr: HfrMeasure | None = None,
    max_rounds: int = 4,
    move_timeout: float = 120.0,
    min_r2: float = MIN_R2,
    hot_pixel_filter: bool = True,
) -> AutofocusResult:
    """Run a V-curve autofocus and leave the focuser at the best position.

    ``steps`` positions ``step_size`` focuser steps apart are sampled around the current one;
    ``backlash`` (steps) is the overshoot used to arrive at every position from the same side.
    ``measure_hfr`` takes a frame's pixels and returns the median HFR in px (default:
    ``runner.stacking.detect.measure_hfr``); it runs in a worker thread. With
    ``hot_pixel_filter`` the frame is 3×3 median-filtered first: far from focus the stars are
    faint smudges and single hot pixels would otherwise be "stars" of HFR ≈ 0 that drag the
    median down (the filter widens every star a little, the same at every position, so the
    minimum does not move).

    Raises:
        AutofocusFailed: no usable V-curve (the focuser is back where it started).
        DeviceError: a camera or focuser operation failed or timed out.
    """
    if steps < 3:
        raise ValueError("autofocus needs at least 3 steps")
    if step_size <= 0:
        raise ValueError("step_size must be > 0")
    if fit not in ("hyperbola", "parabola"):
        raise ValueError(f"unknown fit '{fit}'")
    if measure_hfr is None:
        from runner.stacking.detect import measure_hfr as default_measure

        measure_hfr = default_measure
    t0 = clock.monotonic()
    run = _Run(
        camera,
        focuser,
        clock,
        max(0, backlash),
        exposure,
        measure_hfr,
        move_timeout,
        hot_pixel_filter,
    )
    run.hi = await focuser.max_position()
    start = await focuser.position()
    result = AutofocusResult(ok=False, fit=fit, start_position=start)
    try:
        result.temperature = await focuser.temperature()
    except DeviceError:
        result.temperature = None
    samples: dict[int, float | None] = {}

    async def sample(centre: float) -> None:
        half = (steps - 1) / 2.0
        window = sorted(
            {min(max(round(centre + (i - half) * step_size), run.lo), run.hi) for i in range(steps)}
        )
        for p in window:
            if p in samples:
                continue
            await run.approach(p)
            samples[p] = await run.hfr()
            result.positions.append(p)
            result.hfrs.append(samples[p])

    async def fail(reason: str) -> NoReturn:
        result.reason = reason
        await run.approach(start)
        result.final_position = await focuser.position()
        result.duration = clock.monotonic() - t0
        raise AutofocusFailed(f"autofocus failed: {reason}", result)

    centre: float = start
    for round_no in range(max_rounds):
        await sample(centre)
        good = sorted((p, h) for p, h in samples.items() if h is not None)
        if len(good) < 3:
            await fail(f"stars measured at only {len(good)} of {len(samples)} positions")
        ps = np.array([p for p, _ in good], dtype=np.float64)
        hs = np.array([h for _, h in good], dtype=np.float64)
        i_min = int(np.argmin(hs))
        p_min = ps[i_min]
        # Bracketed: a worse sample within 1.5 steps on each side (or the focuser's limit).
        reach = 1.5 * step_size
        below = p_min <= run.lo or bool(np.any((ps < p_min) & (ps >= p_min - reach)))
        above = p_min >= run.hi or bool(np.any((ps > p_min) & (ps <= p_min + reach)))
        if (below and above) or round_no == max_rounds - 1:
            break
        # Focus lies beyond this end. Far from focus HFR ≈ k·|x − best|: the slope of the
        # samples on this side gives k, and the distance to focus is about HFR / k.
        side = ps >= p_min if not below else ps <= p_min
        side &= np.abs(ps - p_min) <= steps * step_size
        slope = abs(float(np.polyfit(ps[side], hs[side], 1)[0])) if side.sum() >= 2 else 0.0
        dist = hs[i_min] / slope if slope > 0 else steps * step_size
        dist = min(max(dist, step_size), 2.0 * steps * step_size)
        centre = p_min - dist if not below else p_min + dist

    good = sorted((p, h) for p, h in samples.items() if h is not None)
    i_min = int(np.argmin([h for _, h in good]))
    near = sorted(good, key=lambda ph: abs(ph[0] - good[i_min][0]))[:steps]
    near.sort()
    fitted = fit_curve([p for p, _ in near], [h for _, h in near], fit)
    if isinstance(fitted, str):
        await fail(fitted)
    result.r2 = round(fitted.r2, 4)
    lo_p, hi_p = near[0][0], near[-1][0]
    if not lo_p <= fitted.best <= hi_p:
        await fail(f"fitted best {fitted.best:.0f} is outside the samples {lo_p}…{hi_p}")
    if fitted.r2 < min_r2:
        await fail(f"poor fit (r² = {fitted.r2:.2f} < {min_r2})")
    best = round(fitted.best)
    result.best_position = best
    await run.approach(best)
    result.final_position = await focuser.position()
    result.final_hfr = await run.hfr(filtered=False)  # comparable with the lights' HFR
    result.ok = True
    result.duration = clock.monotonic() - t0
    return result
