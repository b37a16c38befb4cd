"""One connection to an indiserver, shared by the adapters of the devices it serves.

pyindi-client (SWIG over libindiclient) runs its own listener thread and calls back into Python
from it. Nothing of ours runs on that thread except :meth:`_Mirror.store`, which copies each
property into an immutable :class:`PropertyView` under a lock. The event loop only ever reads
those snapshots; everything that talks to the socket (connect, send, disconnect) runs in a worker
thread (``asyncio.to_thread``) under a timeout. Waiting for a driver's answer is polling the
snapshots' version counters — the same start-then-poll shape as the device interfaces.

INDI vocabulary (property and element names, states ``Idle/Ok/Busy/Alert``) stays inside
``runner.devices.indi``. pyindi-client is imported lazily so that Nightrunner runs without the
optional ``indi`` extra; :func:`load_pyindi` says how to install it.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

from runner.errors import DeviceDisconnected, DeviceError, DeviceTimeout

log = logging.getLogger(__name__)

#: indiserver's well-known port.
DEFAULT_PORT = 7624
#: Seconds one request (send, connect) may take.
DEFAULT_TIMEOUT = 10.0
#: How often waits poll the snapshots, s.
POLL = 0.02

IDLE, OK, BUSY, ALERT = "Idle", "Ok", "Busy", "Alert"
Value = float | bool | str


class Unsupported(DeviceError):
    """The INDI driver does not define the property this operation needs."""


def load_pyindi() -> ModuleType:
    """The ``PyIndi`` module, or a clear error when the ``indi`` extra is not installed."""
    try:
        import PyIndi
    except ImportError as exc:
        raise DeviceError(
            "the INDI back-end needs pyindi-client: run scripts/install-backends.sh "
            "or pip install 'nightrunner[indi]' (see docs/backends.md)"
        ) from exc
    module: ModuleType = PyIndi
    return module


@dataclass(frozen=True)
class PropertyView:
    """A copy of one INDI property as the driver last sent it."""

    device: str
    name: str
    kind: str  # number | switch | text | light | blob
    state: str  # Idle | Ok | Busy | Alert
    writable: bool
    values: Mapping[str, Value]
    limits: Mapping[str, tuple[float, float]]
    version: int
    rule: str = ""  # switches: OneOfMany | AtMostOne | AnyOfMany

    def number(self, element: str) -> float:
        value = self.values.get(element)
        if not isinstance(value, float):
            raise DeviceError(f"INDI {self.device}.{self.name} has no number {element}")
        return value

    def on(self) -> list[str]:
        """Switch elements that are On."""
        return [k for k, v in self.values.items() if v is True]


@dataclass
class Blob:
    seq: int
    element: str
    format: str
    data: bytes


@dataclass
class _Mirror:
    """Thread-safe copy of the server's property tree (written by the listener thread)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    props: dict[tuple[str, str], PropertyView] = field(default_factory=dict)
    blobs: dict[str, Blob] = field(default_factory=dict)
    messages: dict[str, deque[str]] = field(default_factory=dict)
    version: int = 0
    server_up: bool = False

    def store(self, pyindi: ModuleType, prop: Any, removed: bool = False) -> None:
        device, name = str(prop.getDeviceName()), str(prop.getName())
        if removed:
            with self.lock:
                self.props.pop((device, name), None)
            return
        kind, values, limits, blob = _read(pyindi, prop)
        rule = str(pyindi.PropertySwitch(prop).getRuleAsString()) if kind == "switch" else ""
        state = str(prop.getStateAsString())
        writable = int(prop.getPermission()) != int(pyindi.IP_RO)
        with self.lock:
            self.version += 1
            self.props[(device, name)] = PropertyView(
                device,
                name,
                kind,
                state,
                writable,
                MappingProxyType(values),
                MappingProxyType(limits),
                self.version,
                rule,
            )
            if blob is not None:
                previous = self.blobs.get(device)
                seq = previous.seq + 1 if previous else 1
                self.blobs[device] = Blob(seq, blob[0], blob[1], blob[2])

    def message(self, device: str, text: str) -> None:
        with self.lock:
            self.messages.setdefault(device, deque(maxlen=20)).append(text)


def _read(
    pyindi: ModuleType, prop: Any
) -> tuple[str, dict[str, Value], dict[str, tuple[float, float]], tuple[str, str, bytes] | None]:
    """Listener thread: one property's elements as Python values."""
    t = prop.getType()
    values: dict[str, Value] = {}
    limits: dict[str, tuple[float, float]] = {}
    blob: tuple[str, str, bytes] | None = None
    if t == pyindi.INDI_NUMBER:
        for w in pyindi.PropertyNumber(prop):
            values[str(w.getName())] = float(w.getValue())
            limits[str(w.getName())] = (float(w.getMin()), float(w.getMax()))
        return "number", values, limits, None
    if t == pyindi.INDI_SWITCH:
        for w in pyindi.PropertySwitch(prop):
            values[str(w.getName())] = w.getState() == pyindi.ISS_ON
        return "switch", values, limits, None
    if t == pyindi.INDI_TEXT:
        for w in pyindi.PropertyText(prop):
            values[str(w.getName())] = str(w.getText())
        return "text", values, limits, None
    if t == pyindi.INDI_LIGHT:
        for w in pyindi.PropertyLight(prop):
            values[str(w.getName())] = str(w.getStateAsString())
        return "light", values, limits, None
    if t == pyindi.INDI_BLOB:
        for w in pyindi.PropertyBlob(prop):
            size = int(w.getSize())
            values[str(w.getName())] = str(w.getFormat())
            if size > 0 and blob is None:
                blob = (str(w.getName()), str(w.getFormat()), bytes(w.getblobdata()))
        return "blob", values, limits, blob
    return "unknown", values, limits, None


_LISTENER_CLASS: type | None = None

#: Open clients. libindiclient aborts the process ("terminate called without an active
#: exception") if its listener thread is still running at interpreter exit, e.g. after an
#: unhandled error skipped the disconnects; the exit hook below closes what is left open.
_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()

#: Closed clients, kept alive on purpose. The C++ destructor joins the listener thread; if the
#: last Python reference went away on that very thread (its serverDisconnected callback still
#: holding ``self`` after our disconnect returned), the join would be a self-join and libstdc++
#: aborts the process ("Resource deadlock avoided"). A closed client is a few hundred bytes.
_RETIRED: list[Any] = []


@atexit.register
def _close_all_at_exit() -> None:
    for client in list(_OPEN):
        try:
            client.disconnectServer()
        except Exception:
            log.exception("closing an INDI connection at exit failed")


def _listener_class(pyindi: ModuleType) -> type:
    """A ``PyIndi.BaseClient`` subclass feeding a :class:`_Mirror` (built once, lazily)."""
    global _LISTENER_CLASS
    if _LISTENER_CLASS is not None:
        return _LISTENER_CLASS

    class Listener(pyindi.BaseClient):  # type: ignore[name-defined,misc]
        # Called from libindiclient's thread. An exception escaping a callback would reach
        # C++ and abort the process, so each callback logs and drops its own failure.
        def __init__(self, mirror: _Mirror) -> None:
            super().__init__()
            self.mirror = mirror

        def _guard(self, fn: Callable[[], None]) -> None:
            try:
                fn()
            except Exception:
                log.exception("INDI listener callback failed")

        def newDevice(self, device: Any) -> None:
            pass

        def removeDevice(self, device: Any) -> None:
            pass

        def newProperty(self, prop: Any) -> None:
            self._guard(lambda: self.mirror.store(pyindi, prop))

        def updateProperty(self, prop: Any) -> None:
            self._guard(lambda: self.mirror.store(pyindi, prop))

        def removeProperty(self, prop: Any) -> None:
            self._guard(lambda: self.mirror.store(pyindi, prop, removed=True))

        def newMessage(self, device: Any, message_id: Any) -> None:
            self._guard(
                lambda: self.mirror.message(
                    str(device.getDeviceName()), str(device.messageQueue(message_id))
                )
            )

        def serverConnected(self) -> None:
            self.mirror.server_up = True

        def serverDisconnected(self, code: Any) -> None:
            self.mirror.server_up = False

    _LISTENER_CLASS = Listener
    return Listener


def parse_address(address: str | None) -> tuple[str, int]:
    """``host[:port]`` → (host, port); default ``127.0.0.1:7624``."""
    if not address:
        return "127.0.0.1", DEFAULT_PORT
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, DEFAULT_PORT
    if not port.isdigit():
        raise DeviceError(f"INDI address {address!r}: the port must be a number")
    return host or "127.0.0.1", int(port)


class IndiServer:
    """A reference-counted client connection to one indiserver (``host:port``).

    Adapters call :meth:`acquire` in their ``connect`` and :meth:`release` in ``disconnect``;
    the socket opens with the first and closes with the last.
    """

    def __init__(self, address: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host, self.port = parse_address(address)
        self.address = f"{self.host}:{self.port}"
        self.timeout = timeout
        self._mirror = _Mirror()
        self._client: Any = None
        self._users = 0
        self._lock = asyncio.Lock()
        self._send_lock = threading.Lock()
        self._pyindi: ModuleType | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._client is not None and self._mirror.server_up

    async def acquire(self) -> None:
        """Open the connection if this is its first user.

        Raises:
            DeviceDisconnected: no indiserver answers at the address.
            DeviceError: pyindi-client is not installed.
        """
        async with self._lock:
            if self._client is not None and not self._mirror.server_up:
                await self._close()  # the server went away: start over
            if self._client is None:
                await self._open()
            self._users += 1

    async def release(self) -> None:
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._client is not None:
                await self._close()

    async def _open(self) -> None:
        pyindi = self._pyindi = load_pyindi()
        mirror = self._mirror = _Mirror()
        client = _listener_class(pyindi)(mirror)
        client.setServer(self.host, self.port)
        client.setConnectionTimeout(int(self.timeout), 0)
        _RETIRED.append(client)  # see _RETIRED; a client is never destroyed by us
        ok = await self._thread(client.connectServer, "connect", self.timeout + 1.0)
        if not ok:
            raise DeviceDisconnected(f"no indiserver answers at {self.address}")
        mirror.server_up = True
        self._client = client
        _OPEN.add(client)

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _OPEN.discard(client)
            try:
                await self._thread(client.disconnectServer, "disconnect", self.timeout)
            finally:
                self._mirror.server_up = False

    async def _thread(self, fn: Callable[[], Any], what: str, time_limit: float) -> Any:
        try:
            async with asyncio.timeout(time_limit):
                return await asyncio.to_thread(fn)
        except TimeoutError as exc:
            raise DeviceTimeout(
                f"indiserver {self.address}: {what}: no answer within {time_limit:g} s"
            ) from exc
        except DeviceError:
            raise
        except Exception as exc:  # SWIG/libindiclient failures
            raise DeviceError(f"indiserver {self.address}: {what}: {exc}") from exc

    def _require(self) -> Any:
        if not self.connected:
            raise DeviceDisconnected(f"not connected to indiserver {self.address}")
        return self._client

    # ------------------------------------------------------------------ reading

    def devices(self) -> list[str]:
        with self._mirror.lock:
            return sorted({d for d, _ in self._mirror.props})

    def property_names(self, device: str) -> list[str]:
        with self._mirror.lock:
            return [n for d, n in self._mirror.props if d == device]

    def prop(self, device: str, name: str) -> PropertyView | None:
        with self._mirror.lock:
            return self._mirror.props.get((device, name))

    def require(self, device: str, name: str) -> PropertyView:
        """The property, or :class:`Unsupported` when the driver does not define it."""
        view = self.prop(device, name)
        if view is None:
            raise Unsupported(f"INDI device '{device}' has no property {name}")
        return view

    def blob(self, device: str) -> Blob | None:
        with self._mirror.lock:
            return self._mirror.blobs.get(device)

    def messages(self, device: str) -> list[str]:
        with self._mirror.lock:
            return list(self._mirror.messages.get(device, ()))

    def explain(self, device: str) -> str:
        """The driver's last message, for error texts."""
        msgs = self.messages(device)
        return f" (driver says: {msgs[-1].strip()})" if msgs else ""

    async def wait_until(self, cond: Callable[[], bool], what: str, time_limit: float) -> None:
        """Poll ``cond`` until true; DeviceTimeout after ``time_limit`` s, DeviceDisconnected
        when the server goes away meanwhile."""
        deadline = time.monotonic() + time_limit
        while not cond():
            self._require()
            if time.monotonic() >= deadline:
                raise DeviceTimeout(f"{what}: not within {time_limit:g} s")
            await asyncio.sleep(POLL)

    # ------------------------------------------------------------------ writing

    async def send(self, device: str, name: str, values: Mapping[str, Value]) -> int:
        """Send new element values of one property; returns the snapshot version before it.

        Switches: the elements given are set, and for one-of-many switches every other
        element is cleared. Numbers and texts: only the elements given change.

        Raises:
            Unsupported: the driver does not define the property.
            DeviceError: an element does not exist or the property is read-only.
        """
        client = self._require()
        view = self.require(device, name)
        if not view.writable:
            raise DeviceError(f"INDI {device}.{name} is read-only")
        unknown = set(values) - set(view.values)
        if unknown:
            raise DeviceError(f"INDI {device}.{name} has no element {', '.join(sorted(unknown))}")
        pyindi = self._pyindi
        assert pyindi is not None
        # A new, standalone vector with every element: changing the client's own copy of the
        # property would race with the listener thread writing incoming updates into it.
        merged = dict(view.values)
        if view.kind == "switch" and view.rule != "AnyOfMany" and any(values.values()):
            merged = dict.fromkeys(merged, False)
        merged.update(values)

        def send_now() -> None:
            with self._send_lock:
                if view.kind == "number":
                    vec = pyindi.PropertyNumber(len(merged))
                elif view.kind == "switch":
                    vec = pyindi.PropertySwitch(len(merged))
                elif view.kind == "text":
                    vec = pyindi.PropertyText(len(merged))
                else:
                    raise DeviceError(f"INDI {device}.{name}: cannot send a {view.kind}")
                vec.setDeviceName(device)
                vec.setName(name)
                for i, (key, val) in enumerate(merged.items()):
                    vec[i].setName(key)
                    if view.kind == "number":
                        vec[i].setValue(float(val))
                    elif view.kind == "switch":
                        vec[i].setState(pyindi.ISS_ON if val else pyindi.ISS_OFF)
                    else:
                        vec[i].setText(str(val))
                if view.kind == "number":
                    client.sendNewNumber(vec)
                elif view.kind == "switch":
                    client.sendNewSwitch(vec)
                else:
                    client.sendNewText(vec)

        before = view.version
        await self._thread(send_now, f"{device}.{name}", self.timeout)
        return before

    async def set_blob_mode(self, device: str, name: str, enabled: bool) -> None:
        client = self._require()
        pyindi = self._pyindi
        assert pyindi is not None
        mode = pyindi.B_ALSO if enabled else pyindi.B_NEVER
        await self._thread(
            lambda: client.setBLOBMode(mode, device, name), f"BLOB mode {device}", self.timeout
        )
