"""Seed 003: LightAPT's camera API as ``camera.<name>`` methods, with the seed's names, parameter
names and result keys, on the rig's ``Camera`` (runner.devices.interfaces).

Getters answer the seed's keys (``{"gain": 120}``, ``{"status": true}`` …); commands, which the
seed leaves without result keys, answer ``{"message": null}`` as seed 001 does; a failure is a
JSON-RPC error (code −1) whose message says why. ``get_exposure_result`` cannot send an
``nparray`` over JSON: it answers the frame's ``info``, an ``image`` description, and keeps the
frame on the hub (``save_image {filename}`` of seed 000 writes it as FITS); ``preview: N`` adds a
small 8-bit stretched copy, at most N pixels on its long side, base64 encoded. docs/control.md
lists the methods ("Seed 001 and 003 methods").
"""

from __future__ import annotations

import asyncio
import base64
import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.control.hub import Hub
from runner.control.protocol import INVALID_PARAMS, Dispatcher, RpcError, _readable
from runner.control.registry import REGISTRY
from runner.devices.interfaces import Camera, ExposureState, Frame, RoiBox

PREFIX = "camera."
DONE: dict[str, Any] = {"message": None}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CamConnect(_Strict):
    device_name: str | None = Field(
        None, max_length=200,
        description="the profile's camera (its name or device identifier); None: that camera")


class CamParameterName(_Strict):
    name: str = Field(min_length=1, max_length=64)


class CamParameterValue(_Strict):
    name: str = Field(min_length=1, max_length=64)
    value: Any = None


class CamExposure(_Strict):
    exposure: float = Field(ge=0, le=3600, description="seconds")
    frame_type: Literal["light", "dark", "flat", "bias"] = "light"


class CamExposureResult(_Strict):
    preview: int = Field(0, ge=0, le=1024,
                         description="long side of an 8-bit preview, pixels (0: none)")


class CamEnable(_Strict):
    enable: bool


class CamTemperature(_Strict):
    temperature: float = Field(ge=-60, le=50)


class CamRoi(_Strict):
    height: int = Field(ge=1)
    width: int = Field(ge=1)
    start_x: int = Field(ge=0)
    start_y: int = Field(ge=0)


class CamGain(_Strict):
    gain: int = Field(ge=0)


class CamOffset(_Strict):
    offset: int = Field(ge=0)


class CamBinning(_Strict):
    binning: tuple[int, int] = Field(description="[x, y]; the camera bins symmetrically")


class CamCall(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^(camera\.)?[a-z][a-z_]*$")
    params: dict[str, Any] | list[Any] | None = None


def _camera(hub: Hub) -> Camera:
    cam: Camera = hub.device("camera")
    return cam


_reg = REGISTRY.namespace(PREFIX, "camera")


# ------------------------------------------------------------------ connection


@_reg("connect", CamConnect, moves=True)
async def connect(hub: Hub, p: CamConnect) -> dict[str, Any]:
    """Connect the profile's camera; answers its ``info``."""
    cam = _camera(hub)
    was_connected = cam.connected
    await cam.connect()
    eq = getattr(hub.equipment, "camera", None)
    if p.device_name is not None and eq is not None:
        # the profile's name, its device identifier, or what the driver calls the camera
        known = {str(eq.name), (await cam.info()).name}
        if eq.device is not None:
            known.add(str(eq.device))
        if p.device_name not in known:
            if not was_connected:
                await cam.disconnect()
            raise RpcError(f"this hub's camera is {eq.name!r} (its equipment profile names "
                           f"it); it has no camera {p.device_name!r}")
    return {"info": await cam.poll()}


@_reg("disconnect", moves=True)
async def disconnect(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Disconnect the camera (an exposure in progress is discarded)."""
    await _camera(hub).disconnect()
    return DONE


@_reg("reconnect", moves=True)
async def reconnect(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Disconnect and connect the camera again; answers its ``info``."""
    cam = _camera(hub)
    await cam.reconnect()
    return {"info": await cam.poll()}


@_reg("scanning")
async def scanning(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """The cameras the profile's back-end offers (names to put in the equipment profile)."""
    from runner.devices.scan import scan

    eq = getattr(hub.equipment, "camera", None)
    if eq is None:
        raise RpcError("no equipment profile with a camera: the hub does not know which "
                       "back-end to scan")
    found = await scan(eq.backend, eq.address)
    kinds = ("camera", "other")  # an indiserver does not say which device is a camera
    return {"camera": [d.name for d in found if d.kind in kinds]}


@_reg("polling")
async def polling(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """The newest information about the camera: description, state and settings."""
    return {"info": await _camera(hub).poll()}


# ------------------------------------------------------------------ parameters by name


def _key_error(exc: KeyError) -> RpcError:
    return RpcError(str(exc.args[0]) if exc.args else "unknown camera parameter")


@_reg("get_parameter", CamParameterName)
async def get_parameter(hub: Hub, p: CamParameterName) -> dict[str, Any]:
    """One parameter by name (gain, offset, binning, roi, temperature, set_point, cooler_on,
    cooler_power)."""
    try:
        return {"value": await _camera(hub).get_parameter(p.name)}
    except KeyError as exc:
        raise _key_error(exc) from None


@_reg("set_parameter", CamParameterValue, moves=True)
async def set_parameter(hub: Hub, p: CamParameterValue) -> dict[str, Any]:
    """Set one parameter by name (gain, offset, binning, roi, set_point, cooler_on)."""
    try:
        await _camera(hub).set_parameter(p.name, p.value)
    except KeyError as exc:
        if p.name == "roi" and isinstance(p.value, dict):
            raise RpcError("roi needs start_x, start_y, width and height") from None
        raise _key_error(exc) from None
    except (TypeError, ValueError) as exc:
        raise RpcError(f"invalid value for camera parameter {p.name!r}: {exc}") from None
    return DONE


# ------------------------------------------------------------------ exposure


@_reg("start_exposure", CamExposure, moves=True)
async def start_exposure(hub: Hub, p: CamExposure) -> dict[str, Any]:
    """Start an exposure and answer at once; poll ``camera.get_exposure_status``."""
    if hub.image_lock.locked():
        raise RpcError("start_exposure: take_image is exposing; wait for it to complete")
    await _camera(hub).start_exposure(p.exposure, p.frame_type,
                                      light=p.frame_type in ("light", "flat"))
    return DONE


@_reg("abort_exposure", moves=True)
async def abort_exposure(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Abort the exposure in progress (its frame is discarded); nothing when idle."""
    await _camera(hub).abort_exposure()
    return DONE


@_reg("get_exposure_status")
async def get_exposure_status(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """``status``: whether an exposure is executing; ``state``: idle, exposing, downloading,
    ready (``get_exposure_result`` may be called) or error."""
    state = await _camera(hub).exposure_status()
    executing = state in (ExposureState.exposing, ExposureState.downloading)
    return {"status": executing, "state": state.value}


# moves: taking the result consumes the frame, which while a night runs is the night's
@_reg("get_exposure_result", CamExposureResult, moves=True)
async def get_exposure_result(hub: Hub, p: CamExposureResult) -> dict[str, Any]:
    """The finished frame's ``info`` and ``image`` description; the pixels stay on the hub for
    ``save_image``; ``preview`` adds a small 8-bit copy."""
    cam = _camera(hub)
    async with hub.image_lock:
        state = await cam.exposure_status()
        if state not in (ExposureState.ready, ExposureState.error):
            raise RpcError(f"no exposure result: the camera is {state.value} (poll "
                           "camera.get_exposure_status until its state is ready)")
        frame = await cam.exposure_result()
        hub.last_image = frame
    info = await asyncio.to_thread(_frame_info, frame)
    height, width = frame.data.shape[:2]
    out: dict[str, Any] = {
        "info": info,
        "image": {"width": width, "height": height, "dtype": str(frame.data.dtype),
                  "kept_for": "save_image"},
    }
    if p.preview:
        out["preview"] = await asyncio.to_thread(_preview, frame.data, p.preview)
    return out


def _roi(r: RoiBox) -> dict[str, int]:
    return {"start_x": r.x, "start_y": r.y, "width": r.width, "height": r.height}


def _frame_info(frame: Frame) -> dict[str, Any]:
    data = frame.data
    height, width = data.shape[:2]
    return {
        "exposure": frame.exposure, "start": frame.start.isoformat(),
        "frame_type": frame.frame_type, "binning": [frame.binning, frame.binning],
        "gain": frame.gain, "offset": frame.offset, "ccd_temp": frame.ccd_temp,
        "set_temp": frame.set_temp, "roi": _roi(frame.roi), "bayer": frame.bayer,
        "width": width, "height": height,
        "mean": float(data.mean()) if data.size else None,
        "min": int(data.min()) if data.size else None,
        "max": int(data.max()) if data.size else None,
    }


def _preview(data: npt.NDArray[np.uint16], size: int) -> dict[str, Any]:
    """Every n-th pixel (no resampling: cheap), stretched 1st…99.5th percentile to 8 bits."""
    height, width = data.shape[:2]
    step = max(1, math.ceil(max(height, width) / size))
    small = data[::step, ::step].astype(np.float32)
    lo, hi = (np.percentile(small, (1.0, 99.5)) if small.size else (0.0, 1.0))
    scaled = np.clip((small - lo) / max(float(hi - lo), 1.0), 0.0, 1.0) * 255.0
    pixels = np.ascontiguousarray(scaled.astype(np.uint8))
    return {"width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "dtype": "uint8",
            "step": step, "encoding": "base64",
            "data": base64.b64encode(pixels.tobytes()).decode("ascii")}


# ------------------------------------------------------------------ cooling


@_reg("cooling", CamEnable, moves=True)
async def cooling(hub: Hub, p: CamEnable) -> dict[str, Any]:
    """Turn the cooler on or off."""
    await _camera(hub).set_cooler(p.enable)
    return DONE


@_reg("cooling_to", CamTemperature, moves=True)
async def cooling_to(hub: Hub, p: CamTemperature) -> dict[str, Any]:
    """Cool to ``temperature`` °C (turns the cooler on)."""
    await _camera(hub).set_temperature(p.temperature)
    return DONE


@_reg("get_cooling_status")
async def get_cooling_status(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """``status``: whether the cooler is on."""
    return {"status": await _camera(hub).cooler_on()}


@_reg("get_current_temperature")
async def get_current_temperature(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Sensor temperature, °C."""
    return {"temperature": await _camera(hub).temperature()}


@_reg("get_cooling_power")
async def get_cooling_power(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Cooler power, percent."""
    return {"power": await _camera(hub).cooler_power()}


# ------------------------------------------------------------------ settings


@_reg("get_camera_roi")
async def get_camera_roi(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """The sub-frame, unbinned sensor pixels."""
    return _roi(await _camera(hub).roi())


@_reg("get_gain")
async def get_gain(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """The gain, driver units."""
    return {"gain": await _camera(hub).gain()}


@_reg("get_offset")
async def get_offset(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """The offset, ADU."""
    return {"offset": await _camera(hub).offset()}


@_reg("get_binning")
async def get_binning(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """The binning as ``[x, y]``."""
    b = await _camera(hub).binning()
    return {"binning": [b, b]}


@_reg("set_camera_roi", CamRoi, moves=True)
async def set_camera_roi(hub: Hub, p: CamRoi) -> dict[str, Any]:
    """Set the sub-frame (unbinned sensor pixels)."""
    await _camera(hub).set_roi(RoiBox(p.start_x, p.start_y, p.width, p.height))
    return DONE


@_reg("set_gain", CamGain, moves=True)
async def set_gain(hub: Hub, p: CamGain) -> dict[str, Any]:
    """Set the gain."""
    await _camera(hub).set_gain(p.gain)
    return DONE


@_reg("set_offset", CamOffset, moves=True)
async def set_offset(hub: Hub, p: CamOffset) -> dict[str, Any]:
    """Set the offset."""
    await _camera(hub).set_offset(p.offset)
    return DONE


@_reg("set_binning", CamBinning, moves=True)
async def set_binning(hub: Hub, p: CamBinning) -> dict[str, Any]:
    """Set the binning ``[x, y]`` (x and y must be equal)."""
    x, y = p.binning
    if x != y:
        raise RpcError(f"binning [{x}, {y}]: the camera bins symmetrically (x must equal y)")
    if x < 1:
        raise RpcError(f"binning {x} must be at least 1")
    await _camera(hub).set_binning(x)
    return DONE


# ------------------------------------------------------------------ call by name


@_reg("call", CamCall)
async def call(hub: Hub, p: CamCall) -> Any:
    """Call another ``camera.*`` method by name with its params (nothing else is reachable)."""
    short = p.name.removeprefix(PREFIX)
    method = REGISTRY.get(PREFIX + short)
    if method is None or short == "call":
        raise RpcError(f"camera.call: no camera method {short!r} (one of "
                       f"{', '.join(_callable_names())})")
    try:
        params = Dispatcher._params(method.params, p.params)
    except ValidationError as exc:
        raise RpcError(_readable(exc), INVALID_PARAMS) from None
    except TypeError as exc:
        raise RpcError(f"invalid params: {exc}", INVALID_PARAMS) from None
    if method.moves_hardware:
        hub.check_may_move(method.device or "camera", method.name)
    result = await method.handler(hub, params)
    return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


def _callable_names() -> list[str]:
    return [n.removeprefix(PREFIX) for n in REGISTRY.names()
            if n.startswith(PREFIX) and n != PREFIX + "call"]
