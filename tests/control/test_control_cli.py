"""From a second terminal: `nightrunner status` and `nightrunner abort` reach the night that
`nightrunner run` serves; exit code 3 when nothing listens; an open address needs a token;
`nightrunner serve` holds the rig and runs the plans it is sent, one night at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.control.cpkit import LineSocket, free_port, write_rig

NR = str(Path(sys.executable).parent / "nightrunner")
ENV = {k: v for k, v in os.environ.items() if k not in ("NIGHTRUNNER_TOKEN", "NIGHTRUNNER_URL")}


def _nr(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NR, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, check=False)


def test_status_and_abort_from_a_second_terminal(project_root: Path, tmp_path: Path) -> None:
    http, tcp = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    night = subprocess.Popen(
        [NR, "run", "plans/demo.yaml", "--speed", "60", "--rpc", f"127.0.0.1:{http}",
         "--tcp", f"127.0.0.1:{tcp}", "--data-dir", str(tmp_path / "data"), "--json"],
        cwd=project_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 60
        while (status := _nr("status", "--json", "--url", url)).returncode != 0:
            assert status.returncode == 3, status.stderr  # not listening yet
            assert night.poll() is None and time.monotonic() < deadline, night.communicate()
            time.sleep(0.2)
        result = json.loads(status.stdout)
        assert result["plan"] == "Nightrunner demo on the simulators"
        assert result["running"] is True and result["speed"] == 60.0
        panel = _nr("status", "--url", url)
        assert panel.returncode == 0
        assert panel.stdout.startswith("Nightrunner demo on the simulators — ")
        # the same process serves the seed 000 TCP protocol
        with LineSocket(tcp, timeout=10) as s:
            assert s.read_event()["Event"] == "Connection"
            assert "binning" in s.request("get_camera_info")["result"]

        aborted = _nr("abort", "--url", url)
        assert aborted.returncode == 0, aborted.stderr
        assert aborted.stdout.strip() == "abort requested: shutdown started"
        out, err = night.communicate(timeout=60)
    finally:
        if night.poll() is None:
            night.kill()
            night.communicate()
    assert night.returncode == 1, err  # an aborted night, as the run contract says
    summary = json.loads(out)
    assert summary["outcome"] == "aborted" and summary["frames"]["light"] < 12  # of 12
    assert "Traceback" not in err
    (log,) = (tmp_path / "data" / "runs").glob("*/events.jsonl")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.index("abort") < kinds.index("phase", kinds.index("abort"))
    assert {"shutdown"} <= {e.get("phase") for e in events if e["event"] == "phase"}
    # the night is over and its control plane with it
    gone = _nr("status", "--url", url)
    assert gone.returncode == 3 and "nothing is listening" in gone.stderr
    assert _nr("abort", "--url", url).returncode == 3


def test_an_open_address_without_a_token_is_refused(project_root: Path, tmp_path: Path) -> None:
    done = _nr("run", "plans/demo.yaml", "--rpc", f"0.0.0.0:{free_port()}",
               "--tcp", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: refusing to serve http on 0.0.0.0")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "runs").exists()  # no night was started


def _rpc(client: httpx.Client, method: str, params: dict[str, Any] | None = None) -> Any:
    reply = client.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                      "params": params or {}}).json()
    return reply.get("result", reply.get("error"))


def _night_events(ws: ClientConnection) -> list[dict[str, Any]]:
    """Pushed events up to this night's run_end."""
    events: list[dict[str, Any]] = []
    while not events or events[-1]["event"] != "run_end":
        msg = json.loads(ws.recv(timeout=30))
        if msg.get("method") == "event":
            events.append(msg["params"])
    return events


def test_serve_runs_the_plans_it_is_sent_one_night_at_a_time(tmp_path: Path) -> None:
    plan = write_rig(tmp_path / "plans", count=2)  # four light frames a night
    http, tcp = free_port(), free_port()
    hub = subprocess.Popen(
        [NR, "serve", "--equipment", str(tmp_path / "plans" / "eq.yaml"),
         "--plans", str(tmp_path / "plans"),
         "--data-dir", str(tmp_path / "data"), "--rpc", f"127.0.0.1:{http}",
         "--tcp", f"127.0.0.1:{tcp}", "--speed", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http}", timeout=30) as h:
            deadline = time.monotonic() + 30
            while True:
                try:
                    idle = _rpc(h, "status")
                    break
                except httpx.ConnectError:
                    assert hub.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
            assert idle["phase"] == "idle" and idle["running"] is False
            # the hub holds the rig between nights: the seed 000 methods answer
            assert _rpc(h, "get_camera_info")["framesize"] == [320, 240]
            with connect(f"ws://127.0.0.1:{http}/ws") as ws:
                for _night in range(2):
                    assert _rpc(h, "run_plan", {"path": str(plan)}) == \
                        {"started": True, "plan": "control test night"}
                    again = _rpc(h, "run_plan", {"path": str(plan)})
                    assert again["message"] == "a night is already running on this hub"
                    pushed = _night_events(ws)
                    assert pushed[-1]["outcome"] == "completed"
                    assert sum(e["event"] == "frame" for e in pushed) == 4
                    # each night's events are numbered from 1, as get_events reads them
                    logged = _rpc(h, "get_events", {"since": 0})["events"]
                    assert [e["seq"] for e in pushed] == list(range(1, len(pushed) + 1))
                    assert logged[:len(pushed)] == pushed
                    deadline = time.monotonic() + 10
                    while _rpc(h, "status")["running"]:
                        assert time.monotonic() < deadline
                        time.sleep(0.05)
            assert len(list((tmp_path / "data" / "runs").iterdir())) == 2
        hub.send_signal(signal.SIGTERM)
        out, err = hub.communicate(timeout=30)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.communicate()
    assert hub.returncode == 0, err
    assert f"nightrunner serve: http://127.0.0.1:{http}" in out


def test_serve_takes_the_signals_run_takes(tmp_path: Path) -> None:
    """SIGUSR1/2 are harmless to a hub running a night (they used to kill it, and the night
    with it, without a shutdown); SIGQUIT ends the night in its safe shutdown, as for `run`."""
    plan = write_rig(tmp_path / "plans")  # a night that outlasts the test
    http, tcp = free_port(), free_port()
    hub = subprocess.Popen(
        [NR, "serve", "--equipment", str(tmp_path / "plans" / "eq.yaml"),
         "--plans", str(tmp_path / "plans"),
         "--data-dir", str(tmp_path / "data"), "--rpc", f"127.0.0.1:{http}",
         "--tcp", f"127.0.0.1:{tcp}", "--speed", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http}", timeout=30) as h:
            deadline = time.monotonic() + 30
            while True:
                try:
                    _rpc(h, "status")
                    break
                except httpx.ConnectError:
                    assert hub.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
            assert _rpc(h, "run_plan", {"path": str(plan)})["started"] is True
            deadline = time.monotonic() + 60
            while not list((tmp_path / "data").rglob("*.fits")):
                assert hub.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            hub.send_signal(signal.SIGUSR1)
            hub.send_signal(signal.SIGUSR2)
            time.sleep(0.5)
            assert hub.poll() is None, hub.communicate()
            assert _rpc(h, "status")["running"] is True
        hub.send_signal(signal.SIGQUIT)
        _, err = hub.communicate(timeout=60)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.communicate()
    assert hub.returncode == 0, err
    (log,) = (tmp_path / "data").glob("runs/*/events.jsonl")
    events = [json.loads(x) for x in log.read_text().splitlines()]
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    for name in ("SIGUSR1", "SIGUSR2"):
        assert f"signal {name} ignored (the hub goes on)" in warnings
    assert any(e.get("phase") == "shutdown" for e in events)
    assert events[-1]["event"] == "run_end" and events[-1]["outcome"] == "aborted"
    aborts = [e["reason"] for e in events if e["event"] == "abort"]
    assert aborts == ["signal SIGQUIT: the hub is stopping"], aborts


def test_watch_prints_the_night_in_site_time(project_root: Path, tmp_path: Path) -> None:
    """`watch` gives each event's engine time in the site's zone, as `run`'s console does
    (it printed UTC: an hour off for the demo's Amsterdam)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    http, tcp = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    night = subprocess.Popen(
        [NR, "run", "plans/demo.yaml", "--speed", "60", "--rpc", f"127.0.0.1:{http}",
         "--tcp", f"127.0.0.1:{tcp}", "--data-dir", str(tmp_path / "data"),
         "--progress", "none"],
        cwd=project_root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=ENV)
    watch: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 60
        while _nr("status", "--url", url).returncode != 0:
            assert night.poll() is None and time.monotonic() < deadline, night.communicate()
            time.sleep(0.2)
        watch = subprocess.Popen([NR, "watch", "--url", url], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=ENV)
        assert watch.stdout is not None
        lines = [watch.stdout.readline() for _ in range(3)]
        assert _nr("abort", "--url", url).returncode == 0
        rest, _ = watch.communicate(timeout=60)
        night.communicate(timeout=60)
    finally:
        for p in (night, watch):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
    (log,) = (tmp_path / "data" / "runs").glob("*/events.jsonl")
    events = [json.loads(x) for x in log.read_text().splitlines()]
    amsterdam = ZoneInfo("Europe/Amsterdam")
    for line in [*lines, *rest.splitlines()[:5]]:
        hms, kind = line.split()[:2]
        at_site = {datetime.fromisoformat(e["clock"]).astimezone(amsterdam).strftime("%H:%M:%S")
                   for e in events if e["event"] == kind}
        assert hms in at_site, (line, sorted(at_site)[:5])
