"""INDI CCD → :class:`runner.devices.interfaces.Camera`.

INDI's ``CCD_FRAME`` is already in unbinned pixels, like our :class:`RoiBox`. Frames arrive as
a FITS BLOB on ``CCD1`` (the adapter asks for client upload, FITS, no compression); they are
decoded with astropy in a worker thread. INDI reports the sensor temperature but no separate
set point, so :meth:`IndiCamera.set_point` returns the last set point this adapter sent.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.clock import Clock
from runner.devices.indi.base import CCD, IndiDevice
from runner.devices.indi.client import ALERT, BUSY, DEFAULT_TIMEOUT, IndiServer, Unsupported
from runner.devices.interfaces import Camera, CameraInfo, ExposureState, Frame, RoiBox
from runner.errors import DeviceBusy, DeviceError

FRAME_TYPES = ("light", "dark", "bias", "flat")
_INDI_FRAME_TYPE = {
    "light": "FRAME_LIGHT",
    "dark": "FRAME_DARK",
    "bias": "FRAME_BIAS",
    "flat": "FRAME_FLAT",
}
_BAYER = ("RGGB", "BGGR", "GRBG", "GBRG")


@dataclass(frozen=True)
class _Pending:
    seconds: float
    frame_type: str
    start: datetime
    blob_seq: int
    binning: int
    gain: int
    offset: int
    roi: RoiBox
    set_temp: float | None


class IndiCamera(IndiDevice, Camera):
    interface = CCD
    key_property = "CCD_EXPOSURE"
    kind = "camera"

    def __init__(
        self,
        server: IndiServer,
        name: str | None,
        clock: Clock,
        *,
        egain: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        download_timeout: float = 120.0,
    ) -> None:
        super().__init__(server, name, timeout=timeout)
        self.clock = clock
        self.egain = egain
        self.download_timeout = download_timeout
        self._pending: _Pending | None = None
        self._set_point: float | None = None

    async def _on_connect(self) -> None:
        self._pending = None
        # Frames come to us, as plain FITS.
        if self._has("UPLOAD_MODE") and not self._switch("UPLOAD_MODE", "UPLOAD_CLIENT"):
            await self._send("UPLOAD_MODE", {"UPLOAD_CLIENT": True})
        if self._has("CCD_TRANSFER_FORMAT") and not self._switch(
            "CCD_TRANSFER_FORMAT", "FORMAT_FITS"
        ):
            await self._send("CCD_TRANSFER_FORMAT", {"FORMAT_FITS": True})
        if self._has("CCD_COMPRESSION") and self._switch("CCD_COMPRESSION", "INDI_ENABLED"):
            await self._send("CCD_COMPRESSION", {"INDI_DISABLED": True})
        await self.server.set_blob_mode(self._dev(), "CCD1", True)

        device = self._dev()

        def sized() -> bool:  # drivers define and fill in the sensor size after connecting
            info = self.server.prop(device, "CCD_INFO")
            frame = self.server.prop(device, "CCD_FRAME")
            return (
                info is not None
                and frame is not None
                and info.values.get("CCD_MAX_X", 0.0) != 0.0
                and frame.values.get("WIDTH", 0.0) != 0.0
            )

        await self.server.wait_until(sized, f"{self.label}: sensor size", self.timeout)

    async def info(self) -> CameraInfo:
        info = self._prop("CCD_INFO")
        binning = self._prop("CCD_BINNING")
        bayer: str | None = None
        if self._has("CCD_CFA"):
            cfa = str(self._prop("CCD_CFA").values.get("CFA_TYPE", "")).upper()
            bayer = cfa if cfa in _BAYER else None
        return CameraInfo(
            name=self._dev(),
            width=int(info.number("CCD_MAX_X")),
            height=int(info.number("CCD_MAX_Y")),
            pixel_size=info.number("CCD_PIXEL_SIZE"),
            max_binning=int(min(binning.limits["HOR_BIN"][1], binning.limits["VER_BIN"][1])),
            has_cooler=self._has("CCD_COOLER") or self._has("CCD_TEMPERATURE"),
            egain=self.egain,
            bayer=bayer,
        )

    # ------------------------------------------------------------------ exposure

    def _exposing(self) -> bool:
        return self._prop("CCD_EXPOSURE").state == BUSY

    async def start_exposure(
        self, seconds: float, frame_type: str = "light", *, light: bool = True
    ) -> None:
        """Start an exposure and return once the driver has accepted it.

        Raises:
            DeviceBusy: an exposure is in progress.
            DeviceError: bad arguments or the driver refused (Alert).
        """
        if frame_type not in FRAME_TYPES:
            raise DeviceError(f"unknown frame type '{frame_type}' (one of {FRAME_TYPES})")
        if seconds < 0:
            raise DeviceError(f"exposure must be >= 0 s, got {seconds}")
        if self._exposing():
            raise DeviceBusy(f"{self.label} is already exposing")
        lo, hi = self._prop("CCD_EXPOSURE").limits["CCD_EXPOSURE_VALUE"]
        if seconds > hi:
            raise DeviceError(f"exposure {seconds} s exceeds the camera's {hi} s")
        duration = max(float(seconds), lo)
        kind = frame_type if light or frame_type != "light" else "dark"
        wanted = _INDI_FRAME_TYPE[kind]
        if self._has("CCD_FRAME_TYPE") and not self._switch("CCD_FRAME_TYPE", wanted):
            await self._send("CCD_FRAME_TYPE", {wanted: True})
        blob = self.server.blob(self._dev())
        pending = _Pending(
            seconds=duration,
            frame_type=frame_type,
            start=self.clock.now(),
            blob_seq=blob.seq if blob else 0,
            binning=await self.binning(),
            gain=int(self._number("CCD_GAIN", "GAIN")) if self._has("CCD_GAIN") else 0,
            offset=int(self._number("CCD_OFFSET", "OFFSET")) if self._has("CCD_OFFSET") else 0,
            roi=await self.roi(),
            set_temp=await self.set_point(),
        )
        self._pending = pending
        try:
            await self._send(
                "CCD_EXPOSURE",
                {"CCD_EXPOSURE_VALUE": duration},
                until="started",
                done=lambda: self._new_blob(pending),
            )
        except BaseException:
            self._pending = None
            raise

    def _new_blob(self, pending: _Pending) -> bool:
        blob = self.server.blob(self._dev())
        return blob is not None and blob.seq > pending.blob_seq

    async def exposure_status(self) -> ExposureState:
        exposure = self._prop("CCD_EXPOSURE")
        pending = self._pending
        if pending is None:
            return ExposureState.exposing if exposure.state == BUSY else ExposureState.idle
        if self._new_blob(pending):
            return ExposureState.ready
        if exposure.state == ALERT:
            return ExposureState.error
        if exposure.state == BUSY and exposure.number("CCD_EXPOSURE_VALUE") > 0:
            return ExposureState.exposing
        return ExposureState.downloading  # exposure over, BLOB on its way

    async def exposure_result(self) -> Frame:
        """Decode the FITS BLOB of the finished exposure and hand it out once.

        Raises:
            DeviceBusy: the exposure has not finished.
            DeviceError: nothing was started, the exposure failed, or the BLOB is unusable.
        """
        pending = self._pending
        if pending is None:
            raise DeviceError(f"{self.label}: no exposure to collect")
        status = await self.exposure_status()
        if status is ExposureState.error:
            self._pending = None
            raise DeviceError(
                f"{self.label}: the exposure failed{self.server.explain(self._dev())}"
            )
        if status is not ExposureState.ready:
            raise DeviceBusy(f"{self.label}: exposure not finished ({status.value})")
        blob = self.server.blob(self._dev())
        assert blob is not None
        self._pending = None
        if not blob.format.lower().startswith(".fits") or blob.format.lower().endswith(".fz"):
            raise DeviceError(f"{self.label}: BLOB format {blob.format!r} is not plain FITS")
        try:
            async with asyncio.timeout(self.download_timeout):
                data = await asyncio.to_thread(_decode_fits, blob.data)
        except TimeoutError as exc:
            raise DeviceError(f"{self.label}: decoding the frame took too long") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise DeviceError(f"{self.label}: unreadable FITS BLOB: {exc}") from exc
        expect = (pending.roi.height // pending.binning, pending.roi.width // pending.binning)
        if data.shape != expect:
            raise DeviceError(
                f"{self.label}: image is {data.shape[1]}×{data.shape[0]}, "
                f"expected {expect[1]}×{expect[0]} for the ROI and binning set"
            )
        return Frame(
            data=data,
            exposure=pending.seconds,
            start=pending.start,
            frame_type=pending.frame_type,
            binning=pending.binning,
            gain=pending.gain,
            offset=pending.offset,
            ccd_temp=await self._temperature_or_none(),
            set_temp=pending.set_temp,
            roi=pending.roi,
            bayer=(await self.info()).bayer if pending.binning == 1 else None,
        )

    async def abort_exposure(self) -> None:
        """Abort the exposure in progress; a BLOB that still arrives for it is ignored."""
        pending, self._pending = self._pending, None
        if pending is None and not self._exposing():
            return
        if pending is not None and self._new_blob(pending):
            return  # already finished: dropping the frame is all there is to do
        await self._send("CCD_ABORT_EXPOSURE", {"ABORT": True}, until="answered")
        await self.server.wait_until(
            lambda: not self._exposing(), f"{self.label}: abort", self.timeout
        )

    # ------------------------------------------------------------------ cooling

    async def set_cooler(self, on: bool) -> None:
        if not self._has("CCD_COOLER"):
            raise Unsupported(f"{self.label} has no cooler switch")
        await self._send("CCD_COOLER", {"COOLER_ON" if on else "COOLER_OFF": True})
        if on and self._set_point is None:
            self._set_point = await self.temperature()

    async def set_temperature(self, celsius: float) -> None:
        if not self._has("CCD_TEMPERATURE"):
            raise Unsupported(f"{self.label} has no temperature control")
        # Busy is the normal answer while the sensor ramps: wait for the answer only.
        await self._send(
            "CCD_TEMPERATURE", {"CCD_TEMPERATURE_VALUE": float(celsius)}, until="answered"
        )
        self._set_point = float(celsius)
        if self._has("CCD_COOLER") and not self._switch("CCD_COOLER", "COOLER_ON"):
            await self._send("CCD_COOLER", {"COOLER_ON": True})

    async def cooler_on(self) -> bool:
        if self._has("CCD_COOLER"):
            return self._switch("CCD_COOLER", "COOLER_ON")
        return self._set_point is not None

    async def temperature(self) -> float:
        return self._number("CCD_TEMPERATURE", "CCD_TEMPERATURE_VALUE")

    async def _temperature_or_none(self) -> float | None:
        return await self.temperature() if self._has("CCD_TEMPERATURE") else None

    async def set_point(self) -> float | None:
        return self._set_point if await self.cooler_on() else None

    async def cooler_power(self) -> float:
        if not self._has("CCD_COOLER_POWER"):
            raise Unsupported(f"{self.label} does not report cooler power")
        view = self._prop("CCD_COOLER_POWER")
        return float(next(v for v in view.values.values() if isinstance(v, float)))

    # ------------------------------------------------------------------ settings

    def _idle_for_settings(self) -> None:
        if self._pending is not None and self._exposing():
            raise DeviceBusy(f"{self.label}: cannot change settings during an exposure")

    async def set_roi(self, roi: RoiBox | None) -> None:
        self._idle_for_settings()
        info = self._prop("CCD_INFO")
        width, height = int(info.number("CCD_MAX_X")), int(info.number("CCD_MAX_Y"))
        box = roi or RoiBox(0, 0, width, height)
        if (
            box.x < 0
            or box.y < 0
            or box.width < 1
            or box.height < 1
            or box.x + box.width > width
            or box.y + box.height > height
        ):
            raise DeviceError(f"ROI {box} does not fit the {width}×{height} sensor")
        await self._send(
            "CCD_FRAME",
            {"X": box.x, "Y": box.y, "WIDTH": box.width, "HEIGHT": box.height},
        )

    async def roi(self) -> RoiBox:
        f = self._prop("CCD_FRAME")
        return RoiBox(
            int(f.number("X")), int(f.number("Y")), int(f.number("WIDTH")), int(f.number("HEIGHT"))
        )

    async def set_gain(self, gain: int) -> None:
        self._idle_for_settings()
        await self._send("CCD_GAIN", {"GAIN": int(gain)})

    async def gain(self) -> int:
        return int(self._number("CCD_GAIN", "GAIN"))

    async def set_offset(self, offset: int) -> None:
        self._idle_for_settings()
        await self._send("CCD_OFFSET", {"OFFSET": int(offset)})

    async def offset(self) -> int:
        return int(self._number("CCD_OFFSET", "OFFSET"))

    async def set_binning(self, binning: int) -> None:
        self._idle_for_settings()
        top = (await self.info()).max_binning
        if not 1 <= binning <= top:
            raise DeviceError(f"binning {binning} outside 1…{top}")
        roi = await self.roi()
        if roi.width // binning < 1 or roi.height // binning < 1:
            raise DeviceError(f"binning {binning} leaves no pixel of ROI {roi}")
        await self._send("CCD_BINNING", {"HOR_BIN": int(binning), "VER_BIN": int(binning)})
        if await self.roi() != roi:  # some drivers (the simulator) reset the frame on binning
            await self.set_roi(roi)

    async def binning(self) -> int:
        return int(self._number("CCD_BINNING", "HOR_BIN"))


def _decode_fits(raw: bytes) -> npt.NDArray[np.uint16]:
    """Worker thread: the primary HDU of a FITS file as (height, width) uint16."""
    from astropy.io import fits

    with fits.open(io.BytesIO(raw), memmap=False) as hdul:
        data: Any = hdul[0].data
        if data is None or data.ndim != 2:
            shape = None if data is None else data.shape
            raise ValueError(f"expected a 2-D image, got {shape}")
        if data.dtype == np.uint16:
            return np.ascontiguousarray(data)
        return np.ascontiguousarray(np.clip(data, 0, 65535).astype(np.uint16))
