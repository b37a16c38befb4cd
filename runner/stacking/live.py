"""The live stacker: seed 004's stacker API as a Python object the engine and control plane call.

Acquisition must never wait for stacking. :meth:`LiveStacker.submit` only puts the frame (a
FITS path, normally) on a bounded queue and returns at once; when the queue is full the frame
is dropped and counted. One worker thread does all the work.

Thread, not process (measured, see docs/stacking.md and ``benchmarks/bench_stacking.py``): the
numpy, OpenCV and sep calls that make up >95 % of the work release the GIL, so a thread runs at
full speed beside the asyncio loop while the loop stays responsive (loop latency is measured by
the benchmark), and status, histograms and previews are read from shared memory instead of
being shipped between processes. Frames travel as paths either way.

Status follows seed 004: ``status`` (idle, stacking, paused, finished, failed), ``frames``
(received), ``processed``, ``stacked``, ``dropped`` and ``error_message``. ``dropped`` counts
both frames the worker could not keep up with (``dropped_overload``) and frames that could
not be registered or read (``unregistered``, ``failed``): none of them is in the stack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import numpy.typing as npt

from runner.devices.interfaces import Frame
from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationLibrary, CalibrationSet, calibration_for
from runner.stacking.fitsio import FrameMeta, read_frame, write_fits_atomic
from runner.stacking.output import (
    StackPaths,
    display_image,
    jpeg_bytes,
    write_result,
)
from runner.stacking.pipeline import FrameResult, Prepared, Stacker, StackSettings
from runner.stacking.read_ahead import read_ahead
from runner.stacking.stackfits import StackInfo, stack_header
from runner.stacking.stretch import StretchParams, histogram

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
Submittable = str | Path | Frame | npt.NDArray[np.generic]

_STOP = object()


@dataclass
class _Counters:
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
class _Session:
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


class LiveStacker:
    """Stack frames as they arrive, beside acquisition, into ``<data_dir>/stacked/``.

    Lifecycle: ``start()`` → ``submit()``… (``pause()``/``resume()``, ``stretch()``) →
    ``save()`` (write the final result) or ``cancel()`` (discard). ``start()`` again begins a
    new stack. Methods are thread-safe and return quickly; only ``save()`` waits for the
    queued frames to be processed (use ``await save_async()`` from the event loop).
    """

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
        self._counters = _Counters()
        self._session: _Session | None = None
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

    # ------------------------------------------------------------------ control

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
            self._session = _Session(
                stacking_id=stacking_id,
                settings=settings,
                stretch=StretchParams(auto=auto_stretch),
                save_data=save_data,
                calibration_ids=ids,
                camera=camera,
                comment=comment,
                started=datetime.now().astimezone(),
            )
            self._counters = _Counters()
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
                self._log_event({"event": "dropped", "reason": "queue full", "source": _src(item)})
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

    # ------------------------------------------------------------------ reading

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

    def histograms(self) -> dict[str, Any]:
        """Seed 004's histograms: ``live`` (latest calibrated frame) and ``stacked``."""
        stacker = self._session.stacker if self._session else None
        if stacker is None:
            return {"live": None, "stacked": None}
        with self._stack_lock:
            live = stacker.last_frame
            stacked = stacker.result() if stacker.stacked else None
        return {
            "live": histogram(live) if live is not None else None,
            "stacked": histogram(stacked) if stacked is not None else None,
        }

    def preview_jpeg(self, max_size: int | None = 1600) -> bytes | None:
        """The stretched stack as JPEG bytes (the control plane's "latest stacked preview")."""
        session = self._session
        if session is None or session.stacker is None or session.stacker.stacked == 0:
            return None
        with self._stack_lock:
            stack = session.stacker.result()
        long_side = max(stack.shape[:2])
        if max_size is not None and long_side > max_size:
            # Shrink before stretching: the web asks for a preview after every frame, and
            # stretching a 2k stack to throw 3/4 of it away cost ~100 ms of CPU each time,
            # on 2 cores shared with the night and the browser.
            h, w = stack.shape[:2]
            scale = max_size / long_side
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            stack = np.asarray(cv2.resize(stack, size, interpolation=cv2.INTER_AREA), np.float32)
        stack = np.nan_to_num(stack, nan=float(np.nanmin(stack)))
        disp = display_image(stack, session.stretch, flip=session.settings.flip)
        return jpeg_bytes(disp, max_size=max_size)

    def stack(self) -> F32 | None:
        """A copy of the current (linear) stack, or None."""
        session = self._session
        if session is None or session.stacker is None or session.stacker.stacked == 0:
            return None
        with self._stack_lock:
            return session.stacker.result()

    # ------------------------------------------------------------------ worker

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
        source = _src(item)
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

    def _calibration(self, session: _Session, meta: FrameMeta) -> CalibrationSet:
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

    def _save_input(
        self,
        session: _Session,
        item: Submittable,
        raw: npt.NDArray[np.generic],
        meta: FrameMeta,
    ) -> str | None:
        if not session.save_data or session.debug_dir is None:
            return None
        frames = session.debug_dir / "frames"
        frames.mkdir(parents=True, exist_ok=True)
        n = session.stacker.frames if session.stacker else 0
        if isinstance(item, str | Path):
            dst = frames / f"{n:05d}_{Path(item).name}"
            shutil.copyfile(item, dst)
        else:
            from astropy.io import fits

            dst = frames / f"{n:05d}.fits"
            header = fits.Header()
            if meta.exposure is not None:
                header["EXPTIME"] = meta.exposure
            if meta.bayer is not None:
                header["BAYERPAT"] = meta.bayer
            write_fits_atomic(dst, np.asarray(raw), header)
        return str(dst.relative_to(session.debug_dir))

    # ------------------------------------------------------------------ files

    def _unique_id(self, name: str) -> str:
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_")
        base = base or "stack"
        candidate, k = base, 1
        while (self.stacked_dir / f"{candidate}_final.json").exists() or (
            self.data_dir / "debug" / candidate
        ).exists():
            k += 1
            candidate = f"{base}_{k}"
        return candidate

    def _open_log(self, session: _Session) -> None:
        session.debug_dir = self.data_dir / "debug" / session.stacking_id
        session.debug_dir.mkdir(parents=True, exist_ok=True)
        session.log_file = (session.debug_dir / "log.txt").open("a", encoding="utf-8")

    def _log_event(self, event: dict[str, Any]) -> None:
        session = self._session
        if session is None or session.log_file is None:
            return
        event = {"time": datetime.now().astimezone().isoformat(timespec="milliseconds"), **event}
        session.log_file.write(json.dumps(event, default=str) + "\n")
        session.log_file.flush()

    def _close_log(self, session: _Session | None, event: dict[str, Any]) -> None:
        if session is None:
            return
        self._log_event(event)
        if session.log_file is not None:
            session.log_file.close()
            session.log_file = None

    def _start_event(
        self, session: _Session, meta: FrameMeta, raw: npt.NDArray[np.generic]
    ) -> dict[str, Any]:
        masters: dict[str, str] = {}
        for key, mid in session.calibration_ids.items():
            if mid is None:
                continue
            m = self.library.get(mid)
            path = self.library.root / m.path
            if session.save_data and session.debug_dir is not None:
                dst = session.debug_dir / "masters" / Path(m.path).name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dst)
                masters[key] = str(dst.relative_to(session.debug_dir))
            else:
                masters[key] = str(path.resolve())
        stacker = session.stacker
        return {
            "event": "start",
            "stacking_id": session.stacking_id,
            "stacking": session.settings.as_dict(),
            "stretch": session.stretch.as_dict(),
            "calibration": session.calibration_ids,
            "masters": masters,
            "dark_exposure": stacker.calibration.dark_exposure if stacker else None,
            "bayer": meta.bayer,
            "camera": session.camera or meta.camera,
            "settings": meta.settings(),
            "shape": list(raw.shape),
            "comment": session.comment,
        }

    def _metadata(self, session: _Session, final: bool) -> dict[str, Any]:
        c = self._counters
        meta = session.first_meta or FrameMeta()
        stacker = session.stacker
        return {
            "stacking_id": session.stacking_id,
            "path": None,  # filled by _write
            "camera": session.camera or meta.camera,
            "settings": meta.settings(),
            "stacking": {
                **session.settings.as_dict(),
                **session.stretch.as_dict(),
                "calibration": session.calibration_ids,
                "save_data": session.save_data,
                "comment": session.comment,
            },
            "date": session.started.isoformat(timespec="seconds"),
            "date_finish": datetime.now().astimezone().isoformat(timespec="seconds"),
            "total_frames": c.frames,
            "stacked_frames": c.stacked,
            "dropped_frames": c.dropped_overload + c.unregistered + c.failed,
            "integration_s": stacker.exposure_total if stacker else 0.0,
            "rejected_samples": stacker.accumulator.rejected if stacker else 0,
            "final": final,
        }

    def _write(self, session: _Session | None, *, final: bool) -> StackPaths:
        if session is None or session.stacker is None or session.stacker.stacked == 0:
            raise StackingError("no frame was stacked; nothing to write")
        with self._stack_lock:
            stack = session.stacker.result()
        if final:
            base = f"{session.stacking_id}_final"
        else:
            session.intermediates += 1
            base = f"{session.stacking_id}_intermediate_{session.intermediates:02d}"
        with self._lock:
            meta = self._metadata(session, final)
            header = stack_header(session.info, session.settings, colour=stack.ndim == 3)
        meta["path"] = f"{base}.jpeg"
        meta["fits"] = f"{base}.fits"
        t0 = time.perf_counter()
        paths = write_result(
            self.stacked_dir,
            base,
            stack,
            meta,
            session.stretch,
            flip=session.settings.flip,
            tiff=final or self.intermediate_tiff,
            fits_header=header,
        )
        with self._lock:
            self._log_event(
                {"event": "write", "base": base, "seconds": round(time.perf_counter() - t0, 3)}
            )
        return paths

    # ------------------------------------------------------------------ internals

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


def _src(item: Submittable) -> str | None:
    if isinstance(item, str | Path):
        return str(Path(item).resolve())
    return None


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
