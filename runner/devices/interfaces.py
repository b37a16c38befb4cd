"""One narrow async interface per device kind; the engine knows only these.

Back-ends (``devices.sim``, ``devices.alpaca``, ``devices.indi``) implement them and convert
their own errors into ``runner.errors`` at the boundary. Units are in the names or documented:
seconds, °C, degrees, pixels, focuser steps. Long operations *start* and return; progress is
read back (``exposure_status``, ``is_moving``) — the alpyca habit — so an abort is always
possible between polls.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runner.errors import DeviceDisconnected

# the shared records (runner.records), re-exported: back-ends name them with their interfaces
from runner.records import Frame as Frame
from runner.records import GuideStats as GuideStats
from runner.records import RoiBox as RoiBox


class ExposureState(StrEnum):
    idle = "idle"
    exposing = "exposing"
    downloading = "downloading"
    ready = "ready"
    error = "error"


@dataclass(frozen=True)
class CameraInfo:
    name: str
    width: int  # unbinned pixels
    height: int
    pixel_size: float  # µm
    max_binning: int
    has_cooler: bool
    egain: float  # e-/ADU
    bayer: str | None = None


class Device(abc.ABC):
    """Lifecycle shared by every device."""

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def disconnect(self) -> None: ...

    async def reconnect(self) -> None:
        await self.disconnect()
        await self.connect()

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    @property
    def endpoint(self) -> str:
        """The server process this device lives in ("alpaca://host:port", "indi://host:port").

        Devices with the same endpoint go down and come back together: when one of them finds
        its server restarted, all of them are reconnected. "" for in-process devices (the
        simulator), which are reconnected one by one.
        """
        return ""

    async def probe(self) -> None:
        """Ask the device whether it is still connected (a round trip where the protocol has
        one), so that a restarted server is noticed before the next exposure, not after it.

        Raises:
            DeviceDisconnected: the device or its server is gone, or the driver reports itself
                disconnected (what a restarted server does).
        """
        if not self.connected:
            raise DeviceDisconnected(f"{type(self).__name__} is not connected")


class Camera(Device):
    """Seed 003's camera: non-blocking exposure with status and result, cooling, ROI …"""

    @abc.abstractmethod
    async def info(self) -> CameraInfo: ...

    @abc.abstractmethod
    async def start_exposure(
        self, seconds: float, frame_type: str = "light", *, light: bool = True
    ) -> None:
        """Open the shutter and return at once; raises DeviceBusy if already exposing."""

    @abc.abstractmethod
    async def exposure_status(self) -> ExposureState: ...

    @abc.abstractmethod
    async def exposure_result(self) -> Frame:
        """The frame once ``exposure_status()`` is ``ready`` (consumes it)."""

    @abc.abstractmethod
    async def abort_exposure(self) -> None:
        """Abort the exposure in progress; its frame is discarded. No-op when idle."""

    @abc.abstractmethod
    async def set_cooler(self, on: bool) -> None: ...

    @abc.abstractmethod
    async def set_temperature(self, celsius: float) -> None:
        """Set the cooler set point (turns the cooler on)."""

    @abc.abstractmethod
    async def cooler_on(self) -> bool: ...

    @abc.abstractmethod
    async def temperature(self) -> float:
        """Sensor temperature, °C."""

    @abc.abstractmethod
    async def set_point(self) -> float | None: ...

    @abc.abstractmethod
    async def cooler_power(self) -> float:
        """Cooler power, percent 0–100."""

    @abc.abstractmethod
    async def set_roi(self, roi: RoiBox | None) -> None:
        """None resets to full frame."""

    @abc.abstractmethod
    async def roi(self) -> RoiBox: ...

    @abc.abstractmethod
    async def set_gain(self, gain: int) -> None: ...

    @abc.abstractmethod
    async def gain(self) -> int: ...

    @abc.abstractmethod
    async def set_offset(self, offset: int) -> None: ...

    @abc.abstractmethod
    async def offset(self) -> int: ...

    @abc.abstractmethod
    async def set_binning(self, binning: int) -> None: ...

    @abc.abstractmethod
    async def binning(self) -> int: ...

    # ------------------------------------------------------------------ seed 003 by name
    # `poll`, `get_parameter` and `set_parameter` address the typed operations above by name
    # (for the control plane and scripts); back-ends implement only the typed ones.

    PARAMETERS: tuple[str, ...] = (
        "gain", "offset", "binning", "roi", "temperature", "set_point", "cooler_on",
        "cooler_power",
    )

    async def poll(self) -> dict[str, Any]:
        """The newest information about the camera: its description, state and settings."""
        info = await self.info()
        out: dict[str, Any] = {
            "name": info.name, "width": info.width, "height": info.height,
            "pixel_size": info.pixel_size, "max_binning": info.max_binning,
            "has_cooler": info.has_cooler, "egain": info.egain, "bayer": info.bayer,
            "connected": self.connected, "exposure": (await self.exposure_status()).value,
        }
        for name in self.PARAMETERS:
            if name.startswith(("cooler", "set_point", "temperature")) and not info.has_cooler:
                continue
            try:
                out[name] = await self.get_parameter(name)
            except NotImplementedError:
                continue
        return out

    async def get_parameter(self, name: str) -> Any:
        getters = {
            "gain": self.gain, "offset": self.offset, "binning": self.binning,
            "temperature": self.temperature, "set_point": self.set_point,
            "cooler_on": self.cooler_on, "cooler_power": self.cooler_power,
        }
        if name == "roi":
            r = await self.roi()
            return {"start_x": r.x, "start_y": r.y, "width": r.width, "height": r.height}
        if name not in getters:
            known = ", ".join(self.PARAMETERS)
            raise KeyError(f"unknown camera parameter '{name}' (one of {known})")
        return await getters[name]()

    async def set_parameter(self, name: str, value: Any) -> None:
        if name == "gain":
            await self.set_gain(int(value))
        elif name == "offset":
            await self.set_offset(int(value))
        elif name == "binning":
            await self.set_binning(int(value[0] if isinstance(value, list | tuple) else value))
        elif name == "roi":
            await self.set_roi(None if value is None else RoiBox(
                int(value["start_x"]), int(value["start_y"]), int(value["width"]),
                int(value["height"])))
        elif name == "set_point":
            await self.set_temperature(float(value))
        elif name == "cooler_on":
            await self.set_cooler(bool(value))
        else:
            raise KeyError(f"camera parameter '{name}' cannot be set (settable: gain, offset, "
                           "binning, roi, set_point, cooler_on)")


class FilterWheel(Device):
    @abc.abstractmethod
    async def names(self) -> list[str]: ...

    @abc.abstractmethod
    async def position(self) -> int | None:
        """Current slot, 0-based; None while moving."""

    @abc.abstractmethod
    async def move_to(self, slot: int) -> None:
        """Start the move and return; poll ``position()`` until it equals ``slot``."""


class Focuser(Device):
    @abc.abstractmethod
    async def position(self) -> int: ...

    @abc.abstractmethod
    async def max_position(self) -> int: ...

    @abc.abstractmethod
    async def move_to(self, position: int) -> None:
        """Start an absolute move and return; poll ``is_moving()``."""

    @abc.abstractmethod
    async def is_moving(self) -> bool: ...

    @abc.abstractmethod
    async def halt(self) -> None: ...

    @abc.abstractmethod
    async def temperature(self) -> float | None:
        """Focuser probe temperature, °C (None when there is no probe)."""


class PierSide(StrEnum):
    east = "east"
    west = "west"
    unknown = "unknown"


class Mount(Device):
    @abc.abstractmethod
    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        """Start a slew (J2000 degrees) and return; poll ``is_slewing()``."""

    @abc.abstractmethod
    async def is_slewing(self) -> bool: ...

    @abc.abstractmethod
    async def abort_slew(self) -> None: ...

    @abc.abstractmethod
    async def coordinates(self) -> tuple[float, float]:
        """Current RA, Dec (J2000 degrees)."""

    @abc.abstractmethod
    async def set_tracking(self, on: bool) -> None: ...

    @abc.abstractmethod
    async def tracking(self) -> bool: ...

    @abc.abstractmethod
    async def park(self) -> None:
        """Start parking; poll ``is_parked()``."""

    @abc.abstractmethod
    async def unpark(self) -> None: ...

    @abc.abstractmethod
    async def is_parked(self) -> bool: ...

    @abc.abstractmethod
    async def side_of_pier(self) -> PierSide: ...


class MountSync(abc.ABC):
    """A mount that can be told where it really points (ASCOM SyncToCoordinates, INDI
    ON_COORD_SET=SYNC): the capability plate-solved centring uses to correct the mount's
    model; a mount without it is re-slewed by the measured offset instead."""

    @abc.abstractmethod
    async def sync_to(self, ra_deg: float, dec_deg: float) -> None:
        """The telescope points at (ra_deg, dec_deg), J2000: adopt that as the position."""

    async def can_sync(self) -> bool:
        """Whether this driver accepts a sync (ASCOM ``CanSync``, INDI's SYNC switch)."""
        return True


class SafetyMonitor(Device):
    @abc.abstractmethod
    async def is_safe(self) -> bool: ...


class GuiderState(StrEnum):
    stopped = "Stopped"
    selected = "Selected"
    calibrating = "Calibrating"
    guiding = "Guiding"
    lost_lock = "LostLock"
    paused = "Paused"
    looping = "Looping"


class Guider(abc.ABC):
    """What the engine needs from a guider (PHD2 client or the simulated guider).

    ``guide`` and ``dither`` return only after settling completed (SettleDone) and raise
    ``SettleFailed`` when it did not — "guiding started" is not "ready".
    """

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def disconnect(self) -> None: ...

    @abc.abstractmethod
    async def state(self) -> GuiderState: ...

    @abc.abstractmethod
    async def guide(
        self, settle_pixels: float, settle_time: float, settle_timeout: float,
        recalibrate: bool = False,
    ) -> None: ...

    @abc.abstractmethod
    async def dither(
        self, amount: float, ra_only: bool, settle_pixels: float, settle_time: float,
        settle_timeout: float,
    ) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop guiding and looping; returns once the guider reports stopped."""

    @abc.abstractmethod
    async def pause(self, paused: bool) -> None: ...

    @abc.abstractmethod
    def start_stats(self) -> None:
        """Begin collecting guide steps for ``stats()`` (called when an exposure starts)."""

    @abc.abstractmethod
    def stats(self) -> GuideStats | None:
        """RMS since ``start_stats()``; None when no guide step arrived."""
