"""Pure-Python work in a forked child, so that it never competes with the event loop for the GIL.

A CPU-bound Python thread beside the asyncio loop does not only take a core: every time the
loop thread gives up the GIL (each socket read or write) it waits up to the interpreter's
switch interval (5 ms) to get it back, so a status request of twenty such steps took 100 ms
while the mid-night re-estimate ran in a thread (``benchmarks/bench_control.py``: p99 106 ms
against 20 ms). A forked child has the parent's whole state for free (copy on write), runs on
the other core, and hands back a small pickled result through a pipe.

Only the forking thread exists in the child; the interpreter re-initialises the import and
logging locks after ``fork``, and a child that hangs on anything else is killed at its time
limit. POSIX only: where ``os.fork`` is missing, callers run the work in-process.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

CAN_FORK = hasattr(os, "fork")


class ChildFailed(RuntimeError):
    """The child raised, died or ran past its time limit (the message says which)."""


def fork_call(fn: Callable[[], T], *, timeout: float | None = None) -> Callable[[], T]:
    """Start ``fn()`` in a forked child now; the function returned waits for its result (real
    seconds, from now, at most ``timeout``) and raises :class:`ChildFailed` when there is none.
    Blocking: from the event loop, call both in a thread."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, leave without any of the parent's clean-up
        os.close(r)
        try:
            try:
                data = pickle.dumps((True, fn()))
            except BaseException as exc:
                data = pickle.dumps((False, f"{type(exc).__name__}: {exc}"))
            with os.fdopen(w, "wb") as out:
                out.write(data)
        finally:
            os._exit(0)
    os.close(w)
    deadline = None if timeout is None else time.monotonic() + timeout

    def result() -> T:
        chunks: list[bytes] = []
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([r], [], [], left)
                if not ready:
                    os.kill(pid, signal.SIGKILL)
                    raise ChildFailed(f"no result within {timeout:g} s")
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(r)
            os.waitpid(pid, 0)
        if not chunks:
            raise ChildFailed("the child died without a result")
        ok, value = pickle.loads(b"".join(chunks))
        if not ok:
            raise ChildFailed(str(value))
        out: Any = value
        return out  # type: ignore[no-any-return]

    return result
