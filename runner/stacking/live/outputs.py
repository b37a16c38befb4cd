"""What the live stacker shows and writes: histograms, the preview, the stack itself, the
result files (intermediate and final) and the debug log with copies of its inputs."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from runner.errors import StackingError
from runner.stacking.fitsio import FrameMeta, write_fits_atomic
from runner.stacking.live.state import LiveState, Session, Submittable
from runner.stacking.output import (
    StackPaths,
    display_image,
    jpeg_bytes,
    write_result,
)
from runner.stacking.stackfits import stack_header
from runner.stacking.stretch import StretchParams, histogram

F32 = npt.NDArray[np.float32]


def preview_jpeg(stack: F32, stretch: StretchParams, flip: bool,
                 max_size: int | None = None) -> bytes:
    """A stack (see :meth:`LiveOutputs.preview_source`) stretched and encoded as JPEG."""
    stack = np.nan_to_num(stack, nan=float(np.nanmin(stack)))
    return jpeg_bytes(display_image(stack, stretch, flip=flip), max_size=max_size)


class LiveOutputs(LiveState):
    """Reading the stack (histograms, preview) and writing its files and log."""

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
        source = self.preview_source(max_size)
        return None if source is None else preview_jpeg(*source, max_size=max_size)

    def preview_source(
        self, max_size: int | None = 1600
    ) -> tuple[F32, StretchParams, bool] | None:
        """What a preview is made of — the stack shrunk to ``max_size``, the stretch and the
        flip — so that the stretching and encoding can run elsewhere (the web's render
        process) while only the cheap copy takes the stack's lock here."""
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
        return stack, session.stretch, session.settings.flip

    def stack(self) -> F32 | None:
        """A copy of the current (linear) stack, or None."""
        session = self._session
        if session is None or session.stacker is None or session.stacker.stacked == 0:
            return None
        with self._stack_lock:
            return session.stacker.result()

    # ------------------------------------------------------------------ files

    def _save_input(
        self,
        session: Session,
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

    def _open_log(self, session: Session) -> None:
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

    def _close_log(self, session: Session | None, event: dict[str, Any]) -> None:
        if session is None:
            return
        self._log_event(event)
        if session.log_file is not None:
            session.log_file.close()
            session.log_file = None

    def _start_event(
        self, session: Session, meta: FrameMeta, raw: npt.NDArray[np.generic]
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

    def _metadata(self, session: Session, final: bool) -> dict[str, Any]:
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

    def _write(self, session: Session | None, *, final: bool) -> StackPaths:
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
