"""Frames are written behind the exposure loop: the next exposure starts as soon as the last
one's pixels are in memory, and writing, indexing, measuring and stacking happen meanwhile.

A 61 MP frame is 122 MB; awaiting its FITS write before the next exposure is hundreds of
milliseconds of lost sky per frame (N.I.N.A. users measured ≈ 2 s cadence on such frames). The
guarantees of the synchronous path stay: a job writes its frame completely or not at all, the
journal records a frame only after its file is in place (the job does both, in order), and jobs
run one at a time in the order the frames were taken.

Memory is bounded: when the frames waiting for the disk exceed ``budget_bytes`` (a disk slower
than the camera), ``submit`` waits — after accepting the frame, so an abort never drops a frame
already taken — and says so in the events. A failed write is kept and raised to the night at
its next ``submit`` or at ``drain``: the night then fails into its safe shutdown, as it would
have with the write in line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from runner.engine.events import EventBus
from runner.engine.exec_types import FatalRunError

log = logging.getLogger("nightrunner.engine")

Job = Callable[[], Awaitable[None]]

DEFAULT_BUDGET = 1 << 30  # 1 GiB: eight 61 MP frames waiting for a stalled disk


class FrameWriter:
    def __init__(self, bus: EventBus, budget_bytes: int = DEFAULT_BUDGET) -> None:
        self.bus = bus
        self.budget = budget_bytes
        self._jobs: deque[tuple[Job, int, str]] = deque()
        self._bytes = 0
        self._changed = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self._failed_key: str | None = None
        self.waits = 0  # how often the camera waited for the disk
        self._busy = False

    @property
    def pending(self) -> int:
        return len(self._jobs) + (1 if self._busy else 0)

    async def submit(self, job: Job, nbytes: int, key: str) -> None:
        """Queue ``job`` (it writes frame ``key``); returns when the backlog is within budget."""
        self.raise_if_failed()
        self._jobs.append((job, nbytes, key))
        self._bytes += nbytes
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        if self._bytes > self.budget and self._bytes > nbytes:
            self.waits += 1
            self.bus.emit("write_wait", frames=self.pending, megabytes=self._bytes >> 20,
                          message="the disk is slower than the camera: the next exposure "
                                  "waits for frames to be written")
            while self._bytes > self.budget and self._bytes > nbytes and self.error is None:
                self._changed.clear()
                await self._changed.wait()
        self.raise_if_failed()

    async def drain(self) -> None:
        """Wait until every accepted frame is written (or failed); raise the first failure."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)
        self.raise_if_failed()

    async def drain_quietly(self) -> None:
        """:meth:`drain` for the end of a night that is already ending (abort, failure)."""
        with contextlib.suppress(Exception):
            await self.drain()

    def raise_if_failed(self) -> None:
        """A disk that fails (full, I/O errors) ends the night as a fatal error naming the
        frame and the cause; anything else is a bug and stays itself."""
        if isinstance(self.error, OSError):
            raise FatalRunError(f"frame {self._failed_key} not written: {self.error}") \
                from self.error
        if self.error is not None:
            raise self.error

    async def _run(self) -> None:
        while self._jobs:
            job, nbytes, key = self._jobs.popleft()
            self._busy = True
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # kept for the night; the other frames are still tried
                log.warning("frame %s not written: %s", key, exc)
                if self.error is None:
                    self.error, self._failed_key = exc, key
            finally:
                self._busy = False
                self._bytes -= nbytes
                self._changed.set()
