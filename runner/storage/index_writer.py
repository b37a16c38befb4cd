"""The image index, fed beside the night: a locked or broken ``index.sqlite`` never stops it.

The index is derived data — every row can be rebuilt from the FITS headers
(:mod:`runner.storage.catchup`) — so the engine hands records to this writer and goes on. A
worker thread adds them; when the database cannot be opened or written (another process holds
``BEGIN EXCLUSIVE``, the disk is full) the records wait and are retried, one warning names the
file, and another says when the index has caught up. What is still waiting when the run ends
is added the next time the index is opened (``nightrunner images``, the next run).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner.storage.index import ImageIndex, ImageRecord
from runner.storage.recover import index_missing


@dataclass(frozen=True)
class Forget:
    """Remove the row of a file that is gone (a journalled frame deleted from disk)."""

    path: Path


#: a row, files to index if missing, or a row to remove
Item = ImageRecord | list[tuple[Path, str | None]] | Forget

Notify = Callable[[str, str], None]  # ("warning" | "info", message)


class IndexWriter:
    def __init__(
        self, data_dir: Path, notify: Notify, *, retry: float = 1.0, busy_timeout: float = 1.0
    ) -> None:
        """``notify`` is called from the worker thread; ``busy_timeout`` (s) is how long one
        attempt waits for a lock held elsewhere before the record is put back."""
        self.data_dir = data_dir
        self.notify = notify
        self.retry = retry
        self.busy_timeout = busy_timeout
        self._pending: deque[Item] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._index: ImageIndex | None = None
        self._failing: str | None = None  # the error while the index is unavailable
        self._thread = threading.Thread(target=self._run, name="image-index", daemon=True)
        self._thread.start()

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index.sqlite"

    def add(self, record: ImageRecord) -> None:
        """Queue a row; never blocks on the database."""
        with self._cv:
            self._pending.append(record)
            self._cv.notify()

    def catch_up(self, frames: list[tuple[Path, str | None]]) -> None:
        """Index these files (path, run id) from their headers if the index lacks them: the
        frames of an interrupted run whose rows were still queued when it was killed."""
        with self._cv:
            self._pending.append(list(frames))
            self._cv.notify()

    def forget(self, paths: list[Path]) -> None:
        with self._cv:
            self._pending.extend(Forget(p) for p in paths)
            self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return len(self._pending)

    def close(self, timeout: float = 5.0) -> int:
        """Give the worker ``timeout`` seconds to finish; returns the rows still not indexed."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout)
        with self._cv:
            left = len(self._pending)
            self._closing = True
        if not self._thread.is_alive() and self._index is not None:
            self._index.close()
        return left

    # ------------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closing:
                    self._cv.wait()
                if not self._pending:
                    return
                record = self._pending[0]
            if self._store(record):
                with self._cv:
                    self._pending.popleft()
                    caught_up = self._failing is not None and not self._pending
                if caught_up:
                    self._failing = None
                    self.notify("info",
                                f"image index {self.index_path} is writable again: caught up")
                continue
            with self._cv:
                if self._closing:
                    return  # the caller's deadline decides; the rows wait for the next open
                self._cv.wait(self.retry)

    def _store(self, item: Item) -> bool:
        try:
            if self._index is None:
                self._index = ImageIndex(self.data_dir, busy_timeout=self.busy_timeout)
            if isinstance(item, ImageRecord):
                self._index.add(item)
            elif isinstance(item, Forget):
                with contextlib.suppress(ValueError):
                    self._index.remove(self._index.relative(item.path))
            else:
                index_missing(self._index, item)
            return True
        except (sqlite3.Error, OSError) as exc:
            if self._index is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._index.close()
                self._index = None
            if self._failing is None:
                self._failing = str(exc)
                self.notify("warning", f"image index {self.index_path} unavailable ({exc}): "
                            "frames are kept and indexed when it is writable again")
            time.sleep(0)  # let the engine's threads in before the retry
            return False
