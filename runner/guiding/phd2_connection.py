"""Connecting to PHD2: opening the socket, the reader task, a dropped connection failing
every waiter and reconnecting with back-off; and the state queries."""


import asyncio
import contextlib
import logging

from runner.devices.interfaces import GuiderState
from runner.errors import GuiderConnectionError, GuiderError
from runner.guiding.phd2_wire import _READ_LIMIT_BYTES, PHD2Wire

log = logging.getLogger(__name__)


class PHD2Connection(PHD2Wire):
    """The connection lifecycle of one PHD2 client."""

    # ------------------------------------------------------------------ connection

    async def connect_server(self, port: int | None = None, host: str | None = None) -> None:
        """Open the connection and wait for PHD2's catch-up events (ending with AppState)."""
        if port is not None:
            self.port = port
        if host is not None:
            self.host = host
        if self.connected:
            return
        self._closing = False
        try:
            await self._open()
        except BaseException:
            self._closing = True
            raise

    async def disconnect_server(self) -> None:
        """Close on purpose: no reconnect; pending calls fail with GuiderConnectionError."""
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
            self._reconnect_task = None
        writer, task = self._writer, self._reader_task
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._on_connection_lost(self._generation, None)

    async def reconnect_server(self) -> None:
        await self.disconnect_server()
        await self.connect_server()

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the (re)connection is up; raises GuiderConnectionError on timeout."""
        try:
            async with asyncio.timeout(self._real_timeout(timeout_s)):
                await self._connected.wait()
        except TimeoutError as exc:
            raise GuiderConnectionError(
                f"PHD2 at {self.host}:{self.port} did not come back within {timeout_s:g} s"
            ) from exc

    async def _open(self) -> None:
        try:
            async with asyncio.timeout(self._real_timeout(self.connect_timeout_s)):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=_READ_LIMIT_BYTES)
        except (OSError, TimeoutError) as exc:
            raise GuiderConnectionError(
                f"cannot connect to PHD2 at {self.host}:{self.port}: {exc}"
            ) from exc
        self._generation += 1
        gen = self._generation
        loop = asyncio.get_running_loop()
        self._catchup_done = loop.create_future()
        self._writer = writer
        self._reader_task = asyncio.create_task(
            self._read_loop(reader, gen), name=f"phd2-reader-{self.host}:{self.port}"
        )
        try:
            async with asyncio.timeout(self._real_timeout(self.connect_timeout_s)):
                await asyncio.shield(self._catchup_done)
        except TimeoutError as exc:
            writer.close()
            raise GuiderConnectionError(
                f"{self.host}:{self.port} accepted the connection but sent no PHD2 AppState"
            ) from exc
        # Facts other calls depend on, fetched before anyone sees the connection as up.
        if not self._pixel_scale_given:
            self.pixel_scale_arcsec = await self.get_pixel_scale()
        await self.get_exposure_s()
        self._connected.set()
        log.info("connected to PHD2 %s at %s:%s (%s)", self.version, self.host, self.port,
                 self._app_state)

    async def _read_loop(self, reader: asyncio.StreamReader, gen: int) -> None:
        error: BaseException | None = None
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                self._handle_line(line)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError, ValueError) as exc:
            # ValueError: a line longer than the read limit — the stream is unusable.
            error = exc
        finally:
            if gen == self._generation:
                self._on_connection_lost(gen, error)

    def _on_connection_lost(self, gen: int, error: BaseException | None) -> None:
        if gen != self._generation:
            return
        self._generation += 1
        was_connected = self.connected
        self._connected.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        reason = f": {error}" if error else ""
        err_text = f"connection to PHD2 at {self.host}:{self.port} lost{reason}"
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(GuiderConnectionError(err_text))
        self._pending.clear()
        for w in self._waiters:
            if not w.future.done():
                w.future.set_exception(GuiderConnectionError(err_text))
        self._waiters.clear()
        if self._catchup_done is not None and not self._catchup_done.done():
            self._catchup_done.set_exception(GuiderConnectionError(err_text))
            self._catchup_done.exception()  # retrieved here; _open reports the failure itself
        if self._closing:
            return
        if was_connected:
            log.warning("%s", err_text)
        if self.auto_reconnect and (self._reconnect_task is None or self._reconnect_task.done()):
            self._reconnect_task = asyncio.create_task(
                self._reconnect_loop(), name="phd2-reconnect"
            )

    async def _reconnect_loop(self) -> None:
        delay = self.reconnect_initial_s
        while not self._closing:
            await self.clock.sleep(delay)
            if self._closing:
                return
            try:
                await self._open()
            except GuiderConnectionError as exc:
                log.warning("PHD2 reconnect failed (%s); next try in %g s", exc, delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            self.reconnects += 1
            try:
                self._settling = bool(await self.call("get_settling"))
            except GuiderError as exc:
                log.warning("PHD2 re-sync after reconnect failed: %s", exc)
            return


    # ------------------------------------------------------------------ state queries

    async def get_app_state(self) -> GuiderState:
        """Ask PHD2 (a poll, used to re-sync); also refreshes the derived state."""
        raw = await self.call("get_app_state")
        try:
            state = GuiderState(raw)
        except ValueError as exc:
            raise GuiderError(f"PHD2 reported an unknown state {raw!r}") from exc
        self._app_state = state
        return state

    async def get_settling(self) -> bool:
        return bool(await self.call("get_settling"))

    async def get_pixel_scale(self) -> float | None:
        """Guide camera scale, arcsec/px, or None when PHD2 does not know it."""
        v = await self.call("get_pixel_scale")
        return float(v) if isinstance(v, int | float) else None

    async def get_exposure_s(self) -> float:
        ms = await self.call("get_exposure")
        self._exposure_s = float(ms) / 1000.0
        return self._exposure_s

    async def set_exposure_s(self, seconds: float) -> None:
        await self.call("set_exposure", [round(seconds * 1000)])
        self._exposure_s = round(seconds * 1000) / 1000.0

    async def _exposure(self) -> float:
        return self._exposure_s if self._exposure_s is not None else await self.get_exposure_s()

