"""Secure by default: with a token set, no registered method is reachable without it on any
transport; a TCP client has 5 s to authenticate; a non-loopback address refuses to start
without a token; a taken port is reported and the night goes on."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import runner.control.tcp
from runner.control.hub import Hub
from runner.control.night import run_served
from runner.control.registry import REGISTRY
from runner.control.server import ControlPlane, read_token
from runner.errors import ConfigError
from tests.control.cpkit import (
    LOOPBACK,
    TOKEN,
    HttpRpc,
    LineSocket,
    Served,
    WsRpc,
    make_run,
    serve_night,
    serve_rig,
)

#: Params that would make each moving call act, were it let through.
ACTING: dict[str, dict[str, Any]] = {
    "set_cooler_state": {"cooler_state": True},
    "set_target_temperature": {"target_temperature": -20},
    "take_image": {"exposure": 1},
    "focuser_move_absolute_position": {"absolute_position": 1000},
    "save_image": {"filename": "sneaked.fits"},
}
WRONG = [{}, {"Authorization": "Bearer not-the-token-at-all"}, {"Authorization": TOKEN},
         {"Authorization": f"Basic {TOKEN}"}]


def _request(name: str, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": name, "params": ACTING.get(name, {})}


def _tcp_without_token(port: int, names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with LineSocket(port) as s:
        assert s.read_event()["Event"] == "Connection"
        for n, name in enumerate(names):
            s.send_line(json.dumps(_request(name, n)))
            out[name] = s.read_message()
        s.send_line(json.dumps({"id": "w", "method": "authenticate",
                                "params": {"token": TOKEN[:-1]}}))
        out["wrong token"] = s.read_message()
        s.send_line(json.dumps({"id": "a", "method": "authenticate",
                                "params": {"token": TOKEN}}))
        out["authenticate"] = s.read_message()
        s.send_line(json.dumps({"id": "s", "method": "status"}))
        out["then status"] = s.read_message()
    return out


async def test_with_a_token_no_method_is_reachable_without_it(tmp_path: Path) -> None:
    names = REGISTRY.names()
    assert {"status", "abort", "take_image", "save_image", "run_plan"} <= set(names)
    async with serve_rig(tmp_path, token=TOKEN) as rig:
        async with httpx.AsyncClient(base_url=rig.url) as anon:
            for name in names:
                for headers in WRONG:
                    r = await anon.post("/rpc", json=_request(name), headers=headers)
                    assert r.status_code == 401, (name, headers, r.text)
                    assert r.json()["error"]["code"] == -32001
                    r = await anon.post(f"/api/v1/{name}", json=ACTING.get(name, {}),
                                        headers=headers)
                    assert r.status_code == 401, (name, headers, r.text)
                r = await anon.post(f"/api/v1/{name}", content=b"{not json")
                assert r.status_code == 401, (name, r.text)
        for name in names:
            for url, headers in ((rig.ws_url, None),
                                 (rig.ws_url, {"Authorization": "Bearer not-the-token"}),
                                 (f"{rig.ws_url}?token=not-the-token", None)):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(url, additional_headers=headers) as ws:
                        await ws.send(json.dumps(_request(name)))
                        await ws.recv()
                assert refused.value.response.status_code == 403, name
        tcp = await asyncio.to_thread(_tcp_without_token, rig.tcp_port, names)
        for n, name in enumerate(names):
            reply = tcp[name]
            assert reply["id"] == n and reply["error"]["code"] == -32001, (name, reply)
            assert "result" not in reply
        assert tcp["wrong token"]["error"]["code"] == -32001
        assert tcp["authenticate"]["result"] == {"authenticated": True}
        assert tcp["then status"]["result"]["phase"] == "idle"

        # nothing that was refused happened to the rig
        async with HttpRpc(rig.url, TOKEN) as h:
            assert await h.result("get_cooler_state") == {"cooler_state": False}
            assert await h.result("focuser_get_absolute_position") == \
                {"absolute_position": 25000}
            early = await h.call("save_image", {"filename": "x.fits"})
            assert "take_image first" in early["error"]["message"]
            r = await h.client.post("/api/v1/get_camera_info", json={})
            assert r.status_code == 200 and r.json()["result"]["framesize"] == [320, 240]
        assert not (rig.data / "sneaked.fits").exists()
        # with the token, both ways a WebSocket client can give it are accepted
        async with WsRpc(rig.ws_url, TOKEN) as ws:
            assert (await ws.result("status"))["phase"] == "idle"
        async with WsRpc(f"{rig.ws_url}?token={TOKEN}") as ws:
            assert (await ws.result("get_cooler_state")) == {"cooler_state": False}


def _silent(port: int) -> float:
    """Seconds until the server hangs up on a client that never speaks (-1: it spoke)."""
    with LineSocket(port) as s:
        s.read_event()
        started = time.monotonic()
        return time.monotonic() - started if s.read_line() is None else -1.0


def _talks_without_token(port: int) -> tuple[Any, bytes | None]:
    with LineSocket(port) as s:
        s.read_event()
        s.send_line('{"id": 1, "method": "status"}')
        return s.read_message(), s.read_line()


def _authenticated(port: int, wait: float) -> Any:
    with LineSocket(port) as s:
        s.read_event()
        s.send_line(json.dumps({"id": 1, "method": "authenticate", "params": {"token": TOKEN}}))
        assert s.read_message()["result"] == {"authenticated": True}
        time.sleep(wait)
        s.send_line('{"id": 2, "method": "get_cooler_state"}')
        return s.read_message()


async def test_a_tcp_client_that_does_not_authenticate_in_time_is_disconnected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert runner.control.tcp.AUTH_TIMEOUT == 5.0
    monkeypatch.setattr(runner.control.tcp, "AUTH_TIMEOUT", 0.3)
    async with serve_rig(tmp_path, token=TOKEN) as rig:
        silent, talker, authed = await asyncio.gather(
            asyncio.to_thread(_silent, rig.tcp_port),
            asyncio.to_thread(_talks_without_token, rig.tcp_port),
            asyncio.to_thread(_authenticated, rig.tcp_port, 0.6),
        )
    assert 0.2 <= silent < 3.0  # closed by the server once the time was up
    refused, after = talker
    assert refused["error"]["code"] == -32001
    assert after is None  # speaking without the token does not buy time
    assert authed["result"] == {"cooler_state": False}  # an authenticated client stays


def _hears_before_and_after_authenticating(port: int) -> tuple[bytes | None, list[Any]]:
    with LineSocket(port) as s:
        s.read_event()
        s.sock.settimeout(0.5)  # the night takes several frames meanwhile
        try:
            heard = s.read_line()
        except TimeoutError:
            heard = None
        s.sock.settimeout(30)
        s.send_line(json.dumps({"id": 1, "method": "authenticate", "params": {"token": TOKEN}}))
        assert s.read_message()["result"] == {"authenticated": True}
        while not any(e["Event"] == "frame" for e in s.events):
            s.read_event()
        return heard, s.events


async def test_events_go_only_to_clients_with_the_token(tmp_path: Path) -> None:
    async with serve_night(tmp_path, token=TOKEN) as night:
        heard, events = await asyncio.to_thread(_hears_before_and_after_authenticating,
                                                night.tcp_port)
        assert heard is None  # nothing, not even an event, before authenticating
        assert any(e["Event"] == "frame" for e in events)
        async with WsRpc(night.ws_url, TOKEN) as ws:
            await ws.wait_events(lambda evs: any(e["event"] == "frame" for e in evs))


async def test_a_non_loopback_address_needs_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_hub = Hub(tmp_path)
    for http, tcp in ((("0.0.0.0", 8765), None), (None, ("192.168.1.20", 8800)),
                      (("::", 8765), None), (("nightrunner.example", 8765), None)):
        with pytest.raises(ConfigError, match="not loopback, without a token"):
            ControlPlane(open_hub, http=http, tcp=tcp).check()
    ControlPlane(open_hub, http=("localhost", 0), tcp=("::1", 0)).check()
    ControlPlane(Hub(tmp_path, token=TOKEN), http=("0.0.0.0", 0), tcp=("0.0.0.0", 0)).check()
    with pytest.raises(ConfigError, match="both --tls-cert and --tls-key"):
        ControlPlane(open_hub, certfile=tmp_path / "cert.pem").check()
    # the token: a file wins over the environment; too short a token is refused
    monkeypatch.setenv("NIGHTRUNNER_TOKEN", "from-the-environment-1234")
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    assert read_token(None, token_file) == TOKEN
    assert read_token(None, None) == "from-the-environment-1234"
    with pytest.raises(ConfigError, match="at least 16 characters"):
        read_token("short", None)
    with pytest.raises(ConfigError, match="token file"):
        read_token(None, tmp_path / "missing")


async def test_a_taken_port_is_reported_and_the_night_goes_on(tmp_path: Path) -> None:
    with socket.socket() as http_taken, socket.socket() as tcp_taken:
        for s in (http_taken, tcp_taken):
            s.bind((LOOPBACK, 0))
            s.listen()
        http_port, tcp_port = http_taken.getsockname()[1], tcp_taken.getsockname()[1]
        run = make_run(tmp_path, count=1)
        plane = ControlPlane(Hub(tmp_path / "data"), http=(LOOPBACK, http_port),
                             tcp=(LOOPBACK, tcp_port))
        result = await run_served(run, plane)
    assert result.outcome == "completed" and result.summary["frames"]["light"] == 2
    assert len(plane.problems) == 2 and not plane.bound
    assert f"HTTP control port 127.0.0.1:{http_port}" in plane.problems[1]
    assert f"TCP control port 127.0.0.1:{tcp_port}" in plane.problems[0]
    served = Served(plane.hub, plane, tmp_path / "data", run)
    warnings = [e["message"] for e in served.events_file() if e["event"] == "warning"]
    assert any(f"127.0.0.1:{http_port}" in w and "the night goes on" in w for w in warnings)
    assert any(f"127.0.0.1:{tcp_port}" in w for w in warnings)
