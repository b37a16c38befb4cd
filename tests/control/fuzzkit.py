"""A night imaging in a thread of its own (its event loop and control plane there), so that
blocking fuzz clients (schemathesis, raw sockets) can hammer it from the test's thread; and
the check that the night went on through it all and finished its frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.control import http_guard, server, tcp
from tests.control.cpkit import Served, serve_night

#: Short limits, so that the slow clients are dropped within the test's time.
SHORT_LIMITS = {
    (http_guard, "HEADER_TIMEOUT"): 1.0,
    (http_guard, "BODY_TIMEOUT"): 1.0,
    (tcp, "LINE_TIMEOUT"): 1.0,
    (server, "WS_PING_INTERVAL"): 0.5,
    (server, "WS_PING_TIMEOUT"): 0.5,
}


class ThreadedNight:
    """``serve_night`` on an event loop in another thread."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.served: Served | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            async with serve_night(self.tmp, speed=100.0, count=100_000, exposure=30) as s:
                self.served = s
                self.ready.set()
                assert s.task is not None
                await asyncio.wait({s.task})
        except BaseException as exc:  # reported to the test's thread
            self.error = exc
        finally:
            self.ready.set()

    def __enter__(self) -> ThreadedNight:
        self.thread.start()
        assert self.ready.wait(90), "the night did not start"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        s = self.served
        if s is not None and s.run is not None and self.loop is not None and self.thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(s.run.abort, "end of test")
        self.thread.join(60)

    @property
    def s(self) -> Served:
        assert self.served is not None
        return self.served

    def lights(self) -> int:
        ex = self.s.run.executor if self.s.run is not None else None
        return ex.counters.lights if ex is not None else 0


@contextlib.contextmanager
def night_under_fuzz(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedNight]:
    """A night that must still be imaging after the block, and must then finish cleanly:
    asked to leave its target, it completes, with every frame it announced on disk."""
    for (module, name), value in SHORT_LIMITS.items():
        monkeypatch.setattr(module, name, value)
    with ThreadedNight(tmp) as night:
        before = night.lights()
        yield night
        s = night.s
        assert s.task is not None and not s.task.done(), "the night stopped during the fuzz"
        deadline = time.monotonic() + 30
        while night.lights() <= before:  # it took frames while being fuzzed (and after)
            assert time.monotonic() < deadline, "the night took no frame during the fuzz"
            time.sleep(0.05)
        with httpx.Client(base_url=s.url, timeout=30) as h:
            reply = h.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "skip"}).json()
        assert reply["result"] == {"skip_requested": "target"}, reply
        night.thread.join(60)
        assert not night.thread.is_alive(), "the night did not end after its target"
    assert night.error is None, night.error
    assert s.task.done() and s.task.result().outcome == "completed"
    assert s.run is not None and s.run.executor is not None
    assert s.run.executor.counters.errors == []
    events = s.events_file()
    frames = [e for e in events if e["event"] == "frame"]
    assert len(frames) == night.lights() > before
    for frame in frames:
        assert Path(frame["path"]).is_file(), frame


def strict_json(text: str) -> Any:
    """Parse as a strict JSON parser would (no NaN or Infinity)."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in a reply: not JSON")

    return json.loads(text, parse_constant=refuse)
