"""The re-stack as one Dask task graph, run in-process or on any Dask cluster.

Per group (N frames in time order, T tiles, batches of B frames)::

    ref ──────────────┬──> frame_0 … frame_N-1      read → calibrate → stars → register → warp
    (first frame with │        │ (T band views each)
     enough stars)    │        └──> tile_i,t ──┐
                      │                        ├──> acc_t,b = acc_t,b-1 + tiles of batch b
                      │                        ┘        (the live stacker's accumulator)
                      └──> write <── final_t <── acc_t,last     assemble → FITS + seed 004 files

``acc_t,·`` is a chain over the frames in order: κσ rejection is incremental (a pixel's test
depends on the samples before it), so chaining in the live stacker's order is what makes the
result the live stacker's, bit for bit, whatever runs where. Tiles are bands of whole rows
(``tile_px`` pixels at most, ~1 Mpx by default) so the T chains of a group run in parallel
and no task ever holds more than one tile of B frames plus one tile's state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner.restack.output import write_group
from runner.restack.select import Group
from runner.restack.tasks import (
    GroupSpec,
    accumulate,
    find_reference,
    finish_tile,
    frame_report,
    process_frame,
    tile_of,
)
from runner.stacking.pipeline import StackSettings

DEFAULT_TILE_PX = 1 << 20  # pixels per tile (per channel): the accumulator state is ~12 MB
DEFAULT_BATCH = 8  # frames per accumulator task

Key = tuple[str, int] | tuple[str, int, int]


def tiling(shape: tuple[int, int], tile_px: int) -> tuple[int, int]:
    """(rows per tile, number of tiles) for a frame of ``shape``: bands of whole rows."""
    h, w = shape
    if h <= 0 or w <= 0:
        return max(1, h), 1
    rows = max(1, min(h, tile_px // w))
    return rows, -(-h // rows)


@dataclass(frozen=True)
class Plan:
    dsk: dict[Key, Any]
    groups: list[Group]
    reports: dict[Key, tuple[int, int]]  # report key → (group, frame)
    writes: list[Key]  # one per group, returning a GroupSummary
    in_process: bool = False  # built for the synchronous scheduler only (see build_plan)


def build_plan(
    groups: list[Group],
    settings: StackSettings,
    out_dir: str,
    *,
    tile_px: int = DEFAULT_TILE_PX,
    batch: int | None = None,
    in_process: bool = False,
    token: str | None = None,
) -> Plan:
    """The graph for ``groups``; ``token`` only names keys (results never depend on it).

    ``in_process``: for Dask's synchronous scheduler — accumulators are updated in place
    and fed one frame per task (``batch`` 1), so each warped frame is released as soon as it
    is added, as in the live stacker; on a cluster the default batch is 8 frames per task.
    Neither changes a bit of the result.
    """
    if batch is None:
        batch = 1 if in_process else DEFAULT_BATCH
    if tile_px < 1 or batch < 1:
        raise ValueError("tile_px and batch must be ≥ 1")
    tok = token or uuid.uuid4().hex[:8]

    def name(what: str) -> str:
        return f"restack-{tok}-{what}"

    dsk: dict[Key, Any] = {}
    reports: dict[Key, tuple[int, int]] = {}
    writes: list[Key] = []
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    for g, group in enumerate(groups):
        rows, tiles = tiling(group.shape, tile_px)
        spec = GroupSpec(
            group.stacking_id, settings, group.calibration, rows, tiles, not in_process
        )
        paths = [f.path for f in group.frames]
        ref: Key = (name("reference"), g)
        dsk[ref] = (find_reference, spec, paths)
        for i, path in enumerate(paths):
            frame: Key = (name("frame"), g, i)
            dsk[frame] = (process_frame, spec, i, path, ref)
            report: Key = (name("report"), g, i)
            dsk[report] = (frame_report, frame)
            reports[report] = (g, i)
            for t in range(tiles):
                dsk[(name(f"tile{t}"), g, i)] = (tile_of, frame, spec, t)
        finals: list[Key] = []
        for t in range(tiles):
            prev: Key | None = None
            for b, i0 in enumerate(range(0, len(paths), batch)):
                acc: Key = (name(f"acc{t}"), g, b)
                members = [(name(f"tile{t}"), g, i) for i in range(i0, min(i0 + batch, len(paths)))]
                dsk[acc] = (accumulate, prev, spec, members)
                prev = acc
            final: Key = (name("final"), g, t)
            dsk[final] = (finish_tile, prev)
            finals.append(final)
        write: Key = (name("write"), g)
        report_keys = [(name("report"), g, i) for i in range(len(paths))]
        dsk[write] = (write_group, out_dir, group, spec, ref, finals, report_keys, started)
        writes.append(write)
    return Plan(dsk, groups, reports, writes, in_process)
