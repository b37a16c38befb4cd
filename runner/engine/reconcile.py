"""Before a resumed night goes on: make the journal agree with the frames on disk.

The rule is that a good frame is never deleted and never taken twice:

- a journalled frame whose file is gone (deleted by hand, lost to a disk) is taken again; the
  journal records ``frame_lost`` and the run says which file it was;
- a whole frame on disk that the journal does not list — a crash between the rename and the
  journal entry, a torn or cut journal — is *kept*: the file names its run and frame
  (``NRRUN``/``NRFRAME`` cards), so it is journalled now ("adopted") and not taken again;
- a writer's temporary file (``.<name>.<hex>.part``, from a kill mid-write) is not a frame
  and is removed.

Only files modified since the run began are read (their headers only), so a data directory
with years of frames costs a walk of ``stat`` calls.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from runner.engine.journal import Journal, ResumeState, frame_entry, resume_state
from runner.storage.recover import FrameFile, read_frame_file, written_since

_MTIME_SLACK = 2.0  # s: file systems with coarse timestamps


@dataclass
class Reconciled:
    lost: list[str] = field(default_factory=list)  # journalled, missing: retaken
    adopted: list[str] = field(default_factory=list)  # on disk, not journalled: kept
    temps_removed: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # warnings for the event log


def reconcile(state: ResumeState, journal: Journal, data_dir: Path) -> Reconciled:
    out = Reconciled()
    if state.unreadable_lines:
        out.messages.append(
            f"journal {journal.path}: {state.unreadable_lines} unreadable line(s) skipped "
            "(torn or cut); frames on disk are checked against it")
    for done_key, done_path in list(state.frames.items()):
        if Path(done_path).is_file():
            continue
        journal.record("frame_lost", key=done_key, path=done_path)
        del state.frames[done_key]
        state.lights.discard(done_key)
        state.details.pop(done_key, None)
        out.lost.append(done_path)
        out.messages.append(
            f"frame {done_path} is in the journal but not on disk: taking it again")
    candidates: list[tuple[Path, str | None]] = [
        (Path(p), key) for key, p in state.intents.items()
    ]
    since = _started(state, journal.path.parent)
    if since is not None:
        frames, temps = written_since(data_dir.resolve(), since - _MTIME_SLACK)
        candidates += [(p, None) for p in frames]
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
                out.temps_removed.append(str(tmp))
    journalled = {str(Path(p)) for p in state.frames.values()}
    seen: set[str] = set()
    for path, intent_key in candidates:
        if str(path) in journalled or str(path) in seen or not path.is_file():
            continue
        seen.add(str(path))
        ff = read_frame_file(path)
        if ff is None:
            continue  # not a whole FITS file: not ours to keep, not ours to delete
        key = _key_of(ff, intent_key, state.run_id)
        if key is None or key in state.frames:
            continue
        _adopt(state, journal, key, ff)
        out.adopted.append(str(path))
        out.messages.append(f"frame {path} was on disk but not in the journal: kept "
                            "(not taken again)")
    state.intents.clear()
    return out


def _key_of(ff: FrameFile, intent_key: str | None, run_id: str) -> str | None:
    """The frame this file is, if it belongs to this run."""
    if ff.key is not None:
        return ff.key if ff.run_id == run_id else None
    # a file at a path this run announced it was writing, from before the header named it
    return intent_key


def _adopt(state: ResumeState, journal: Journal, key: str, ff: FrameFile) -> None:
    entry = frame_entry(key, str(ff.path), frame_type=ff.frame_type, target=ff.target,
                        filter_name=ff.filter, adopted=True)
    journal.record("frame", **entry)
    state.frames[key] = str(ff.path)
    state.used_paths.add(str(ff.path))
    if ff.frame_type == "light":
        state.lights.add(key)
    state.details[key] = {"type": ff.frame_type, "target": ff.target, "filter": ff.filter}


def _started(state: ResumeState, run_dir: Path) -> float | None:
    """When the run began: the earliest of its journal's first entry, ``run.json`` and its
    first event (a journal cut to nothing still leaves the frames on disk to find)."""
    candidates: list[object] = [state.started]
    with contextlib.suppress(OSError, ValueError):
        info = json.loads((run_dir / "run.json").read_text())
        candidates.append(info.get("started") if isinstance(info, dict) else None)
    with contextlib.suppress(OSError, ValueError, AttributeError), \
            (run_dir / "events.jsonl").open() as f:
        candidates.append(json.loads(f.readline()).get("time"))
    times = []
    for value in candidates:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                times.append(datetime.fromisoformat(value).timestamp())
    return min(times, default=None)


def journalled_frames(data_dir: Path) -> list[tuple[str, str | None]]:
    """(path, run id) of every frame every run in ``data_dir`` journalled and kept: what the
    image index is rebuilt from when it missed rows."""
    out: list[tuple[str, str | None]] = []
    runs = data_dir / "runs"
    if not runs.is_dir():
        return out
    for run_dir in sorted(p for p in runs.iterdir() if p.is_dir()):
        state = resume_state(run_dir / "journal.jsonl")
        out += [(path, run_dir.name) for path in state.frames.values()]
    return out
