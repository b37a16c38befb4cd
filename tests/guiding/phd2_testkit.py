"""Wire-level helpers for the guiding tests: a raw JSON-lines client and a scripted fake PHD2.

Both sides are plain sockets, so the client is checked against PHD2's protocol as scripted in the
test (not against our simulator), and the simulator against raw bytes (not against our client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Msg = dict[str, Any]

TIMEOUT_S = 10.0  # real seconds; generous for 2 loaded cores


def ev(name: str, **fields: Any) -> Msg:
    """An event as PHD2 formats it (common attributes first)."""
    return {"Event": name, "Timestamp": time.time(), "Host": "testhost", "Inst": 1, **fields}


def catchup(state: str, *middle: Msg) -> list[Msg]:
    return [ev("Version", PHDVersion="2.6.13", PHDSubver="", OverlapSupport=True, MsgVersion=1),
            *middle, ev("AppState", State=state)]


def line(obj: object) -> bytes:
    return (json.dumps(obj) + "\r\n").encode()


# --------------------------------------------------------------------------- raw client


class RawClient:
    """Speaks to a PHD2 (the simulator) with nothing but a socket and json."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.raw_lines: list[bytes] = []
        self._next_id = 1000

    @classmethod
    async def open(cls, port: int) -> RawClient:
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(r, w)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, obj: object) -> None:
        await self.send_bytes(line(obj))

    async def read(self, within_s: float = TIMEOUT_S) -> Any:
        raw = await asyncio.wait_for(self.reader.readline(), within_s)
        if not raw:
            raise EOFError("server closed the connection")
        self.raw_lines.append(raw)
        return json.loads(raw)

    async def read_until(
        self, pred: Callable[[Any], bool], within_s: float = TIMEOUT_S
    ) -> list[Any]:
        """Every message up to and including the first one matching ``pred``."""
        out: list[Any] = []
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            msg = await self.read(max(remaining, 0.01))
            out.append(msg)
            if pred(msg):
                return out

    async def read_for(self, seconds: float) -> list[Any]:
        """Whatever arrives within ``seconds`` (real)."""
        out: list[Any] = []
        deadline = asyncio.get_running_loop().time() + seconds
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                out.append(await self.read(remaining))
            except TimeoutError:
                break
        return out

    async def catchup(self) -> list[Msg]:
        return await self.read_until(is_event("AppState"))

    async def call(self, method: str, params: Any = None, **kw: Any) -> tuple[Msg, list[Msg]]:
        """Send a request; return (response, events received before it)."""
        self._next_id += 1
        req: Msg = {"method": method, "id": self._next_id}
        if params is not None:
            req["params"] = params
        await self.send(req)
        msgs = await self.read_until(
            lambda m: isinstance(m, dict) and m.get("id") == req["id"], **kw)
        return msgs[-1], msgs[:-1]

    async def result(self, method: str, params: Any = None) -> Any:
        resp, _ = await self.call(method, params)
        assert "error" not in resp, resp
        return resp["result"]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def is_event(*names: str) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, dict) and m.get("Event") in names


def names(msgs: Sequence[Any]) -> list[str]:
    """Event names, and "response" for responses, in wire order."""
    return [m["Event"] if isinstance(m, dict) and "Event" in m else "response" for m in msgs]


# --------------------------------------------------------------------------- scripted server


class Peer:
    """One connection to the scripted fake PHD2, as seen from the test's script."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.requests: list[Msg] = []

    async def send(self, *msgs: Msg) -> None:
        for m in msgs:
            self.writer.write(line(m))
        await self.writer.drain()

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, within_s: float = TIMEOUT_S) -> Msg:
        raw = await asyncio.wait_for(self.reader.readline(), within_s)
        if not raw:
            raise EOFError("client closed the connection")
        assert raw.endswith(b"\r\n") or raw.endswith(b"\n")
        req = json.loads(raw)
        self.requests.append(req)
        return req

    async def expect(self, method: str, within_s: float = TIMEOUT_S) -> Msg:
        req = await self.request(within_s)
        assert req["method"] == method, f"expected {method}, client sent {req}"
        return req

    async def reply(self, req: Msg, result: Any = 0) -> None:
        await self.send({"jsonrpc": "2.0", "result": result, "id": req["id"]})

    async def reply_error(self, req: Msg, code: int, message: str) -> None:
        await self.send({"jsonrpc": "2.0", "error": {"code": code, "message": message},
                         "id": req["id"]})

    async def handshake(self, state: str, *middle: Msg, exposure_ms: int = 1000) -> None:
        """Catch-up events, then answer what our client asks on connect."""
        await self.send(*catchup(state, *middle))
        req = await self.request()
        if req["method"] == "get_pixel_scale":
            await self.reply(req, 2.0)
            req = await self.request()
        assert req["method"] == "get_exposure", req
        await self.reply(req, exposure_ms)

    async def nothing_for(self, seconds: float) -> None:
        """Assert the client sends no request within ``seconds`` (real)."""
        try:
            req = await self.request(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"client sent {req} when it should have waited")

    def abort(self) -> None:
        self.writer.transport.abort()


Script = Callable[[Peer], Awaitable[None]]


class ScriptedServer:
    """A fake PHD2 on 127.0.0.1:ephemeral; the n-th connection runs the n-th script.

    A script's assertion error is re-raised by ``check()`` (called on exit), so a mistake the
    client makes on the wire fails the test even if the client itself did not notice.
    """

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.errors: list[BaseException] = []
        self.peers: list[Peer] = []
        self.done = asyncio.Event()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in self._tasks:
            if not t.done():
                t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.check()

    def requests(self) -> list[Msg]:
        """Every request the client sent, over all connections."""
        return [r for p in self.peers for r in p.requests]

    def check(self) -> None:
        if self.errors:
            raise self.errors[0]

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        idx = self.connections
        self.connections += 1
        if idx >= len(self.scripts):
            writer.close()
            return
        peer = Peer(reader, writer)
        self.peers.append(peer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        try:
            await self.scripts[idx](peer)
        except asyncio.CancelledError:
            # The test ended while the script still waited. Returning normally matters:
            # asyncio (3.11) logs a cancelled connection task as an error.
            writer.close()
            return
        except BaseException as exc:  # the client broke the script's expectations
            self.errors.append(exc)
            self.done.set()
            writer.close()
            return
        if idx == len(self.scripts) - 1:
            self.done.set()
        try:
            # Keep the connection open until the client closes it or the test ends.
            await reader.read()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()
