"""Limits uvicorn does not set by itself, so that a slow or hostile HTTP client holds nothing
for long: the request line and headers must arrive within ``HEADER_TIMEOUT`` of the connection
(or of the previous response), and a request's body within ``BODY_TIMEOUT`` and ``MAX_BODY``
bytes, for every route (``/rpc`` and each ``/api/v1/<method>`` alike)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from runner.control.protocol import INVALID_REQUEST, error

MAX_BODY = 1 << 20  # bytes of one HTTP request or WebSocket message
HEADER_TIMEOUT = 10.0  # s from the connection (or the last response) to a request's headers
BODY_TIMEOUT = 30.0  # s for a request's whole body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers: a client that
    connects and says nothing, or dribbles its headers (slowloris), is disconnected."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        before = self.scope
        super().handle_events()
        if self.scope is not before:  # a request's headers are in (or a WebSocket upgrade)
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # first: a pipelined request that starts in there disarms it again
        super().on_response_complete()
        if self.transport.is_closing():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _reply(status: int, message: str) -> tuple[Message, Message]:
    body = json.dumps(error(None, INVALID_REQUEST, message)).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]},
            {"type": "http.response.body", "body": body})


class BodyGuard:
    """Reads each HTTP request's body before the app sees it: at most ``MAX_BODY`` bytes
    (413), within ``BODY_TIMEOUT`` (408); the app then gets it in one piece."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = await self._read(scope, receive)
        if isinstance(refused, tuple):
            for message in refused:
                await send(message)
            return
        body, done = refused, False

        async def replay() -> Message:
            nonlocal done
            if not done:
                done = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _read(scope: Scope, receive: Receive) -> bytes | tuple[Message, Message]:
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                return _reply(413, f"request larger than {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return _reply(400, "the client went away")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > MAX_BODY:
                        return _reply(413, f"request larger than {MAX_BODY} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            return _reply(408, f"the request's body took longer than {BODY_TIMEOUT:g} s")
