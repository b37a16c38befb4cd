"""Seed 000: pyastroimageview's hub methods, with its names, parameter names and result shapes,
against the simulators — what its RPC camera client and test client send and read."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from tests.control.cpkit import HttpRpc, LineSocket, Served, wait_for


def _camera_client_session(served: Served) -> list[tuple[str, dict[str, Any], float]]:
    """pyastroimageview's RPC camera back-end, step by step on a raw socket: no "jsonrpc" in
    its requests, ids from 0, the ROI computed from the frame size as floats."""
    clock = served.hub.clock
    out: list[tuple[str, dict[str, Any], float]] = []
    with LineSocket(served.tcp_port) as s:
        s.next_id = 0
        hello = s.read_event()
        assert hello == {"Event": "Connection", "Server": "Nightrunner",
                         "Version": served.hub.version}
        info = s.request("get_camera_info")
        out.append(("get_camera_info", info, 0.0))
        width, height = info["result"]["framesize"]
        # the client sends the path it would write on its own machine
        for binning, exposure, name in ((1, 5.0, "C:\\Users\\imager\\focus\\frame_001.fits"),
                                        (2, 2.0, str(served.data / "focus" / "frame_002.fits"))):
            roi = [0, 0, width / binning, height / binning]
            started = clock.monotonic()
            done = s.request("take_image", {"exposure": exposure, "binning": binning,
                                            "roi": roi})
            out.append(("take_image", done, clock.monotonic() - started))
            saved = s.request("save_image", {"filename": name, "overwrite": False})
            out.append(("save_image", saved, 0.0))
        # pyastroimageview's test client also sends a filename with take_image (ignored)
        done = s.request("take_image", {"exposure": 0.05, "binning": 1,
                                        "roi": [0, 0, width, height], "filename": "test.fits"})
        out.append(("test client take_image", done, 0.0))
    return out


async def test_the_rpc_camera_client_takes_and_saves_images(rig: Served) -> None:
    steps = await asyncio.to_thread(_camera_client_session, rig)
    (_, info, _), (_, took1, t1), (_, saved1, _), (_, took2, t2), (_, saved2, _), \
        (_, test_client, _) = steps
    assert info["id"] == 0
    assert info["result"] == {"binning": 1, "framesize": [320, 240], "roi": [0, 0, 320, 240]}
    # take_image answers only once the exposure is complete (engine seconds, on the sim clock)
    assert took1["result"] == {"complete": True} and t1 >= 5.0
    assert took2["result"] == {"complete": True} and t2 >= 2.0
    # kept in the data directory: a path of the client's machine under its name, one inside
    # the data directory as given
    assert saved1["result"] == {"complete": True, "filename": "frame_001.fits"}
    assert saved2["result"] == {"complete": True, "filename": "focus/frame_002.fits"}
    with fits.open(rig.data / "frame_001.fits") as hdul:
        assert hdul[0].data.shape == (240, 320)
        assert hdul[0].header["EXPTIME"] == 5.0
    with fits.open(rig.data / "focus" / "frame_002.fits") as hdul:
        assert hdul[0].data.shape == (120, 160)  # 2×2 binning of the whole sensor
        assert hdul[0].header["EXPTIME"] == 2.0
    assert test_client["result"] == {"complete": True}
    assert not list(rig.data.rglob("test.fits"))


GETTERS = {
    "get_camera_x_pixelsize": ("camera_x_pixelsize", 3.76),
    "get_camera_y_pixelsize": ("camera_y_pixelsize", 3.76),
    "get_camera_max_binning": ("camera_max_binning", 4),
    "get_camera_egain": ("camera_egain", float),
    "get_camera_gain": ("camera_gain", int),
    # the simulated ambient (15 °C) drifts by −0.5 °C per simulated hour
    "get_current_temperature": ("current_temperature", pytest.approx(15.0, abs=0.3)),
    "get_target_temperature": ("target_temperature", None),  # the cooler is off
    "get_cooler_state": ("cooler_state", False),
    "get_cooler_power": ("cooler_power", 0.0),
    "focuser_get_absolute_position": ("absolute_position", 25000),
    "focuser_get_max_absolute_position": ("max_absolute_position", 50000),
    "focuser_get_current_temperature": ("current_temperature", float),
    "focuser_is_moving": ("is_moving", False),
    "focuser_stop": ("stop", True),
}


def _getters_and_commands(served: Served) -> dict[str, Any]:
    got: dict[str, Any] = {}
    with LineSocket(served.tcp_port) as s:
        s.read_event()
        for method in GETTERS:
            got[method] = s.request(method).get("result")
        got["set_target_temperature"] = s.request("set_target_temperature",
                                                  {"target_temperature": -10})
        got["after set_target_temperature"] = (s.request("get_target_temperature")["result"],
                                               s.request("get_cooler_state")["result"])
        got["set_cooler_state"] = s.request("set_cooler_state", {"cooler_state": False})
        got["after set_cooler_state"] = s.request("get_cooler_state")["result"]
        got["focuser_move_absolute_position"] = s.request(
            "focuser_move_absolute_position", {"absolute_position": 26000})
        got["past the end"] = s.request("focuser_move_absolute_position",
                                        {"absolute_position": 60000})
        got["take_image with a gain"] = s.request("take_image",
                                                  {"exposure": 1, "camera_gain": 120})
        got["gain after"] = s.request("get_camera_gain")["result"]
    return got


async def test_getters_answer_with_the_seed_keys_and_commands_complete(rig: Served) -> None:
    got = await asyncio.to_thread(_getters_and_commands, rig)
    for method, (key, expected) in GETTERS.items():
        result = got[method]
        assert list(result) == [key], (method, result)
        if isinstance(expected, type):
            assert isinstance(result[key], expected), (method, result)
        else:
            assert result[key] == expected, (method, result)
    assert got["set_target_temperature"]["result"] == {"complete": True}
    assert got["after set_target_temperature"] == ({"target_temperature": -10.0},
                                                   {"cooler_state": True})
    assert got["set_cooler_state"]["result"] == {"complete": True}
    assert got["after set_cooler_state"] == {"cooler_state": False}
    assert got["focuser_move_absolute_position"]["result"] == {"complete": True}
    # an application error is code -1, as pyastroimageview's hub answers
    assert got["past the end"]["error"]["code"] == -1
    assert "maximum 50000" in got["past the end"]["error"]["message"]
    assert got["take_image with a gain"]["result"] == {"complete": True}
    assert got["gain after"] == {"camera_gain": 120}
    # the move was started, not waited for: poll as the seed's clients do
    async with HttpRpc(rig.url) as h:
        await wait_for(lambda: _not_moving(h), what="the focuser to stop")
        assert await h.result("focuser_get_absolute_position") == {"absolute_position": 26000}


async def _not_moving(h: HttpRpc) -> bool:
    return (await h.result("focuser_is_moving")) == {"is_moving": False}


async def test_save_image_stays_inside_the_data_directory(rig: Served, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, rig.data / "link")
    os.symlink(outside / "target.fits", rig.data / "dangling.fits")
    async with HttpRpc(rig.url) as h:

        async def refused(filename: str, overwrite: bool = False) -> str:
            reply = await h.call("save_image", {"filename": filename, "overwrite": overwrite})
            assert reply.get("error", {}).get("code") == -1, (filename, reply)
            return str(reply["error"]["message"])

        assert "take_image first" in await refused("early.fits")
        assert await h.result("take_image", {"exposure": 1}) == {"complete": True}
        assert "'..'" in await refused("../escape.fits")
        assert "'..'" in await refused("sub/../../escape.fits")
        # a path of the client's machine is never written where it points
        assert await h.result("save_image", {"filename": str(tmp_path / "absolute.fits")}) == \
            {"complete": True, "filename": "absolute.fits"}
        await h.result("take_image", {"exposure": 1})
        assert "'..'" in await refused(str(rig.data / ".." / "outside" / "x.fits"))
        assert "outside" in await refused("link/escape.fits")
        assert "outside" in await refused("dangling.fits")  # nor through a dangling symlink
        assert await h.result("save_image", {"filename": "kept.fits"}) == \
            {"complete": True, "filename": "kept.fits"}
        before = (rig.data / "kept.fits").read_bytes()
        await h.result("take_image", {"exposure": 2})
        assert "exists already" in await refused("kept.fits")
        assert "exists already" in await refused("kept.fits", overwrite=True)
    assert (rig.data / "kept.fits").read_bytes() == before
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape.fits").exists() and not (tmp_path / "absolute.fits").exists()
