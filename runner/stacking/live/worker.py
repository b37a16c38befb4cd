"""The live stacker's worker thread: takes frames off the queue, calibrates and stacks them,
counts the outcome; and stopping it."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import numpy.typing as npt

from runner.devices.interfaces import Frame
from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationSet, calibration_for
from runner.stacking.fitsio import FrameMeta, read_frame
from runner.stacking.live.outputs import LiveOutputs
from runner.stacking.live.state import Session, Submittable, source_of
from runner.stacking.pipeline import Prepared, Stacker
from runner.stacking.read_ahead import read_ahead

log = logging.getLogger(__name__)

_STOP = object()


class LiveWorker(LiveOutputs):
    """The worker thread's side of the stacker (one thread does all the work)."""

    def _run(self, replay: Sequence[Path] = ()) -> None:
        for path in replay:  # a continued stack's earlier inputs, before anything new
            self._process(path, None)
        q = self._queue
        if self.read_ahead:
            for (item, meta), ahead in read_ahead(q, _STOP, self._prepare, self._can_prepare):
                self._process(item, meta, ahead)
            return
        while True:
            entry = q.get()
            if entry is _STOP:
                return
            assert isinstance(entry, tuple)
            self._process(*entry)

    def _can_prepare(self) -> bool:
        session = self._session
        return session is not None and session.stacker is not None and session.stacker.frames > 0

    def _prepare(self, item: Submittable, meta: FrameMeta | None
                 ) -> tuple[npt.NDArray[np.generic], FrameMeta, Prepared | None]:
        raw, meta = _load(item, meta)
        session = self._session
        stacker = session.stacker if session is not None else None
        return raw, meta, stacker.prepare(raw, meta) if stacker is not None else None

    def _process(self, item: Submittable, meta: FrameMeta | None,
                 ahead: Future[tuple[npt.NDArray[np.generic], FrameMeta, Prepared | None]]
                 | None = None) -> None:
        try:
            self._handle(item, meta, ahead)
        except Exception as exc:  # a bug, not a bad frame: fail loudly, keep the counts
            log.exception("live stacker failed")
            with self._lock:
                self._status = "failed"
                self._error = f"{type(exc).__name__}: {exc}"
                self._log_event({"event": "error", "error": self._error})
        finally:
            with self._lock:
                self._outstanding -= 1
                if self._outstanding <= 0:
                    self._outstanding = 0
                    self._idle.set()
            self._changed()

    def _handle(self, item: Submittable, meta: FrameMeta | None,
                ahead: Future[tuple[npt.NDArray[np.generic], FrameMeta, Prepared | None]]
                | None) -> None:
        session = self._session
        if session is None or self._status in ("failed", "cancelling"):
            return
        source = source_of(item)
        prepared = None
        try:
            if ahead is not None:
                raw, meta, prepared = ahead.result()
            else:
                raw, meta = _load(item, meta)
        except StackingError as exc:
            with self._lock:
                self._counters.processed += 1
                self._counters.failed += 1
                self._log_event(
                    {"event": "frame", "source": source, "status": "failed", "reason": str(exc)}
                )
            return
        if session.stacker is None:
            cal = self._calibration(session, meta)
            session.stacker = Stacker(session.settings, cal)
            session.first_meta = meta
            self._log_event(self._start_event(session, meta, raw))
        saved = self._save_input(session, item, raw, meta)
        with self._stack_lock:
            result = session.stacker.process(raw, meta, prepared=prepared)
        session.last_result = result
        with self._lock:
            self._counters.processed += 1
            if result.stacked:
                self._counters.stacked += 1
                session.info.add(meta, source, reference=result.status == "reference")
            elif result.status == "unregistered":
                self._counters.unregistered += 1
            else:
                self._counters.failed += 1
            entry = {"event": "frame", "source": source, **result.as_dict()}
            if saved is not None:
                entry["saved"] = saved
            if meta.exposure is not None:
                entry["exposure"] = meta.exposure
            self._log_event(entry)
            stacked = self._counters.stacked
        if (
            result.stacked
            and self.intermediate_every > 0
            and stacked % self.intermediate_every == 0
        ):
            self._write(session, final=False)

    def _calibration(self, session: Session, meta: FrameMeta) -> CalibrationSet:
        ids = session.calibration_ids
        if not any(ids.values()):
            return CalibrationSet()
        return calibration_for(
            self.library,
            meta,
            bias=ids.get("bias"),
            dark=ids.get("darks"),
            flat=ids.get("flats"),
            auto=False,
        )

    def _stop_worker(self) -> None:
        """Ask the worker to finish and join it; never call with ``_lock`` held."""
        with self._lock:
            worker = self._worker
            self._worker = None
        if worker is None:
            return
        # The queue may be full of frames a cancel already discarded; the sentinel must get in.
        while True:
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                continue
        if worker is not threading.current_thread():
            worker.join()


def _load(item: Submittable, meta: FrameMeta | None) -> tuple[npt.NDArray[np.generic], FrameMeta]:
    if isinstance(item, str | Path):
        data, file_meta = read_frame(item)
        return data, meta or file_meta
    if isinstance(item, Frame):
        fm = FrameMeta(
            exposure=item.exposure,
            gain=float(item.gain),
            offset=float(item.offset),
            temperature=item.ccd_temp,
            binning=item.binning,
            bayer=item.bayer,
            date_obs=item.start.isoformat(),
            frame_type=item.frame_type,
            width=int(item.data.shape[-1]),
            height=int(item.data.shape[-2]),
        )
        return item.data, meta or fm
    if isinstance(item, np.ndarray):
        return item, meta or FrameMeta(width=int(item.shape[1]), height=int(item.shape[0]))
    raise StackingError(f"cannot stack a {type(item).__name__}")
