"""When may a target be observed? The engine's and the estimate's one question to the sky.

:class:`TargetVisibility` combines a target's constraints over the precomputed grids of
:mod:`runner.sky.grid`. ``holds_at`` is what the engine calls before a target starts and before
every exposure (microseconds: interpolation only); ``windows`` and ``next_start`` answer "when"
for waiting and for the estimate, with window edges refined to about a second; the hour angle
and transit serve the meridian flip.

Windows are found on the grid (2 minutes by default), so a window shorter than one grid step
can be missed; edges are then bisected with ``holds_at`` itself, so ``windows`` and
``holds_at`` never disagree by more than the bisection tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from runner.plan.models import Site, Target
from runner.sky.constraints import AltitudeConstraint, BoolArray, Constraint, constraints_for
from runner.sky.ephemeris import FloatArray
from runner.sky.grid import DEFAULT_STEP, SEGMENT_SECONDS, TargetTrack, segment, segment_starts
from runner.sky.timeutil import from_unix, site_timezone, to_unix

#: Window edges are bisected until they are known to this many seconds.
EDGE_TOLERANCE = 1.0
#: One sidereal day in SI seconds (for hour-angle arithmetic).
SIDEREAL_DAY = 86_164.0905

Window = tuple[datetime, datetime]


class TargetVisibility:
    """The constraints of one target at one site for runs starting in one night.

    ``night_start`` is the instant the plan's clock times resolve after — local noon of the
    night (:func:`runner.sky.timeutil.night_start`). Grids are cached per site and 24-hour
    segment aligned on it, so all targets of a night share the Sun and the Moon.
    """

    def __init__(
        self,
        target: Target,
        site: Site,
        night_start: datetime,
        *,
        step: float = DEFAULT_STEP,
    ) -> None:
        self.target = target
        self.site = site
        self.tz = site_timezone(site)
        self.night_start = night_start
        self.step = step
        self.ra = target.coordinates.ra
        self.dec = target.coordinates.dec
        self.constraints: list[Constraint] = constraints_for(
            target.constraints, reference=night_start, tz=self.tz
        )
        self._anchor = to_unix(night_start)

    # ------------------------------------------------------------------ grid access

    def _segment_start(self, t: float) -> float:
        k = np.floor((t - self._anchor) / SEGMENT_SECONDS)
        return float(self._anchor + k * SEGMENT_SECONDS)

    def track_at(self, t: float) -> TargetTrack:
        """The track of the segment containing POSIX time ``t``."""
        return segment(self.site, self._segment_start(t), self.step).track(self.ra, self.dec)

    def prefetch(self, others: Sequence[TargetVisibility], start: datetime, end: datetime) -> None:
        """Compute this and other targets' tracks over [start, end] in one astropy call each."""
        coords = [(v.ra, v.dec) for v in (self, *others)]
        for s in segment_starts(self._anchor, to_unix(start), to_unix(end)):
            segment(self.site, s, self.step).tracks(coords)

    # ------------------------------------------------------------------ instants

    def holds_at(self, t: datetime) -> tuple[bool, list[str]]:
        """Whether every constraint holds at ``t``; if not, why (one reason per failure)."""
        if not self.constraints:
            return True, []  # no sky grid to build for a target without constraints
        u = to_unix(t)
        track = self.track_at(u)
        reasons = [r for c in self.constraints if (r := c.explain(track, u)) is not None]
        return not reasons, reasons

    def _holds(self, u: float, constraints: Sequence[Constraint]) -> bool:
        track = self.track_at(u)
        ts = np.array([u], dtype=np.float64)
        return all(bool(c.evaluate(track, ts)[1][0]) for c in constraints)

    def altitude_at(self, t: datetime) -> float:
        """Altitude of the target, degrees."""
        u = to_unix(t)
        return float(self.track_at(u).at("alt", np.array([u]))[0])

    def hour_angle_at(self, t: datetime) -> float:
        """Hour angle of the target, hours in (−12, 12]: negative east of the meridian."""
        u = to_unix(t)
        return float(self.track_at(u).hour_angle_at(np.array([u]))[0])

    def next_transit(self, t: datetime) -> datetime:
        """The next upper meridian transit at or after ``t`` (for meridian flips)."""
        ha = self.hour_angle_at(t)
        wait = ((-ha) % 24.0) * 3600.0 * SIDEREAL_DAY / 86_400.0
        # One correction from the grid itself (the linear estimate is off by seconds only).
        guess = t + timedelta(seconds=wait)
        residual = self.hour_angle_at(guess)
        if abs(residual) < 1.0:
            guess -= timedelta(seconds=residual * 3600.0 * SIDEREAL_DAY / 86_400.0)
        return guess

    # ------------------------------------------------------------------ spans

    def windows(self, start: datetime, end: datetime) -> list[Window]:
        """Maximal intervals within [start, end] in which all constraints hold."""
        return self._windows(self.constraints, start, end)

    def next_start(self, t: datetime, limit: datetime | None = None) -> datetime | None:
        """The first instant at or after ``t`` (and before ``limit``, default 24 h later) at
        which all constraints hold; ``None`` if there is none."""
        ok, _ = self.holds_at(t)
        if ok:
            return t
        found = self.windows(t, limit if limit is not None else t + timedelta(days=1))
        return found[0][0] if found else None

    def when_altitude(self, t: datetime, altitude: float, limit: datetime) -> datetime | None:
        """First instant in [t, limit] with the target at or above ``altitude`` degrees."""
        found = self._windows([AltitudeConstraint(altitude)], t, limit)
        return found[0][0] if found else None

    def never_reasons(self, start: datetime, end: datetime) -> list[str]:
        """Why the constraints never hold together in [start, end] (empty if they do)."""
        if self.windows(start, end):
            return []
        alone: list[tuple[Constraint, list[Window]]] = [
            (c, self._windows([c], start, end)) for c in self.constraints
        ]
        reasons: list[str] = []
        for c, spans in alone:
            if not spans:
                ts, track = self._samples(to_unix(start), to_unix(end))
                reasons.append(c.never(track, ts) if track is not None else c.describe())
        if reasons:
            return reasons
        parts = [
            f"{c.describe()} holds only "
            + ", ".join(f"{self._hhmm(a)}–{self._hhmm(b)}" for a, b in spans)
            for c, spans in alone
        ]
        return ["the constraints never hold at the same time: " + "; ".join(parts)]

    def _hhmm(self, t: datetime) -> str:
        return t.astimezone(self.tz).strftime("%H:%M")

    def _samples(self, u0: float, u1: float) -> tuple[FloatArray, TargetTrack | None]:
        """Grid instants in [u0, u1] of the first segment (for "best value" summaries)."""
        track = self.track_at(u0)
        ts = track.t[(track.t >= u0) & (track.t <= min(u1, track.end))]
        return np.concatenate([[u0], ts]), track

    def _windows(
        self, constraints: Sequence[Constraint], start: datetime, end: datetime
    ) -> list[Window]:
        u0, u1 = to_unix(start), to_unix(end)
        if u1 < u0:
            return []
        spans: list[tuple[float, float]] = []
        for s in segment_starts(self._anchor, u0, u1):
            track = segment(self.site, s, self.step).track(self.ra, self.dec)
            lo, hi = max(u0, track.start), min(u1, track.end)
            inner = track.t[(track.t > lo) & (track.t < hi)]
            ts = np.concatenate([[lo], inner, [hi]]) if hi > lo else np.array([lo])
            ok: BoolArray = np.ones(ts.shape, dtype=np.bool_)
            for c in constraints:
                ok &= c.evaluate(track, ts)[1]
            spans.extend(self._runs(ts, ok, constraints))
        merged: list[tuple[float, float]] = []
        for a, b in spans:
            if merged and a - merged[-1][1] <= EDGE_TOLERANCE:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        return [(from_unix(a, self.tz), from_unix(b, self.tz)) for a, b in merged]

    def _runs(
        self, ts: FloatArray, ok: BoolArray, constraints: Sequence[Constraint]
    ) -> list[tuple[float, float]]:
        if not ok.any():
            return []
        edges = np.diff(ok.astype(np.int8))
        starts = [int(i) + 1 for i in np.nonzero(edges == 1)[0]]
        ends = [int(i) for i in np.nonzero(edges == -1)[0]]
        if ok[0]:
            starts.insert(0, 0)
        if ok[-1]:
            ends.append(len(ok) - 1)
        out: list[tuple[float, float]] = []
        for i, j in zip(starts, ends, strict=True):
            a = float(ts[i]) if i == 0 else self._edge(ts[i - 1], ts[i], constraints, rising=True)
            b = (
                float(ts[j])
                if j == len(ok) - 1
                else self._edge(ts[j], ts[j + 1], constraints, rising=False)
            )
            out.append((a, b))
        return out

    def _edge(
        self, lo: float, hi: float, constraints: Sequence[Constraint], *, rising: bool
    ) -> float:
        """Bisect [lo, hi] to the last failing / first holding instant (or the reverse)."""
        lo, hi = float(lo), float(hi)
        while hi - lo > EDGE_TOLERANCE:
            mid = (lo + hi) / 2
            if self._holds(mid, constraints) == rising:
                hi = mid
            else:
                lo = mid
        return hi if rising else lo
