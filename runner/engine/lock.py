"""One run at a time per data directory: an advisory lock held for the whole run.

The lock file names its holder (pid, plan, since when) so that a second start — a cron line
overlapping the hub's scheduled night, a double click — is told which night runs and how to
reach it, and exits with its own code (``EXIT_LOCKED``), which a wrapper script can test.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from runner.errors import RunLockedError

#: Exit code of a run refused because another night holds the data directory.
EXIT_LOCKED = 4


def _holder(raw: str) -> str:
    try:
        info = json.loads(raw)
        return (f"night {info['plan']!r} (pid {info['pid']}, since {info['since'][:19]}Z)")
    except (ValueError, KeyError, TypeError):
        return f"pid {raw}" if raw else "another process"


class DataDirLock:
    def __init__(self, data_dir: Path, night: str | None = None) -> None:
        self.path = data_dir / ".nightrunner.lock"
        self.night = night
        self._fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.read(fd, 4096).decode(errors="replace").strip())
            os.close(fd)
            raise RunLockedError(
                f"another run is using data directory {self.path.parent}: {holder}; "
                "see it with `nightrunner status` (or use another --data-dir)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "plan": self.night or "?",
                                 "since": datetime.now(UTC).isoformat()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
