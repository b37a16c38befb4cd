"""One event stream, many subscribers: each gets a bounded queue, and a slow one loses its
oldest events (counted) instead of slowing the engine, which only ever calls ``put_nowait``."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator
from typing import Any

QUEUE_LIMIT = 1000


class Subscriber:
    def __init__(self, limit: int = QUEUE_LIMIT, fanout: FanOut | None = None) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(limit)
        self.dropped = 0
        self.fanout = fanout

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
            if self.fanout is not None:
                self.fanout.dropped += 1
            self.queue.put_nowait(event)

    async def next(self) -> dict[str, Any]:
        return await self.queue.get()


class FanOut:
    """The control plane's subscription to the night's ``EventBus`` (a bus listener)."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self.seq = 0
        self.dropped = 0  # events lost by slow subscribers, all of them, since the start
        self.warnings: deque[str] = deque(maxlen=20)  # the night's last warnings
        self.warning_count = 0
        self.step: dict[str, Any] | None = None  # the step running now: id, kind, phase

    def new_night(self) -> None:
        """Sequence numbers, warnings and the step start again with each night."""
        self.seq = 0
        self.warnings.clear()
        self.warning_count = 0
        self.step = None

    def __call__(self, event: dict[str, Any]) -> None:
        self.seq += 1
        event = {**event, "seq": self.seq}
        if event.get("event") == "step":
            self.step = {k: event.get(k) for k in ("id", "kind", "phase")}
        elif event.get("event") == "warning":
            self.warning_count += 1
            self.warnings.append(str(event.get("message", "")))
        for sub in list(self._subscribers):
            sub.offer(event)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscriber]:
        sub = Subscriber(fanout=self)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
