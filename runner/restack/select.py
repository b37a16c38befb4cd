"""Which frames to re-stack: lights from one or more image indexes, grouped for stacking.

A group is target × filter × binning: frames of different filters or binnings never share a
stack. Frames are ordered by time (then path), which fixes each group's reference frame and
accumulation order, so the result does not depend on where or in which order tasks run.
Calibration masters are matched once per group, on the first frame's index record, with the
live stacker's rules (:func:`runner.stacking.calibrate.calibration_for`): the workers get
the master ids and load the masters themselves.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationLibrary, calibration_for
from runner.stacking.fitsio import FrameMeta, read_meta
from runner.storage.index import INDEX_FILENAME, ImageIndex, ImageRecord


@dataclass(frozen=True)
class FrameRef:
    """One light frame: where workers read it (a shared filesystem path) and its facts."""

    path: str  # absolute
    date_obs: datetime
    exposure: float


@dataclass(frozen=True)
class CalibrationRef:
    """Master ids in one data directory's calibration library (workers load them)."""

    data_dir: str | None = None
    bias: str | None = None
    darks: str | None = None
    flats: str | None = None

    def ids(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("bias", self.bias), ("darks", self.darks), ("flats", self.flats))
            if v
        }


@dataclass(frozen=True)
class Group:
    target: str | None
    filter: str | None
    binning: int
    frames: tuple[FrameRef, ...]
    calibration: CalibrationRef
    camera: dict[str, Any]  # the first frame's settings (seed 004's JSON)
    shape: tuple[int, int]  # (height, width) of the first frame, from the index or its header

    @property
    def stacking_id(self) -> str:
        parts = [self.target or "untitled", self.filter or "nofilter", f"bin{self.binning}"]
        return "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", p).strip("-") or "x" for p in parts)

    @property
    def label(self) -> str:
        return f"{self.target or '(no target)'} {self.filter or '(no filter)'} bin{self.binning}"


def _meta(record: ImageRecord) -> FrameMeta:
    return FrameMeta(
        exposure=record.exposure,
        gain=record.gain,
        offset=record.offset,
        temperature=record.ccd_temp,
        binning=record.binning,
        filter=record.filter,
        frame_type=record.frame_type,
        object=record.target,
        width=record.width or None,
        height=record.height or None,
    )


def _calibration(data_dirs: list[Path], meta: FrameMeta) -> CalibrationRef:
    """The first data directory whose library has masters matching the group."""
    for d in data_dirs:
        library = CalibrationLibrary(d)
        if not library.masters():
            continue
        ids = calibration_for(library, meta, auto=True).ids
        if ids:
            return CalibrationRef(
                str(d.resolve()), ids.get("bias"), ids.get("darks"), ids.get("flats")
            )
    return CalibrationRef()


def select_groups(
    data_dirs: list[Path],
    *,
    target: str | None = None,
    filter: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Group]:
    """Light frames matching the criteria in every index, grouped and ordered (see module)."""
    if not data_dirs:
        raise StackingError("no data directory given")
    found: dict[tuple[str | None, str | None, int], list[tuple[ImageRecord, FrameRef]]] = (
        defaultdict(list)
    )
    seen: set[str] = set()
    for d in data_dirs:
        if not (d / INDEX_FILENAME).is_file():
            raise StackingError(f"{d}: no image index ({INDEX_FILENAME}) in this data directory")
        with ImageIndex(d) as index:
            records = index.query(
                frame_type="light", target=target, filter=filter, since=since, until=until
            )
        for r in records:
            path = str((d / r.path).resolve())
            if path in seen:  # the same file indexed twice (overlapping data directories)
                continue
            seen.add(path)
            ref = FrameRef(path, r.date_obs, float(r.exposure))
            found[(r.target, r.filter, int(r.binning))].append((r, ref))
    groups = []
    for (tgt, filt, binning), items in sorted(
        found.items(), key=lambda kv: tuple(str(x) for x in kv[0])
    ):
        items.sort(key=lambda it: (it[1].date_obs, it[1].path))
        meta = _meta(items[0][0])
        shape = (int(items[0][0].height), int(items[0][0].width))
        if 0 in shape:
            try:
                m = read_meta(items[0][1].path)
                shape = (int(m.height or 0), int(m.width or 0))
            except StackingError:
                pass  # the frame task reports it; the group is one tile
        groups.append(
            Group(
                target=tgt,
                filter=filt,
                binning=binning,
                frames=tuple(ref for _, ref in items),
                calibration=_calibration(data_dirs, meta),
                camera=meta.settings(),
                shape=shape,
            )
        )
    if not groups:
        what = ", ".join(
            f"{k} {v}"
            for k, v in (("target", target), ("filter", filter), ("since", since), ("until", until))
            if v is not None
        )
        where = ", ".join(str(d) for d in data_dirs)
        detail = f" ({what})" if what else ""
        raise StackingError(f"no light frames in the index of {where}{detail}")
    return groups
