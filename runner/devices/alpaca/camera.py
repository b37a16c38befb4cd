"""ASCOM Alpaca camera → :class:`runner.devices.interfaces.Camera`.

Units and conventions on our side: ROI in *unbinned* sensor pixels (ASCOM's StartX/NumX are
binned — converted here and re-applied when the binning changes), square binning, gain and
offset in driver units (the index into ``Gains``/``Offsets`` when the driver works in list
mode), temperatures in °C, frames as ``uint16`` arrays of shape (height, width).

Pixels are fetched as Alpaca **ImageBytes** (``ImageArrayRaw``: one binary body, no JSON nested
lists). A server without ImageBytes support falls back to the JSON ``ImageArray``.
"""

from __future__ import annotations

import array
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from alpaca.camera import Camera as _AlpycaCamera
from alpaca.exceptions import InvalidValueException

from runner.clock import Clock
from runner.devices.alpaca.base import AlpacaDevice
from runner.devices.alpaca.transport import DEFAULT_TIMEOUT, Unsupported, call
from runner.devices.interfaces import Camera, CameraInfo, ExposureState, Frame, RoiBox
from runner.errors import DeviceBusy, DeviceError

FRAME_TYPES = ("light", "dark", "bias", "flat")

# ASCOM CameraStates
_IDLE, _WAITING, _EXPOSING, _READING, _DOWNLOAD, _ERROR = range(6)
_BUSY_STATES = (_WAITING, _EXPOSING, _READING, _DOWNLOAD)

# ASCOM SensorType.RGGB with (BayerOffsetX, BayerOffsetY) → the pattern at the frame origin.
_BAYER_BY_OFFSET = {(0, 0): "RGGB", (1, 0): "GRBG", (0, 1): "GBRG", (1, 1): "BGGR"}
_SENSOR_RGGB = 2

# ImageBytes transmission type codes (array.array typecodes alpyca uses) → numpy dtypes.
_DTYPES: dict[str, type[np.generic]] = {
    "H": np.uint16,
    "h": np.int16,
    "i": np.int32,
    "I": np.uint32,
    "B": np.uint8,
    "d": np.float64,
}


@dataclass(frozen=True)
class _Caps:
    """What the camera is, read once per connect."""

    name: str
    width: int
    height: int
    pixel_size: float
    max_bin: int
    can_set_temp: bool
    can_cooler_power: bool
    can_abort: bool
    can_stop: bool
    egain: float
    bayer: str | None
    exposure_min: float
    exposure_max: float


@dataclass(frozen=True)
class _Pending:
    """The exposure this adapter started and has not yet handed out or aborted."""

    seconds: float
    frame_type: str
    start: datetime
    t0: float  # time.monotonic() at start
    binning: int
    gain: int
    offset: int
    roi: RoiBox
    set_temp: float | None


class AlpacaCamera(AlpacaDevice, Camera):
    """One camera on an Alpaca server (``address`` ``host:port``, device ``number``)."""

    def __init__(
        self,
        address: str,
        number: int,
        clock: Clock,
        *,
        egain: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        download_timeout: float = 120.0,
    ) -> None:
        """``egain`` (e⁻/ADU, from the equipment profile) is used when the driver does not
        report ``ElectronsPerADU``."""
        super().__init__(
            _AlpycaCamera(address, number),
            f"Alpaca camera {number} at {address}",
            timeout=timeout,
        )
        self.clock = clock
        self.egain = egain
        self.download_timeout = download_timeout
        self._caps: _Caps | None = None
        self._roi: RoiBox | None = None  # None: full frame
        self._pending: _Pending | None = None

    # ------------------------------------------------------------------ lifecycle

    async def _on_connect(self) -> None:
        self._pending = None
        g = self._get
        name = str(await g("Name"))
        sensor_type = await self._get_optional("SensorType")
        bayer: str | None = None
        if sensor_type is not None and int(sensor_type) == _SENSOR_RGGB:
            ox = int(await g("BayerOffsetX"))
            oy = int(await g("BayerOffsetY"))
            bayer = _BAYER_BY_OFFSET.get((ox % 2, oy % 2))
        egain = await self._get_optional("ElectronsPerADU")
        exp_min = await self._get_optional("ExposureMin")
        exp_max = await self._get_optional("ExposureMax")
        self._caps = _Caps(
            name=name,
            width=int(await g("CameraXSize")),
            height=int(await g("CameraYSize")),
            pixel_size=float(await g("PixelSizeX")),
            max_bin=min(int(await g("MaxBinX")), int(await g("MaxBinY"))),
            can_set_temp=bool(await g("CanSetCCDTemperature")),
            can_cooler_power=bool(await g("CanGetCoolerPower")),
            can_abort=bool(await g("CanAbortExposure")),
            can_stop=bool(await g("CanStopExposure")),
            egain=float(egain) if egain is not None else self.egain,
            bayer=bayer,
            exposure_min=float(exp_min) if exp_min is not None else 0.0,
            exposure_max=float(exp_max) if exp_max is not None else float("inf"),
        )
        roi = await self.roi()
        full = RoiBox(0, 0, self._caps.width, self._caps.height)
        self._roi = None if roi == full else roi

    @property
    def caps(self) -> _Caps:
        self._require()
        assert self._caps is not None  # set by every successful connect
        return self._caps

    async def info(self) -> CameraInfo:
        c = self.caps
        return CameraInfo(
            name=c.name,
            width=c.width,
            height=c.height,
            pixel_size=c.pixel_size,
            max_binning=c.max_bin,
            has_cooler=c.can_set_temp,
            egain=c.egain,
            bayer=c.bayer,
        )

    # ------------------------------------------------------------------ exposure

    async def _camera_state(self) -> int:
        return int(await self._get("CameraState"))

    async def start_exposure(
        self, seconds: float, frame_type: str = "light", *, light: bool = True
    ) -> None:
        """Start an exposure; the shutter opens for light and flat frames when ``light``.

        Raises:
            DeviceBusy: an exposure is in progress.
            DeviceError: bad arguments or the driver refused.
        """
        caps = self.caps
        if frame_type not in FRAME_TYPES:
            raise DeviceError(f"unknown frame type '{frame_type}' (one of {FRAME_TYPES})")
        if seconds < 0:
            raise DeviceError(f"exposure must be >= 0 s, got {seconds}")
        if seconds > caps.exposure_max:
            raise DeviceError(f"exposure {seconds} s exceeds the camera's {caps.exposure_max} s")
        if await self._camera_state() in _BUSY_STATES:
            raise DeviceBusy(f"{self.label} is already exposing")
        duration = max(float(seconds), caps.exposure_min)
        binning = await self.binning()
        pending = _Pending(
            seconds=duration,
            frame_type=frame_type,
            start=self.clock.now(),
            t0=time.monotonic(),
            binning=binning,
            gain=await self._setting("Gain"),
            offset=await self._setting("Offset"),
            roi=await self.roi(),
            set_temp=await self.set_point(),
        )
        shutter_open = light and frame_type in ("light", "flat")
        self._pending = None
        await self._do("StartExposure", duration, shutter_open)
        self._pending = pending

    async def _setting(self, member: str) -> int:
        """Gain/Offset for the frame record: 0 when the driver has no such control."""
        value = await self._get_optional(member)
        return 0 if value is None else int(value)

    async def exposure_status(self) -> ExposureState:
        state = await self._camera_state()
        pending = self._pending
        if pending is None:
            # Nothing of ours in flight: report the camera, never a stale ImageReady.
            if state in (_WAITING, _EXPOSING):
                return ExposureState.exposing
            if state in (_READING, _DOWNLOAD):
                return ExposureState.downloading
            return ExposureState.error if state == _ERROR else ExposureState.idle
        if state == _ERROR:
            return ExposureState.error
        if state in (_WAITING, _EXPOSING):
            return ExposureState.exposing
        if state in (_READING, _DOWNLOAD):
            return ExposureState.downloading
        # Idle. An image cannot be ready before its exposure time has passed: an earlier
        # ImageReady (e.g. from an exposure the driver did not really abort) is not ours.
        elapsed = time.monotonic() - pending.t0
        if elapsed >= pending.seconds and bool(await self._get("ImageReady")):
            return ExposureState.ready
        # Accepted but not begun yet (the driver has not left Idle), or reading out.
        return ExposureState.exposing if elapsed < pending.seconds else ExposureState.downloading

    async def exposure_result(self) -> Frame:
        """Download the finished frame (ImageBytes) and hand it out once.

        Raises:
            DeviceBusy: the exposure has not finished.
            DeviceError: nothing was started, the exposure failed, or the data is unusable.
        """
        pending = self._pending
        if pending is None:
            raise DeviceError(f"{self.label}: no exposure to collect")
        status = await self.exposure_status()
        if status is ExposureState.error:
            self._pending = None
            raise DeviceError(f"{self.label}: the exposure failed (CameraState = error)")
        if status is not ExposureState.ready:
            raise DeviceBusy(f"{self.label}: exposure not finished ({status.value})")
        self._require()
        data = await call(self._download, f"{self.label}: download image", self.download_timeout)
        self._pending = None
        expect = (pending.roi.height // pending.binning, pending.roi.width // pending.binning)
        if data.shape != expect:
            raise DeviceError(
                f"{self.label}: image is {data.shape[1]}×{data.shape[0]}, "
                f"expected {expect[1]}×{expect[0]} for the ROI and binning set"
            )
        temp = await self._get_optional("CCDTemperature")
        return Frame(
            data=data,
            exposure=pending.seconds,
            start=pending.start,
            frame_type=pending.frame_type,
            binning=pending.binning,
            gain=pending.gain,
            offset=pending.offset,
            ccd_temp=float(temp) if temp is not None else None,
            set_temp=pending.set_temp,
            roi=pending.roi,
            bayer=self._frame_bayer(pending),
        )

    def _frame_bayer(self, pending: _Pending) -> str | None:
        caps = self._caps
        if caps is None or caps.bayer is None or pending.binning != 1:
            return None
        ox, oy = next(k for k, v in _BAYER_BY_OFFSET.items() if v == caps.bayer)
        return _BAYER_BY_OFFSET[((ox + pending.roi.x) % 2, (oy + pending.roi.y) % 2)]

    def _download(self) -> npt.NDArray[np.uint16]:
        """Worker thread: ImageBytes → (height, width) uint16."""
        dev = self._dev
        try:
            raw: array.array[Any] = dev.ImageArrayRaw
        except InvalidValueException:
            # The server answered JSON (no ImageBytes support): nested lists [x][y].
            return _to_uint16(np.asarray(dev.ImageArray).T)
        # alpyca records the ImageBytes header in ``img_desc``. (Its ``ImageArrayInfo``
        # property must not be used: in alpyca 3.1 it sends StopExposure.)
        desc = dev.img_desc
        if int(desc.Rank) != 2:
            raise DeviceError(f"{self.label}: colour (rank {desc.Rank}) images are not supported")
        dtype = _DTYPES.get(raw.typecode)
        if dtype is None:
            raise DeviceError(f"{self.label}: unsupported ImageBytes element type {raw.typecode}")
        width, height = int(desc.Dimension1), int(desc.Dimension2)
        flat = np.frombuffer(raw, dtype=dtype)
        if flat.size != width * height:
            raise DeviceError(
                f"{self.label}: ImageBytes holds {flat.size} pixels, header says {width}×{height}"
            )
        # ASCOM arrays are [x][y] with y varying fastest: reshape (x, y), transpose to (y, x).
        return _to_uint16(flat.reshape(width, height).T)

    async def abort_exposure(self) -> None:
        """Abort (or, if the driver cannot abort, stop) the exposure; its frame is dropped."""
        pending, self._pending = self._pending, None
        state = await self._camera_state()
        if pending is None and state not in _BUSY_STATES:
            return
        caps = self.caps
        if caps.can_abort:
            await self._do("AbortExposure")
        elif caps.can_stop:
            await self._do("StopExposure")
        else:
            raise DeviceError(f"{self.label} can neither abort nor stop an exposure")

    # ------------------------------------------------------------------ cooling

    def _require_cooler(self) -> None:
        if not self.caps.can_set_temp:
            raise DeviceError(f"{self.label} has no regulated cooler")

    async def set_cooler(self, on: bool) -> None:
        self._require_cooler()
        await self._set("CoolerOn", bool(on))

    async def set_temperature(self, celsius: float) -> None:
        self._require_cooler()
        await self._set("SetCCDTemperature", float(celsius))
        await self._set("CoolerOn", True)

    async def cooler_on(self) -> bool:
        value = await self._get_optional("CoolerOn")
        return bool(value) if value is not None else False

    async def temperature(self) -> float:
        return float(await self._get("CCDTemperature"))

    async def set_point(self) -> float | None:
        if not self.caps.can_set_temp or not await self.cooler_on():
            return None
        return float(await self._get("SetCCDTemperature"))

    async def cooler_power(self) -> float:
        if not self.caps.can_cooler_power:
            raise Unsupported(f"{self.label} does not report cooler power")
        return float(await self._get("CoolerPower"))

    # ------------------------------------------------------------------ settings

    async def _idle_for_settings(self) -> None:
        if self._pending is not None and await self.exposure_status() in (
            ExposureState.exposing,
            ExposureState.downloading,
        ):
            raise DeviceBusy(f"{self.label}: cannot change settings during an exposure")

    async def set_roi(self, roi: RoiBox | None) -> None:
        await self._idle_for_settings()
        c = self.caps
        if roi is not None and (
            roi.x < 0
            or roi.y < 0
            or roi.width < 1
            or roi.height < 1
            or roi.x + roi.width > c.width
            or roi.y + roi.height > c.height
        ):
            raise DeviceError(f"ROI {roi} does not fit the {c.width}×{c.height} sensor")
        await self._apply_roi(roi, await self.binning())
        self._roi = roi

    async def _apply_roi(self, roi: RoiBox | None, binning: int) -> None:
        c = self.caps
        box = roi or RoiBox(0, 0, c.width, c.height)
        nx, ny = box.width // binning, box.height // binning
        if nx < 1 or ny < 1:
            raise DeviceError(f"binning {binning} leaves no pixel of ROI {box}")
        await self._set("StartX", box.x // binning)
        await self._set("StartY", box.y // binning)
        await self._set("NumX", nx)
        await self._set("NumY", ny)

    async def roi(self) -> RoiBox:
        b = await self.binning()
        return RoiBox(
            int(await self._get("StartX")) * b,
            int(await self._get("StartY")) * b,
            int(await self._get("NumX")) * b,
            int(await self._get("NumY")) * b,
        )

    async def set_gain(self, gain: int) -> None:
        await self._idle_for_settings()
        await self._set("Gain", int(gain))

    async def gain(self) -> int:
        return int(await self._get("Gain"))

    async def set_offset(self, offset: int) -> None:
        await self._idle_for_settings()
        await self._set("Offset", int(offset))

    async def offset(self) -> int:
        return int(await self._get("Offset"))

    async def set_binning(self, binning: int) -> None:
        await self._idle_for_settings()
        c = self.caps
        if not 1 <= binning <= c.max_bin:
            raise DeviceError(f"binning {binning} outside 1…{c.max_bin}")
        await self._set("BinX", int(binning))
        await self._set("BinY", int(binning))
        await self._apply_roi(self._roi, int(binning))

    async def binning(self) -> int:
        return int(await self._get("BinX"))


def _to_uint16(data: npt.NDArray[Any]) -> npt.NDArray[np.uint16]:
    """Pixels as a C-contiguous uint16 array (wider types are clipped to 0…65535)."""
    if data.dtype == np.uint16:
        return np.ascontiguousarray(data)
    return np.ascontiguousarray(np.clip(data, 0, 65535).astype(np.uint16))
