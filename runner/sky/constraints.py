"""Observing constraints as small composable classes, in the manner of astroplan.

:class:`Constraint` owns the workflow — it checks and converts the instants it is asked about,
evaluates, and shapes the answer (one boolean per instant) — and each subclass computes one
thing: altitude, airmass, Sun altitude (twilight), Moon separation, Moon illumination, or a
clock-time window. A target's constraints hold when all of them hold; :func:`constraints_for`
builds that list from a plan's :class:`~runner.plan.models.Constraints`.

Constraints read a :class:`~runner.sky.grid.TargetTrack` (the precomputed sky of one target
over one day) and interpolate it, so a check costs microseconds. Each can also say *why* it
fails at an instant (``explain``) and what it needs (``describe``), in words a user reads in
the estimate and in diagnostics: ``altitude 23.4° < 30°``,
``sun at −10.2°: not astronomical twilight (needs < −18°)``.

The Moon constraints hold whenever the Moon is below the horizon (as astroplan's Moon
illumination constraint does): a set Moon brightens no sky.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, tzinfo

import numpy as np
from numpy.typing import NDArray

from runner.plan.models import Constraints, Twilight
from runner.sky.ephemeris import FloatArray
from runner.sky.grid import TargetTrack
from runner.sky.timeutil import hhmm, to_unix

BoolArray = NDArray[np.bool_]

#: Sun altitude (degrees, geometric, centre) below which each twilight has ended.
TWILIGHT_ALTITUDE: dict[Twilight, float] = {
    Twilight.civil: -6.0,
    Twilight.nautical: -12.0,
    Twilight.astronomical: -18.0,
}

Times = datetime | Sequence[datetime]


class Constraint(ABC):
    """One condition on a target and an instant; see the module docstring."""

    def __call__(self, track: TargetTrack, times: Times | None = None) -> BoolArray:
        """Whether the constraint holds at ``times`` (aware datetimes; default: the grid).

        A single datetime gives a 0-d array; a sequence an array of the same length.

        Raises:
            ValueError: a naive datetime, or an instant outside the track's span.
        """
        if times is None:
            return self.evaluate(track, track.t)[1]
        scalar = isinstance(times, datetime)
        seq: Sequence[datetime] = [times] if isinstance(times, datetime) else times
        ts = np.array([to_unix(t) for t in seq], dtype=np.float64)
        if ts.size and (ts.min() < track.start - 1e-6 or ts.max() > track.end + 1e-6):
            raise ValueError("instant outside the precomputed span of this track")
        ok = self.evaluate(track, ts)[1]
        return ok.reshape(()) if scalar else ok

    def evaluate(self, track: TargetTrack, ts: FloatArray) -> tuple[FloatArray, BoolArray]:
        """The computed quantity and the verdict at POSIX times ``ts`` (unchecked, vectorised)."""
        values = self._values(track, ts)
        return values, np.asarray(self._holds(track, ts, values), dtype=np.bool_)

    def explain(self, track: TargetTrack, t: float) -> str | None:
        """Why the constraint fails at POSIX time ``t``; None when it holds."""
        ts = np.array([t], dtype=np.float64)
        values, ok = self.evaluate(track, ts)
        return None if bool(ok[0]) else self._reason(float(values[0]))

    def never(self, track: TargetTrack, ts: FloatArray) -> str:
        """Why it never holds at ``ts``: the requirement and the best value reached."""
        values, _ = self.evaluate(track, ts)
        return f"{self.describe()} never holds ({self._best(track, ts, values)})"

    @abstractmethod
    def describe(self) -> str:
        """What the constraint requires, e.g. ``altitude ≥ 30°``."""

    @abstractmethod
    def _values(self, track: TargetTrack, ts: FloatArray) -> FloatArray: ...

    @abstractmethod
    def _holds(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> BoolArray: ...

    @abstractmethod
    def _reason(self, value: float) -> str: ...

    @abstractmethod
    def _best(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> str: ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


class AltitudeConstraint(Constraint):
    """The target at least ``min`` degrees above the horizon (and at most ``max``, if given)."""

    def __init__(self, min: float = 0.0, max: float | None = None) -> None:
        if not -90 <= min <= 90 or (max is not None and not min <= max <= 90):
            raise ValueError(f"altitude limits out of range: min={min}, max={max}")
        self.min = min
        self.max = max

    def describe(self) -> str:
        if self.max is None:
            return f"altitude ≥ {self.min:g}°"
        return f"altitude {self.min:g}°–{self.max:g}°"

    def _values(self, track: TargetTrack, ts: FloatArray) -> FloatArray:
        return track.at("alt", ts)

    def _holds(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> BoolArray:
        ok = values >= self.min
        return ok if self.max is None else ok & (values <= self.max)

    def _reason(self, value: float) -> str:
        if value < self.min:
            return f"altitude {value:.1f}° < {self.min:g}°"
        return f"altitude {value:.1f}° > {self.max:g}°"

    def _best(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> str:
        return f"highest {values.max():.1f}°"


class AirmassConstraint(Constraint):
    """Airmass (sec z) at most ``max``; a target below the horizon has no airmass."""

    def __init__(self, max: float) -> None:
        if max < 1:
            raise ValueError(f"airmass limit must be ≥ 1, got {max}")
        self.max = max

    def describe(self) -> str:
        return f"airmass ≤ {self.max:g}"

    def _values(self, track: TargetTrack, ts: FloatArray) -> FloatArray:
        # Interpolate altitude, not airmass: airmass is infinite below the horizon.
        alt = track.at("alt", ts)
        safe = np.radians(np.clip(alt, 1e-3, 90.0))
        return np.asarray(np.where(alt > 0.0, 1.0 / np.sin(safe), np.inf), dtype=np.float64)

    def _holds(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> BoolArray:
        return values <= self.max

    def _reason(self, value: float) -> str:
        if not np.isfinite(value):
            return "below the horizon (no airmass)"
        return f"airmass {value:.2f} > {self.max:g}"

    def _best(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> str:
        best = float(values.min())
        return "never above the horizon" if not np.isfinite(best) else f"lowest {best:.2f}"


class SunAltitudeConstraint(Constraint):
    """The Sun's centre below ``max`` degrees; the presets name the twilights."""

    def __init__(self, max: float, twilight: Twilight | None = None) -> None:
        if not -90 <= max <= 90:
            raise ValueError(f"sun altitude limit out of range: {max}")
        self.max = max
        self.twilight = twilight

    @classmethod
    def twilight_civil(cls) -> SunAltitudeConstraint:
        return cls.for_twilight(Twilight.civil)

    @classmethod
    def twilight_nautical(cls) -> SunAltitudeConstraint:
        return cls.for_twilight(Twilight.nautical)

    @classmethod
    def twilight_astronomical(cls) -> SunAltitudeConstraint:
        return cls.for_twilight(Twilight.astronomical)

    @classmethod
    def for_twilight(cls, twilight: Twilight) -> SunAltitudeConstraint:
        return cls(TWILIGHT_ALTITUDE[twilight], twilight)

    def describe(self) -> str:
        if self.twilight is not None:
            return f"{self.twilight.value} twilight (sun < {self.max:g}°)"
        return f"sun < {self.max:g}°"

    def _values(self, track: TargetTrack, ts: FloatArray) -> FloatArray:
        return track.at("sun_alt", ts)

    def _holds(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> BoolArray:
        return values < self.max

    def _reason(self, value: float) -> str:
        if self.twilight is not None:
            return (
                f"sun at {value:.1f}°: not {self.twilight.value} twilight (needs < {self.max:g}°)"
            )
        return f"sun at {value:.1f}° ≥ {self.max:g}°"

    def _best(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> str:
        return f"sun lowest at {values.min():.1f}°"


class MoonSeparationConstraint(Constraint):
    """At least ``min`` degrees from the Moon while the Moon is above the horizon."""

    def __init__(self, min: float) -> None:
        if not 0 <= min <= 180:
            raise ValueError(f"moon separation must be within 0–180°, got {min}")
        self.min = min

    def describe(self) -> str:
        return f"moon separation ≥ {self.min:g}°"

    def _values(self, track: TargetTrack, ts: FloatArray) -> FloatArray:
        return track.at("moon_separation", ts)

    def _holds(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> BoolArray:
        return (values >= self.min) | (track.at("moon_alt", ts) < 0.0)

    def _reason(self, value: float) -> str:
        return f"moon {value:.1f}° away < {self.min:g}°"

    def _best(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> str:
        return f"moon up all the time, at most {values.max():.1f}° away"


class MoonIlluminationConstraint(Constraint):
    """Moon at most ``max`` illuminated (0–1) while it is above the horizon."""

    def __init__(self, max: float) -> None:
        if not 0 <= max <= 1:
            raise ValueError(f"moon illumination limit must be within 0–1, got {max}")
        self.max = max

    @classmethod
    def dark(cls) -> MoonIlluminationConstraint:
        """Astroplan's 'dark' preset: no more than a quarter lit (or set)."""
        return cls(0.25)

    def describe(self) -> str:
        return f"moon illumination ≤ {self.max:.0%}"

    def _values(self, track: TargetTrack, ts: FloatArray) -> FloatArray:
        return track.at("moon_illum", ts)

    def _holds(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> BoolArray:
        return (values <= self.max) | (track.at("moon_alt", ts) < 0.0)

    def _reason(self, value: float) -> str:
        return f"moon up and {value:.0%} illuminated > {self.max:.0%}"

    def _best(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> str:
        return f"moon up all the time, at least {values.min():.0%} illuminated"


class TimeWindowConstraint(Constraint):
    """Between two instants (either may be open); built from clock times by ``from_clock``."""

    def __init__(self, start: datetime | None, end: datetime | None, tz: tzinfo) -> None:
        self.start = start
        self.end = end
        self.tz = tz
        self._t0 = -np.inf if start is None else to_unix(start)
        self._t1 = np.inf if end is None else to_unix(end)

    @classmethod
    def from_clock(
        cls,
        after: object | None,
        until: object | None,
        *,
        reference: datetime,
        tz: tzinfo,
    ) -> TimeWindowConstraint:
        """Resolve clock times to their next occurrence at or after ``reference``, the start of
        the night (local noon, see :func:`runner.sky.timeutil.night_start`): a night that
        crosses midnight needs no dates, and a run resumed at 03:00 still sees that an
        ``until: "02:30"`` window has passed."""
        from runner.plan.units import ClockTime

        def resolve(value: object | None) -> datetime | None:
            if value is None:
                return None
            if not isinstance(value, ClockTime):
                raise TypeError(f"expected a ClockTime, got {value!r}")
            return value.next_after(reference, tz)

        return cls(resolve(after), resolve(until), tz)

    def describe(self) -> str:
        if self.start is not None and self.end is not None:
            return f"time window {hhmm(self.start, self.tz)}–{hhmm(self.end, self.tz)}"
        if self.start is not None:
            return f"not before {hhmm(self.start, self.tz)}"
        return f"not after {hhmm(self.end, self.tz)}"

    def _values(self, track: TargetTrack, ts: FloatArray) -> FloatArray:
        return np.asarray(ts, dtype=np.float64)

    def _holds(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> BoolArray:
        return (values >= self._t0) & (values <= self._t1)

    def _reason(self, value: float) -> str:
        if value < self._t0:
            return f"before {hhmm(self.start, self.tz)} (window not open yet)"
        return f"after {hhmm(self.end, self.tz)} (window closed)"

    def _best(self, track: TargetTrack, ts: FloatArray, values: FloatArray) -> str:
        if self._t1 < self._t0:
            return "the window closes before it opens"
        return "outside the time considered"


def constraints_for(c: Constraints, *, reference: datetime, tz: tzinfo) -> list[Constraint]:
    """The constraint objects a plan's ``constraints:`` mapping asks for, cheapest first.

    ``reference`` is the night's start (local noon): clock times (``after``/``until``) mean
    their next occurrence after it.
    """
    out: list[Constraint] = []
    if c.after is not None or c.until is not None:
        out.append(TimeWindowConstraint.from_clock(c.after, c.until, reference=reference, tz=tz))
    if c.twilight is not None:
        out.append(SunAltitudeConstraint.for_twilight(c.twilight))
    if c.max_sun_altitude is not None:
        out.append(SunAltitudeConstraint(c.max_sun_altitude))
    if c.min_altitude is not None:
        out.append(AltitudeConstraint(c.min_altitude))
    if c.max_airmass is not None:
        out.append(AirmassConstraint(c.max_airmass))
    if c.moon_separation is not None:
        out.append(MoonSeparationConstraint(c.moon_separation))
    if c.max_moon_illumination is not None:
        out.append(MoonIlluminationConstraint(c.max_moon_illumination))
    return out
