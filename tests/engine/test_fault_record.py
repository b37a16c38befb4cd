"""Faults against the night's record: a torn or cut journal, a locked image index, a lost
`run.json`, a journalled frame deleted from disk, an aborted and resumed night. Whatever
happens, every planned frame ends on disk exactly once, nothing good is deleted, and the
morning's summary, report, index and live stack describe the whole night."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runner.engine.journal import Journal
from tests.engine.conftest import CLUSTER, Rig, journalled_frames, names

NR = str(Path(sys.executable).parent / "nightrunner")
PLANNED = sorted(f"NGC 188_{f}_20s_{i:04d}.fits" for f in ("L", "R") for i in range(1, 11))


def _plan(rig: Rig, *, count: int = 10, stack: bool = False) -> Path:
    stack_line = "\n    stack: {align: stars}" if stack else ""
    return rig.write(
        "targets:\n"
        f"  - name: NGC 188\n    coordinates: {CLUSTER}{stack_line}\n"
        "    sequence:\n"
        f"      - filter: L\n      - expose: {{count: {count}, exposure: 20}}\n"
        f"      - filter: R\n      - expose: {{count: {count}, exposure: 20}}\n")


def _cmd(rig: Rig, plan: Path, speed: int = 40) -> list[str]:
    return [NR, "run", str(plan), "--data-dir", str(rig.data), "--speed", str(speed),
            "--progress", "none"]


def _journal(rig: Rig) -> Path:
    return next(rig.data.glob("runs/*/journal.jsonl"))


def _journalled(rig: Rig) -> int:
    journals = list(rig.data.glob("runs/*/journal.jsonl"))
    return sum(1 for e in Journal.read(journals[0]) if e["type"] == "frame") if journals else 0


def _kill_when(proc: subprocess.Popen[bytes], ready: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before the kill"
        time.sleep(0.01)
    assert ready(), "the run did not get far enough"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _finish(cmd: list[str]) -> dict[str, Any]:
    done = subprocess.run([*cmd, "--resume", "--json"], capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _events(rig: Rig) -> list[dict[str, Any]]:
    path = next(rig.data.glob("runs/*/events.jsonl"))
    return [json.loads(x) for x in path.read_text().splitlines()]


def _one_path_per_frame(rig: Rig) -> dict[str, str]:
    """The journal's final word: frame key → path, no path for two frames."""
    return journalled_frames([_journal(rig)])


def test_a_cut_journal_and_two_kills_still_give_exactly_the_planned_frames(rig: Rig) -> None:
    plan = _plan(rig)
    cmd = _cmd(rig, plan)
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(first, lambda: _journalled(rig) >= 8)
    # cut the journal in the middle of the 5th frame's line: frames 5.. are on disk but the
    # journal no longer knows them, and its last line is torn
    journal = _journal(rig)
    text = journal.read_bytes()
    lines = text.splitlines(keepends=True)
    fifth = [i for i, x in enumerate(lines) if b'"type":"frame"' in x][4]
    journal.write_bytes(b"".join(lines[:fifth]) + lines[fifth][: len(lines[fifth]) // 2])
    second = subprocess.Popen([*cmd, "--resume"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    _kill_when(second, lambda: len(rig.fits()) >= 14)
    summary = _finish(cmd)
    assert sorted(p.name for p in rig.fits()) == PLANNED
    assert len(_one_path_per_frame(rig)) == 20
    assert summary["frames"]["light"] == 20  # the whole night, over three segments
    assert not list(rig.data.rglob("*.part"))
    events = _events(rig)
    kept = [p for e in names(events, "resume") for p in e["adopted"]]
    assert kept, "the frames the cut journal forgot were kept, not taken again"
    assert any("unreadable line" in e.get("message", "") for e in names(events, "warning"))


def test_a_locked_index_delays_the_index_never_the_night(rig: Rig) -> None:
    plan = _plan(rig, count=15)
    cmd = _cmd(rig, plan, speed=100)
    proc = subprocess.Popen([*cmd, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    index = rig.data / "index.sqlite"
    deadline = time.monotonic() + 60
    while (_journalled(rig) < 2 or not index.exists()) and time.monotonic() < deadline:
        time.sleep(0.01)
    holder = sqlite3.connect(index, isolation_level=None, timeout=10)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the index for a long time
    locked_at = _journalled(rig)
    # held past the old 5 s busy timeout, while frames go on being taken
    deadline = time.monotonic() + 60
    while _journalled(rig) < locked_at + 8 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    held_until = time.monotonic() + 6
    while proc.poll() is None and time.monotonic() < held_until:
        time.sleep(0.05)
    holder.execute("ROLLBACK")
    holder.close()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert json.loads(out)["frames"]["light"] == 30
    assert len(rig.fits()) == 30
    warnings = [e["message"] for e in names(_events(rig), "warning")]
    assert any(str(index) in m and "locked" in m for m in warnings), warnings
    listed = subprocess.run([NR, "images", "--data-dir", str(rig.data), "--json"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert len(json.loads(listed.stdout)) == 30  # caught up after the lock went


def test_a_deleted_frame_is_retaken_under_a_new_name_and_an_empty_run_json_is_survived(
    rig: Rig,
) -> None:
    plan = _plan(rig)
    cmd = _cmd(rig, plan)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: _journalled(rig) >= 6)
    run_dir = _journal(rig).parent
    (run_dir / "run.json").write_bytes(b"")  # what a crash before the disk had it leaves
    gone = next(p for p in rig.fits() if p.name.endswith("L_20s_0003.fits"))
    gone.unlink()
    summary = _finish(cmd)
    assert summary["frames"]["light"] == 20
    assert len(list(rig.data.glob("runs/*"))) == 1  # the same run resumed, not a new one
    on_disk = sorted(p.name for p in rig.fits())
    assert "NGC 188_L_20s_0003.fits" not in on_disk  # the name the journal used is not reused
    # frames are written behind the exposure loop: which name the retake gets depends on
    # what was in flight at the kill (a name the journal has used is never reused)
    assert len(on_disk) == 20 and sum("_L_" in n for n in on_disk) == 10
    assert {n for n in PLANNED if n != "NGC 188_L_20s_0003.fits"} - set(on_disk) <= {
        "NGC 188_L_20s_0007.fits", "NGC 188_L_20s_0008.fits"}
    assert len(_one_path_per_frame(rig)) == 20
    warnings = [e["message"] for e in names(_events(rig), "warning")]
    assert any(str(gone) in m and "taking it again" in m for m in warnings), warnings
    listed = subprocess.run([NR, "images", "--data-dir", str(rig.data), "--json"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert sorted(Path(r["path"]).name for r in json.loads(listed.stdout)) == on_disk


def test_an_aborted_then_resumed_night_is_reported_whole_with_one_live_stack(
    rig: Rig,
) -> None:
    plan = _plan(rig, count=3, stack=True)
    run = rig.make_run(plan)

    def abort_after_two(event: dict[str, Any]) -> None:
        # during the third L exposure: the two before it are on disk or being written
        if event["event"] == "exposure_start" and event.get("filter") == "L" \
                and event["key"].endswith("#f2"):
            run.abort("test abort")

    run.listeners.append(abort_after_two)
    import asyncio

    first = asyncio.run(run.execute())
    assert first.outcome == "aborted"
    report = (first.run_dir / "report.md").read_text()
    assert "- status: interrupted (test abort)" in report
    assert "- frames: L 2" in report
    second = rig.run(plan, resume=True)
    assert second.outcome == "completed" and second.run_dir == first.run_dir
    assert second.summary["frames"]["light"] == 6
    assert second.summary["per_target"] == {"NGC 188": {"light:L": 3, "light:R": 3}}
    report = (second.run_dir / "report.md").read_text()
    assert "- frames: L 3, R 3" in report and "- status: completed" in report
    starts = names(rig.events(second), "stack_start")
    # one stack per filter; the L stack of the first segment is continued, not begun anew
    assert [e["stacking_id"] for e in starts] == ["NGC_188_L", "NGC_188_L", "NGC_188_R"], starts
    resumed_l = starts[1]
    assert resumed_l["continued"] is True and resumed_l["replayed"] == 2
    assert starts[2]["continued"] is False
    stacked = rig.data / "stacked"
    assert not list(stacked.glob("NGC_188_L_2*"))
    for f in ("L", "R"):
        final = json.loads((stacked / f"NGC_188_{f}_final.json").read_text())
        assert final["total_frames"] == 3, (f, final)
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in stacked.iterdir()}
    frame_mode = rig.fits()[0].stat().st_mode & 0o777
    assert frame_mode == 0o666 & ~umask
    assert set(modes.values()) == {frame_mode}, modes


def test_every_light_has_its_hfr_in_the_record_though_no_trigger_asks_for_it(rig: Rig) -> None:
    """The plan has no trigger that needs an HFR: each light still gets one, in its FITS card,
    its frame event, the image index and the report."""
    from astropy.io import fits

    from runner.storage.index import ImageIndex

    result = rig.run(_plan(rig, count=2), speed=100)
    assert result.outcome == "completed"
    lights = rig.fits()
    assert len(lights) == 4
    for path in lights:
        assert isinstance(fits.getheader(path)["HFR"], float), path.name
    frames = names(rig.events(result), "frame")
    assert len(frames) == 4 and all(isinstance(e["hfr"], float) for e in frames), frames
    with ImageIndex(rig.data) as index:
        rows = index.query()
    assert len(rows) == 4 and all(r.hfr is not None for r in rows), rows
    assert "- HFR (px): median" in (result.run_dir / "report.md").read_text()


def test_a_disk_slower_than_the_camera_holds_the_next_exposure_and_says_so(
    rig: Rig, monkeypatch: Any
) -> None:
    """Frames are written behind the exposure loop; when the frames waiting for a slow disk
    exceed the memory budget, the next exposure waits (a write_wait event) — and every frame
    still ends on disk, journalled only once its file is in place."""
    import runner.engine.exec_core as exec_core
    import runner.engine.framestore as framestore
    from runner.engine.frame_writer import FrameWriter

    one_frame = 320 * 240 * 2
    monkeypatch.setattr(exec_core, "FrameWriter",
                        lambda bus: FrameWriter(bus, budget_bytes=2 * one_frame))
    write = framestore.write_fits
    journalled_before_file: list[str] = []

    def slow_write(path: Any, *args: Any) -> Any:
        time.sleep(0.3)  # 30 s of clock time at 100×: longer than a 20 s light
        journal = list(rig.data.glob("runs/*/journal.jsonl"))
        if journal and any(e["type"] == "frame" and e["path"] == str(path)
                           for e in Journal.read(journal[0])):
            journalled_before_file.append(Path(path).name)
        return write(path, *args)

    monkeypatch.setattr(framestore, "write_fits", slow_write)
    result = rig.run(_plan(rig, count=4), speed=100)
    assert result.outcome == "completed", result.summary["errors"]
    assert len(rig.fits()) == 8 and not list(rig.data.rglob("*.part"))
    events = rig.events(result)
    waits = names(events, "write_wait")
    assert waits and all(e["frames"] <= 3 for e in waits), waits
    kinds = [e["event"] for e in events]
    # the second light began before the first one's file was announced: writes are behind
    assert kinds.index("frame") > [i for i, k in enumerate(kinds) if k == "exposure_start"][1]
    assert not journalled_before_file
    assert len(_one_path_per_frame(rig)) == 8
