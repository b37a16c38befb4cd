"""Values the PHD2 client hands to its callers.

PHD2's wire names (``RADistanceRaw``, ``star_pos`` …) stop at the client; these types carry our
own snake_case names with units in them, so the engine, the control plane and the night report
never depend on PHD2's spelling.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.devices.interfaces import GuideStats
from runner.errors import GuiderError


class PHD2RpcError(GuiderError):
    """PHD2 answered a request with a JSON-RPC error object.

    ``code`` keeps PHD2's number (1 general failure, 2 "no star selected", −326xx protocol
    errors) because callers sometimes need to tell "refused now" from "malformed request".
    """

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"PHD2 refused {method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message


class NotGuidingError(GuiderError):
    """A dither was asked for while PHD2 is not guiding (stopped, looping, or the star is lost).

    Separate from other refusals because the night's rule differs: a dither while not guiding is
    skipped with a warning, it does not fail the step.
    """


@dataclass(frozen=True)
class SettleParams:
    """When PHD2 may call guiding "settled": within ``pixels`` for ``time_s``, or fail after
    ``timeout_s`` (PHD2 truncates both durations to whole seconds)."""

    pixels: float
    time_s: float
    timeout_s: float

    def __post_init__(self) -> None:
        if not (self.pixels > 0 and self.time_s >= 0 and self.timeout_s > 0):
            raise ValueError(f"invalid settle parameters {self}")

    def to_wire(self) -> dict[str, float]:
        return {"pixels": self.pixels, "time": self.time_s, "timeout": self.timeout_s}


@dataclass(frozen=True)
class SettleProgress:
    """The latest ``Settling`` report: how far the star is and how long it has been in range."""

    distance_px: float
    time_in_range_s: float
    settle_time_s: float
    star_locked: bool


@dataclass(frozen=True)
class SettleResult:
    """A successful settle (``SettleDone`` Status 0)."""

    total_frames: int
    dropped_frames: int
    #: Clock seconds from sending guide/dither to SettleDone (calibration included for guide).
    duration_s: float


@dataclass(frozen=True)
class EquipmentDevice:
    name: str
    connected: bool


@dataclass(frozen=True)
class PHD2Profile:
    """An equipment profile in PHD2.

    PHD2 reveals the devices of the *selected* profile only (``get_current_equipment``); for the
    others ``devices`` stays empty rather than guessed.
    """

    id: int
    name: str
    selected: bool = False
    devices: Mapping[str, EquipmentDevice] = field(default_factory=dict)


@dataclass(frozen=True)
class StarImage:
    """A stamp around the guide star as PHD2 sends it (16-bit, row-major, base64)."""

    frame: int
    width: int
    height: int
    #: Star centroid inside the stamp, pixels.
    star_x_px: float
    star_y_px: float
    pixels_base64: str

    def pixels(self) -> npt.NDArray[np.uint16]:
        """Decoded stamp (PHD2 writes its native little-endian unsigned shorts)."""
        raw = base64.b64decode(self.pixels_base64)
        expected = self.width * self.height * 2
        if len(raw) != expected:
            raise GuiderError(
                f"star image has {len(raw)} bytes, expected {expected} for "
                f"{self.width}x{self.height}"
            )
        return np.frombuffer(raw, dtype="<u2").reshape(self.height, self.width).astype(np.uint16)


@dataclass(frozen=True)
class GuideStepInfo:
    """One ``GuideStep``: where the star was relative to the lock position."""

    frame: int
    time_s: float
    dx_px: float
    dy_px: float
    ra_px: float
    dec_px: float
    star_mass: float | None
    snr: float | None
    avg_dist_px: float | None

    @classmethod
    def from_event(cls, ev: Mapping[str, Any]) -> GuideStepInfo:
        def opt(key: str) -> float | None:
            v = ev.get(key)
            return float(v) if isinstance(v, int | float) else None

        return cls(
            frame=int(ev.get("Frame", 0)),
            time_s=float(ev.get("Time", 0.0)),
            dx_px=float(ev.get("dx", 0.0)),
            dy_px=float(ev.get("dy", 0.0)),
            ra_px=float(ev.get("RADistanceRaw", 0.0)),
            dec_px=float(ev.get("DECDistanceRaw", 0.0)),
            star_mass=opt("StarMass"),
            snr=opt("SNR"),
            avg_dist_px=opt("AvgDist"),
        )


class _Welford:
    """Running mean/variance, so long exposures do not keep every step in memory."""

    __slots__ = ("mean", "n", "sq")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.sq = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.sq += d * (x - self.mean)

    def stdev(self) -> float:
        return math.sqrt(self.sq / self.n) if self.n else 0.0


class GuideStatsAccumulator:
    """RMS of RA/Dec guide error over an interval, the way PHD2 reports it.

    PHD2's "RMS" is the standard deviation about the mean (a constant offset is not guiding
    error), per axis; the total is their quadrature sum.
    """

    def __init__(self) -> None:
        self._ra = _Welford()
        self._dec = _Welford()

    def reset(self) -> None:
        self._ra = _Welford()
        self._dec = _Welford()

    def add(self, ra_px: float, dec_px: float) -> None:
        self._ra.add(ra_px)
        self._dec.add(dec_px)

    @property
    def frames(self) -> int:
        return self._ra.n

    def result(self, pixel_scale_arcsec: float | None) -> GuideStats | None:
        if self._ra.n == 0:
            return None
        scale = pixel_scale_arcsec if pixel_scale_arcsec else 1.0
        ra = self._ra.stdev() * scale
        dec = self._dec.stdev() * scale
        return GuideStats(
            rms_ra=ra,
            rms_dec=dec,
            rms_total=math.hypot(ra, dec),
            unit="arcsec" if pixel_scale_arcsec else "px",
            frames=self._ra.n,
        )
