"""What every INDI adapter shares: finding its device, connecting it, typed property access.

``connect`` opens (or shares) the server connection, finds the device — by the name in the
equipment profile, or, when none is given, the only device whose ``DRIVER_INTERFACE`` has the
adapter's bit — and switches its ``CONNECTION`` on if it is off. ``disconnect`` releases the
server connection but leaves the driver connected: other clients of the same indiserver (PHD2
guiding through the mount, a second camera client) keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import ClassVar, Literal

from runner.devices.indi.client import (
    ALERT,
    BUSY,
    DEFAULT_TIMEOUT,
    IDLE,
    OK,
    IndiServer,
    PropertyView,
    Unsupported,
    Value,
)
from runner.devices.interfaces import Device
from runner.errors import DeviceDisconnected, DeviceError, DeviceTimeout

#: Seconds for the device list to arrive and for a driver to connect its hardware.
CONNECT_TIMEOUT = 30.0
#: No new property for this long after connecting: the driver has defined them all, s.
DEFINITIONS_QUIET = 0.1
#: How long a setting waits for an answer carrying the values sent, after an Ok without, s.
ADJUST_GRACE = 0.5
#: Once one device is defined, how long a named device may take to appear, s.
NAMED_DEVICE_GRACE = 3.0
#: Once one device is defined, how long to wait for the rest when choosing by interface, s.
DISCOVERY_GRACE = 0.5

Reply = Literal["settled", "started", "answered"]

# INDI::BaseDevice::DRIVER_INTERFACE bits
TELESCOPE, CCD, GUIDER, FOCUSER, FILTER, DOME, GPS, WEATHER = (1 << i for i in range(8))


class IndiDevice(Device):
    """One INDI device on a shared :class:`IndiServer`."""

    #: DRIVER_INTERFACE bit used to pick the device when the profile names none.
    interface: ClassVar[int]
    #: A property the driver defines once connected; ``connect`` waits for it.
    key_property: ClassVar[str]
    kind: ClassVar[str]

    def __init__(
        self, server: IndiServer, name: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.server = server
        self.name = name
        self.timeout = timeout
        self._connected = False
        self._holding = False

    @property
    def label(self) -> str:
        return f"INDI {self.kind} '{self.name or '?'}' at {self.server.address}"

    @property
    def connected(self) -> bool:
        if not (self._connected and self.server.connected and self.name):
            return False
        conn = self.server.prop(self.name, "CONNECTION")
        return conn is not None and conn.values.get("CONNECT") is True

    @property
    def endpoint(self) -> str:
        return f"indi://{self.server.address}"

    async def probe(self) -> None:
        """INDI pushes state: the socket being up and the driver's ``CONNECTION`` being On in
        the copy it keeps current is the answer (a restarted driver starts disconnected)."""
        self._dev()

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Find the device and connect its driver.

        Raises:
            DeviceDisconnected: no server, no such device, or the driver failed to connect.
            DeviceError: the device is ambiguous (several candidates, none named).
        """
        if self._holding and not self.server.connected:
            # the server went away under us: our share of the dead connection is released,
            # and acquire() opens a new one (or fails while the server is still down) — never
            # "reconnect" against the stale property copy of the old connection
            self._holding = False
            self._connected = False
            await self.server.release()
        if not self._holding:
            await self.server.acquire()
            self._holding = True
        try:
            name = self.name = await self._resolve()
            server = self.server
            await server.wait_until(
                lambda: server.prop(name, "CONNECTION") is not None,
                f"{self.label}: CONNECTION property",
                CONNECT_TIMEOUT,
            )
            conn = server.require(name, "CONNECTION")
            if conn.values.get("CONNECT") is not True or conn.state == ALERT:
                await server.send(name, "CONNECTION", {"CONNECT": True})

                def done() -> bool:
                    view = server.prop(name, "CONNECTION")
                    return view is not None and (
                        view.state == ALERT
                        or (view.values.get("CONNECT") is True and view.state != BUSY)
                    )

                await server.wait_until(done, f"{self.label}: connect", CONNECT_TIMEOUT)
                if server.require(name, "CONNECTION").state == ALERT:
                    raise DeviceDisconnected(
                        f"{self.label}: the driver failed to connect{server.explain(name)}"
                    )
            await server.wait_until(
                lambda: server.prop(name, self.key_property) is not None,
                f"{self.label}: waiting for {self.key_property}",
                CONNECT_TIMEOUT,
            )
            await self._definitions_settled(name)
            self._connected = True
            await self._on_connect()
        except BaseException:
            self._connected = False
            self._holding = False
            await self.server.release()
            raise

    async def _on_connect(self) -> None:
        """Adapter set-up after the driver is connected."""

    async def _definitions_settled(self, name: str) -> None:
        """Wait until the driver has stopped defining properties (it defines them one by one
        after connecting), at most the connect timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_TIMEOUT
        count, since = -1, loop.time()
        while loop.time() < deadline:
            now_count = len(self.server.property_names(name))
            if now_count != count:
                count, since = now_count, loop.time()
            elif loop.time() - since >= DEFINITIONS_QUIET:
                return
            await asyncio.sleep(0.02)

    async def disconnect(self) -> None:
        """Release the server connection (the driver stays connected for other clients)."""
        self._connected = False
        if self._holding:
            self._holding = False
            await self.server.release()

    async def _resolve(self) -> str:
        server = self.server
        await server.wait_until(
            lambda: bool(server.devices()), f"{self.label}: discovery", CONNECT_TIMEOUT
        )
        if self.name:
            name = self.name
            # Definitions of all devices arrive together after connecting; a name still
            # missing after a grace period is not on this server.
            with contextlib.suppress(DeviceTimeout):
                await server.wait_until(lambda: name in server.devices(), "", NAMED_DEVICE_GRACE)
            if name not in server.devices():
                raise DeviceDisconnected(
                    f"no INDI device '{name}' on {server.address} "
                    f"(devices: {', '.join(server.devices()) or 'none'})"
                )
            return name
        await asyncio.sleep(DISCOVERY_GRACE)  # let the other devices' definitions arrive
        matches = []
        for device in server.devices():
            info = server.prop(device, "DRIVER_INFO")
            raw = info.values.get("DRIVER_INTERFACE") if info else None
            if isinstance(raw, str) and raw.isdigit() and int(raw) & self.interface:
                matches.append(device)
        if len(matches) != 1:
            found = ", ".join(matches) or "none"
            raise DeviceError(
                f"INDI {self.kind} on {server.address}: name the device in the equipment "
                f"profile (`device:`); candidates: {found}"
            )
        return matches[0]

    # ------------------------------------------------------------------ properties

    def _dev(self) -> str:
        if not self._connected or self.name is None:
            raise DeviceDisconnected(f"{self.label} is not connected")
        if not self.server.connected:
            self._connected = False
            raise DeviceDisconnected(f"{self.label}: connection to indiserver lost")
        conn = self.server.prop(self.name, "CONNECTION")
        if conn is None or conn.values.get("CONNECT") is not True:
            self._connected = False
            raise DeviceDisconnected(f"{self.label}: the driver is no longer connected")
        return self.name

    def _prop(self, name: str) -> PropertyView:
        return self.server.require(self._dev(), name)

    def _has(self, name: str) -> bool:
        return self.server.prop(self._dev(), name) is not None

    def _number(self, prop: str, element: str) -> float:
        return self._prop(prop).number(element)

    def _switch(self, prop: str, element: str) -> bool:
        return self._prop(prop).values.get(element) is True

    async def _send(
        self,
        prop: str,
        values: Mapping[str, Value],
        *,
        until: Reply = "settled",
        done: Callable[[], bool] | None = None,
    ) -> PropertyView:
        """Send new values and wait for the driver's answer *to this request*.

        Drivers answer a request with one or more updates (the simulator sends Idle, then Ok),
        and updates of earlier requests may still be on their way, so an update only counts
        when it fits ``until``:

        * ``settled`` (settings): Ok, or Idle carrying the values sent.
        * ``started`` (moves, exposures): Busy, or a non-Busy update carrying the values sent
          (the move had nothing to do).
        * ``answered`` (abort, set points whose value is a reading): any update.

        Alert always counts, and raises. ``done`` is another sign that the request took effect
        (a new frame for an exposure so short that its Busy update was missed).

        Raises:
            DeviceError: the driver answered Alert.
            DeviceTimeout: no fitting answer within the timeout.
        """
        device = self._dev()
        server = self.server
        before = await server.send(device, prop, values)

        def fits(view: PropertyView | None) -> bool:
            if view is None or view.version <= before:
                return False
            if view.state == ALERT or until == "answered":
                return True
            if until == "started":
                return view.state == BUSY or _carries(view, values)
            return view.state == OK or (view.state == IDLE and _carries(view, values))

        await server.wait_until(
            lambda: fits(server.prop(device, prop)) or (done is not None and done()),
            f"{self.label}: {prop}",
            self.timeout,
        )
        first = server.require(device, prop)
        if until == "settled" and first.state != ALERT and not _carries(first, values):
            # An Ok without our values: a late answer to an earlier request, or the driver
            # adjusted the values (rounding, alignment). Give ours a moment to arrive.
            def ours() -> bool:
                view = server.prop(device, prop)
                return (
                    view is not None
                    and view.version > first.version
                    and (view.state == ALERT or (view.state != BUSY and _carries(view, values)))
                )

            with contextlib.suppress(DeviceTimeout):
                await server.wait_until(ours, f"{self.label}: {prop}", ADJUST_GRACE)
        view = server.require(device, prop)
        if view.state == ALERT:
            raise DeviceError(f"{self.label}: {prop} refused{server.explain(device)}")
        return view


def _carries(view: PropertyView, sent: Mapping[str, Value]) -> bool:
    """Whether ``view`` holds the values that were sent (numbers to 1e-3 relative)."""
    for key, want in sent.items():
        got = view.values.get(key)
        if isinstance(want, bool) or isinstance(got, bool) or isinstance(want, str):
            if got != want:
                return False
        elif not isinstance(got, float) or abs(got - float(want)) > 1e-3 * max(1.0, abs(want)):
            return False
    return True


__all__ = ["IndiDevice", "Unsupported"]
