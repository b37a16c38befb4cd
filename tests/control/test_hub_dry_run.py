"""A dry run asked of `nightrunner serve` is the CLI's: `run_plan {dry_run: true}` runs the plan
on nominal devices in virtual time and answers what `nightrunner estimate` predicts, frame for
frame and to the tenth of a second, moving none of the hub's hardware."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.control.cpkit import free_port, write_rig
from tests.control.test_control_cli import ENV, NR, _nr, _rpc


def _estimated(plan: Path) -> dict[str, Any]:
    done = _nr("estimate", str(plan), "--date", "2026-11-25", "--json")
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def _lights(estimate: dict[str, Any]) -> Counter[str]:
    """Light frames by target and filter, as the summary's ``per_target`` counts them."""
    return Counter({f"{t['name']} light:{f['filter'] or '-'}": f["count"]
                    for t in estimate["targets"] for f in t["frames"] if f["type"] == "light"})


def test_the_hubs_dry_run_is_the_cli_estimate(tmp_path: Path) -> None:
    plan = write_rig(tmp_path / "plans", count=3)
    predicted = _estimated(plan)
    http, tcp = free_port(), free_port()
    hub = subprocess.Popen(
        [NR, "serve", "--equipment", str(tmp_path / "plans" / "eq.yaml"),
         "--plans", str(tmp_path / "plans"),
         "--data-dir", str(tmp_path / "data"), "--rpc", f"127.0.0.1:{http}",
         "--tcp", f"127.0.0.1:{tcp}", "--speed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http}", timeout=120) as h:
            deadline = time.monotonic() + 30
            while True:
                try:
                    _rpc(h, "status")
                    break
                except httpx.ConnectError:
                    assert hub.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
            focus = _rpc(h, "focuser_get_absolute_position")
            began = time.monotonic()
            answer = _rpc(h, "run_plan", {"path": str(plan), "dry_run": True,
                                          "start": predicted["start"]})
            took = time.monotonic() - began
            # a night of tens of minutes, in virtual time: not on the hub's 1x clock
            assert took < 60, took
            assert answer["dry_run"] is True and answer["plan"] == predicted["plan"]
            summary = answer["summary"]
            assert summary["outcome"] == "completed" and summary["dry_run"] is True
            done = Counter({f"{t} {k}": n for t, kinds in summary["per_target"].items()
                            for k, n in kinds.items()})
            assert done == _lights(predicted)
            assert abs(summary["clock_seconds"] - predicted["duration_s"]) <= 0.05
            # nothing of the hub's rig moved, no night ran on it, no frame was written
            assert _rpc(h, "focuser_get_absolute_position") == focus
            assert _rpc(h, "status")["running"] is False
            assert not list((tmp_path / "data").rglob("*.fits"))
            assert not (tmp_path / "data" / "runs").exists()
        hub.send_signal(signal.SIGTERM)
        _out, err = hub.communicate(timeout=30)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.communicate()
    assert hub.returncode == 0, err
