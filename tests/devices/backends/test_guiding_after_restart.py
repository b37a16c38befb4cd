"""Issue 13: a guided night whose device server restarts mid-night. Before the next light
the night re-establishes pointing and guiding (PHD2 — here its simulator, reached over its
socket like a real PHD2 — reports guiding again after the restore), every light after the
restart is taken guided, the cooler's set point is back on the real server, and the events
say what was restored.

Real alpaca-simulators and indiserver, killed (SIGKILL, server and drivers) as frame 2
starts and started again on the same port ``DOWN_FOR`` s later."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits
from backend_rigs import build, equipment
from test_server_restart import DOWN_FOR, Server, named, rig_state, server  # noqa: F401

from runner.clock import ScaledClock
from runner.devices.interfaces import Camera
from runner.engine.run import Run, RunOptions, RunResult
from runner.guiding.sim import PHD2Simulator
from runner.plan.equipment import GuiderProfile
from runner.plan.models import Plan

SET_POINT = -8.0
FRAMES = 4
SPEED = 4.0

Timed = list[tuple[float, dict[str, Any]]]


def _plan() -> Plan:
    return Plan.model_validate({
        "version": 1,
        "name": "guided night, server restart",
        "site": {"latitude": 52.37, "longitude": 4.89, "timezone": "Europe/Amsterdam"},
        "startup": [{"cool": {"to": SET_POINT, "timeout": 900}}, {"guide": "start"}],
        "targets": [{
            "name": "NGC 188",
            "coordinates": {"ra": "00:48:26", "dec": "+85:14:42"},
            # enough retries (2, 4, 8 … s of engine time) to outlast the restart
            "on_error": {"retry": 8, "backoff": 2},
            "sequence": [{"slew": {}}, {"filter": "L"},
                         {"expose": {"count": FRAMES, "exposure": 4, "binning": 2}}],
        }],
        "shutdown": [],  # the rig is left as the night had it: the test reads it back
    })


async def _cooling_on_server(backend: str, address: str) -> tuple[float | None, float]:
    """The set point the server reports (Alpaca's SetCCDTemperature; INDI publishes none,
    so None there) and the sensor temperature, through a fresh adapter."""
    cam = build(backend, equipment(backend, address))["camera"]
    assert isinstance(cam, Camera)
    await cam.connect()
    try:
        set_point = await cam.set_point() if backend == "alpaca" else None
        return set_point, await cam.temperature()
    finally:
        await cam.disconnect()


async def _guided_night(backend: str, srv: Server, tmp_path: Path, phd2_at_kill: str
                        ) -> tuple[RunResult, Timed, list[tuple[str, str]]]:
    """The night, with PHD2 (its simulator) as a separate guider the test can ask: the
    events (real time) and what PHD2 said its state was at each exposure start.

    ``phd2_at_kill``: "keeps guiding" (PHD2 guides through its own camera and mount), or
    "stops guiding" (PHD2 pulse-guides through the server's mount, and stops capturing when
    that goes — as PHD2 does when its equipment disconnects)."""
    phd2 = PHD2Simulator(clock=ScaledClock(speed=SPEED), port=0, exposure_s=1.0,
                         calibration_steps=2, save_dir=tmp_path / "phd2")
    await phd2.start()
    events: Timed = []
    phd2_at_start: list[tuple[str, str]] = []

    def listen(e: dict[str, Any]) -> None:
        events.append((time.monotonic(), e))
        if e["event"] != "exposure_start":
            return
        phd2_at_start.append((str(e["key"]), phd2.app_state))
        if str(e["key"]).endswith("#f1") and srv.killed_at is None:
            srv.kill_and_restart_later()
            if phd2_at_kill == "stops guiding":
                phd2.core.rpc_stop_capture(None)  # what its stop_capture request does

    guider = GuiderProfile(backend="phd2", host="127.0.0.1", port=phd2.port, exposure=1.0)
    # no safety monitor: one on the killed server is unreadable while it is down (another
    # test's business)
    eq = equipment(backend, srv.address).model_copy(update={"safety": None, "guider": guider})
    opts = RunOptions(data_dir=tmp_path / "data", speed=SPEED, progress="none")
    try:
        result = await Run(_plan(), eq, opts, listeners=[listen]).execute()
    finally:
        await phd2.stop()
    assert srv.killed_at is not None, "the server was never killed: frame 2 never started"
    return result, events, phd2_at_start


# each server once, each PHD2 behaviour once: the four combinations cost 4 min of the suite
@pytest.mark.parametrize(("server", "phd2_at_kill"),
                         [("alpaca", "keeps guiding"), ("indi", "stops guiding")],
                         indirect=["server"])
def test_after_a_server_restart_guiding_is_re_established_before_the_next_light(
    server: tuple[str, Server], tmp_path: Path, phd2_at_kill: str,  # noqa: F811 (the fixture)
) -> None:
    backend, srv = server
    result, events, phd2_at_start = asyncio.run(
        _guided_night(backend, srv, tmp_path, phd2_at_kill))
    assert result.outcome == "completed", result.summary["errors"]
    assert srv.killed_at is not None and srv.restarting_at is not None
    assert srv.up_again_at is not None and srv.up_again_at - srv.killed_at >= DOWN_FOR * 0.9

    # the restore, after the server was up again, re-established pointing, the set point and
    # guiding — and said so, naming why
    restored = [(t, e) for t, e in named(events, "restored") if e.get("after") == "reconnect"]
    assert restored, [e for _, e in events if e["event"] in ("rig_check", "reconnected")]
    t_restored, last = restored[-1]
    assert t_restored > srv.restarting_at
    assert {"pointing", "temperature", "guiding"} <= set(last["what"]), last
    assert last["reasons"], last  # what the check found (the cooler off, the mount parked …)
    assert "mount" in last["devices"] and "camera" in last["devices"], last

    # guiding was stopped for the re-slew and started again, in that order, before the light
    t_kill = srv.killed_at
    after_kill = [(t, e) for t, e in events if t > t_kill]
    states = [e["state"] for _, e in after_kill if e["event"] == "guiding"]
    assert states[-2:] == ["stopped", "guiding"], states
    t_guiding = max(t for t, e in after_kill if e["event"] == "guiding")
    first_light = min(t for t, e in named(events, "exposure_start") if t > srv.restarting_at)
    assert srv.restarting_at < t_guiding <= t_restored < first_light, \
        "guiding was not restarted by the restore, before the next light"

    # PHD2 itself was guiding at every light's start, those after the restart included (a
    # retried light starts only once the rig is restored)
    assert len(phd2_at_start) >= FRAMES
    assert all(state == "Guiding" for _, state in phd2_at_start), phd2_at_start

    # every light is whole, on disk once, and the ones after the restart were taken guided
    lights = sorted((tmp_path / "data").rglob("*.fits"))
    assert len(lights) == FRAMES, [p.name for p in lights]
    assert not list((tmp_path / "data").rglob("*.part"))
    for path in lights:
        with fits.open(path) as hdul:
            h = hdul[0].header
            assert h["SET-TEMP"] == SET_POINT, (path.name, h.get("SET-TEMP"))
            assert "GUIDERMS" in h and h["GUIDFRMS"] > 0, (path.name, dict(h))
    frames_after = [e for t, e in named(events, "frame") if t > srv.restarting_at]
    assert frames_after and all(e["guiding_rms"] is not None for e in frames_after)

    # and the real server has the night's set point back, the mount unparked and tracking
    set_point, ccd_temp = asyncio.run(_cooling_on_server(backend, srv.address))
    if backend == "alpaca":
        assert set_point == SET_POINT
    assert abs(ccd_temp - SET_POINT) <= 1.0, ccd_temp  # the server cools to it again
    state = asyncio.run(rig_state(backend, srv.address))
    assert state["cooler_on"] and not state["parked"] and state["tracking"], state
