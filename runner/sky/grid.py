"""Precomputed sky for one 24-hour span: the cache that makes per-exposure checks cheap.

The engine asks "may the next exposure start?" before every frame. Answering that with a fresh
astropy transform costs tens of milliseconds; answering it from a precomputed grid costs a few
microseconds of ``np.interp``. A :class:`SkySegment` holds the Sun and Moon over a day-long span
(computed every ``BODY_STEP`` seconds and interpolated onto the grid, since both move smoothly),
and one :class:`TargetTrack` per target (altitude, azimuth, airmass, hour angle on the grid),
computed on first use — several targets in one broadcast astropy call when asked together.

Segments are cached per (site, start, step); callers anchor them at the run's start so that
every target of a night shares the same Sun and Moon.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from runner.plan.models import Site
from runner.sky import ephemeris
from runner.sky.ephemeris import FloatArray

SEGMENT_SECONDS = 86_400.0
#: Sun and Moon are computed this often (s) and interpolated: their altitude curves are smooth
#: enough that the interpolation error stays below 0.02°.
BODY_STEP = 600.0
#: Default grid step for targets (s); constraints are resolved to this, edges refined to ~1 s.
DEFAULT_STEP = 120.0


def _grid(start: float, span: float, step: float) -> FloatArray:
    n = int(np.ceil(span / step))
    t = start + np.arange(n + 1, dtype=np.float64) * step
    t[-1] = start + span
    return t


@dataclass(frozen=True)
class TargetTrack:
    """Everything a constraint needs about one target over one segment, sampled on ``t``."""

    ra: float
    dec: float
    t: FloatArray
    alt: FloatArray
    az: FloatArray
    airmass: FloatArray
    hour_angle: FloatArray
    moon_separation: FloatArray
    sun_alt: FloatArray
    moon_alt: FloatArray
    moon_illum: FloatArray

    @property
    def start(self) -> float:
        return float(self.t[0])

    @property
    def end(self) -> float:
        return float(self.t[-1])

    def at(self, name: str, ts: FloatArray) -> FloatArray:
        """``name`` (an array field) linearly interpolated at POSIX times ``ts``."""
        values: FloatArray = getattr(self, name)
        return np.asarray(np.interp(ts, self.t, values), dtype=np.float64)

    def hour_angle_at(self, ts: FloatArray) -> FloatArray:
        """Hour angle (h) at ``ts``, interpolated across the ±12 h wrap."""
        unwrapped = np.unwrap(self.hour_angle, period=24.0)
        ha = np.interp(ts, self.t, unwrapped)
        return np.asarray((ha + 12.0) % 24.0 - 12.0, dtype=np.float64)


def airmass(alt: FloatArray) -> FloatArray:
    """Plane-parallel airmass sec z; infinite at and below the horizon."""
    safe = np.radians(np.clip(alt, 1e-3, 90.0))
    return np.asarray(np.where(alt > 0.0, 1.0 / np.sin(safe), np.inf), dtype=np.float64)


class SkySegment:
    """The Sun, the Moon and any number of targets over ``[start, start + span]``."""

    def __init__(
        self, site: Site, start: float, step: float = DEFAULT_STEP, span: float = SEGMENT_SECONDS
    ) -> None:
        if step <= 0 or step > 3600:
            raise ValueError(f"grid step must be within (0, 3600] s, got {step}")
        self.site = site
        self.start = float(start)
        self.end = float(start) + span
        self.step = step
        self.t = _grid(self.start, span, step)
        coarse = _grid(self.start, span, min(BODY_STEP, step * 5))
        b = ephemeris.bodies(site, coarse)
        self.sun_alt = np.interp(self.t, coarse, b["sun_alt"])
        self.moon_alt = np.interp(self.t, coarse, b["moon_alt"])
        self.moon_illum = np.interp(self.t, coarse, b["moon_illum"])
        vec = np.stack([np.interp(self.t, coarse, b["moon_vec"][:, i]) for i in range(3)], axis=1)
        self.moon_vec = vec / np.linalg.norm(vec, axis=1)[:, None]
        self._tracks: dict[tuple[float, float], TargetTrack] = {}
        self._lock = threading.Lock()

    def track(self, ra: float, dec: float) -> TargetTrack:
        return self.tracks([(ra, dec)])[0]

    def tracks(self, coords: Sequence[tuple[float, float]]) -> list[TargetTrack]:
        """Tracks of J2000 (ra, dec) degrees; missing ones computed in one astropy call."""
        with self._lock:
            missing = list(dict.fromkeys(c for c in coords if c not in self._tracks))
            if missing:
                ra = np.array([c[0] for c in missing], dtype=np.float64)
                dec = np.array([c[1] for c in missing], dtype=np.float64)
                alt, az = ephemeris.targets_altaz(self.site, ra, dec, self.t)
                ha = ephemeris.hour_angle(self.site.latitude, alt, az)
                vecs = ephemeris.unit_vectors(ra, dec)
                cos_sep = np.clip(vecs @ self.moon_vec.T, -1.0, 1.0)
                sep = np.degrees(np.arccos(cos_sep))
                for i, key in enumerate(missing):
                    self._tracks[key] = TargetTrack(
                        ra=key[0],
                        dec=key[1],
                        t=self.t,
                        alt=alt[i],
                        az=az[i],
                        airmass=airmass(alt[i]),
                        hour_angle=ha[i],
                        moon_separation=sep[i],
                        sun_alt=self.sun_alt,
                        moon_alt=self.moon_alt,
                        moon_illum=self.moon_illum,
                    )
            return [self._tracks[c] for c in coords]


@lru_cache(maxsize=64)
def segment(site: Site, start: float, step: float = DEFAULT_STEP) -> SkySegment:
    """The cached segment of ``site`` beginning at POSIX ``start``."""
    return SkySegment(site, start, step)


def segment_starts(anchor: float, start: float, end: float) -> list[float]:
    """Starts of the day-long segments, aligned on ``anchor``, that cover ``[start, end]``."""
    k0 = int(np.floor((start - anchor) / SEGMENT_SECONDS))
    k1 = int(np.floor((end - anchor) / SEGMENT_SECONDS))
    if k1 > k0 and anchor + k1 * SEGMENT_SECONDS >= end:
        k1 -= 1
    return [anchor + k * SEGMENT_SECONDS for k in range(k0, k1 + 1)]
