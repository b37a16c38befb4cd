"""Start and stop the control plane on the engine's own event loop.

Secure by default: loopback unless a token is set (a non-loopback address without one refuses
to start). A port that is taken is reported and the night goes on without that transport: the
control plane never stops a night.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import runner.control.methods_camera
import runner.control.methods_guider
import runner.control.methods_hub
import runner.control.methods_night  # noqa: F401  (register their methods)
from runner.control.hub import Hub, is_loopback
from runner.control.protocol import Dispatcher
from runner.control.tcp import TcpServer
from runner.control.telemetry import Telemetry
from runner.errors import ConfigError

log = logging.getLogger("nightrunner.control")

DEFAULT_HTTP = ("127.0.0.1", 8765)
DEFAULT_TCP = ("127.0.0.1", 8800)  # pyastroimageview's clients hard-code this address
TOKEN_ENV = "NIGHTRUNNER_TOKEN"
WS_PING_INTERVAL = 20.0
WS_PING_TIMEOUT = 20.0
SWITCH_INTERVAL = 0.001  # s, the GIL hand-over bound for the loop thread (see start)


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or ``[::1]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(default_port)
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"bad address {text!r}: expected HOST:PORT")
    return host, int(port)


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from the flag, the file or ``$NIGHTRUNNER_TOKEN`` (never logged)."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"token file {token_file}: {exc.strerror or exc}") from None
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < 16:
        raise ConfigError("the token must be at least 16 characters")
    return token


@dataclass
class ControlPlane:
    hub: Hub
    http: tuple[str, int] | None = DEFAULT_HTTP
    tcp: tuple[str, int] | None = DEFAULT_TCP
    certfile: Path | None = None
    keyfile: Path | None = None
    #: TLS on the TCP line protocol too; None: when a certificate is given and the TCP
    #: address is not loopback (pyastroimageview's clients speak plain TCP to 127.0.0.1)
    tcp_tls: bool | None = None
    bound: dict[str, tuple[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _uvicorn: Any = None
    _serve_task: Any = None
    _tcp: TcpServer | None = None

    def check(self) -> None:
        for name, addr in (("http", self.http), ("tcp", self.tcp)):
            if addr is not None and not is_loopback(addr[0]) and self.hub.token is None:
                raise ConfigError(
                    f"refusing to serve {name} on {addr[0]}, which is not loopback, without a "
                    f"token: pass --token-file FILE or set ${TOKEN_ENV}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        if self.certfile is not None:
            self._tls_context()

    def _tls_context(self) -> ssl.SSLContext:
        assert self.certfile is not None and self.keyfile is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS certificate {self.certfile} or key {self.keyfile}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        return context

    def tcp_uses_tls(self) -> bool:
        if self.certfile is None or self.tcp is None:
            return False
        return self.tcp_tls if self.tcp_tls is not None else not is_loopback(self.tcp[0])

    async def start(self) -> None:
        """Open what can be opened; what cannot is in ``problems`` (and logged)."""
        import asyncio
        import sys

        self.check()
        # Every reply the loop writes releases the GIL for the syscall, and getting it back
        # waits out the worker holding it (stacking, rendering, HFR: numpy in many short
        # calls) for up to the switch interval, 5 ms by default. A few such waits per request
        # were the status p99 with the web side watched; 1 ms bounds each.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        dispatcher = Dispatcher(self.hub)
        self.hub.telemetry = Telemetry(self.hub)
        self.hub.telemetry.start()
        if self.tcp is not None:
            tcp = TcpServer(dispatcher)
            try:
                port = await tcp.start(*self.tcp, tls=self._tls_context()
                                       if self.tcp_uses_tls() else None)
                self._tcp = tcp
                self.bound["tcp"] = (self.tcp[0], port)
            except OSError as exc:
                self._problem(f"TCP control port {self.tcp[0]}:{self.tcp[1]}: "
                              f"{exc.strerror or exc}")
        if self.http is not None:
            try:
                sock = _bind(*self.http)
            except OSError as exc:
                self._problem(f"HTTP control port {self.http[0]}:{self.http[1]}: "
                              f"{exc.strerror or exc}")
                return
            import uvicorn

            from runner.control.http_app import MAX_WS_CLIENTS, build_app
            from runner.control.http_guard import HEADER_TIMEOUT, MAX_BODY, GuardedH11Protocol

            app = build_app(dispatcher)
            if self.hub.web is not None:
                self.hub.web.start()
            config = uvicorn.Config(
                app, log_level="warning", access_log=False,
                lifespan="off", ws_max_size=MAX_BODY, limit_concurrency=MAX_WS_CLIENTS + 64,
                http=GuardedH11Protocol, timeout_keep_alive=int(HEADER_TIMEOUT),
                h11_max_incomplete_event_size=64 * 1024,
                # a WebSocket client that stops answering pings (gone, or a slowloris inside
                # a frame) is closed; a quiet subscriber that answers them stays
                ws_ping_interval=WS_PING_INTERVAL, ws_ping_timeout=WS_PING_TIMEOUT,
                ssl_certfile=str(self.certfile) if self.certfile else None,
                ssl_keyfile=str(self.keyfile) if self.keyfile else None,
                ws="websockets-sansio" if _has_sansio() else "websockets",
            )
            server = _quiet_server(config)
            self._uvicorn = server
            self._serve_task = asyncio.create_task(server.serve(sockets=[sock]))
            for _ in range(200):
                if server.started or self._serve_task.done():
                    break
                await asyncio.sleep(0.01)
            if self._serve_task.done():
                self._problem("HTTP control plane failed to start")
            else:
                self.bound["http"] = sock.getsockname()[:2]

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("control plane: %s; the night goes on without it", message)

    async def stop(self) -> None:
        import asyncio

        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await self._serve_task
        if self._tcp is not None:
            await self._tcp.close()
        if self.hub.web is not None:
            await self.hub.web.stop()
        if self.hub.telemetry is not None:
            await self.hub.telemetry.stop()
        from runner.control.guider_link import close_hub_guider

        with contextlib.suppress(Exception):  # `run` and `serve` alike: PHD2 keeps no
            await close_hub_guider(self.hub)  # half-open client (nor a simulator) of a gone hub

    def url(self) -> str | None:
        if "http" not in self.bound:
            return None
        host, port = self.bound["http"]
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def _has_sansio() -> bool:
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401
    except ImportError:
        return False
    return True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: only then does asyncio set TCP_NODELAY on accepted sockets
    # (else Nagle + delayed ACK hold each reply's body ~40 ms behind its headers)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _quiet_server(config: Any) -> Any:
    """uvicorn's server without its signal handlers: the night owns SIGINT and SIGTERM."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return Server(config)
