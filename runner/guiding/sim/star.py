"""The simulated guide star and guide camera.

The star's error follows the physics a real guider fights, so settling and RMS mean something:

* the **mount** wanders: periodic error (a sine in RA) plus a slow drift, in mount axes;
* **seeing** jitters each measured centroid (it is not in the mount, so corrections cannot
  remove it — it sets the RMS floor);
* **guide corrections** move the mount back by a fraction (aggressiveness) of the measured error,
  so a dither — a jump of the lock position — decays geometrically over a few frames.

Coordinates: mount axes (RA, Dec) in guide-camera pixels; the camera is turned by
``camera_angle_deg`` against them, as a real guide camera is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class GuideCameraParams:
    """Knobs of the simulated guide camera, star and mount (all pixels are guide-camera px)."""

    width_px: int = 640
    height_px: int = 480
    pixel_scale_arcsec: float | None = 2.5
    camera_angle_deg: float = 23.0
    seeing_px: float = 0.15
    pe_amplitude_px: float = 3.0
    pe_period_s: float = 480.0
    drift_ra_px_per_s: float = 0.002
    drift_dec_px_per_s: float = 0.008
    aggressiveness: float = 0.7
    min_move_px: float = 0.05
    #: Guide rate for pulse durations: 0.5× sidereal ≈ 7.5 arcsec/s.
    guide_rate_arcsec_per_s: float = 7.5
    star_hfd_px: float = 2.6
    star_peak_adu: float = 18_000.0
    background_adu: float = 1_200.0
    noise_adu: float = 25.0
    field_stars: int = 12


class GuideStar:
    """Mount error and the star's position on the guide camera, advanced frame by frame."""

    def __init__(self, params: GuideCameraParams, rng: np.random.Generator) -> None:
        self.p = params
        self.rng = rng
        w, h = params.width_px, params.height_px
        #: Where the star sits when the mount error is zero (camera px).
        self.home = np.array([w * 0.45 + rng.uniform(-20, 20), h * 0.55 + rng.uniform(-20, 20)])
        #: Mount pointing error, (RA, Dec) px: periodic error + drift + corrections.
        self.mount_error = np.zeros(2)
        self._t: float | None = None
        a = math.radians(params.camera_angle_deg)
        self._rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        self._field = np.column_stack([
            rng.uniform(10, w - 10, params.field_stars),
            rng.uniform(10, h - 10, params.field_stars),
            rng.uniform(0.05, 0.4, params.field_stars),
        ])
        sigma = params.star_hfd_px / 2.355 * 1.2
        self._sigma = sigma
        self.mass = params.star_peak_adu * 2 * math.pi * sigma * sigma
        self.snr = 45.0

    # ---------------------------------------------------------------- coordinates

    def mount_to_camera(self, ra: float, dec: float) -> tuple[float, float]:
        x, y = self._rot @ np.array([ra, dec])
        return float(x), float(y)

    def camera_to_mount(self, dx: float, dy: float) -> tuple[float, float]:
        ra, dec = self._rot.T @ np.array([dx, dy])
        return float(ra), float(dec)

    # ---------------------------------------------------------------- dynamics

    def _pe(self, t: float) -> float:
        return self.p.pe_amplitude_px * math.sin(2 * math.pi * t / self.p.pe_period_s)

    def advance(self, t: float) -> None:
        """Let the mount wander from the last call to clock time ``t``."""
        if self._t is None:
            self._t = t
            return
        dt = t - self._t
        if dt <= 0:
            return
        self.mount_error[0] += self._pe(t) - self._pe(self._t) + self.p.drift_ra_px_per_s * dt
        self.mount_error[1] += self.p.drift_dec_px_per_s * dt
        self._t = t

    def move_mount(self, d_ra: float, d_dec: float) -> None:
        """A guide pulse or calibration step: the mount (and the star) moves."""
        self.mount_error += (d_ra, d_dec)

    def true_position(self) -> tuple[float, float]:
        dx, dy = self.mount_to_camera(*self.mount_error)
        return float(self.home[0] + dx), float(self.home[1] + dy)

    def observe(self) -> tuple[float, float]:
        """Centroid measured on this frame: the true position blurred by seeing."""
        x, y = self.true_position()
        jx, jy = self.rng.normal(0.0, self.p.seeing_px, 2)
        return x + float(jx), y + float(jy)

    def correction(self, ra_px: float, dec_px: float) -> tuple[float, float]:
        """The guide algorithm: a hysteresis-free proportional correction with a minimum move."""
        def axis(v: float) -> float:
            return -self.p.aggressiveness * v if abs(v) >= self.p.min_move_px else 0.0

        return axis(ra_px), axis(dec_px)

    def pulse_ms(self, px: float) -> int:
        scale = self.p.pixel_scale_arcsec or 2.5
        return round(abs(px) * scale / self.p.guide_rate_arcsec_per_s * 1000)

    # ---------------------------------------------------------------- images

    def render(
        self, x0: int, y0: int, width: int, height: int, star_xy: tuple[float, float] | None,
        rng: np.random.Generator,
    ) -> npt.NDArray[np.uint16]:
        """A 16-bit patch of the guide frame: background, noise, field stars, the guide star."""
        ys, xs = np.mgrid[y0:y0 + height, x0:x0 + width].astype(np.float64)
        img = np.full((height, width), self.p.background_adu, dtype=np.float64)
        img += rng.normal(0.0, self.p.noise_adu, img.shape)
        two_s2 = 2 * self._sigma * self._sigma
        for fx, fy, frac in self._field:
            if x0 - 10 <= fx < x0 + width + 10 and y0 - 10 <= fy < y0 + height + 10:
                img += frac * self.p.star_peak_adu * np.exp(
                    -((xs - fx) ** 2 + (ys - fy) ** 2) / two_s2)
        if star_xy is not None:
            sx, sy = star_xy
            img += self.p.star_peak_adu * np.exp(-((xs - sx) ** 2 + (ys - sy) ** 2) / two_s2)
        return np.clip(np.rint(img), 0, 65535).astype(np.uint16)

    def full_frame(
        self, star_xy: tuple[float, float] | None, rng: np.random.Generator
    ) -> npt.NDArray[np.uint16]:
        return self.render(0, 0, self.p.width_px, self.p.height_px, star_xy, rng)
