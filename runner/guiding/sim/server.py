"""The simulated PHD2 event server: PHD2's framing and JSON-RPC handling over asyncio TCP.

Framing as in PHD2's event_server.cpp: input is split on ``\\n`` whatever the read boundaries;
a line that does not fit PHD2's 1024-byte read buffer (more than 1023 bytes before its newline)
is answered with −32603 "too big" (``"id": null``) and discarded; a parse error is −32700 with
``"id": null``; output lines end with CRLF; a JSON array is a batch and gets an array reply
(or none, when every member was a notification). Requests of one client are handled in order;
several clients can be connected, and every client receives every event.

Start it in-process::

    async with PHD2Simulator(clock=clock, world=world, port=0) as sim:
        client = PHD2Client("127.0.0.1", sim.port, clock=clock)
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runner.clock import Clock
from runner.devices.sim.world import SimWorld
from runner.guiding.sim.core import PHD2Core
from runner.guiding.sim.model import (
    DEFAULT_PROFILES,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Event,
    RpcError,
    SimFaults,
    SimProfile,
)
from runner.guiding.sim.star import GuideCameraParams
from runner.plan.equipment import Equipment

log = logging.getLogger(__name__)

#: PHD2's per-client read buffer; a request line must fit with its newline.
READ_BUFFER_BYTES = 1024


def _line(obj: object) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\r\n").encode("utf-8")


def _error(code: int, message: str, req_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": req_id}


class _Client:
    __slots__ = ("peer", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.peer = writer.get_extra_info("peername")

    def send(self, obj: object) -> None:
        if not self.writer.is_closing():
            self.writer.write(_line(obj))


class PHD2Simulator:
    """A PHD2 look-alike on TCP, sharing the engine's ``Clock`` and (optionally) ``SimWorld``.

    ``port=0`` picks a free port (read ``sim.port`` after start). ``faults`` are live knobs.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        world: SimWorld | None = None,
        host: str = "127.0.0.1",
        port: int = 4400,
        camera: GuideCameraParams | None = None,
        faults: SimFaults | None = None,
        seed: int = 42,
        exposure_s: float = 2.0,
        profiles: tuple[SimProfile, ...] = DEFAULT_PROFILES,
        instance: int = 1,
        save_dir: Path | None = None,
        calibration_steps: int = 3,
    ) -> None:
        self.host = host
        self.port = port
        self._clients: set[_Client] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.shutdown_requested = asyncio.Event()
        self.core = PHD2Core(
            clock=clock, world=world, camera=camera, faults=faults, seed=seed,
            exposure_s=exposure_s, profiles=profiles, instance=instance, save_dir=save_dir,
            calibration_steps=calibration_steps, emit=self._broadcast,
            drop_clients=self.drop_connections, request_shutdown=self._on_shutdown_rpc,
        )

    @classmethod
    def from_equipment(
        cls, equipment: Equipment, *, clock: Clock, world: SimWorld | None = None,
        host: str = "127.0.0.1", port: int = 0, faults: SimFaults | None = None,
    ) -> PHD2Simulator:
        """The simulator for an equipment profile: guide scale and exposure from its
        ``guider`` section, the seed from ``simulation``."""
        g = equipment.guider
        scale = g.pixel_scale if g and g.pixel_scale else 2.5
        return cls(
            clock=clock, world=world, host=host, port=port, faults=faults,
            camera=GuideCameraParams(pixel_scale_arcsec=scale),
            seed=equipment.simulation.seed, exposure_s=g.exposure if g else 2.0,
        )

    # ------------------------------------------------------------------ knobs & state

    @property
    def faults(self) -> SimFaults:
        return self.core.faults

    @property
    def app_state(self) -> str:
        return self.core.exposed_state()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def drop_connections(self) -> None:
        """Cut every client connection as a network failure would (no orderly close)."""
        for c in list(self._clients):
            c.writer.transport.abort()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("PHD2 simulator listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for c in list(self._clients):
            c.writer.transport.abort()
        handlers = list(self._handlers)
        if handlers:
            # Aborted transports end the handlers (EOF); cancel only a handler stuck in a
            # slow request (a delayed set_connected).
            _, pending = await asyncio.wait(handlers, timeout=1.0)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        await self.core.close()
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve_until_shutdown(self) -> None:
        """For the CLI: run until a client calls ``shutdown``."""
        await self.shutdown_requested.wait()

    def _on_shutdown_rpc(self) -> None:
        # After the reply has been written: the caller sees {"result": 0} first, then EOF.
        loop = asyncio.get_running_loop()
        loop.call_soon(self._close_for_shutdown)

    def _close_for_shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self._clients):
            c.writer.close()
        self.shutdown_requested.set()

    # ------------------------------------------------------------------ wire

    def _broadcast(self, ev: Event) -> None:
        for c in list(self._clients):
            c.send(ev)

    async def _on_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        client = _Client(writer)
        for ev in self.core.catchup_events():
            client.send(ev)
        self._clients.add(client)
        log.debug("PHD2 simulator: client %s connected", client.peer)
        try:
            await self._serve(client, reader)
        except (ConnectionError, OSError) as exc:
            log.debug("PHD2 simulator: client %s dropped: %s", client.peer, exc)
        except asyncio.CancelledError:
            # Only stop() cancels a handler, and it is the end of that connection. Returning
            # normally matters: asyncio (3.11) logs a cancelled connection task as an error.
            log.debug("PHD2 simulator: handler for %s cancelled at shutdown", client.peer)
        finally:
            self._clients.discard(client)
            writer.close()
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, client: _Client, reader: asyncio.StreamReader) -> None:
        buf = bytearray()
        discarding = False
        while True:
            data = await reader.read(4096)
            if not data:
                return
            buf += data
            while True:
                nl = buf.find(b"\n")
                if discarding:
                    # The rest of an over-long line: dropped up to its newline.
                    if nl < 0:
                        buf.clear()
                        break
                    del buf[:nl + 1]
                    discarding = False
                    continue
                if nl < 0:
                    if len(buf) >= READ_BUFFER_BYTES:
                        client.send(_error(INTERNAL_ERROR, "too big"))
                        buf.clear()
                        discarding = True
                    break
                if nl >= READ_BUFFER_BYTES:
                    client.send(_error(INTERNAL_ERROR, "too big"))
                    del buf[:nl + 1]
                    continue
                line = bytes(buf[:nl])
                del buf[:nl + 1]
                await self._handle_line(client, line)
            await client.writer.drain()

    async def _handle_line(self, client: _Client, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace")
        try:
            root = json.loads(text)
        except json.JSONDecodeError as exc:
            where = text[exc.pos:exc.pos + 12]
            client.send(_error(
                PARSE_ERROR,
                f'invalid JSON request: {exc.msg} on line {exc.lineno} at "{where}..."',
            ))
            return
        if isinstance(root, list):
            replies = []
            for req in root:
                reply = await self._handle_request(req)
                if reply is not None:
                    replies.append(reply)
            if replies:
                client.send(replies)
            return
        reply = await self._handle_request(root)
        if reply is not None:
            client.send(reply)

    async def _handle_request(self, req: Any) -> dict[str, Any] | None:
        """One request object → its response, or None when none is due (no ``id``)."""
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return _error(INVALID_REQUEST, "invalid request - missing method")
        params = req.get("params")
        if "params" in req and not isinstance(params, list | dict):
            return _error(INVALID_REQUEST, "invalid request - params must be an array or object")
        has_id = "id" in req
        req_id = req.get("id")
        handler = self.core.methods.get(req["method"])
        if handler is None:
            return _error(METHOD_NOT_FOUND, "method not found", req_id) if has_id else None
        try:
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
        except RpcError as exc:
            response = _error(exc.code, exc.message, req_id)
        except Exception:
            log.exception("PHD2 simulator: %s failed", req["method"])
            response = _error(1, "internal error", req_id)
        else:
            response = {"jsonrpc": "2.0", "result": result, "id": req_id}
        return response if has_id else None
