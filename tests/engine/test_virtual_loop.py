"""The virtual clock: a sleep jumps straight to its end, and I/O still reaches a loop that is
never idle (the poll may wait a few iterations while the time cannot move, never for ever)."""

from __future__ import annotations

import asyncio
import socket
import time

from runner.clock import VirtualClock, run_virtual


def test_an_hour_of_sleep_takes_no_real_time() -> None:
    async def night(clock: VirtualClock) -> float:
        await clock.sleep(3600)
        return clock.monotonic()

    began = time.monotonic()
    assert run_virtual(night) == 3600
    assert time.monotonic() - began < 1


def test_io_reaches_a_loop_whose_callbacks_are_always_ready() -> None:
    async def night(clock: VirtualClock) -> tuple[bytes, int, float]:
        loop = asyncio.get_running_loop()
        r, w = socket.socketpair()
        r.setblocking(False)
        got: asyncio.Future[bytes] = loop.create_future()
        loop.add_reader(r, lambda: got.done() or got.set_result(r.recv(8)))
        w.send(b"ready")
        spins = 0
        while not got.done() and spins < 1000:  # always a callback ready: time stands still
            await asyncio.sleep(0)
            spins += 1
        loop.remove_reader(r)
        r.close()
        w.close()
        return got.result() if got.done() else b"", spins, clock.monotonic()

    data, spins, clock_time = run_virtual(night)
    assert data == b"ready" and spins <= 32 and clock_time == 0


def test_sleepers_wake_in_time_order_and_a_timeout_still_ends_a_sleep() -> None:
    """A sleep that nothing can interrupt skips the loop; one that something could must not."""

    async def night(clock: VirtualClock) -> tuple[list[tuple[str, float]], float]:
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, naps: list[float]) -> None:
            for nap in naps:
                await clock.sleep(nap)
                woke.append((name, clock.monotonic()))

        await asyncio.gather(sleeper("a", [3, 3, 3]), sleeper("b", [1, 4, 0.5, 10]))
        began = clock.monotonic()
        try:
            async with asyncio.timeout(5):
                await clock.sleep(60)
        except TimeoutError:
            pass
        return woke, clock.monotonic() - began

    woke, timed_out_after = run_virtual(night)
    assert woke == [("b", 1), ("a", 3), ("b", 5), ("b", 5.5), ("a", 6), ("a", 9), ("b", 15.5)]
    assert timed_out_after == 5
