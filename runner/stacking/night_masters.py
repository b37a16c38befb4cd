"""Calibration masters built during the night, and the lights they apply to.

A plan's ``calibration: {darks: …, master: true}`` set reaches :meth:`NightMasters.add` frame by
frame as it is taken. The set is complete when something else begins — a set of another kind,
a target, a light, the end of the run — and is then combined in a worker thread with the same
code as ``nightrunner stack --darks`` (``CalibrationLibrary.build_master``: σ-clipped mean,
κ = 3, no registration), written to ``calibration/<id>.fits`` and indexed. Frames are grouped
as the offline command groups them: darks by exposure, flats by filter; biases are combined
first so that the night's flats are bias-subtracted.

**Matching** (:meth:`NightMasters.for_light`), for a stack's first light:

* dark: gain, offset, binning and size equal, sensor temperature within 2 °C; the same
  exposure (±1 %) is used as is, another one is **scaled** by exposure
  (``bias + (dark − bias)·t_light/t_dark``) only when a bias master was built too;
* flat: the light's filter (and gain, offset, binning, size);
* bias: gain, offset, binning and size.

Only masters built in this run are chosen automatically (a library's older masters may come
from another camera set-up); a plan's ``stack: {calibration: [ids]}`` overrides per kind.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from runner.errors import StackingError
from runner.stacking.calibrate import CalibrationLibrary, Kind, Master
from runner.stacking.fitsio import FrameMeta, read_meta

Emit = Callable[..., Any]

#: how long (real seconds) a frame announced before it was written may take to appear
WRITE_WAIT = 300.0


class _Subset(CalibrationLibrary):
    """The library seen through a set of ids (tonight's masters)."""

    def __init__(self, library: CalibrationLibrary, ids: set[str]) -> None:
        super().__init__(library.root.parent)
        self.ids = ids

    def masters(self) -> list[Master]:
        return [m for m in super().masters() if m.id in self.ids]


def _written(path: Path, deadline: float) -> bool:
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def build_masters(library: CalibrationLibrary, kind: Kind, paths: list[Path],
                  *, bias: str | None = None) -> list[Master]:
    """Combine one set (grouped like the offline command) into masters; blocking."""
    deadline = time.monotonic() + WRITE_WAIT
    present = [p for p in paths if _written(p, deadline)]
    if not present:
        raise StackingError(f"none of the {len(paths)} {kind} frames was written")
    groups: dict[Any, list[Path]] = defaultdict(list)
    for p in present:
        meta = read_meta(p)
        key = meta.exposure if kind == "dark" else meta.filter if kind == "flat" else None
        groups[key].append(p)
    return [library.build_master(kind, group, bias=bias if kind == "flat" else None)
            for group in groups.values()]


class NightMasters:
    def __init__(self, library: CalibrationLibrary, emit: Emit | None = None) -> None:
        self.library = library
        self.emit = emit
        self.built: list[Master] = []
        self._kind: Kind | None = None
        self._pending: list[Path] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, path: Path, kind: str) -> None:
        if kind not in ("dark", "flat", "bias"):
            raise StackingError(f"not a calibration frame kind: {kind!r}")
        if kind != self._kind:
            self.close_set()
        self._kind = kind  # type: ignore[assignment]
        self._pending.append(path)

    @property
    def building(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def close_set(self) -> None:
        """The frames announced so far are a complete set: combine them (in the background)."""
        if not self._pending or self._kind is None:
            return
        kind, paths = self._kind, self._pending
        self._kind, self._pending = None, []
        previous = list(self._tasks)
        self._tasks.append(asyncio.ensure_future(self._build(kind, paths, previous)))

    async def _build(self, kind: Kind, paths: list[Path], previous: list[asyncio.Task[None]]
                     ) -> None:
        for t in previous:  # one after the other: a flat set uses the bias built before it
            await asyncio.shield(t)
        bias = next((m.id for m in reversed(self.built) if m.kind == "bias"), None)
        try:
            masters = await asyncio.to_thread(build_masters, self.library, kind, paths,
                                              bias=bias)
        except StackingError as exc:
            self._say("warning", message=f"calibration master ({kind}) not built: {exc}")
            return
        for m in masters:
            self.built.append(m)
            self._say("calibration_master", id=m.id, kind=m.kind, frames=m.frames,
                      path=str(self.library.root / m.path), settings=m.settings)

    def _say(self, event: str, **fields: Any) -> None:
        if self.emit is not None:
            self.emit(event, **fields)

    async def wait(self) -> None:
        """Until every set announced so far is combined."""
        for t in list(self._tasks):
            await asyncio.shield(t)

    async def close(self) -> None:
        self.close_set()
        await self.wait()

    def for_light(self, meta: FrameMeta, *, skip: Collection[str] = ()) -> dict[str, Any]:
        """``LiveStacker.start`` arguments for the masters of tonight that fit ``meta``."""
        if not self.built:
            return {}
        lib = _Subset(self.library, {m.id for m in self.built})
        out: dict[str, Any] = {}
        bias = lib.find_bias(meta) if "bias" not in skip else None
        if bias is not None:
            out["bias"] = bias.id
        if "dark" not in skip:
            found = lib.find_dark(meta, temp_tolerance=2.0)
            if found is not None and (found[1] == 1.0 or bias is not None):
                out["darks"] = found[0].id
        if "flat" not in skip:
            flat = lib.find_flat(meta)
            if flat is not None and (meta.filter is None or flat.get("filter") == meta.filter):
                out["flats"] = flat.id
        return out


def plan_builds_masters(plan: Any) -> bool:
    """Whether a plan (any pydantic model) has a ``calibration: {..., master: true}`` step
    anywhere — startup, targets, loops, shutdown: the run then needs the stacking link even
    when no target stacks."""
    from pydantic import BaseModel

    from runner.plan.models import CalibrationArgs

    def walk(node: Any) -> bool:
        if isinstance(node, CalibrationArgs):
            return bool(node.master)
        if isinstance(node, BaseModel):
            return any(walk(getattr(node, name)) for name in type(node).model_fields)
        if isinstance(node, list | tuple):
            return any(walk(x) for x in node)
        if isinstance(node, dict):
            return any(walk(x) for x in node.values())
        return False

    return walk(plan)
