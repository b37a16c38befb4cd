"""A running night seen and steered from outside: who owns the rig (pause to borrow it, resume
to give it back), a remote abort that always ends in the safe shutdown, and the event stream
every subscriber gets in order (with what a reconnecting client missed)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runner.control.hub import Hub
from runner.control.night import run_served
from runner.control.server import ControlPlane
from runner.devices.sim.camera import SimCamera
from tests.control.cpkit import (
    LOOPBACK,
    HttpRpc,
    LineSocket,
    Served,
    TcpRpc,
    WsRpc,
    make_run,
    wait_for,
)

MOVES: list[tuple[str, dict[str, Any], str]] = [
    ("take_image", {"exposure": 2}, "camera"),
    ("set_target_temperature", {"target_temperature": 5}, "camera"),
    ("set_cooler_state", {"cooler_state": False}, "camera"),
    ("focuser_move_absolute_position", {"absolute_position": 24000}, "focuser"),
    ("focuser_stop", {}, "focuser"),
]


def _lights(status: dict[str, Any]) -> int:
    return int(status["frames"]["light"])


async def _refused_while_imaging(h: HttpRpc) -> None:
    for method, params, device in MOVES:
        reply = await h.call(method, params)
        assert "result" not in reply, (method, reply)
        assert reply["error"]["code"] == -1
        assert reply["error"]["message"] == \
            f"{method}: the night owns the {device}; pause it first"


async def test_the_night_owns_the_rig_until_it_is_paused(night: Served) -> None:
    async with HttpRpc(night.url) as h, TcpRpc(night.tcp_port) as tcp:
        status = await h.result("status")
        assert status["running"] is True and status["paused"] is False
        assert status["plan"] == "control test night" and status["target"] == "NGC 188"
        assert status["state"].startswith("imaging") and status["filter"] == "L"
        assert status["frames"]["planned_light"] == 2000
        assert status["run_id"] == night.run.run_dir.name  # type: ignore[union-attr]
        # read-only calls always answer, on any transport
        assert (await tcp.result("get_camera_info"))["framesize"] == [320, 240]
        assert (await h.result("get_target_temperature")) == {"target_temperature": 12.0}
        await _refused_while_imaging(h)
        refused = await tcp.call("take_image", {"exposure": 1})
        assert "pause it first" in refused["error"]["message"]

        assert await h.result("pause") == {"pause_requested": True}
        paused = await wait_for(lambda: _paused(h), what="the night to pause")
        lights = _lights(paused)
        # the rig is lent: exposures, the cooler and the focuser are the client's now
        assert await tcp.result("take_image", {"exposure": 2}) == {"complete": True}
        assert await tcp.result("save_image", {"filename": "borrowed.fits"}) == \
            {"complete": True, "filename": "borrowed.fits"}
        assert (night.data / "borrowed.fits").is_file()
        assert await h.result("set_target_temperature", {"target_temperature": 5}) == \
            {"complete": True}
        assert await h.result("focuser_move_absolute_position",
                              {"absolute_position": 24000}) == {"complete": True}
        await asyncio.sleep(0.2)  # a night that ignored its pause would take frames now
        still = await h.result("status")
        assert still["paused"] is True and _lights(still) == lights

        assert await h.result("resume") == {"resumed": True}
        await wait_for(lambda: _lights_at_least(h, lights + 3), what="more frames")
        # the plan's set point and focus were put back before its next exposure
        restored = [e for e in night.events_file() if e["event"] == "restored"]
        assert len(restored) == 1 and set(restored[0]["what"]) >= {"temperature", "focus"}
        assert (await h.result("get_target_temperature")) == {"target_temperature": 12.0}
        assert (await h.result("focuser_get_absolute_position")) == \
            {"absolute_position": 25000}
        await _refused_while_imaging(h)


async def test_status_says_when_the_target_and_the_night_will_end(night: Served) -> None:
    async with HttpRpc(night.url) as h:
        status = await wait_for(lambda: _with_eta(h), what="an ETA in status")
        clock = datetime.fromisoformat(status["clock"])
        target_end = datetime.fromisoformat(status["eta_target"])
        night_end = datetime.fromisoformat(status["eta_night"])
        # 2000 lights of this plan are hours away, and the shutdown comes after the target
        assert clock < target_end <= night_end
        assert (target_end - clock).total_seconds() > 3600


async def _with_eta(h: HttpRpc) -> dict[str, Any] | None:
    status = await h.result("status")
    return status if status.get("eta_night") else None


async def _paused(h: HttpRpc) -> dict[str, Any] | None:
    status = await h.result("status")
    return status if status["paused"] else None


async def _lights_at_least(h: HttpRpc, n: int) -> bool:
    return _lights(await h.result("status")) >= n


async def test_a_remote_abort_ends_the_night_through_its_shutdown(night: Served) -> None:
    async with HttpRpc(night.url) as h:
        await wait_for(lambda: _lights_at_least(h, 1), what="a first frame")
        assert await h.result("abort") == {"aborting": True, "done": False}
        assert await h.result("abort") == {"aborting": True, "done": False}  # idempotent
        done = await h.result("abort", {"wait": True, "reason": "clouds"})
        assert done == {"aborting": True, "done": True, "outcome": "aborted"}
    assert night.task is not None
    result = await night.task
    assert result.outcome == "aborted" and result.summary["outcome"] == "aborted"
    events = night.events_file()
    kinds = [e["event"] for e in events]
    aborts = [e for e in events if e["event"] == "abort"]
    assert len(aborts) == 1 and aborts[0]["reason"] == "abort requested over the control plane"
    shutdown = kinds.index("phase", kinds.index("abort"))
    assert events[shutdown]["phase"] == "shutdown"
    warm = [e for e in events[shutdown:] if e["event"] == "step" and e["kind"] == "warm"]
    assert len(warm) == 1
    # the warm-up began within a second of the abort (real time)
    t_abort = datetime.fromisoformat(aborts[0]["time"])
    assert (datetime.fromisoformat(warm[0]["time"]) - t_abort).total_seconds() <= 1.0
    assert events[-1]["event"] == "run_end" and events[-1]["outcome"] == "aborted"


async def test_an_abort_while_the_night_sets_up_stops_it_before_any_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    connect = SimCamera.connect

    async def slow_connect(camera: SimCamera) -> None:  # a camera slow to answer at dusk
        await asyncio.sleep(0.5)
        await connect(camera)

    monkeypatch.setattr(SimCamera, "connect", slow_connect)
    run = make_run(tmp_path)
    plane = ControlPlane(Hub(tmp_path / "data"), http=(LOOPBACK, 0), tcp=(LOOPBACK, 0))
    task = asyncio.create_task(run_served(run, plane))
    url = await wait_for(plane.url, what="the control plane")
    async with HttpRpc(url) as h:
        # one batch: what the night is doing at the instant the abort arrives
        replies = await h.send(json.dumps([
            {"jsonrpc": "2.0", "id": "s", "method": "status"},
            {"jsonrpc": "2.0", "id": "a", "method": "abort"},
        ]))
    by_id = {r["id"]: r["result"] for r in replies}
    assert by_id["s"]["phase"] == "starting" and by_id["a"]["aborting"] is True
    async with asyncio.timeout(10):
        result = await task
    assert result.outcome == "aborted" and result.summary["frames"]["light"] == 0
    served = Served(plane.hub, plane, tmp_path / "data", run)
    kinds = [e["event"] for e in served.events_file()]
    assert "frame" not in kinds and "target_start" not in kinds
    assert {"phase": "shutdown"} in [{"phase": e.get("phase")} for e in served.events_file()
                                     if e["event"] == "phase"]


def _tcp_frames(port: int, n: int) -> list[dict[str, Any]]:
    with LineSocket(port) as s:
        assert s.read_event()["Event"] == "Connection"
        while sum(e["Event"] == "frame" for e in s.events) < n:
            s.read_event()
        return s.events[1:]


def _consecutive(part: list[str], whole: list[str]) -> bool:
    return any(whole[i:i + len(part)] == part for i in range(len(whole) - len(part) + 1))


async def test_subscribers_get_every_event_in_order_and_can_catch_up(night: Served) -> None:
    tcp_reader = asyncio.create_task(asyncio.to_thread(_tcp_frames, night.tcp_port, 4))
    async with WsRpc(night.ws_url) as ws:
        await ws.wait_events(lambda evs: sum(e["event"] == "frame" for e in evs) >= 4)
        seen = list(ws.events)
    tcp_events = await tcp_reader
    log = night.events_file()
    # the WebSocket subscriber got every event from when it joined, each one as logged
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for e in seen:
        assert {k: v for k, v in e.items() if k != "seq"} == log[e["seq"] - 1]
    frames = [e for e in seen if e["event"] == "frame"]
    assert all(f["path"].endswith(".fits") and f["type"] == "light" for f in frames)
    # the TCP client got them as seed 000 events: {"Event": "frame", ...}, in order
    tcp_frames = [e for e in tcp_events if e["Event"] == "frame"]
    assert len(tcp_frames) >= 4
    tcp_seqs = [e["seq"] for e in tcp_events]
    assert tcp_seqs == sorted(tcp_seqs) and len(set(tcp_seqs)) == len(tcp_seqs)
    # no event line carries an "id": the seed's clients would take it for a reply
    assert all("id" not in e for e in tcp_events)
    steps = [e for e in tcp_events if e["Event"] == "step"]
    assert steps and all(e["step_id"].startswith("T0/") for e in steps)
    logged_keys = [e["key"] for e in log if e["event"] == "frame"]
    assert _consecutive([f["key"] for f in tcp_frames], logged_keys)
    assert _consecutive([f["key"] for f in frames], logged_keys)

    # a client that went away asks for what it missed since the last event it saw
    last = seqs[-1]
    async with HttpRpc(night.url) as h:
        lights = _lights(await h.result("status"))
        await wait_for(lambda: _lights_at_least(h, lights + 2), what="frames while away")
        missed = await h.result("get_events", {"since": last})
    events = missed["events"]
    assert events[0]["seq"] == last + 1 and missed["next"] == events[-1]["seq"]
    assert [e["seq"] for e in events] == list(range(last + 1, last + 1 + len(events)))
    assert sum(e["event"] == "frame" for e in events) >= 2
    assert [{k: v for k, v in e.items() if k != "seq"} for e in events] == \
        night.events_file()[last:last + len(events)]


async def test_skip_step_discards_the_exposure_and_skip_target_ends_the_target() -> None:
    """`skip step` ends the step running now (its exposure aborted, no frame written) and the
    night goes on with the next step; `skip target` then leaves the target for the shutdown."""
    import tempfile

    from tests.control.cpkit import serve_night

    with tempfile.TemporaryDirectory() as tmp:
        async with serve_night(Path(tmp), exposure=600, count=5) as night, \
                HttpRpc(night.url) as h:
            assert night.run is not None
            await wait_for(lambda: _lights_at_least(h, 1), what="a first frame")
            status = await wait_for(lambda: _exposing(h), what="an exposure in progress")
            skipped_key = status["exposure"]["key"]
            # frame k of the step's n (each repeat is two exposures)
            assert status["exposure"]["of"] == 2 and status["exposure"]["frame"] in (1, 2)
            assert await h.result("skip", {"what": "step"}) == {"skip_requested": "step"}
            await wait_for(lambda: _exposing(h, not_key=skipped_key),
                           what="the next step's exposure")
            bad = await h.call("skip", {"what": "sideways"})
            assert bad["error"]["code"] == -32602
            assert await h.result("skip", {"what": "target"}) == {"skip_requested": "target"}
            assert night.task is not None
            result = await night.task
        assert result.outcome == "completed"
        events = night.events_file()
        kinds = [e["event"] for e in events]
        (skipped,) = [e for e in events if e["event"] == "step_skipped"]
        assert skipped["kind"] == "expose" and skipped_key.startswith(skipped["id"])
        framed = {e["key"] for e in events if e["event"] == "frame"}
        assert skipped_key not in framed
        assert len(list((Path(tmp) / "data").rglob("*.fits"))) == len(framed)
        assert [e["status"] for e in events if e["event"] == "target_end"] == ["skipped"]
        assert "phase" in kinds[kinds.index("target_end"):]


async def _exposing(h: HttpRpc, not_key: str | None = None) -> dict[str, Any] | None:
    status = await h.result("status")
    exposure = status.get("exposure")
    if exposure and exposure.get("key") != not_key:
        return status
    return None


async def test_status_gives_the_mount_altitude_the_warnings_and_lost_events(
    night: Served,
) -> None:
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    from runner.sky.offline import configure_offline

    assert night.run is not None and night.run.bus is not None
    async with HttpRpc(night.url) as h:
        status = await wait_for(lambda: _with_mount(h), what="the mount in status")
        mount = status["rig"]["mount"]
        configure_offline()
        site = night.run.plan.site
        where = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg)
        expected = SkyCoord(mount["ra"] * u.deg, mount["dec"] * u.deg).transform_to(
            AltAz(obstime=Time(datetime.fromisoformat(status["clock"])), location=where)).alt
        assert abs(mount["alt"] - expected.deg) < 0.5, (mount, expected.deg)

        assert status["step"] == {"id": "T0/seq[1]/steps[0]", "kind": "expose",
                                  "phase": "imaging"}, status["step"]

        night.run.bus.emit("warning", message="dew on the corrector")
        status = await h.result("status")
        assert status["warnings"][-1] == "dew on the corrector"
        assert status["warning_count"] >= 1

        # a subscriber that never reads loses its oldest events, counted; nobody waits
        assert status["events_dropped"] == 0
        with night.hub.events.subscribe():
            for n in range(1100):
                night.hub.events({"event": "tick", "n": n})
            status = await h.result("status")
        assert status["events_dropped"] >= 100 and status["running"] is True


async def _with_mount(h: HttpRpc) -> dict[str, Any] | None:
    status = await h.result("status")
    mount = status["rig"].get("mount")
    return status if mount and mount.get("ra") is not None else None


async def test_resume_without_a_pause_and_pause_in_the_shutdown_are_refused(
    night: Served,
) -> None:
    """Both used to answer as if done (`resumed`, `pause_requested`), so `nightrunner resume`
    exited 0 for a night that was never paused."""
    async with HttpRpc(night.url) as h:
        refused = await h.call("resume")
        assert refused["error"] == {"code": -1,
                                    "message": "the night is not paused: nothing to resume"}
        assert await h.result("pause") == {"pause_requested": True}
        assert await h.result("resume") == {"resumed": True}  # a pause not yet in effect
        assert (await h.result("abort")) == {"aborting": True, "done": False}
        await wait_for(lambda: _shutting_down(h), what="the shutdown")
        refused = await h.call("pause")
        assert refused["error"]["code"] == -1 and "nothing to pause" in \
            refused["error"]["message"], refused


async def _shutting_down(h: HttpRpc) -> bool:
    status = await h.result("status")
    return status["phase"] in ("shutdown", "aborted") or not status["running"]


async def test_the_records_of_the_night_answer(night: Served, tmp_path: Path) -> None:
    """get_plan, get_log and validate_plan: the plan as it runs, the log's last lines and a
    plan checked on the hub's machine (FILE:LINE:COL) — each had no test of its own."""
    async with HttpRpc(night.url) as h:
        plan = await h.result("get_plan")
        assert plan["plan"]["name"] == "control test night"
        assert plan["plan"]["targets"][0]["name"] == "NGC 188"
        await wait_for(lambda: _lights_at_least(h, 1), what="a frame")
        log = await h.result("get_log", {"lines": 3})
        assert len(log["lines"]) == 3
        assert all("event" in json.loads(line) for line in log["lines"])
        assert (await h.call("get_log", {"lines": 0}))["error"]["code"] == -32602
        (night.data / "plans").mkdir()
        bad = night.data / "plans" / "bad.yaml"
        bad.write_text("version: 1\nname: x\nsite: {latitude: 95, longitude: 0}\n"
                       "targets: []\n")
        checked = await h.result("validate_plan", {"path": "bad.yaml"})  # in DATA_DIR/plans
        assert checked["valid"] is False
        assert any(d.startswith(f"{bad.resolve()}:3:") for d in checked["diagnostics"]), checked
        missing = await h.call("validate_plan", {"path": "none.yaml"})
        assert missing["error"]["code"] == -1 and "no plan file" in missing["error"]["message"]
        # no other file of the hub's machine is read (and echoed back in diagnostics)
        elsewhere = tmp_path / "secret.yaml"
        elsewhere.write_text("password: hunter2\n")
        for path in (str(elsewhere), "../../secret.yaml", "/etc/passwd", "a\x00b",
                     "\udaf7x.yaml", "x" * 4000):
            refused = await h.call("validate_plan", {"path": path})
            # refused (a surrogate already as invalid params), never an internal error
            assert refused["error"]["code"] in (-1, -32602), (path, refused)
            assert "hunter2" not in json.dumps(refused)
