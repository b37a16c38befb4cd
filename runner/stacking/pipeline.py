"""One frame through the stacker: calibrate → debayer → find stars → register → warp → add.

:class:`Stacker` is synchronous and single-threaded; :class:`~runner.stacking.live.LiveStacker`
runs it on a worker thread and the offline ``stack`` command calls it in a loop, so both
produce the same stack from the same frames.

The first frame with enough stars becomes the reference; every later frame is registered to
it. A frame that cannot be registered (too few stars, clouds, another field, a rotation an
equatorial mount cannot make) raises :class:`RegistrationError` and is never stacked. Before
accumulation each frame's sky level is shifted to the reference's (additive background
normalisation), so a brightening sky at dawn does not look like an outlier to κσ rejection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from runner.errors import RegistrationError, StackingError
from runner.stacking.accumulate import MeanStack, SigmaClipStack, make_accumulator
from runner.stacking.calibrate import CalibrationSet, Calibrator
from runner.stacking.debayer import debayer, luminance, normalize_pattern
from runner.stacking.fitsio import FrameMeta
from runner.stacking.register import (
    Registration,
    RegStars,
    TransformModel,
    find_transform,
    registration_stars,
    warp,
)

F32 = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StackSettings:
    """How frames are combined (the plan's ``stack:`` options map onto these)."""

    align: bool = True
    reject: bool = True
    kappa: float = 3.0
    # False: an equatorial mount — only rotations within ``rotation_tolerance_deg`` of 0° or
    # 180° (meridian flip) are plausible, anything else is a false match and is dropped.
    # True: alt-az / field rotation — any rotation is accepted.
    field_rotation: bool = False
    rotation_tolerance_deg: float = 5.0
    flip: bool = False  # mirror the outputs left–right (optics that mirror the sky)
    model: TransformModel = "similarity"
    min_stars: int = 8
    max_stars: int = 150
    normalize_background: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "align": self.align,
            "reject": self.reject,
            "kappa": self.kappa,
            "field_rotation": self.field_rotation,
            "rotation_tolerance_deg": self.rotation_tolerance_deg,
            "image_flip": self.flip,
            "model": self.model,
            "min_stars": self.min_stars,
            "max_stars": self.max_stars,
            "normalize_background": self.normalize_background,
        }


FrameStatus = Literal["stacked", "reference", "unregistered", "failed"]


@dataclass
class FrameResult:
    """What happened to one frame (one line of the debug log)."""

    index: int
    status: FrameStatus
    reason: str | None = None
    stars: int = 0
    matches: int = 0
    rms_px: float | None = None
    matrix: list[list[float]] | None = None
    background: list[float] = field(default_factory=list)
    offset: list[float] = field(default_factory=list)
    noise: float | None = None
    seconds: float = 0.0

    @property
    def stacked(self) -> bool:
        return self.status in ("stacked", "reference")

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status,
            "reason": self.reason,
            "stars": self.stars,
            "matches": self.matches,
            "rms_px": self.rms_px,
            "matrix": self.matrix,
            "background": self.background,
            "offset": self.offset,
            "noise": self.noise,
            "seconds": round(self.seconds, 4),
        }


def _channel_medians(img: F32) -> list[float]:
    """Sky level per channel from a strided sample (~64k pixels): cheap and star-robust."""
    h, w = img.shape[:2]
    step = max(1, int(np.sqrt(h * w / 65536)))
    sample = img[::step, ::step]
    if img.ndim == 2:
        return [float(np.nanmedian(sample))]
    return [float(np.nanmedian(sample[..., c])) for c in range(img.shape[2])]


# ---- the per-frame steps as pure functions: the Stacker chains them with its state, and
# ``runner.restack`` runs the same functions as Dask tasks (one frame per task).


def calibrate_frame(
    calibrator: Calibrator, bayer: str | None, raw: npt.NDArray[np.generic], meta: FrameMeta
) -> F32:
    """Calibrated frame: 2-D for mono, (H, W, 3) after debayering a CFA frame."""
    if raw.ndim == 3:  # already colour (e.g. a debayered RGB frame)
        return np.asarray(raw, dtype=np.float32)
    cal = calibrator.apply(raw, meta.exposure)
    if bayer is not None:
        return debayer(cal, bayer)
    return cal


@dataclass(frozen=True)
class FrameMeasure:
    """What registration and background normalisation need from a calibrated frame."""

    stars: RegStars | None  # None without alignment
    background: list[float]  # sky level per channel ([] without background normalisation)

    @property
    def noise(self) -> float | None:
        return self.stars.background_rms if self.stars is not None else None

    @property
    def n_stars(self) -> int:
        return len(self.stars) if self.stars is not None else 0


def measure_frame(img: F32, settings: StackSettings) -> FrameMeasure:
    stars = (
        registration_stars(luminance(img), max_stars=settings.max_stars)
        if settings.align
        else None
    )
    background = _channel_medians(img) if settings.normalize_background else []
    return FrameMeasure(stars, background)


def check_reference(measure: FrameMeasure, settings: StackSettings) -> None:
    """Raise :class:`RegistrationError` when a frame has too few stars to be the reference."""
    if measure.stars is not None and len(measure.stars) < settings.min_stars:
        raise RegistrationError(
            f"{len(measure.stars)} stars found, a reference frame needs {settings.min_stars}"
        )


def register_frame(
    measure: FrameMeasure, reference: RegStars | None, settings: StackSettings
) -> Registration:
    """The transform taking the reference's pixels to this frame's (identity without align)."""
    if not settings.align:
        return Registration.identity()
    stars = measure.stars
    assert stars is not None and reference is not None
    if len(stars) < 3:
        raise RegistrationError(f"only {len(stars)} stars found")
    return find_transform(
        stars.xy,
        reference.xy,
        model=settings.model,
        min_matches=min(settings.min_stars, 6),
        rotation_limit_deg=None if settings.field_rotation else settings.rotation_tolerance_deg,
    )


def background_offset(background: list[float], reference_background: list[float]) -> list[float]:
    return [b - r for b, r in zip(background, reference_background, strict=True)]


def subtract_offset(frame: F32, offset: list[float]) -> None:
    """Shift the frame's sky to the reference's, in place."""
    if any(o != 0.0 for o in offset):
        if frame.ndim == 2:
            frame -= np.float32(offset[0])
        else:
            frame -= np.asarray(offset, dtype=np.float32)


@dataclass(frozen=True)
class Prepared:
    """A frame calibrated and measured ahead of its turn (:meth:`Stacker.prepare`), or why it
    could not be."""

    img: F32 | None
    measure: FrameMeasure | None
    error: StackingError | None
    seconds: float


class Stacker:
    """Calibrates, registers and accumulates frames into one stack (not thread-safe, except
    that :meth:`prepare` of the next frame may run beside :meth:`process` once a frame has
    been processed: it only reads the calibration and the reference's shape)."""

    def __init__(
        self,
        settings: StackSettings | None = None,
        calibration: CalibrationSet | None = None,
        *,
        bayer: str | None = None,
    ) -> None:
        self.settings = settings or StackSettings()
        self.calibration = calibration or CalibrationSet()
        self._bayer_override = normalize_pattern(bayer)
        self.bayer: str | None = None
        self._calibrator: Calibrator | None = None
        self.accumulator: MeanStack | SigmaClipStack = make_accumulator(
            self.settings.reject, self.settings.kappa
        )
        self.reference: RegStars | None = None
        self.reference_background: list[float] = []
        self.shape: tuple[int, ...] | None = None
        self.frames = 0
        self.stacked = 0
        self.last_frame: F32 | None = None  # calibrated, unregistered (the live histogram)
        self.exposure_total = 0.0

    # ---- steps, usable on their own (replay uses them with logged transforms)

    def calibrate(self, raw: npt.NDArray[np.generic], meta: FrameMeta | None = None) -> F32:
        """Calibrated frame: 2-D for mono, (H, W, 3) after debayering a CFA frame."""
        meta = meta or FrameMeta()
        if raw.ndim == 3:  # already colour (e.g. a debayered RGB frame)
            return np.asarray(raw, dtype=np.float32)
        if self._calibrator is None:
            self.bayer = self._bayer_override or meta.bayer
            self._calibrator = Calibrator(self.calibration, bayer=self.bayer)
        return calibrate_frame(self._calibrator, self.bayer, raw, meta)

    def warp_to_reference(self, frame: F32, registration: Registration) -> F32:
        if self.shape is None:
            raise StackingError("no reference frame yet")
        return warp(frame, registration, (int(self.shape[0]), int(self.shape[1])))

    def accumulate(self, frame: F32, offset: list[float], noise: float | None) -> None:
        subtract_offset(frame, offset)
        self.accumulator.add(frame, noise=noise if frame.ndim == 2 else None)

    # ---- the whole path

    def prepare(self, raw: npt.NDArray[np.generic], meta: FrameMeta | None = None) -> Prepared:
        """Calibrate and measure a frame (the half of :meth:`process` that needs no other
        frame): the offline command prepares the next frame while this one is added."""
        t0 = time.perf_counter()
        meta = meta or FrameMeta()
        try:
            img = self.calibrate(raw, meta)
            if self.shape is not None and img.shape != self.shape:
                raise StackingError(
                    f"frame shape {img.shape} differs from the stack's {self.shape}")
            m = measure_frame(img, self.settings)
        except StackingError as exc:
            return Prepared(None, None, exc, time.perf_counter() - t0)
        return Prepared(img, m, None, time.perf_counter() - t0)

    def process(self, raw: npt.NDArray[np.generic], meta: FrameMeta | None = None, *,
                prepared: Prepared | None = None) -> FrameResult:
        """Add one raw frame (``prepared``: its :meth:`prepare`, done ahead). Never raises for
        a bad frame: the result says what happened.

        :class:`StackingError` (unreadable, wrong size, unregistrable) becomes a result with
        status ``failed``/``unregistered``; anything else is a bug and propagates.
        """
        t0 = time.perf_counter()
        index = self.frames
        self.frames += 1
        meta = meta or FrameMeta()
        try:
            result = self._process(index, prepared or self.prepare(raw, meta))
        except RegistrationError as exc:
            result = FrameResult(index, "unregistered", str(exc))
        except StackingError as exc:
            result = FrameResult(index, "failed", str(exc))
        # the frame's own cost, wherever its halves ran
        result.seconds = time.perf_counter() - t0 + (prepared.seconds if prepared else 0.0)
        if result.stacked:
            self.stacked += 1
            self.exposure_total += meta.exposure or 0.0
        return result

    def _process(self, index: int, p: Prepared) -> FrameResult:
        if p.error is not None:
            raise p.error
        img, m = p.img, p.measure
        assert img is not None and m is not None
        if self.shape is not None and img.shape != self.shape:  # prepared before the reference
            raise StackingError(f"frame shape {img.shape} differs from the stack's {self.shape}")
        self.last_frame = img
        s = self.settings
        background, noise, n_stars = m.background, m.noise, m.n_stars

        if self.reference is None and self.shape is None:
            check_reference(m, s)
            self.reference = m.stars
            self.reference_background = background
            self.shape = img.shape
            self.accumulate(img, [0.0] * len(background), noise)
            return FrameResult(
                index,
                "reference",
                stars=n_stars,
                matrix=Registration.identity().matrix.tolist(),
                background=background,
                offset=[0.0] * len(background),
                noise=noise,
            )

        reg = register_frame(m, self.reference, s)
        offset = background_offset(background, self.reference_background)
        warped = self.warp_to_reference(img, reg)
        self.accumulate(warped, offset, noise)
        return FrameResult(
            index,
            "stacked",
            stars=n_stars,
            matches=reg.matches,
            rms_px=round(reg.rms, 4),
            matrix=reg.matrix.tolist(),
            background=background,
            offset=offset,
            noise=noise,
        )

    def add_registered(
        self,
        raw: npt.NDArray[np.generic],
        meta: FrameMeta,
        matrix: list[list[float]],
        offset: list[float],
        noise: float | None,
    ) -> None:
        """Add a frame with a known transform (replaying a debug log): no star search."""
        img = self.calibrate(raw, meta)
        self.frames += 1
        if self.shape is None:
            self.shape = img.shape
        elif img.shape != self.shape:
            raise StackingError(f"frame shape {img.shape} differs from the stack's {self.shape}")
        reg = Registration(np.asarray(matrix, dtype=np.float64), 0, 0.0)
        self.accumulate(self.warp_to_reference(img, reg), offset, noise)
        self.stacked += 1
        self.exposure_total += meta.exposure or 0.0

    def result(self) -> F32:
        """The stack (NaN where no frame contributed)."""
        return self.accumulator.result()
