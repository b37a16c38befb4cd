"""What every Alpaca adapter shares: the alpyca object, the lifecycle, typed member access.

An adapter names ASCOM members (PascalCase strings) only through :meth:`AlpacaDevice._get`,
:meth:`AlpacaDevice._set` and :meth:`AlpacaDevice._do`; each is one HTTP request in a worker
thread with a timeout (:func:`runner.devices.alpaca.transport.call`).
"""

from __future__ import annotations

from typing import Any

from runner.devices.alpaca.transport import DEFAULT_TIMEOUT, Unsupported, call
from runner.devices.interfaces import Device
from runner.errors import DeviceDisconnected

#: Seconds a connect may take (some drivers open serial ports or home devices on connect).
CONNECT_TIMEOUT = 30.0


class AlpacaDevice(Device):
    """Lifecycle (unconnected → connected → disconnected) around one alpyca device object.

    ``device`` is the alpyca instance (``alpaca.camera.Camera(address, number)`` …); building it
    does no I/O. ``label`` names the device in error messages.
    """

    def __init__(self, device: Any, label: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._dev = device
        self.label = label
        self.timeout = timeout
        self._connected = False

    @property
    def connected(self) -> bool:
        """Last known state; becomes False when a call finds the device disconnected."""
        return self._connected

    async def connect(self) -> None:
        """Set ``Connected`` and read it back.

        Raises:
            DeviceDisconnected: the server is unreachable or the device stays disconnected.
            DeviceTimeout: no answer within the connect timeout.
        """
        what = f"{self.label}: connect"
        await call(lambda: setattr(self._dev, "Connected", True), what, CONNECT_TIMEOUT)
        if not bool(await call(lambda: self._dev.Connected, what, self.timeout)):
            raise DeviceDisconnected(f"{what}: the driver still reports Connected = False")
        self._connected = True
        await self._on_connect()

    @property
    def endpoint(self) -> str:
        return f"alpaca://{getattr(self._dev, 'address', '?')}"

    async def probe(self) -> None:
        """Read ``Connected`` from the server.

        A restarted Alpaca server answers every device as ``Connected = False`` — and the
        simulators go on answering reads and even exposures — so this read is what notices it.
        """
        self._require()
        if not bool(await self._get("Connected")):
            self._connected = False
            raise DeviceDisconnected(
                f"{self.label} reports Connected = False (was its server restarted?)"
            )

    async def _on_connect(self) -> None:
        """Read what the adapter caches (capabilities, sizes); runs after every connect."""

    async def disconnect(self) -> None:
        """Clear ``Connected``; a no-op when not connected."""
        if not self._connected:
            return
        try:
            await call(
                lambda: setattr(self._dev, "Connected", False),
                f"{self.label}: disconnect",
                self.timeout,
            )
        finally:
            self._connected = False

    def _require(self) -> None:
        if not self._connected:
            raise DeviceDisconnected(f"{self.label} is not connected")

    async def _call(self, fn: Any, what: str, time_limit: float | None) -> Any:
        self._require()
        try:
            return await call(fn, f"{self.label}: {what}", time_limit or self.timeout)
        except DeviceDisconnected:
            self._connected = False
            raise

    async def _get(self, member: str, *, time_limit: float | None = None) -> Any:
        """Read an ASCOM property."""
        return await self._call(lambda: getattr(self._dev, member), member, time_limit)

    async def _get_optional(self, member: str) -> Any | None:
        """Read an ASCOM property the driver may not implement (None then)."""
        try:
            return await self._get(member)
        except Unsupported:
            return None

    async def _set(self, member: str, value: object, *, time_limit: float | None = None) -> None:
        """Write an ASCOM property."""
        await self._call(
            lambda: setattr(self._dev, member, value), f"{member} = {value!r}", time_limit
        )

    async def _do(self, method: str, *args: object, time_limit: float | None = None) -> Any:
        """Call an ASCOM method."""
        shown = ", ".join(repr(a) for a in args)
        return await self._call(
            lambda: getattr(self._dev, method)(*args), f"{method}({shown})", time_limit
        )
