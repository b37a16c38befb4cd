"""The functions a re-stack runs as Dask tasks, built from the live stacker's own steps.

Every task is pure: it never mutates an input (Dask may run a task again after a worker dies,
and an input it mutated would then be wrong), so an accumulator step copies its state before
adding frames. Frames are read from their path on the worker (a shared filesystem); what
travels between workers is warped tiles and per-tile accumulator state, never raw frames.

Per frame: read → calibrate → measure stars → register to the group's reference → warp →
sky offset (:mod:`runner.stacking.pipeline`'s functions). Per tile (a band of rows): the
live stacker's accumulator (:mod:`runner.stacking.accumulate`), fed the tile of each frame in
the group's order with the frame's whole-frame sky σ — so each pixel sees exactly the samples,
in the same order, with the same noise prior, as in :class:`~runner.stacking.pipeline.Stacker`.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.errors import RegistrationError, StackingError
from runner.restack.select import CalibrationRef
from runner.stacking.accumulate import MeanStack, SigmaClipStack, make_accumulator, sky_noise
from runner.stacking.calibrate import CalibrationLibrary, Calibrator, calibration_for
from runner.stacking.fitsio import FrameMeta, read_frame
from runner.stacking.pipeline import (
    FrameMeasure,
    FrameStatus,
    StackSettings,
    background_offset,
    calibrate_frame,
    check_reference,
    measure_frame,
    register_frame,
    subtract_offset,
)
from runner.stacking.register import Registration, RegStars, warp

F32 = npt.NDArray[np.float32]
State = MeanStack | SigmaClipStack


@dataclass(frozen=True)
class GroupSpec:
    """What every task of one group needs (small: it travels with each task)."""

    stacking_id: str
    settings: StackSettings
    calibration: CalibrationRef
    tile_rows: int
    tiles: int
    # False only under Dask's synchronous scheduler, which runs each task exactly once and
    # gives each state to exactly one successor: the copy is then pure cost (see accumulate).
    copy_state: bool = True


@dataclass(frozen=True)
class FrameReport:
    """What happened to one frame (one line of the group's log)."""

    index: int
    path: str
    status: FrameStatus
    reason: str | None = None
    stars: int = 0
    matches: int = 0
    rms_px: float | None = None
    matrix: list[list[float]] | None = None
    offset: list[float] = field(default_factory=list)
    noise: float | None = None
    exposure: float = 0.0
    seconds: float = 0.0

    @property
    def stacked(self) -> bool:
        return self.status in ("stacked", "reference")

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["seconds"] = round(self.seconds, 4)
        return d


@dataclass(frozen=True)
class Reference:
    """The group's reference: the first frame, in order, with enough stars."""

    index: int | None
    stars: RegStars | None
    background: list[float]
    shape: tuple[int, ...] | None
    earlier: tuple[FrameReport, ...]  # the frames before it, each failed or unregistered


@dataclass(frozen=True)
class Warped:
    report: FrameReport
    frame: F32 | None  # registered, sky shifted to the reference's; None: not stacked
    noise: float | None  # the accumulator's sky σ for this frame (whole frame)


@dataclass(frozen=True)
class TileResult:
    stack: F32 | None
    rejected: int


@functools.lru_cache(maxsize=8)
def _calibrator(cal: CalibrationRef, bayer: str | None, width: int | None) -> Calibrator:
    """One calibrator per worker process and group: masters are loaded once, not per frame."""
    if cal.data_dir is None or not cal.ids():
        return Calibrator(bayer=bayer)
    masters = calibration_for(
        CalibrationLibrary(cal.data_dir),
        FrameMeta(width=width),
        bias=cal.bias,
        dark=cal.darks,
        flat=cal.flats,
        auto=False,
    )
    return Calibrator(masters, bayer=bayer)


def _load(spec: GroupSpec, path: str) -> tuple[F32, FrameMeta]:
    raw, meta = read_frame(path)
    calibrator = _calibrator(spec.calibration, meta.bayer, meta.width)
    return calibrate_frame(calibrator, meta.bayer, raw, meta), meta


def _failure(index: int, path: str, exc: StackingError, t0: float) -> FrameReport:
    status: FrameStatus = "unregistered" if isinstance(exc, RegistrationError) else "failed"
    return FrameReport(index, path, status, str(exc), seconds=time.perf_counter() - t0)


def find_reference(spec: GroupSpec, paths: list[str]) -> Reference:
    """Try frames in order until one has enough stars (the live stacker's rule)."""
    earlier: list[FrameReport] = []
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        try:
            img, _ = _load(spec, path)
            m = measure_frame(img, spec.settings)
            check_reference(m, spec.settings)
        except StackingError as exc:
            earlier.append(_failure(i, path, exc, t0))
            continue
        return Reference(i, m.stars, m.background, img.shape, tuple(earlier))
    return Reference(None, None, [], None, tuple(earlier))


def process_frame(spec: GroupSpec, index: int, path: str, ref: Reference) -> Warped:
    """One frame, read from ``path``: calibrated, registered, warped, sky-shifted."""
    if ref.index is None or index < ref.index:
        return Warped(ref.earlier[index], None, None)
    t0 = time.perf_counter()
    s = spec.settings
    try:
        img, meta = _load(spec, path)
        if img.shape != ref.shape:
            raise StackingError(f"frame shape {img.shape} differs from the stack's {ref.shape}")
        m: FrameMeasure = measure_frame(img, s)
        if index == ref.index:
            reg, status, frame = Registration.identity(), "reference", img
            offset = [0.0] * len(m.background)
        else:
            reg = register_frame(m, ref.stars, s)
            status = "stacked"
            offset = background_offset(m.background, ref.background)
            frame = warp(img, reg, (int(img.shape[0]), int(img.shape[1])))
        subtract_offset(frame, offset)
    except StackingError as exc:
        return Warped(_failure(index, path, exc, t0), None, None)
    noise = m.noise if frame.ndim == 2 else None
    if s.reject:  # the accumulator's own rule, applied once to the whole frame
        noise = sky_noise(frame, noise)
    report = FrameReport(
        index,
        path,
        "reference" if status == "reference" else "stacked",
        stars=m.n_stars,
        matches=reg.matches,
        rms_px=None if status == "reference" else round(reg.rms, 4),
        matrix=reg.matrix.tolist(),
        offset=offset,
        noise=m.noise,
        exposure=meta.exposure or 0.0,
        seconds=time.perf_counter() - t0,
    )
    return Warped(report, frame, noise)


def frame_report(w: Warped) -> FrameReport:
    return w.report


def tile_of(w: Warped, spec: GroupSpec, t: int) -> tuple[F32 | None, float | None]:
    """Band ``t`` of rows of a warped frame (the last band takes the remainder)."""
    if w.frame is None:
        return None, None
    r0 = t * spec.tile_rows
    r1 = None if t == spec.tiles - 1 else r0 + spec.tile_rows
    return w.frame[r0:r1], w.noise


def accumulate(
    state: State | None, spec: GroupSpec, tiles: list[tuple[F32 | None, float | None]]
) -> State | None:
    """Add a batch of frames' tiles, in order, to a copy of the tile's accumulator.

    The copy keeps the task pure: on a cluster a task can run again after a worker died,
    and must then find its input state as it was. The values are the same with or without
    it (in-process runs skip it; the tests compare them with cluster runs bit for bit).
    """
    todo = [(a, n) for a, n in tiles if a is not None]
    if not todo:
        return state
    s = spec.settings
    if state is None:
        new = make_accumulator(s.reject, s.kappa)
    else:
        new = copy.deepcopy(state) if spec.copy_state else state
    for a, n in todo:
        new.add(a, noise=n)
    return new


def finish_tile(state: State | None) -> TileResult:
    if state is None:
        return TileResult(None, 0)
    return TileResult(state.result(), state.rejected)


def assemble(tiles: list[TileResult]) -> F32 | None:
    parts = [t.stack for t in tiles]
    if any(p is None for p in parts):
        return None
    return np.concatenate([p for p in parts if p is not None], axis=0)
