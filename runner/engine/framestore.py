"""Where frames go: the output template names them, storage writes them atomically, the image
index remembers them.

Sequence numbers continue past files already on disk, so a new night never overwrites an old
one, and past every path the run's journal has named (``reserved``): a journalled frame that
was deleted is taken again under a new name, so the journal never maps two frames to one file.
A frame is written only once its journal *intent* is recorded, and carries its run and frame
key in its header, so ``--resume`` keeps a frame that was renamed into place but not yet
journalled instead of taking it again (:mod:`runner.engine.reconcile`).

The image index is fed by a worker (:class:`~runner.storage.index_writer.IndexWriter`): a
locked or failing ``index.sqlite`` delays the index, never the night.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from runner.devices.interfaces import Frame
from runner.plan.equipment import Equipment
from runner.plan.models import Plan
from runner.storage.fits import FrameMeta, write_fits
from runner.storage.index import ImageRecord, relative_path
from runner.storage.index_writer import IndexWriter
from runner.storage.naming import expand, frame_path

Notify = Callable[[str, str], None]  # (event kind, message), called on the event loop
#: how long the end of a run waits for the index to take the last rows (s, real time)
INDEX_CLOSE_WAIT = 5.0


class FrameStore:
    def __init__(
        self, data_dir: Path, plan: Plan, equipment: Equipment, run_id: str | None = None,
        *, reserved: Iterable[str] = (), notify: Notify | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.run_id = run_id
        self.plan = plan
        self.eq = equipment
        self._seq: dict[tuple[str, ...], int] = {}
        self._reserved = {str(Path(p)) for p in reserved}
        self._notify = notify or (lambda _kind, _msg: None)
        loop = _running_loop()

        def from_worker(kind: str, message: str) -> None:
            if loop is None or loop.is_closed():
                return
            with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
                loop.call_soon_threadsafe(self._notify, kind, message)

        self._index = IndexWriter(data_dir, from_worker)
        from runner.sky.timeutil import site_timezone

        self.tz = site_timezone(plan.site)

    def catch_up(self, frames: Iterable[tuple[str, str | None]]) -> None:
        """Index these earlier frames (path, run id) if the index lacks them."""
        self._index.catch_up([(Path(p), r) for p, r in frames])

    def forget(self, paths: Iterable[str]) -> None:
        """Drop the index rows of frames that are gone from disk (taken again on resume)."""
        self._index.forget([Path(p) for p in paths])

    def allocate(self, frame: Frame, meta: dict[str, Any]) -> Path:
        """The path for this frame: the template's, with the first sequence number that is
        neither on disk nor named by the journal."""
        template = self.plan.defaults.output
        if meta.get("subdir") == "calibration":
            template = "calibration/{type}/{type}_{filter}_{exposure}s_{seq:04d}.fits"
        group = (str(meta.get("target")), str(meta.get("filter")), frame.frame_type,
                 f"{frame.exposure:g}", template)
        seq = self._seq.get(group, 0)
        while True:
            seq += 1
            rel = expand(
                template, target=meta.get("target"), filter=meta.get("filter"),
                exposure=frame.exposure, frame_type=frame.frame_type, seq=seq, when=frame.start,
                gain=frame.gain, binning=frame.binning, tz=self.tz,
            )
            path = frame_path(self.data_dir, rel)
            if not path.exists() and str(path) not in self._reserved:
                self._seq[group] = seq
                self._reserved.add(str(path))
                return path

    async def save(self, frame: Frame, meta: dict[str, Any], path: Path | None = None) -> Path:
        path = path or self.allocate(frame, meta)
        site = self.plan.site
        stats = meta.get("guide_stats")
        fm = FrameMeta(
            object_name=meta.get("target"),
            filter=meta.get("filter"),
            ra=meta.get("ra"),
            dec=meta.get("dec"),
            site_latitude=site.latitude,
            site_longitude=site.longitude,
            site_elevation=site.elevation,
            instrument=self.eq.camera.name,
            telescope=self.eq.telescope,
            focal_length=self.eq.focal_length,
            pixel_size=self.eq.camera.pixel_size,
            egain=self.eq.camera.egain,
            focus_position=meta.get("focus_position"),
            focus_temperature=meta.get("focus_temperature"),
            guiding=stats,
            hfr=meta.get("hfr"),
            run_id=self.run_id,
            frame_key=meta.get("key"),
        )
        written = await asyncio.to_thread(write_fits, path, frame, fm)
        try:
            rel = relative_path(self.data_dir, written)
        except ValueError:
            return written
        self._index.add(ImageRecord.from_frame(frame, rel, fm, run_id=self.run_id))
        return written

    def close(self) -> None:
        left = self._index.close(INDEX_CLOSE_WAIT)
        if left:
            self._notify("warning", f"image index {self._index.index_path}: {left} row(s) not "
                         "written yet; they are added from the frames' headers the next time "
                         "the index is opened (nightrunner images, the next run)")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class NullFrameStore:
    """--dry-run: frames are taken on the simulators and counted, never written."""

    def __init__(self) -> None:
        self.count = 0

    def allocate(self, frame: Frame, meta: dict[str, Any]) -> Path:
        self.count += 1
        return Path(f"(dry-run)/{meta.get('target')}/{meta.get('filter')}/{self.count:04d}.fits")

    async def save(self, frame: Frame, meta: dict[str, Any], path: Path | None = None) -> Path:
        return path or self.allocate(frame, meta)

    def close(self) -> None:
        pass
