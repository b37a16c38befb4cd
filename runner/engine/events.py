"""Run events: one stream feeds the JSON-lines log, the progress display and the control plane.

Listeners must be quick and must not raise; a failing listener is logged and dropped so that
a broken display can never stop a night.
"""

from __future__ import annotations

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
    def __init__(self, log_path: Path | None = None, clock: Any = None) -> None:
        self._listeners: list[Listener] = []
        self.clock = clock  # when set, every event also carries the engine-clock time
        self._fd = -1
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: str, /, **fields: Any) -> None:
        record = {"event": event, "time": datetime.now(UTC).isoformat(), **fields}
        if self.clock is not None:
            record["clock"] = self.clock.now().isoformat()
        if self._fd >= 0:
            os.write(self._fd, (json.dumps(record, default=str) + "\n").encode())
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:  # a display must never stop the night
                log.exception("event listener failed; removing it")
                self._listeners.remove(listener)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
