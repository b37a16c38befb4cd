"""The engine clock: every wait, timeout and trigger reads time from here.

Simulators share the same clock so that ``--speed N`` makes a whole night (cooler ramps, guide
frames, exposures, twilight) run N times faster, consistently. Simulated time flows continuously:
``now()`` is the wall-clock time elapsed since start multiplied by ``speed``, added to a chosen
starting instant, and ``sleep(s)`` sleeps ``s / speed`` real seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the engine, simulators and guiders need from time."""

    @property
    def speed(self) -> float:
        """How many simulated seconds pass per real second (1 for the real clock)."""
        ...

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic scale in clock time (for durations and timeouts)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of clock time."""
        ...

    def to_real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of clock time take (for asyncio timeouts)."""
        ...


class ScaledClock:
    """A clock running ``speed`` times faster than the wall clock from ``start``.

    ``ScaledClock()`` (speed 1, starting now) is the real clock.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self._speed = float(speed)
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._t0 = time.monotonic()
        self._held_at: float | None = None

    def hold(self) -> None:
        """Stop simulated time (set-up work: imports, sky grids, connections).

        At 600× a one-second set-up would otherwise cost ten minutes of the simulated night.
        Has no effect on a real-time clock (speed 1), where time cannot be stopped.
        """
        if self._speed != 1.0 and self._held_at is None:
            self._held_at = time.monotonic()

    def release(self) -> None:
        """Let simulated time flow again from where it was held."""
        if self._held_at is not None:
            self._t0 += time.monotonic() - self._held_at
            self._held_at = None

    @property
    def held(self) -> bool:
        return self._held_at is not None

    @property
    def speed(self) -> float:
        return self._speed

    def monotonic(self) -> float:
        now = self._held_at if self._held_at is not None else time.monotonic()
        return (now - self._t0) * self._speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def to_real(self, seconds: float) -> float:
        return max(0.0, seconds) / self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.to_real(seconds))



# A timeout is also never shorter than this many real seconds past its clock-time length: at
# --speed 1000 a 30 s margin is 30 ms of real time, less than one busy event-loop iteration, and
# a device that finished on time would be declared late because its own task ran a moment after
# the poller's (--dry-run timed out its first exposure on a loaded machine). On a real clock
# (speed 1) the grace is a second or two on top of timeouts of minutes: nothing changes.
REAL_GRACE_S = 2.0


def timeout_real(clock: Clock, seconds: float) -> float:
    """Real seconds for an asyncio timeout of ``seconds`` of clock time."""
    return clock.to_real(seconds) + REAL_GRACE_S


class Deadline:
    """``seconds`` of clock time from now, expired only when at least as much real time as
    they take (plus the grace) has passed too."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self._clock_start = clock.monotonic()
        self._real_end = time.monotonic() + timeout_real(clock, seconds)

    def expired(self) -> bool:
        return (
            self.clock.monotonic() - self._clock_start > self.seconds
            and time.monotonic() > self._real_end
        )
