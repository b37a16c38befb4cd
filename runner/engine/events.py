"""Run events: one stream feeds the JSON-lines log, the progress display and the control plane.

Listeners must be quick and must not raise; a failing listener is logged and dropped so that
a broken display can never stop a night. Likewise the log file: emit is called from error
handlers and from the safe shutdown, so a full or failing disk (ENOSPC, EIO) must never raise
out of it — the event still reaches the listeners, and the loss is counted and reported once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("nightrunner")

Listener = Callable[[dict[str, Any]], None]


class EventBus:
    def __init__(self, log_path: Path | None = None, clock: Any = None, *,
                 wall_time: bool = True) -> None:
        """``wall_time=False``: events carry no ``time`` (the wall clock's ISO time), for a
        night on the virtual clock whose wall time says nothing (the estimate stamps its own
        clock seconds; formatting 70,000 wall times was a tenth of a 10,000-step estimate)."""
        self._listeners: list[Listener] = []
        self.clock = clock  # when set, every event also carries the engine-clock time
        self._wall_time = wall_time
        self._fd = -1
        self.write_failures = 0  # events that could not be appended to the log file
        self.write_error: str | None = None  # the first such failure, for the summary
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _end_torn_line(log_path, self._fd)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: str, /, **fields: Any) -> None:
        record = ({"event": event, "time": datetime.now(UTC).isoformat(), **fields}
                  if self._wall_time else {"event": event, **fields})
        if self.clock is not None:
            record["clock"] = self.clock.now().isoformat()
        if self._fd >= 0:
            self._append(record)
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception as exc:  # a display must never stop the night
                # one line, no traceback: the terminal may be the very thing that failed
                self._listeners.remove(listener)
                with contextlib.suppress(Exception):
                    log.warning("%s stopped (%s: %s); the night goes on without it",
                                getattr(listener, "__qualname__", type(listener).__name__),
                                type(exc).__name__, exc)
                    log.debug("listener failure", exc_info=True)

    def _append(self, record: dict[str, Any]) -> None:
        try:
            os.write(self._fd, (json.dumps(record, default=str) + "\n").encode())
        except OSError as exc:
            self.write_failures += 1
            if self.write_error is None:
                self.write_error = f"event log not written: {exc.strerror or exc}"
                # stderr may be gone too (a closed terminal): then there is nobody to tell
                with contextlib.suppress(Exception):
                    log.error("%s; the night goes on", self.write_error)

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):  # a failing disk reports errors at close too
                os.close(self._fd)
            self._fd = -1


def _end_torn_line(path: Path, fd: int) -> None:
    """A kill -9 can leave the log's last line half-written; a resumed night appends to the
    same log, and its first event must start on a line of its own (readers skip the torn one)."""
    with contextlib.suppress(OSError), path.open("rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
            os.write(fd, b"\n")
