"""Read ahead: the next queued frame is read, calibrated and measured on a second thread while
the stacker's worker registers and accumulates the one before it.

For the offline ``nightrunner stack`` command, whose frames are all on disk at once: the two
halves of a frame's work (read + calibrate + find stars, then match + warp + add) are about
equal, and numpy, OpenCV and the FITS reader release the GIL, so on two free cores a directory
stacks up to twice as fast. A night's live stacker does not read ahead: it stacks one frame per
exposure and leaves the other core to the rig.

The order of frames, and so the stack, is the same with and without read-ahead: only frame
``n + 1``'s first half runs early, never its second.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Entry = tuple[Any, Any]  # (item, meta) as the worker's queue holds them


def read_ahead(
    q: queue.Queue[object], stop: object, prepare: Callable[[Any, Any], Any],
    ready: Callable[[], bool],
) -> Iterator[tuple[Entry, Future[Any] | None]]:
    """The queue's entries in order until ``stop``, each with the future of its ``prepare``
    when it was started ahead (``ready()``: the stack can prepare a frame now)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="stacker-read-ahead")
    try:
        ahead: tuple[object, Future[Any] | None] | None = None
        while True:
            if ahead is None:
                item, future = q.get(), None
            else:
                (item, future), ahead = ahead, None
            if item is stop:
                return
            if ready():
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    pass
                else:
                    ahead = (nxt, None if nxt is stop else pool.submit(prepare, *nxt))  # type: ignore[misc]
            assert isinstance(item, tuple)
            yield (item[0], item[1]), future
    finally:
        pool.shutdown(wait=True)
