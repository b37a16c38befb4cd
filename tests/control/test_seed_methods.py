"""Seed 003's camera API (``camera.*``) and seed 001's PHD2 API (``guider.*``) over real
JSON-RPC dispatch, on a hub holding simulated devices and the in-process PHD2 simulator."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from astropy.io import fits

import runner.control.server  # noqa: F401  (registers every method, as serving does)
from runner.clock import ScaledClock
from runner.control.guider_link import close_hub_guider, hub_guider
from runner.control.hub import Hub
from runner.control.protocol import Dispatcher, Session
from runner.control.registry import REGISTRY
from runner.devices.factory import DeviceSet, build_devices
from runner.devices.interfaces import GuiderState
from runner.guiding import PHD2Guider, PHD2Simulator, open_guider
from runner.plan.equipment import CameraProfile, Equipment, GuiderProfile, Simulation

SPEED = 100.0  # one 1 s guide frame: 10 ms
SETTLE = {"pixel": 1.5, "time": 1, "timeout": 30}

SEED_003 = (
    "connect", "disconnect", "reconnect", "scanning", "polling", "get_parameter", "set_parameter",
    "start_exposure", "abort_exposure", "get_exposure_status", "get_exposure_result", "cooling",
    "cooling_to", "get_cooling_status", "get_current_temperature", "get_cooling_power",
    "get_camera_roi", "get_gain", "get_offset", "get_binning", "set_camera_roi", "set_gain",
    "set_offset", "set_binning", "call",
)
SEED_001 = (
    "start_phd2", "stop_phd2", "scan_server", "connect_server", "disconnect_server",
    "reconnect_server", "get_profiles", "get_current_profile", "set_profile", "generate_profile",
    "connect_device", "disconnect_device", "reconnect_device", "start_calibration",
    "stop_calibration", "clear_calibration_data", "flip_calibration_data", "start_guiding",
    "stop_guiding", "pause_guiding", "resume_guiding", "dither", "start_looping", "stop_looping",
    "get_image", "save_image",
)


def rig_equipment(**guider: Any) -> Equipment:
    return Equipment(
        name="seed test rig",
        camera=CameraProfile(width=320, height=240, download_time=1.0, max_binning=4),
        guider=GuiderProfile(**{"backend": "simulator", "pixel_scale": 2.5, "exposure": 1.0,
                                **guider}),
        simulation=Simulation(seed=7, stars=60),
    )


class Rpc:
    """JSON-RPC request text in, reply text out, through the real dispatcher."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.dispatcher = Dispatcher(hub)
        self.session = Session("tcp", authenticated=True)
        self.ids = 0

    async def reply(self, method: str, params: Any = None) -> dict[str, Any]:
        self.ids += 1
        req: dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            req["params"] = params
        text = await self.dispatcher.handle_text(json.dumps(req), self.session)
        assert text is not None
        reply: dict[str, Any] = json.loads(text)
        assert reply["id"] == self.ids
        return reply

    async def __call__(self, method: str, params: Any = None) -> Any:
        reply = await self.reply(method, params)
        assert "error" not in reply, f"{method}: {reply['error']}"
        return reply["result"]

    async def error(self, method: str, params: Any = None) -> dict[str, Any]:
        reply = await self.reply(method, params)
        assert "error" in reply, f"{method} answered {reply.get('result')!r}"
        err: dict[str, Any] = reply["error"]
        return err


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Rpc, DeviceSet, Equipment]]:
    clock = ScaledClock(speed=SPEED)
    equipment = rig_equipment()
    devices = build_devices(equipment, clock)
    await devices.connect_all()
    hub = Hub(tmp_path, devices=devices, equipment=equipment, clock=clock)
    try:
        yield Rpc(hub), devices, equipment
    finally:
        await close_hub_guider(hub)
        await devices.disconnect_all()


def night_on(hub: Hub, *, guider: Any = None, state: str = "running") -> SimpleNamespace:
    """What the hub reads of a running night: its executor's state and services."""
    executor = SimpleNamespace(model=SimpleNamespace(state=state),
                               s=SimpleNamespace(guider=guider))
    run = SimpleNamespace(devices=None, executor=executor)
    hub.attach(run)
    return executor


def test_every_seed_function_is_a_namespaced_method() -> None:
    names = set(REGISTRY.names())
    assert {f"camera.{n}" for n in SEED_003} <= names
    assert {f"guider.{n}" for n in SEED_001} <= names
    moving = {m.name for m in REGISTRY.all() if m.moves_hardware}
    assert {"camera.start_exposure", "camera.get_exposure_result", "camera.cooling_to",
            "guider.start_guiding", "guider.dither", "guider.pause_guiding"} <= moving
    assert not {"camera.get_exposure_status", "camera.polling", "camera.call",
                "guider.get_profiles", "guider.get_image"} & moving


# ------------------------------------------------------------------ seed 003: the camera


async def test_an_exposure_is_started_polled_and_its_result_kept_for_save_image(
    served: tuple[Rpc, DeviceSet, Equipment], tmp_path: Path,
) -> None:
    rpc, _devices, _eq = served
    assert await rpc("camera.set_binning", {"binning": [2, 2]}) == {"message": None}
    roi = {"start_x": 16, "start_y": 8, "width": 200, "height": 160}
    assert await rpc("camera.set_camera_roi", roi) == {"message": None}
    assert await rpc("camera.get_camera_roi") == roi
    assert await rpc("camera.get_binning") == {"binning": [2, 2]}
    assert await rpc("camera.get_exposure_status") == {"status": False, "state": "idle"}
    err = await rpc.error("camera.get_exposure_result")
    assert err["code"] == -1 and "idle" in err["message"]

    assert await rpc("camera.start_exposure", {"exposure": 2.0}) == {"message": None}
    seen = []
    deadline = time.monotonic() + 10
    while (status := await rpc("camera.get_exposure_status"))["state"] != "ready":
        seen.append(status)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)  # a remote client polls over the network
    assert seen and seen[0] == {"status": True, "state": "exposing"}
    assert status == {"status": False, "state": "ready"}

    result = await rpc("camera.get_exposure_result", {"preview": 50})
    info = result["info"]
    assert info["exposure"] == 2.0 and info["frame_type"] == "light"
    assert info["binning"] == [2, 2] and info["roi"] == roi
    assert (info["width"], info["height"]) == (100, 80)
    assert info["min"] <= info["mean"] <= info["max"]
    assert result["image"] == {"width": 100, "height": 80, "dtype": "uint16",
                               "kept_for": "save_image"}
    prev = result["preview"]
    assert prev["dtype"] == "uint8" and max(prev["width"], prev["height"]) <= 50
    assert len(base64.b64decode(prev["data"])) == prev["width"] * prev["height"]
    # the frame was consumed: a second call has nothing; seed 000's save_image writes it
    assert "idle" in (await rpc.error("camera.get_exposure_result"))["message"]
    assert await rpc("save_image", {"filename": "remote.fits"}) == \
        {"complete": True, "filename": "remote.fits"}
    with fits.open(tmp_path / "remote.fits") as hdul:
        assert hdul[0].data.shape == (80, 100)

    await rpc("camera.start_exposure", {"exposure": 30, "frame_type": "dark"})
    assert (await rpc("camera.get_exposure_status"))["status"] is True
    assert await rpc("camera.abort_exposure") == {"message": None}
    assert await rpc("camera.get_exposure_status") == {"status": False, "state": "idle"}


async def test_camera_settings_cooling_and_connection(
    served: tuple[Rpc, DeviceSet, Equipment],
) -> None:
    rpc, devices, eq = served
    assert await rpc("camera.set_gain", {"gain": 120}) == {"message": None}
    assert await rpc("camera.get_gain") == {"gain": 120}
    assert await rpc("camera.set_offset", {"offset": 30}) == {"message": None}
    assert await rpc("camera.get_offset") == {"offset": 30}
    assert await rpc("camera.get_parameter", {"name": "gain"}) == {"value": 120}
    assert await rpc("camera.set_parameter", {"name": "offset", "value": 12}) == {
        "message": None}
    assert await rpc("camera.get_parameter", {"name": "offset"}) == {"value": 12}
    assert "unknown camera parameter 'focus'" in (
        await rpc.error("camera.get_parameter", {"name": "focus"}))["message"]
    assert "cannot be set" in (await rpc.error(
        "camera.set_parameter", {"name": "temperature", "value": 3}))["message"]
    assert "symmetrically" in (
        await rpc.error("camera.set_binning", {"binning": [1, 2]}))["message"]
    assert (await rpc.error("camera.set_gain", {"gain": 9999}))["code"] == -1  # the device

    assert await rpc("camera.cooling_to", {"temperature": -10}) == {"message": None}
    assert await rpc("camera.get_cooling_status") == {"status": True}
    assert isinstance((await rpc("camera.get_current_temperature"))["temperature"], float)
    assert 0 <= (await rpc("camera.get_cooling_power"))["power"] <= 100
    assert await rpc("camera.cooling", {"enable": False}) == {"message": None}
    assert await rpc("camera.get_cooling_status") == {"status": False}

    polled = (await rpc("camera.polling"))["info"]
    assert polled["name"] == eq.camera.name and polled["width"] == 320
    assert polled["gain"] == 120 and polled["connected"] is True
    assert await rpc("camera.scanning") == {"camera": [eq.camera.name]}
    assert await rpc("camera.disconnect") == {"message": None}
    assert not devices.camera.connected
    assert "not connected" in (await rpc.error("camera.get_gain"))["message"]
    assert "no camera 'ZWO'" in (
        await rpc.error("camera.connect", {"device_name": "ZWO"}))["message"]
    assert not devices.camera.connected
    connected = await rpc("camera.connect", {"device_name": eq.camera.name})
    assert connected["info"]["connected"] is True
    assert (await rpc("camera.reconnect"))["info"]["name"] == eq.camera.name


async def test_call_reaches_only_the_other_camera_methods(
    served: tuple[Rpc, DeviceSet, Equipment],
) -> None:
    rpc, _devices, _eq = served
    assert await rpc("camera.call", {"name": "set_gain", "params": {"gain": 42}}) == {
        "message": None}
    assert await rpc("camera.call", {"name": "camera.get_gain"}) == {"gain": 42}
    assert await rpc("camera.call", {"name": "get_parameter", "params": ["gain"]}) == {
        "value": 42}
    for name in ("call", "take_image", "info"):
        err = await rpc.error("camera.call", {"name": name})
        assert err["code"] == -1 and "no camera method" in err["message"]
    for name in ("__class__", "_camera", "guider.dither", "../status"):
        assert (await rpc.error("camera.call", {"name": name}))["code"] == -32602
    err = await rpc.error("camera.call", {"name": "set_gain", "params": {"gain": "lots"}})
    assert err["code"] == -32602 and "gain" in err["message"]


async def test_while_the_night_runs_camera_commands_are_refused_unless_paused(
    served: tuple[Rpc, DeviceSet, Equipment],
) -> None:
    rpc, _devices, _eq = served
    executor = night_on(rpc.hub)
    err = await rpc.error("camera.start_exposure", {"exposure": 1})
    assert err == {"code": -1, "message": "camera.start_exposure: the night owns the camera; "
                   "pause it first"}
    err = await rpc.error("camera.call", {"name": "set_gain", "params": {"gain": 1}})
    assert "camera.set_gain: the night owns the camera" in err["message"]
    assert "night owns" in (await rpc.error("camera.get_exposure_result"))["message"]
    assert "gain" in await rpc("camera.get_gain")  # reading always answers
    assert "gain" in await rpc("camera.call", {"name": "get_gain"})
    executor.model.state = "paused"
    assert await rpc("camera.set_gain", {"gain": 5}) == {"message": None}


# ------------------------------------------------------------------ seed 001: PHD2


async def test_the_hub_starts_the_phd2_simulator_and_guides_dithers_pauses_through_it(
    served: tuple[Rpc, DeviceSet, Equipment], tmp_path: Path,
) -> None:
    rpc, devices, _eq = served
    err = await rpc.error("guider.get_profiles")
    assert "call guider.connect_server first" in err["message"]
    with socket.socket() as busy:  # the profile's port is taken: the simulator picks another
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        rpc.hub.equipment = rig_equipment(port=taken)
        started = await rpc("guider.start_phd2")
    assert started["message"] is None
    port = started["port"]
    assert port != taken
    assert await rpc("guider.start_phd2") == started  # already running: the same one
    assert await rpc("guider.scan_server", {"range": [port, port]}) == {"list": [port]}
    assert await rpc("guider.connect_server") == {"message": None}  # the started one's port

    profiles = (await rpc("guider.get_profiles"))["list"]
    assert [p["id"] for p in profiles] == [1, 2]
    assert profiles[0]["selected"] and profiles[0]["camera"]["connected"] is False
    assert await rpc("guider.set_profile", {"profile_id": 2}) == {"message": None}
    current = await rpc("guider.get_current_profile")
    assert current["id"] == 2 and current["camera"]["name"] == "ZWO ASI120MM Mini"
    assert "generate_profile" in (await rpc.error(
        "guider.generate_profile", {"name": "new", "camera": "Simulator"}))["message"]

    assert await rpc("guider.connect_device") == {"message": None}
    assert (await rpc("guider.get_current_profile"))["mount"]["connected"] is True
    assert await rpc("guider.start_looping") == {"message": None}
    assert await rpc("guider.start_guiding", {**SETTLE, "recalibration": True}) == {
        "message": None}
    sim = hub_guider(rpc.hub).simulator
    assert isinstance(sim, PHD2Simulator)
    assert sim.app_state == "Guiding" and devices.world is not None and devices.world.guiding

    image = await rpc("guider.get_image")
    assert set(image) == {"frame", "width", "height", "image", "star_position"}
    assert len(base64.b64decode(image["image"])) == image["width"] * image["height"] * 2
    saved = Path((await rpc("guider.save_image"))["path"])
    assert saved.parent == (tmp_path / "guider").resolve()
    assert await asyncio.to_thread(saved.is_file)

    world = devices.world
    before = (world.offset_ra, world.offset_dec)
    assert await rpc("guider.dither", {**SETTLE, "amount": 3, "raonly": True}) == {
        "message": None}
    assert (world.offset_ra, world.offset_dec) != before
    assert await rpc("guider.pause_guiding") == {"message": None}
    assert sim.app_state == "Paused"
    assert "cannot dither: PHD2 is Paused" in (
        await rpc.error("guider.dither", SETTLE))["message"]
    assert await rpc("guider.resume_guiding") == {"message": None}
    assert sim.app_state == "Guiding"
    assert await rpc("guider.stop_guiding") == {"message": None}
    assert sim.app_state == "Stopped"

    assert await rpc("guider.flip_calibration_data") == {"message": None}
    assert await rpc("guider.clear_calibration_data") == {"message": None}
    assert await rpc("guider.reconnect_device") == {"message": None}
    assert await rpc("guider.disconnect_device") == {"message": None}
    assert await rpc("guider.reconnect_server") == {"message": None}
    assert await rpc("guider.disconnect_server") == {"message": None}
    assert "connect_server first" in (await rpc.error("guider.stop_looping"))["message"]
    assert await rpc("guider.stop_phd2") == {"message": None}
    assert await rpc("guider.scan_server", {"range": [port, port]}) == {"list": None}
    assert "did not start PHD2" in (await rpc.error("guider.stop_phd2"))["message"]


async def test_calibration_on_an_external_phd2(
    served: tuple[Rpc, DeviceSet, Equipment],
) -> None:
    rpc, _devices, _eq = served
    clock = rpc.hub.clock
    async with PHD2Simulator(clock=clock, port=0, exposure_s=1.0, calibration_steps=2) as sim:
        assert await rpc("guider.connect_server", {"port": sim.port}) == {"message": None}
        await rpc("guider.connect_device")
        assert await rpc("guider.start_calibration", SETTLE) == {"message": None}
        assert sim.core.calibrated
        assert await rpc("guider.stop_calibration") == {"message": None}
        assert sim.app_state == "Stopped"
        assert await rpc("guider.disconnect_server") == {"message": None}
    err = await rpc.error("guider.connect_server", {"port": sim.port})
    assert err["code"] == -1 and "cannot connect to PHD2" in err["message"]


async def test_start_phd2_refuses_what_it_cannot_start(tmp_path: Path) -> None:
    for guider, params, why in (
        ({"backend": "phd2", "host": "10.1.2.3"}, {"path": "/usr/bin/phd2"}, "not on this hub"),
        ({"backend": "phd2"}, {}, "give path"),
        ({"backend": "phd2"}, {"path": "/bin/sh"}, "not a PHD2 executable"),
        ({"backend": "phd2"}, {"path": "phd2"}, "not a PHD2 executable"),
        ({"backend": "phd2"}, {"path": str(tmp_path / "phd2")}, "not found"),
    ):
        hub = Hub(tmp_path, equipment=rig_equipment(**guider))
        err = await Rpc(hub).error("guider.start_phd2", params)
        assert err["code"] == -1 and why in err["message"], err
    hub = Hub(tmp_path, equipment=Equipment(name="no guider"))
    assert "has no guider" in (await Rpc(hub).error("guider.start_phd2"))["message"]


async def test_while_a_night_guides_the_methods_use_its_connection(
    served: tuple[Rpc, DeviceSet, Equipment],
) -> None:
    rpc, devices, eq = served
    clock = rpc.hub.clock
    async with open_guider(eq, clock, devices.world) as guider:
        assert isinstance(guider, PHD2Guider)
        executor = night_on(rpc.hub, guider=guider)
        assert hub_guider(rpc.hub).client is None  # the hub holds no connection of its own
        assert (await rpc("guider.get_current_profile"))["id"] == 1
        err = await rpc.error("guider.start_guiding", SETTLE)
        assert err["message"] == ("guider.start_guiding: the night owns the guider; "
                                  "pause it first")
        executor.model.state = "paused"
        assert await rpc("guider.start_guiding", SETTLE) == {"message": None}
        assert guider.client.app_state is GuiderState.guiding
        assert await rpc("guider.dither", {**SETTLE, "amount": 2}) == {"message": None}
        # the hub's own connection is separate: closing it cannot cut the night off
        assert await rpc("guider.disconnect_server") == {"message": None}
        assert guider.connected and await guider.state() is GuiderState.guiding
        await rpc("guider.stop_guiding")
        rpc.hub.detach()
