"""A group's outputs, written by a task on a worker (the output directory is shared).

The seed 004 layout the live stacker writes — ``stacked/<id>_final.{jpeg,tiff,json}`` with
:func:`runner.stacking.output.write_result` — plus ``stacked/<id>_final.fits`` (float32,
linear, NaN where no frame contributed) and ``debug/<id>/log.txt`` (a ``start`` line, then
one ``frame`` line per frame with its status, reason, transform, offset and sky σ).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from runner.restack.select import Group
from runner.restack.tasks import FrameReport, GroupSpec, Reference, TileResult, assemble
from runner.stacking.fitsio import write_fits_atomic
from runner.stacking.output import atomic_write_bytes, write_result
from runner.stacking.stretch import StretchParams


@dataclass(frozen=True)
class GroupSummary:
    stacking_id: str
    label: str
    frames: int
    stacked: int
    unregistered: int
    failed: int
    rejected_samples: int
    integration_s: float
    skipped: tuple[tuple[str, str, str], ...]  # (path, status, reason)
    outputs: tuple[str, ...]  # fits, jpeg, tiff, json (empty when nothing was stacked)


def _header(group: Group, stacked: int, integration: float) -> fits.Header:
    h = fits.Header()
    h["OBJECT"] = group.target or ""
    h["FILTER"] = group.filter or ""
    h["XBINNING"] = group.binning
    h["YBINNING"] = group.binning
    h["NCOMBINE"] = (stacked, "frames in the stack")
    h["TOTEXP"] = (integration, "[s] total integration")
    h["CREATOR"] = "nightrunner restack"
    return h


def write_group(
    out_dir: str,
    group: Group,
    spec: GroupSpec,
    reference: Reference,
    tiles: list[TileResult],
    reports: list[FrameReport],
    started: str,
) -> GroupSummary:
    out = Path(out_dir)
    stacked = [r for r in reports if r.stacked]
    integration = float(sum(r.exposure for r in stacked))
    rejected = sum(t.rejected for t in tiles)
    skipped = tuple((r.path, r.status, r.reason or "") for r in reports if not r.stacked)
    sid = spec.stacking_id
    log_lines: list[dict[str, Any]] = [
        {
            "event": "start",
            "stacking_id": sid,
            "settings": spec.settings.as_dict(),
            "calibration": spec.calibration.ids(),
            "calibration_dir": spec.calibration.data_dir,
            "reference": reference.index,
            "tiles": spec.tiles,
            "tile_rows": spec.tile_rows,
        },
        *({"event": "frame", **r.as_dict()} for r in reports),
    ]
    debug = out / "debug" / sid / "log.txt"
    atomic_write_bytes(debug, "".join(json.dumps(e) + "\n" for e in log_lines).encode())
    stack = assemble(tiles) if stacked else None
    outputs: tuple[str, ...] = ()
    if stack is not None:
        stacked_dir = out / "stacked"
        base = f"{sid}_final"
        fits_path = stacked_dir / f"{base}.fits"
        data = np.moveaxis(stack, -1, 0) if stack.ndim == 3 else stack
        write_fits_atomic(fits_path, np.ascontiguousarray(data), _header(group, len(stacked),
                                                                         integration))
        meta: dict[str, Any] = {
            "stacking_id": sid,
            "path": f"{base}.jpeg",
            "camera": None,
            "settings": group.camera,
            "stacking": {
                **spec.settings.as_dict(),
                **StretchParams().as_dict(),
                "calibration": spec.calibration.ids(),
                "tiles": spec.tiles,
                "source": "restack",
            },
            "date": started,
            "date_finish": datetime.now().astimezone().isoformat(timespec="seconds"),
            "total_frames": len(reports),
            "stacked_frames": len(stacked),
            "dropped_frames": len(reports) - len(stacked),
            "integration_s": integration,
            "rejected_samples": rejected,
            "final": True,
        }
        paths = write_result(
            stacked_dir, base, stack, meta, StretchParams(), flip=spec.settings.flip
        )
        outputs = (str(fits_path), str(paths.jpeg), str(paths.tiff), str(paths.json))
    return GroupSummary(
        stacking_id=sid,
        label=group.label,
        frames=len(reports),
        stacked=len(stacked),
        unregistered=sum(r.status == "unregistered" for r in reports),
        failed=sum(r.status == "failed" for r in reports),
        rejected_samples=rejected,
        integration_s=integration,
        skipped=skipped,
        outputs=outputs,
    )
