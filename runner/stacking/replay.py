"""Re-create a stack offline from ``debug/<id>/log.txt`` — OpenLiveStacker's debug promise.

The log's ``start`` line records the stacking settings and the calibration masters; each
``frame`` line records the source (or, with ``save_data``, the saved copy), the transform that
registered it, the background offset and the sky noise used for rejection. Replaying applies
exactly those, without searching for stars again, so the result equals the live stack (the
same code calibrates, warps and accumulates). Changing ``kappa``/``reject`` on replay re-stacks
the same registered frames with other rejection settings.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationSet
from runner.stacking.fitsio import read_frame
from runner.stacking.pipeline import Stacker, StackSettings

F32 = npt.NDArray[np.float32]


def read_log(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise StackingError(f"cannot read {p}: {exc}") from exc
    events = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise StackingError(f"{p}:{n}: not a JSON line: {exc}") from exc
    return events


def _resolve(debug_dir: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else debug_dir / p


def replay(
    log_path: str | Path,
    *,
    reject: bool | None = None,
    kappa: float | None = None,
) -> tuple[F32, Stacker]:
    """The stack the log describes, and the :class:`Stacker` that rebuilt it."""
    log_path = Path(log_path)
    debug_dir = log_path.parent
    events = read_log(log_path)
    start = next((e for e in events if e.get("event") == "start"), None)
    if start is None:
        raise StackingError(f"{log_path}: no start event (nothing was stacked)")
    stacking = dict(start.get("stacking", {}))
    settings = StackSettings(
        align=bool(stacking.get("align", True)),
        reject=bool(stacking.get("reject", True)),
        kappa=float(stacking.get("kappa", 3.0)),
        field_rotation=bool(stacking.get("field_rotation", False)),
        flip=bool(stacking.get("image_flip", False)),
    )
    if reject is not None:
        settings = replace(settings, reject=reject)
    if kappa is not None:
        settings = replace(settings, kappa=kappa)
    masters = start.get("masters", {})
    cal = CalibrationSet()
    for key, attr in (("bias", "bias"), ("darks", "dark"), ("flats", "flat")):
        if key in masters:
            data, _ = read_frame(_resolve(debug_dir, masters[key]))
            setattr(cal, attr, np.asarray(data, dtype=np.float32))
    cal.dark_exposure = start.get("dark_exposure")
    stacker = Stacker(settings, cal, bayer=start.get("bayer"))
    for e in events:
        if e.get("event") != "frame" or e.get("status") not in ("stacked", "reference"):
            continue
        src = e.get("saved") or e.get("source")
        if src is None:
            raise StackingError(
                f"frame {e.get('index')} was submitted as an array without save_data; "
                "it cannot be replayed"
            )
        raw, meta = read_frame(_resolve(debug_dir, src))
        if e.get("exposure") is not None:
            meta = replace(meta, exposure=float(e["exposure"]))
        stacker.add_registered(raw, meta, e["matrix"], list(e.get("offset", [])), e.get("noise"))
    if stacker.stacked == 0:
        raise StackingError(f"{log_path}: no stacked frame to replay")
    return stacker.result(), stacker
