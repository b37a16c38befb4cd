"""The live stacker's state: what was submitted, the counters, the session of the stack being
built, and the status read from them."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from runner.devices.interfaces import Frame
from runner.stacking.calibrate import CalibrationLibrary
from runner.stacking.fitsio import FrameMeta
from runner.stacking.pipeline import FrameResult, Stacker, StackSettings
from runner.stacking.stackfits import StackInfo
from runner.stacking.stretch import StretchParams

log = logging.getLogger(__name__)

Submittable = str | Path | Frame | npt.NDArray[np.generic]


@dataclass
class Counters:
    frames: int = 0
    processed: int = 0
    stacked: int = 0
    dropped_overload: int = 0
    unregistered: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "processed": self.processed,
            "stacked": self.stacked,
            "dropped": self.dropped_overload + self.unregistered + self.failed,
            "dropped_overload": self.dropped_overload,
            "unregistered": self.unregistered,
            "failed": self.failed,
        }


@dataclass
class Session:
    stacking_id: str
    settings: StackSettings
    stretch: StretchParams
    save_data: bool
    calibration_ids: dict[str, str | None]
    camera: str | None
    comment: str | None
    started: datetime
    stacker: Stacker | None = None
    debug_dir: Path | None = None
    log_file: TextIO | None = None
    intermediates: int = 0
    first_meta: FrameMeta | None = None
    last_result: FrameResult | None = None
    info: StackInfo = field(default_factory=StackInfo)  # the FITS header's facts
    extra: dict[str, Any] = field(default_factory=dict)


class LiveState:
    """The locks, queue, counters and session the stacker's parts share, and reading them."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        queue_size: int = 4,
        intermediate_every: int = 10,
        intermediate_tiff: bool = False,
        library: CalibrationLibrary | None = None,
        read_ahead: bool = False,
    ) -> None:
        """``read_ahead``: prepare the next queued frame on a second thread (the offline
        command, see runner.stacking.read_ahead)."""
        if queue_size < 1:
            raise ValueError("queue_size must be ≥ 1")
        self.data_dir = Path(data_dir)
        self.stacked_dir = self.data_dir / "stacked"
        self.library = library or CalibrationLibrary(self.data_dir)
        self.queue_size = queue_size
        self.intermediate_every = intermediate_every
        self.intermediate_tiff = intermediate_tiff
        self.read_ahead = read_ahead
        self._lock = threading.RLock()  # guards session, counters, status
        self._stack_lock = threading.Lock()  # guards the accumulator during add / read
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None
        self._status = "idle"
        self._error: str | None = None
        self._counters = Counters()
        self._session: Session | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._outstanding = 0
        #: called with ``status()`` after every processed frame and every change of state
        #: (from the worker thread too: it must be thread-safe and quick, and never raise)
        self.on_change: Callable[[dict[str, Any]], None] | None = None

    def _changed(self) -> None:
        listener = self.on_change
        if listener is not None:
            try:
                listener(self.status())
            except Exception:  # a watcher must never stop the stack
                log.exception("stacker listener failed")

    def status(self) -> dict[str, Any]:
        """Seed 004's stacking status, plus the breakdown of ``dropped`` and the stacking id."""
        with self._lock:
            st = self._status
            shown = {"saving": "stacking", "cancelling": "stacking"}.get(st, st)
            out: dict[str, Any] = {"status": shown, **self._counters.as_dict()}
            out["error_message"] = self._error
            out["stacking_id"] = self._session.stacking_id if self._session else None
            out["queued"] = self._queue.qsize()
            return out

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until every queued frame has been processed (tests, save)."""
        return self._idle.wait(timeout)


def source_of(item: Submittable) -> str | None:
    """A submitted file's resolved path, for the log (None for frames and arrays)."""
    if isinstance(item, str | Path):
        return str(Path(item).resolve())
    return None
