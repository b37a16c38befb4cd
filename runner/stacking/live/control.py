"""Controlling the live stacker: :class:`LiveStacker`, start, submit, pause, resume, stretch,
save and cancel."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from runner.errors import StackingError
from runner.stacking.fitsio import FrameMeta
from runner.stacking.live.state import Counters, Session, Submittable, source_of
from runner.stacking.live.worker import LiveWorker
from runner.stacking.output import StackPaths
from runner.stacking.pipeline import StackSettings
from runner.stacking.stretch import StretchParams


class LiveStacker(LiveWorker):
    """Stack frames as they arrive, beside acquisition, into ``<data_dir>/stacked/``.

    Lifecycle: ``start()`` → ``submit()``… (``pause()``/``resume()``, ``stretch()``) →
    ``save()`` (write the final result) or ``cancel()`` (discard). ``start()`` again begins a
    new stack. Methods are thread-safe and return quickly; only ``save()`` waits for the
    queued frames to be processed (use ``await save_async()`` from the event loop).
    """

    def start(
        self,
        name: str,
        *,
        darks: str | None = None,
        flats: str | None = None,
        bias: str | None = None,
        calibration: Sequence[str] = (),
        field_rotation: bool = False,
        flip: bool = False,
        auto_stretch: bool = True,
        save_data: bool = False,
        align: bool = True,
        reject: bool = True,
        kappa: float = 3.0,
        camera: str | None = None,
        comment: str | None = None,
        continue_id: str | None = None,
        replay: Sequence[str | Path] = (),
    ) -> str:
        """Begin a new stack named ``name`` (seed 004's ``/api/stacker/start``).

        ``continue_id`` carries on an earlier stack of that id (a resumed night) instead of
        starting ``<name>_2``: its log is appended to and its results overwritten, and the
        frames in ``replay`` (that stack's inputs, in order) are stacked first, so the result
        covers the whole night.

        ``darks``/``flats``/``bias`` are master ids from ``calibration/index.json``;
        ``calibration`` is the plan's list of ids, sorted into those three by their kind.
        Returns the stacking id (``name``, made unique if a result of that name exists).
        Raises :class:`StackingError` if a stack is running or an id is unknown.
        """
        ids: dict[str, str | None] = {"darks": darks, "flats": flats, "bias": bias}
        for master_id in calibration:
            kind = self.library.get(master_id).kind
            key = {"dark": "darks", "flat": "flats", "bias": "bias"}[kind]
            if ids[key] is not None and ids[key] != master_id:
                raise StackingError(f"two {kind} masters given: {ids[key]!r}, {master_id!r}")
            ids[key] = master_id
        for key, kind in (("darks", "dark"), ("flats", "flat"), ("bias", "bias")):
            if ids[key] is not None:
                m = self.library.get(ids[key] or "")
                if m.kind != kind:
                    raise StackingError(f"master {m.id!r} is a {m.kind}, not a {kind}")
        settings = StackSettings(
            align=align,
            reject=reject,
            kappa=kappa,
            field_rotation=field_rotation,
            flip=flip,
        )
        with self._lock:
            if self._status in ("stacking", "paused", "saving", "cancelling"):
                raise StackingError("a stack is already running; save or cancel it first")
        self._stop_worker()  # a failed session's worker may still be waiting
        with self._lock:
            if self._session is not None and self._session.log_file is not None:
                self._close_log(self._session, {"event": "abandoned"})
            stacking_id = continue_id or self._unique_id(name)
            self._session = Session(
                stacking_id=stacking_id,
                settings=settings,
                stretch=StretchParams(auto=auto_stretch),
                save_data=save_data,
                calibration_ids=ids,
                camera=camera,
                comment=comment,
                started=datetime.now().astimezone(),
            )
            self._counters = Counters()
            self._error = None
            self._status = "stacking"
            self._queue = queue.Queue(maxsize=self.queue_size)
            self._open_log(self._session)
            earlier = [Path(p) for p in replay]
            if continue_id is not None:
                self._log_event({"event": "continued", "replayed": len(earlier)})
            if earlier:
                self._counters.frames += len(earlier)
                self._outstanding += len(earlier)
                self._idle.clear()
            self._worker = threading.Thread(
                target=self._run, args=(earlier,), name=f"stacker-{stacking_id}", daemon=True
            )
            self._worker.start()
        self._changed()
        return stacking_id

    def submit(self, item: Submittable, *, meta: FrameMeta | None = None) -> bool:
        """Queue a frame for stacking; never blocks. Returns False if it was not queued.

        ``item`` is a FITS path (what the engine passes after writing a light), a
        :class:`~runner.devices.interfaces.Frame`, or a raw array (with ``meta``). Arrays are
        not copied: do not modify them after submitting. While paused, frames are counted as
        received and skipped; with no stack running they are ignored.
        """
        with self._lock:
            if self._status not in ("stacking", "paused"):
                return False
            self._counters.frames += 1
            if self._status == "paused":
                return False
            try:
                self._queue.put_nowait((item, meta))
            except queue.Full:
                self._counters.dropped_overload += 1
                self._log_event(
                    {"event": "dropped", "reason": "queue full", "source": source_of(item)}
                )
                return False
            self._outstanding += 1
            self._idle.clear()
            return True

    def pause(self) -> None:
        with self._lock:
            if self._status == "stacking":
                self._status = "paused"
                self._log_event({"event": "pause"})
        self._changed()

    def resume(self) -> None:
        with self._lock:
            if self._status == "paused":
                self._status = "stacking"
                self._log_event({"event": "resume"})
        self._changed()

    def stretch(
        self,
        auto_stretch: bool | None = None,
        low: float | None = None,
        high: float | None = None,
        gamma: float | None = None,
    ) -> StretchParams:
        """Change the preview stretch (seed 004's ``/api/stacker/stretch``); works when paused."""
        with self._lock:
            if self._session is None:
                raise StackingError("no stack to stretch")
            cur = self._session.stretch
            new = StretchParams(
                auto=cur.auto if auto_stretch is None else auto_stretch,
                low=cur.low if low is None else low,
                high=cur.high if high is None else high,
                gamma=cur.gamma if gamma is None else gamma,
            )
            self._session.stretch = new
            self._log_event({"event": "stretch", **new.as_dict()})
            return new

    def save(self, timeout: float | None = None) -> StackPaths:
        """Finish: process what is queued, write ``<id>_final.{jpeg,tiff,json}``.

        Blocks until the queue is drained (``timeout`` in real seconds). Raises
        :class:`StackingError` when nothing was stacked or no stack is running.
        """
        with self._lock:
            # A failed worker (a bug) still leaves what it stacked worth saving.
            if self._session is None or self._status not in ("stacking", "paused", "failed"):
                raise StackingError(f"nothing to save (status {self._status})")
            self._status = "saving"
        if not self.wait_idle(timeout):
            with self._lock:
                self._status = "stacking"
            raise StackingError("timed out waiting for queued frames before saving")
        self._stop_worker()
        with self._lock:
            session = self._session
        try:
            paths = self._write(session, final=True)
        except StackingError as exc:
            with self._lock:
                self._status = "failed"
                self._error = str(exc)
                self._close_log(session, {"event": "failed", "error": str(exc)})
            raise
        with self._lock:
            self._status = "finished"
            self._close_log(session, {"event": "save", "jpeg": str(paths.jpeg)})
        self._changed()
        return paths

    async def save_async(self) -> StackPaths:
        """``save()`` off the event loop (wrap in ``asyncio.timeout`` to bound the wait)."""
        return await asyncio.to_thread(self.save)

    def cancel(self) -> None:
        """Stop and discard the stack (queued frames are not processed)."""
        with self._lock:
            session = self._session
            if session is None or self._status not in ("stacking", "paused", "failed"):
                return
            self._status = "cancelling"
            while True:
                try:
                    self._queue.get_nowait()
                    self._outstanding -= 1
                except queue.Empty:
                    break
        self._stop_worker()
        with self._lock:
            self._close_log(session, {"event": "cancel"})
            self._session = None
            self._status = "idle"
            self._outstanding = 0
            self._idle.set()
        self._changed()

    def close(self) -> None:
        """Cancel anything running and stop the worker (for shutdown)."""
        self.cancel()
