"""The run journal: an append-only, fsync'd record of what completed.

Written only *after* the thing it records is durable (a frame after its file was renamed into
place), so a crash never leaves a frame counted but missing. ``--resume`` replays it: frames and
loop iterations already done are skipped, counters and trigger baselines restored.

Format: one JSON object per line. A torn last line (crash mid-write) is ignored on reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def plan_digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:16]


@dataclass
class ResumeState:
    """What a previous, interrupted run completed."""

    run_id: str
    frames: dict[str, str] = field(default_factory=dict)  # frame key → file path
    intents: dict[str, str] = field(default_factory=dict)  # frame key → path being written
    lights: set[str] = field(default_factory=set)  # keys of the light frames
    iterations: set[str] = field(default_factory=set)  # loop iteration keys completed
    targets_done: set[str] = field(default_factory=set)
    trigger_state: dict[str, Any] | None = None
    finished: bool = False


class Journal:
    """Append-only journal of one run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(self, kind: str, *, durable: bool = True, **fields: Any) -> None:
        """Append an entry. ``durable=False`` skips the fsync: the entry survives a crash of
        the process (it is in the kernel's page cache) but maybe not a power cut — enough for
        write *intents*, whose loss can only leave an extra frame on disk, never lose one."""
        entry = {"type": kind, "at": datetime.now(UTC).isoformat(), **fields}
        line = (json.dumps(entry, separators=(",", ":"), default=str) + "\n").encode()
        os.write(self._fd, line)
        if durable:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        if not path.is_file():
            return entries
        with path.open("rb") as f:
            for raw in f:
                try:
                    entries.append(json.loads(raw))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    break  # a torn final line: everything before it is intact
        return entries


def resume_state(path: Path) -> ResumeState:
    entries = Journal.read(path)
    state = ResumeState(run_id=path.parent.name)
    for e in entries:
        t = e.get("type")
        if t == "writing":
            state.intents[e["key"]] = e["path"]
        elif t == "frame":
            state.frames[e["key"]] = e["path"]
            state.intents.pop(e["key"], None)
            if e.get("light", True):
                state.lights.add(e["key"])
            state.trigger_state = e.get("triggers", state.trigger_state)
        elif t == "iteration_done":
            state.iterations.add(e["key"])
        elif t == "target_done":
            state.targets_done.add(e["key"])
        elif t == "trigger_state":
            state.trigger_state = e["state"]
        elif t == "run_end":
            state.finished = True
    return state


def remove_orphans(state: ResumeState) -> list[str]:
    """Delete files that were renamed into place but never journalled (a crash between the
    two): the frame is retaken, so keeping the file would duplicate it."""
    removed = []
    for path in state.intents.values():
        p = Path(path)
        if p.is_file():
            p.unlink()
            removed.append(path)
    state.intents.clear()
    return removed
