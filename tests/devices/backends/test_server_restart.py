"""A device server that restarts during the night: the engine notices, reconnects every device
of that server, restores what the night set (cooler and set point, filter, focus, mount
unparked, tracking and pointing at the target) before the next light — or stops imaging the
target and says so. Real alpaca-simulators and indiserver, killed and restarted mid-run.

Each test starts its own server on its own port and directory, so the tests run in parallel.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from astropy.io import fits
from backend_rigs import build, equipment, free_port, start_alpaca, start_indi, stop

from runner.devices.interfaces import Camera, Focuser, Mount
from runner.engine.run import Run, RunOptions, RunResult
from runner.plan.models import Plan

SET_POINT = -10.0
FOCUS = 31_000
RA_DEG, DEC_DEG = 12.108, 85.245  # NGC 188, circumpolar at the site
FRAMES = 6
#: Real seconds between killing the server and starting it again (the issue's scenario).
DOWN_FOR = 10.0


@dataclass
class Server:
    """One server process that a test can kill and restart (same port, same directory)."""

    start: Callable[[Path, int], subprocess.Popen[bytes]]
    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    killed_at: float | None = None  # time.monotonic()
    restarting_at: float | None = None
    up_again_at: float | None = None
    _thread: threading.Thread | None = None
    _over: threading.Event = field(default_factory=threading.Event)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self) -> None:
        self.proc = self.start(self.directory, self.port)

    def kill_and_restart_later(self, *, before: Callable[[], None] | None = None) -> None:
        """SIGKILL the whole server (indiserver and its drivers), start it again DOWN_FOR s
        later in a thread (the engine keeps running meanwhile)."""
        assert self.proc is not None
        import os

        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.killed_at = time.monotonic()

        def later() -> None:
            time.sleep(DOWN_FOR)
            if before is not None:
                before()
            self.restarting_at = time.monotonic()
            self.run()
            self.up_again_at = time.monotonic()
            # the server gets SIGTERM when the thread that started it ends (PR_SET_PDEATHSIG
            # is per thread): this one lives until the test is over
            self._over.wait(600)

        self._thread = threading.Thread(target=later, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            while self._thread.is_alive() and self.up_again_at is None:
                self._thread.join(1)  # still restarting: let it finish, then stop it
        if self.proc is not None:
            stop(self.proc)
        self._over.set()


@pytest.fixture(params=["alpaca", "indi"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Server]]:
    backend: str = request.param
    directory = tmp_path / backend
    directory.mkdir()
    srv = Server(start_alpaca if backend == "alpaca" else start_indi, directory)
    srv.run()
    try:
        yield backend, srv
    finally:
        srv.close()


def plan(**target_extra: Any) -> Plan:
    return Plan.model_validate(
        {
            "version": 1,
            "name": "server restart",
            "site": {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"},
            "startup": [{"cool": {"to": SET_POINT, "timeout": 900}}],
            "targets": [
                {
                    "name": "NGC 188",
                    "coordinates": {"ra": "00:48:26", "dec": "+85:14:42"},
                    # enough retries (2, 4, 8 … s of engine time) to outlast the restart
                    "on_error": {"retry": 8, "backoff": 2},
                    "sequence": [
                        {"slew": {}},
                        {"filter": "L"},
                        {"focus": {"position": FOCUS}},
                        {"expose": {"count": FRAMES, "exposure": 4, "binning": 2}},
                    ],
                    **target_extra,
                }
            ],
            "shutdown": [],  # the rig is left as the night had it: the test inspects it
        }
    )


def run_with_restart(
    backend: str, srv: Server, tmp_path: Path, *, before_restart: Callable[[], None] | None = None
) -> tuple[RunResult, list[tuple[float, dict[str, Any]]]]:
    """Run the plan at speed 4; kill the server as frame 2 starts, restart it 10 s later."""
    events: list[tuple[float, dict[str, Any]]] = []

    def listen(e: dict[str, Any]) -> None:
        events.append((time.monotonic(), e))
        if (e["event"] == "exposure_start" and str(e["key"]).endswith("#f1")
                and srv.killed_at is None):
            srv.kill_and_restart_later(before=before_restart)

    # no safety monitor: one on the killed server is unreadable while it is down, and unknown
    # weather ends the night (Run._watch_safety) — a different test's business
    eq = equipment(backend, srv.address).model_copy(update={"safety": None})
    opts = RunOptions(data_dir=tmp_path / "data", speed=4.0, progress="none")
    result = asyncio.run(Run(plan(), eq, opts, listeners=[listen]).execute())
    assert srv.killed_at is not None, "the server was never killed: frame 2 never started"
    return result, events


Timed = list[tuple[float, dict[str, Any]]]


def named(events: Timed, name: str) -> Timed:
    return [(t, e) for t, e in events if e["event"] == name]


async def rig_state(backend: str, address: str) -> dict[str, Any]:
    """What the devices report after the night, through fresh adapters."""
    devices = build(backend, equipment(backend, address))
    cam, foc, mount = devices["camera"], devices["focuser"], devices["mount"]
    assert isinstance(cam, Camera) and isinstance(foc, Focuser) and isinstance(mount, Mount)
    for d in (cam, foc, mount):
        await d.connect()
    try:
        return {
            "cooler_on": await cam.cooler_on(),
            "focus": await foc.position(),
            "parked": await mount.is_parked(),
            "tracking": await mount.tracking(),
            "coordinates": await mount.coordinates(),
        }
    finally:
        for d in (cam, foc, mount):
            await d.disconnect()


def test_after_a_server_restart_every_light_is_taken_in_the_state_the_night_set(
    server: tuple[str, Server], tmp_path: Path
) -> None:
    backend, srv = server
    result, events = run_with_restart(backend, srv, tmp_path)

    assert result.outcome == "completed", result.summary["errors"]
    lights = sorted((tmp_path / "data").rglob("*.fits"))
    assert len(lights) == FRAMES, [p.name for p in lights]
    for path in lights:  # frame 1 before the kill, 2–6 after the restart and restore
        with fits.open(path) as hdul:
            h = hdul[0].header
            assert h["SET-TEMP"] == SET_POINT, (path.name, h.get("SET-TEMP"))
            assert abs(h["CCD-TEMP"] - SET_POINT) <= 1.0, (path.name, h["CCD-TEMP"])
            assert h["FILTER"] == "L"

    # every device of the server was reconnected — not only the camera whose call failed —
    # and none was reported reconnected while the server was down
    assert srv.restarting_at is not None
    reconnected = named(events, "reconnected")
    roles = {e["role"] for _, e in reconnected}
    assert roles == {"camera", "filter_wheel", "focuser", "mount"}, reconnected
    assert all(t >= srv.restarting_at for t, _ in reconnected), "reconnected while it was down"

    # what the night needs was restored before the next light, and said so
    restored = named(events, "restored")
    assert restored, "no restored event"
    t_restored, last = restored[-1]
    assert {"pointing", "focus", "temperature"} <= set(last["what"]), last
    after = [e for t, e in named(events, "exposure_start") if t > srv.killed_at]
    assert after, "no light after the restart"
    first_after = next(t for t, e in named(events, "exposure_start") if t > srv.restarting_at)
    assert first_after > t_restored, "a light started before the rig was restored"

    state = asyncio.run(rig_state(backend, srv.address))
    assert state["cooler_on"] and state["focus"] == FOCUS
    assert not state["parked"] and state["tracking"], state
    ra, dec = state["coordinates"]
    assert abs(dec - DEC_DEG) < 1.0 and abs(((ra - RA_DEG + 180) % 360) - 180) < 10.0, state


def test_a_rig_that_cannot_be_restored_stops_the_target_and_says_so(tmp_path: Path) -> None:
    """The Alpaca server comes back with a mount that cannot unpark: no light is taken parked;
    the target ends with a restore_failed event and an error naming the cause."""
    directory = tmp_path / "alpaca"
    directory.mkdir()
    srv = Server(start_alpaca, directory)

    def mount_cannot_unpark() -> None:
        config_path = directory / "alpaca-simulators.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["devices"]["telescope"][0]["canunpark"] = False
        config_path.write_text(yaml.safe_dump(config))

    try:
        srv.run()
        result, events = run_with_restart("alpaca", srv, tmp_path,
                                          before_restart=mount_cannot_unpark)
    finally:
        srv.close()
    failed = named(events, "restore_failed")
    assert failed, "no restore_failed event"
    ends = [e for _, e in named(events, "target_end")]
    assert ends and ends[-1]["status"] == "skipped", ends
    assert "could not restore the rig" in ends[-1]["reason"]
    assert "unpark" in ends[-1]["reason"]
    assert any("could not restore the rig" in m for m in result.summary["errors"])
    assert len(list((tmp_path / "data").rglob("*.fits"))) == 1  # only the frame before the kill
