"""Where frames go: the output template names them, storage writes them atomically, the image
index remembers them.

Sequence numbers continue past files already on disk, so a new night never overwrites an old
one. A frame is written only once its journal *intent* is recorded; ``--resume`` deletes an
orphan (renamed into place, not yet journalled) before retaking it, so frames are never lost
and never duplicated.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from runner.devices.interfaces import Frame
from runner.plan.equipment import Equipment
from runner.plan.models import Plan
from runner.storage.fits import FrameMeta, write_fits
from runner.storage.naming import expand, frame_path


class FrameStore:
    def __init__(
        self, data_dir: Path, plan: Plan, equipment: Equipment, run_id: str | None = None
    ) -> None:
        self.data_dir = data_dir
        self.run_id = run_id
        self.plan = plan
        self.eq = equipment
        self._seq: dict[tuple[str, ...], int] = {}
        from runner.storage.index import ImageIndex

        self._index = ImageIndex(data_dir)
        from runner.sky.timeutil import site_timezone

        self.tz = site_timezone(plan.site)

    def allocate(self, frame: Frame, meta: dict[str, Any]) -> Path:
        """The path for this frame: the template's, with the first free sequence number."""
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
            if not path.exists():
                self._seq[group] = seq
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
        )
        return await asyncio.to_thread(self._write_and_index, path, frame, fm)

    def _write_and_index(self, path: Path, frame: Frame, fm: FrameMeta) -> Path:
        """One trip off the event loop for both: the frame is written, then remembered."""
        written = write_fits(path, frame, fm)
        if self._index is not None:
            self._index.add_frame(written, frame, fm, run_id=self.run_id)
        return written

    def close(self) -> None:
        if self._index is not None:
            self._index.close()


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
