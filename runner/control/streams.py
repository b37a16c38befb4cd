"""Server-sent events and MJPEG, as streaming responses that follow a :class:`Latest`.

Both send on change only (the version of what they follow moved); SSE sends a comment every
15 s so that proxies and phones keep an idle stream open. MJPEG is
``multipart/x-mixed-replace``, which a browser's ``<img>`` shows as video. A slow client only
ever gets the newest picture: nothing queues up for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.responses import StreamingResponse

from runner.control.fanout import FanOut
from runner.control.web_state import Latest

KEEPALIVE = 15.0  # s between SSE comments on a quiet stream
BOUNDARY = "nightrunnerframe"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(source: Latest, payload: Callable[[], Awaitable[Any]], *,
        initial: bool = True) -> StreamingResponse:
    """``data: <json>`` for each change of ``source`` (and its current value at once)."""

    async def body() -> AsyncIterator[bytes]:
        version = -1 if initial else source.version
        last: Any = None
        while True:
            if version == -1 or version != source.version:
                version = source.version
                value = await payload()
                # a rendering may already show a later change than ``version`` (renders are
                # paced): the same rendering is never sent twice
                if value is not None and value is not last:
                    last = value
                    yield _data(value)
            elif not await source.newer(version, KEEPALIVE):
                yield b": keep-alive\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


def feed_sse(feed: FanOut, select: Callable[[dict[str, Any]], Any],
             backlog: list[Any] | None = None) -> StreamingResponse:
    """``select(item)`` for every item of ``feed`` it does not answer None to, after the
    ``backlog``: one subscriber per client (bounded; a slow one loses its oldest items)."""

    async def body() -> AsyncIterator[bytes]:
        with feed.subscribe() as sub:
            for item in backlog or ():
                yield _data(item)
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE):
                        item = await sub.next()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                value = select(item)
                if value is not None:
                    yield _data(value)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


def _data(value: Any) -> bytes:
    return f"data: {json.dumps(value, default=str)}\n\n".encode()


def mjpeg(source: Latest, frame: Callable[[], Awaitable[bytes | None]]) -> StreamingResponse:
    """One JPEG part per change of ``source`` (the current picture first)."""

    async def body() -> AsyncIterator[bytes]:
        version = -1
        last: bytes | None = None
        while True:
            if version == source.version and not await source.newer(version, KEEPALIVE):
                continue
            version = source.version
            jpeg = await frame()
            # None: nothing to show yet (or unreadable), wait for the next one; ``last``: a
            # paced rendering already showed this change
            if jpeg is None or jpeg is last:
                continue
            last = jpeg
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                   f"Content-Length: {len(jpeg)}\r\n\r\n").encode() + jpeg + b"\r\n"

    return StreamingResponse(body(), headers={"Cache-Control": "no-cache"},
                             media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
