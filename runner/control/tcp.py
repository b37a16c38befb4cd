"""pyastroimageview's hub protocol (seed 000): one JSON object per line on a plain TCP socket.

On connect the server says ``{"Event": "Connection", "Server": ..., "Version": ...}``; requests
may omit ``"jsonrpc"``; events are pushed as ``{"Event": <name>, ...}`` lines. With a token set,
a client must call ``authenticate {"token"}`` within 5 s or is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from typing import Any

from runner.control.protocol import INVALID_REQUEST, Dispatcher, Session, error

log = logging.getLogger("nightrunner.control")

MAX_LINE = 1 << 20
MAX_CLIENTS = 16
MAX_IN_FLIGHT = 16  # requests of one client being answered at once; then its lines wait
AUTH_TIMEOUT = 5.0
IDLE_TIMEOUT = 6 * 3600.0  # a client that connects and never speaks is fine, for a night
LINE_TIMEOUT = 30.0  # a line that has begun must end this soon (a slowloris does not)
SEND_TIMEOUT = 30.0  # a client that stops reading is dropped


class LineTooLong(Exception):
    pass


class LineReader:
    """Lines of at most ``MAX_LINE`` bytes. Waiting for a line's first byte is bounded by the
    caller's idle limit; once a line has begun it must end within ``LINE_TIMEOUT``."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buffer = b""
        self.begun = 0.0  # loop time the partial line in ``buffer`` began

    async def readline(self, idle: float) -> bytes:
        """The next line (with its newline), b"" at the end; TimeoutError, LineTooLong."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + idle
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end + 1], self.buffer[end + 1:]
                self.begun = loop.time()
                if len(line) > MAX_LINE + 1:
                    raise LineTooLong
                return line
            if len(self.buffer) > MAX_LINE:
                raise LineTooLong
            started = bool(self.buffer.strip())
            async with asyncio.timeout_at(
                    min(deadline, self.begun + LINE_TIMEOUT) if started else deadline):
                chunk = await self.reader.read(65536)
            if not chunk:
                return b""
            if not started:
                self.begun = loop.time()
            self.buffer += chunk


def seed_event(event: dict[str, Any]) -> dict[str, Any]:
    """An engine event as a seed 000 line: ``{"Event": <name>, ...}``. pyastroimageview's
    clients take any line with an ``"id"`` for a reply, so an event's own ``id`` (a step's) is
    sent as ``<name>_id``."""
    name = event.get("event")
    out: dict[str, Any] = {"Event": name}
    for key, value in event.items():
        if key != "event":
            out[f"{name}_id" if key == "id" else key] = value
    return out


class TcpServer:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.hub = dispatcher.hub
        self.clients = 0
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        extra: dict[str, Any] = {} if tls is None else {
            "ssl": tls, "ssl_handshake_timeout": AUTH_TIMEOUT}
        self.server = await asyncio.start_server(self._client, host, port, **extra)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.clients >= MAX_CLIENTS:
            with contextlib.suppress(Exception):
                writer.write((json.dumps(error(None, INVALID_REQUEST, f"too many clients (at "
                                               f"most {MAX_CLIENTS})")) + "\n").encode())
                async with asyncio.timeout(2):
                    await writer.drain()
            writer.close()
            return
        self.clients += 1
        lock = asyncio.Lock()
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        lines = LineReader(reader)
        session = Session("tcp", authenticated=self.hub.token is None,
                          peer=str(writer.get_extra_info("peername")))

        async def send(obj: Any) -> None:
            data = (json.dumps(obj, default=str) + "\n").encode()
            async with lock:
                writer.write(data)
                async with asyncio.timeout(SEND_TIMEOUT):
                    await writer.drain()

        async def answer(line: bytes) -> None:
            try:
                reply = await self.dispatcher.handle_text(line, session)
                if reply is not None:
                    await send(json.loads(reply))
            finally:
                in_flight.release()

        async def pump(sub: Any) -> None:
            while True:
                event = await sub.next()
                if session.authenticated:
                    await send(seed_event(event))

        tasks: set[asyncio.Task[None]] = set()
        auth_deadline = asyncio.get_running_loop().time() + AUTH_TIMEOUT
        try:
            await send({"Event": "Connection", "Server": "Nightrunner",
                        "Version": self.hub.version})
            with self.hub.events.subscribe() as sub:
                pusher = asyncio.create_task(pump(sub))
                try:
                    while True:
                        authenticated = session.authenticated
                        wait = IDLE_TIMEOUT if authenticated else \
                            auth_deadline - asyncio.get_running_loop().time()
                        try:
                            line = await lines.readline(wait)
                        except TimeoutError:
                            if session.authenticated and not authenticated:
                                continue  # authenticated while waiting: now the idle limit
                            break
                        except LineTooLong:
                            await send(error(None, INVALID_REQUEST,
                                             f"line longer than {MAX_LINE} bytes"))
                            break
                        if not line:
                            break
                        if not line.strip():
                            continue
                        await in_flight.acquire()
                        t = asyncio.create_task(answer(line))
                        tasks.add(t)
                        t.add_done_callback(tasks.discard)
                finally:
                    pusher.cancel()
                    for t in tasks:
                        t.cancel()
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            self.clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
