"""Real clients for the control plane's three transports, and the rig and night they serve.

HTTP goes through httpx, WebSocket through the ``websockets`` library, and TCP through a raw
blocking ``socket`` that speaks pyastroimageview's line protocol the way its RPC camera client
does (run in a thread, so the server on the test's event loop keeps going).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from runner.clock import ScaledClock
from runner.control.hub import Hub
from runner.control.night import run_served
from runner.control.server import ControlPlane
from runner.devices.factory import build_devices
from runner.engine.run import Run, RunOptions, RunResult
from runner.plan.loader import load_equipment, load_plan

LOOPBACK = "127.0.0.1"
TOKEN = "s3cret-token-of-the-observatory"
#: A winter evening at the test site: NGC 188 is high, the Sun well down.
EVENING = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)

EQUIPMENT = """\
name: control-test-rig
camera: {backend: simulator, width: 320, height: 240, download_time: 1, pixel_size: 3.76,
         max_binning: 4, egain: 1.5}
filter_wheel:
  backend: simulator
  change_time: 2
  filters: [{name: L}, {name: R, focus_offset: 30}]
focuser: {backend: simulator, max_position: 50000, speed: 5000, backlash: 20, step_size: 150}
mount: {backend: simulator, slew_rate: 5, settle_time: 2}
safety: {backend: simulator}
simulation: {seed: 7, stars: 60}
exposure_margin: 900  # s of engine time: at 300× a busy test machine must not time out a frame
"""

#: A night that outlasts any test (tests abort it), with a cooled camera, a filter and a
#: shutdown that warms the camera up.
NIGHT = """\
version: 1
name: control test night
site: {{latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}}
equipment: eq.yaml
startup:
  - cool: {{to: 12, timeout: 10min}}
targets:
  - name: NGC 188
    coordinates: {{ra: "00:48:26", dec: "+85:14:42"}}
    sequence:
      - filter: L
      - repeat: {{count: {count}}}
        steps: [{{expose: {{count: 2, exposure: {exposure}}}}}]
shutdown:
  - warm: {{to: 15, timeout: 10min}}
"""

def assert_no_traceback(text: str) -> None:
    for marker in ("Traceback", 'File "'):
        assert marker not in text, f"traceback text in a reply: {text[:500]}"


def write_rig(directory: Path, *, count: int = 1000, exposure: float = 30) -> Path:
    """Write eq.yaml and plan.yaml into ``directory``; returns the plan's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "eq.yaml").write_text(EQUIPMENT, encoding="utf-8")
    plan = directory / "plan.yaml"
    plan.write_text(NIGHT.format(count=count, exposure=exposure), encoding="utf-8")
    return plan


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0,
                   what: str = "condition") -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- servers


@dataclass
class Served:
    """A control plane on free loopback ports, and what it serves."""

    hub: Hub
    plane: ControlPlane
    data: Path
    run: Run | None = None
    task: asyncio.Task[RunResult] | None = None

    @property
    def url(self) -> str:
        url = self.plane.url()
        assert url is not None, self.plane.problems
        return url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    @property
    def tcp_port(self) -> int:
        return self.plane.bound["tcp"][1]

    def events_file(self) -> list[dict[str, Any]]:
        assert self.run is not None and self.run.run_dir is not None
        lines = (self.run.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(x) for x in lines]


@contextlib.asynccontextmanager
async def serve_rig(tmp: Path, *, token: str | None = None, speed: float = 100.0,
                    **plane: Any) -> AsyncIterator[Served]:
    """The simulators, connected and held by a hub (as ``nightrunner serve`` holds them)."""
    write_rig(tmp)
    equipment, diags = load_equipment(tmp / "eq.yaml")
    assert equipment is not None, [d.format() for d in diags]
    clock = ScaledClock(speed=speed, start=EVENING)
    devices = build_devices(equipment, clock)
    await devices.connect_all()
    hub = Hub(tmp / "data", token=token, devices=devices, equipment=equipment, clock=clock)
    (tmp / "data").mkdir(exist_ok=True)
    control = ControlPlane(hub, http=(LOOPBACK, 0), tcp=(LOOPBACK, 0), **plane)
    await control.start()
    assert not control.problems, control.problems
    try:
        yield Served(hub, control, tmp / "data")
    finally:
        await control.stop()
        await devices.disconnect_all()


def make_run(tmp: Path, *, speed: float = 300.0, count: int = 1000,
             exposure: float = 30) -> Run:
    """The night of ``write_rig`` (``count`` times two light frames) on the simulators."""
    plan_path = write_rig(tmp, count=count, exposure=exposure)
    result = load_plan(plan_path)
    assert result.ok and result.plan is not None and result.equipment is not None
    options = RunOptions(data_dir=tmp / "data", speed=speed, start=EVENING, progress="none",
                         plan_text=plan_path.read_bytes(), plan_path=plan_path)
    return Run(result.plan, result.equipment, options)


@contextlib.asynccontextmanager
async def serve_night(tmp: Path, *, speed: float = 300.0, count: int = 1000,
                      exposure: float = 30, token: str | None = None) -> AsyncIterator[Served]:
    """A night on the simulators with its control plane (as ``nightrunner run`` serves it),
    once it images; aborted at the end if it still runs."""
    run = make_run(tmp, speed=speed, count=count, exposure=exposure)
    hub = Hub(tmp / "data", token=token)
    plane = ControlPlane(hub, http=(LOOPBACK, 0), tcp=(LOOPBACK, 0))
    task = asyncio.create_task(run_served(run, plane))
    served = Served(hub, plane, tmp / "data", run, task)
    try:
        await wait_for(lambda: task.done() or (
            run.executor is not None and run.executor.model.state.startswith("imaging")),
            what="the night to start imaging")
        assert not task.done(), "the night ended before the test could watch it"
        assert {"http", "tcp"} <= set(plane.bound), plane.problems
        yield served
    finally:
        if not task.done():
            run.abort("end of test")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await task


# --------------------------------------------------------------------------- clients


class HttpRpc:
    """JSON-RPC over ``POST /rpc``."""

    name = "http"

    def __init__(self, url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(base_url=url, headers=headers, timeout=30)

    async def __aenter__(self) -> HttpRpc:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def send(self, raw: str | bytes) -> Any:
        """The reply to ``raw`` (None when the server answered nothing: HTTP 204)."""
        r = await self.client.post("/rpc", content=raw,
                                   headers={"content-type": "application/json"})
        assert r.status_code < 500, r.text
        assert_no_traceback(r.text)
        if r.status_code == 204:
            assert r.content == b""
            return None
        return r.json()

    async def send_expecting_no_reply(self, raw: str) -> None:
        assert await self.send(raw) is None

    async def call(self, method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            body["params"] = params
        reply = await self.send(json.dumps(body))
        assert isinstance(reply, dict) and reply["id"] == id_, reply
        return reply

    async def result(self, method: str, params: Any = None) -> Any:
        reply = await self.call(method, params)
        assert "result" in reply, reply
        return reply["result"]


SENTINEL = "sentinel-after"


class WsRpc:
    """JSON-RPC over ``/ws``; pushed events are kept in ``events`` as they arrive."""

    name = "ws"

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"} if token else None
        self.events: list[dict[str, Any]] = []
        self.ws: ClientConnection | None = None

    async def __aenter__(self) -> WsRpc:
        self.ws = await connect(self.url, additional_headers=self.headers, open_timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    async def _next(self, timeout: float = 30) -> Any:
        """The next message that is not an event (events are collected on the way)."""
        assert self.ws is not None
        while True:
            async with asyncio.timeout(timeout):
                text = await self.ws.recv()
            assert isinstance(text, str)
            assert_no_traceback(text)
            msg = json.loads(text)
            if isinstance(msg, dict) and msg.get("method") == "event" and "id" not in msg:
                self.events.append(msg["params"])
                continue
            return msg

    async def wait_events(self, predicate: Callable[[list[dict[str, Any]]], bool],
                          timeout: float = 30) -> list[dict[str, Any]]:
        """Read pushed events until ``predicate(events)`` holds."""
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                text = await self.ws.recv()
            msg = json.loads(text)
            assert msg.get("method") == "event", msg
            self.events.append(msg["params"])
        return self.events

    async def send(self, raw: str | bytes) -> Any:
        assert self.ws is not None
        await self.ws.send(raw)
        return await self._next()

    async def send_expecting_no_reply(self, raw: str) -> None:
        """Nothing comes back for ``raw``: the next reply is the one to a request sent after."""
        assert self.ws is not None
        await self.ws.send(raw)
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": SENTINEL, "method": "status"}))
        reply = await self._next()
        assert isinstance(reply, dict) and reply.get("id") == SENTINEL, reply

    async def call(self, method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            body["params"] = params
        reply = await self.send(json.dumps(body))
        assert isinstance(reply, dict) and reply["id"] == id_, reply
        return reply

    async def result(self, method: str, params: Any = None) -> Any:
        reply = await self.call(method, params)
        assert "result" in reply, reply
        return reply["result"]


class LineSocket:
    """A blocking TCP client of the seed 000 line protocol (one JSON object per line)."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_line(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data + b"\n")

    def read_line(self) -> bytes | None:
        """One line (without its newline); None when the server closed the connection."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        assert_no_traceback(line.decode(errors="replace"))
        return line

    def read_message(self) -> Any:
        """The next reply; ``{"Event": ...}`` lines met on the way go to ``events``."""
        while True:
            line = self.read_line()
            assert line is not None, "the server closed the connection"
            msg = json.loads(line)
            if isinstance(msg, dict) and "Event" in msg:
                self.events.append(msg)
                continue
            return msg

    def read_event(self) -> dict[str, Any]:
        line = self.read_line()
        assert line is not None, "the server closed the connection"
        msg = json.loads(line)
        assert isinstance(msg, dict) and "Event" in msg, msg
        self.events.append(msg)
        return msg

    def request(self, method: str, params: Any = None) -> dict[str, Any]:
        """A request as pyastroimageview's clients send it: no ``"jsonrpc"`` member."""
        req: dict[str, Any] = {"method": method, "id": self.next_id}
        self.next_id += 1
        if params is not None:
            req["params"] = params
        self.send_line(json.dumps(req))
        reply = self.read_message()
        assert isinstance(reply, dict) and reply.get("id") == req["id"], reply
        assert reply.get("jsonrpc") == "2.0", reply
        return reply


class TcpRpc:
    """The async face of :class:`LineSocket` for tests that run all transports alike."""

    name = "tcp"

    def __init__(self, port: int) -> None:
        self.port = port
        self.s: LineSocket | None = None
        self.hello: dict[str, Any] = {}

    async def __aenter__(self) -> TcpRpc:
        self.s = await asyncio.to_thread(LineSocket, self.port)
        self.hello = await asyncio.to_thread(self.s.read_event)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.s is not None
        self.s.close()

    async def send(self, raw: str | bytes) -> Any:
        assert self.s is not None
        await asyncio.to_thread(self.s.send_line, raw)
        return await asyncio.to_thread(self.s.read_message)

    async def send_expecting_no_reply(self, raw: str) -> None:
        assert self.s is not None
        s = self.s

        def exchange() -> Any:
            s.send_line(raw)
            s.send_line(json.dumps({"jsonrpc": "2.0", "id": SENTINEL, "method": "status"}))
            return s.read_message()

        reply = await asyncio.to_thread(exchange)
        assert isinstance(reply, dict) and reply.get("id") == SENTINEL, reply

    async def call(self, method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            body["params"] = params
        reply = await self.send(json.dumps(body))
        assert isinstance(reply, dict) and reply["id"] == id_, reply
        return reply

    async def result(self, method: str, params: Any = None) -> Any:
        reply = await self.call(method, params)
        assert "result" in reply, reply
        return reply["result"]


Client = HttpRpc | WsRpc | TcpRpc


def client_for(transport: str, served: Served, token: str | None = None) -> Client:
    if transport == "http":
        return HttpRpc(served.url, token)
    if transport == "ws":
        return WsRpc(served.ws_url, token)
    return TcpRpc(served.tcp_port)
