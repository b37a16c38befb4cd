"""The engine clock: every wait, timeout and trigger reads time from here.

Simulators share the same clock so that ``--speed N`` makes a whole night (cooler ramps, guide
frames, exposures, twilight) run N times faster, consistently. Simulated time flows continuously:
``now()`` is the wall-clock time elapsed since start multiplied by ``speed``, added to a chosen
starting instant, and ``sleep(s)`` sleeps ``s / speed`` real seconds.

:class:`VirtualClock` is discrete-event time instead: it runs on a :class:`VirtualLoop`, an
event loop whose time jumps straight to the next wake-up whenever nothing is ready to run, so a
whole night takes only the time its bookkeeping does (``nightrunner estimate``, ``--dry-run``,
the mid-night ETA). asyncio's own timeouts and sleeps follow that time too.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")


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
        self._alarm: float | None = None  # clock seconds at which time stops (hold_at)

    def hold(self) -> None:
        """Stop simulated time (set-up work: imports, sky grids, connections).

        At 600× a one-second set-up would otherwise cost ten minutes of the simulated night.
        Has no effect on a real-time clock (speed 1), where time cannot be stopped.
        """
        if self._speed != 1.0 and self._held_at is None:
            self.monotonic()  # an alarm that has rung holds at its own instant
            if self._held_at is None:
                self._held_at = time.monotonic()

    def release(self) -> None:
        """Let simulated time flow again from where it was held."""
        if self._held_at is not None:
            self._t0 += time.monotonic() - self._held_at
            self._held_at = None

    def hold_at(self, when: datetime | None) -> None:
        """Hold simulated time the moment it reaches ``when`` (``None``: no such alarm).

        A waiter that must act at an instant (the scheduler at dusk) wakes a timer tick late
        in real time; at 5000x one millisecond of event-loop latency is five simulated
        seconds. With the alarm, time stops at ``when`` itself and stays there until the
        waiter has acted and released it, as a discrete-event simulation never runs past a
        due event. No effect on a real-time clock (speed 1), where time cannot be stopped.
        """
        if self._speed == 1.0 or when is None:
            self._alarm = None
            return
        at = (when.astimezone(UTC) - self._start).total_seconds()
        if at <= self.monotonic():
            self._alarm = None
            self.hold()  # an instant already passed holds at once, at the present
        else:
            self._alarm = at

    @property
    def held(self) -> bool:
        self.monotonic()  # an alarm that has rung holds the clock
        return self._held_at is not None

    @property
    def speed(self) -> float:
        return self._speed

    def monotonic(self) -> float:
        if self._held_at is not None:
            return (self._held_at - self._t0) * self._speed
        now = time.monotonic()
        if self._alarm is not None and (now - self._t0) * self._speed >= self._alarm:
            # held from the real instant the alarm time was reached (set in the future by
            # hold_at, so never before a time already read: the clock stays monotonic)
            self._held_at = self._t0 + self._alarm / self._speed
            self._alarm = None
            return (self._held_at - self._t0) * self._speed
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
    """Real seconds for an asyncio timeout of ``seconds`` of clock time (on a virtual clock the
    loop's own time is clock time, and no machine load can make a device late)."""
    if isinstance(clock, VirtualClock):
        return clock.to_real(seconds)
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
        late = self.clock.monotonic() - self._clock_start > self.seconds
        if isinstance(self.clock, VirtualClock):
            return late
        return late and time.monotonic() > self._real_end


# ----------------------------------------------------------------------------- virtual time


#: How far a night on the virtual clock may run (estimate, dry run): no real night is longer,
#: and a loop that never ends must not spin forever.
VIRTUAL_HORIZON_S = 48 * 3600.0


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, asked to wait for the next timer, jumps the loop's time there instead —
    unless work in a thread is still running (``to_thread``): then it really waits for it."""

    #: With callbacks ready (timeout 0) the time cannot move, so the poll for I/O may wait a
    #: few iterations: a 10,000-step estimate made 80,000 polls that found nothing.
    POLL_EVERY = 16

    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self._loop = loop
        self._unpolled = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0 and self._unpolled < self.POLL_EVERY:
            self._unpolled += 1
            return []
        self._unpolled = 0
        ready = super().select(0)
        if ready or timeout is None or timeout <= 0:
            return ready if ready or timeout is not None else super().select(None)
        if self._loop.threads_busy:
            return super().select(min(timeout, 0.05))
        self._loop.advance(timeout)
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on discrete-event time: ``time()`` is virtual and jumps to the next
    scheduled callback whenever nothing is ready. Use with ``asyncio.Runner(loop_factory=
    VirtualLoop)``; its clock is ``VirtualClock(loop, start)``."""

    def __init__(self) -> None:
        self._now = 0.0
        self._threads = 0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    def jump(self, seconds: float) -> bool:
        """Move time on by ``seconds`` without a trip through the loop, when that trip could
        only come straight back: no callback ready, no thread working, no timer due before the
        wake-up, no cancellation pending. Each such trip was one future, one timer and two
        loop iterations; a 10,000-frame estimate made 30,000 of them."""
        task = asyncio.current_task(self)
        if self._ready or self._threads or task is None or task.cancelling():  # type: ignore[attr-defined]
            return False
        wake = self._now + seconds
        if self._scheduled and self._scheduled[0].when() <= wake:  # type: ignore[attr-defined]
            return False
        self._now += wake - self._now  # the very float asyncio.sleep's trip would give
        return True

    @property
    def threads_busy(self) -> bool:
        return self._threads > 0

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., _T], *args: Any
    ) -> asyncio.Future[_T]:
        fut = super().run_in_executor(executor, func, *args)
        self._threads += 1

        def done(_: asyncio.Future[_T] | ConcurrentFuture[_T]) -> None:
            self._threads -= 1

        fut.add_done_callback(done)
        return fut


class VirtualClock:
    """Clock time that is the :class:`VirtualLoop`'s time: sleeping costs no real time."""

    def __init__(self, loop: VirtualLoop, start: datetime | None = None) -> None:
        self._loop = loop
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._t0 = loop.time()

    @property
    def speed(self) -> float:
        """Nominal: a virtual night has no fixed ratio to the wall clock."""
        return 1.0

    def monotonic(self) -> float:
        return self._loop.time() - self._t0

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def to_real(self, seconds: float) -> float:
        return max(0.0, seconds)  # the loop's (virtual) seconds

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if self._loop.jump(seconds):
            return
        await asyncio.sleep(seconds)

    def hold(self) -> None:
        """Nothing to hold: set-up work takes no virtual time unless it sleeps."""

    def release(self) -> None:
        """See :meth:`hold`."""


def run_virtual(main: Callable[[VirtualClock], Any], start: datetime | None = None) -> Any:
    """Run ``main(clock)`` (a coroutine function) to completion on a fresh virtual loop."""
    out: list[Any] = []

    async def body(clock: VirtualClock) -> None:
        # the task returns None: asyncio.Runner (3.11) reprs the task, result included, when
        # it restores SIGINT — on a night of 10,000 frames that repr took a second
        out.append(await main(clock))

    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, VirtualLoop)
        runner.run(body(VirtualClock(loop, start)))
    return out[0]
