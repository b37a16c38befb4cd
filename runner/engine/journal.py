"""The run journal: an append-only, fsync'd record of what completed.

Written only *after* the thing it records is durable (a frame after its file was renamed into
place), so a crash never leaves a frame counted but missing. ``--resume`` replays it: frames and
loop iterations already done are skipped, counters and trigger baselines restored.

Format: one JSON object per line. A line that does not parse (a crash mid-write leaves a torn
last line; a user may cut the file anywhere) is skipped on reading and every other line is
kept. Opening a journal to append first cuts a torn tail off, so the next entry starts on a
line of its own instead of being glued to the fragment (which made both unreadable).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.storage.durable import fsync_dir


def plan_digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:16]


@dataclass
class ResumeState:
    """What a previous, interrupted run completed."""

    run_id: str
    frames: dict[str, str] = field(default_factory=dict)  # frame key → file path
    intents: dict[str, str] = field(default_factory=dict)  # frame key → path being written
    lights: set[str] = field(default_factory=set)  # keys of the light frames
    #: frame key → what the frame is (type, target, filter), for the whole-night
    #: summary and for continuing a live stack
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: every path the journal ever named: numbering never hands one out again
    used_paths: set[str] = field(default_factory=set)
    #: target name → live-stack id, so a resumed night continues the same stack
    # (target, filter) → the live stack's id (a resumed night continues it)
    stacks: dict[tuple[str, str | None], str] = field(default_factory=dict)
    plan_digest: str | None = None
    started: str | None = None  # ISO time of the first entry
    unreadable_lines: int = 0
    iterations: set[str] = field(default_factory=set)  # loop iteration keys completed
    targets_done: set[str] = field(default_factory=set)
    trigger_state: dict[str, Any] | None = None
    finished: bool = False


class Journal:
    """Append-only journal of one run."""

    def __init__(self, path: Path, *, sync: bool = True) -> None:
        """``sync=False`` never fsyncs: a dry run's frames are not on disk, so there is
        nothing for a power cut to lose, and 2 fsyncs a frame made a loaded machine's
        48 h dry run wait on the disk for most of its time."""
        self.path = path
        self._sync = sync
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self.torn_bytes = terminate_torn_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if created and sync:
            fsync_dir(path.parent)  # the new file's name must survive a crash too

    def record(self, kind: str, *, durable: bool = True, **fields: Any) -> None:
        """Append an entry. ``durable=False`` skips the fsync: the entry survives a crash of
        the process (it is in the kernel's page cache) but maybe not a power cut — enough for
        write *intents*, whose loss can only leave an extra frame on disk, never lose one."""
        entry = {"type": kind, "at": datetime.now(UTC).isoformat(), **fields}
        line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()
        os.write(self._fd, line)
        if durable and self._sync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        return read_entries(path)[0]


def read_entries(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every entry that parses, and how many lines did not (torn or cut)."""
    entries: list[dict[str, Any]] = []
    bad = 0
    if not path.is_file():
        return entries, bad
    with path.open("rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                bad += 1
                continue
            if isinstance(entry, dict) and isinstance(entry.get("type"), str):
                entries.append(entry)
            else:
                bad += 1
    return entries, bad


def terminate_torn_tail(path: Path) -> int:
    """Cut an unfinished last line (no newline: the process died mid-write) off ``path``;
    returns the number of bytes removed. What was cut was never a whole entry."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with path.open("r+b") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        keep = 0
        pos = size
        while pos > 0:  # find the last newline, reading backwards in blocks
            step = min(4096, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = pos + i + 1
                break
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def resume_state(path: Path) -> ResumeState:
    entries, bad = read_entries(path)
    state = ResumeState(run_id=path.parent.name, unreadable_lines=bad)
    for e in entries:
        t = e.get("type")
        state.started = state.started or e.get("at")
        if t == "run_start":
            state.plan_digest = e.get("plan_digest") or state.plan_digest
        elif t == "writing":
            state.intents[e["key"]] = e["path"]
            state.used_paths.add(e["path"])
        elif t == "frame":
            state.frames[e["key"]] = e["path"]
            state.used_paths.add(e["path"])
            state.intents.pop(e["key"], None)
            if e.get("light", True):
                state.lights.add(e["key"])
            else:
                state.lights.discard(e["key"])
            state.details[e["key"]] = {
                "type": e.get("frame_type", "light" if e.get("light", True) else None),
                "target": e.get("target"), "filter": e.get("filter"),
            }
            state.trigger_state = e.get("triggers", state.trigger_state)
        elif t == "frame_lost":  # journalled, then gone from disk: taken again
            state.used_paths.add(e["path"])
            if state.frames.get(e["key"]) == e["path"]:
                del state.frames[e["key"]]
                state.lights.discard(e["key"])
                state.details.pop(e["key"], None)
        elif t == "iteration_done":
            state.iterations.add(e["key"])
        elif t == "target_done":
            state.targets_done.add(e["key"])
        elif t == "trigger_state":
            state.trigger_state = e["state"]
        elif t == "stack_start":
            state.stacks[(e["target"], e.get("filter"))] = e["stacking_id"]
        elif t == "run_end":
            state.finished = True
    return state


def frame_entry(
    key: str, path: str, *, frame_type: str, target: str | None, filter_name: str | None,
    **more: Any,
) -> dict[str, Any]:
    """The fields of a ``frame`` entry: one spelling for the executor and for adoption."""
    return {"key": key, "path": path, "light": frame_type == "light", "frame_type": frame_type,
            "target": target, "filter": filter_name, **more}
