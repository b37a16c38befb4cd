"""Seed 000: pyastroimageview's hub methods, with its names, parameter names and result shapes
(each getter answers ``{<key>: value}`` with the key pyastroimageview's server uses and its RPC
camera client reads, e.g. ``get_camera_x_pixelsize`` → ``{"camera_x_pixelsize": 3.76}``;
commands answer ``{"complete": true}``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from runner.control.hub import Hub
from runner.control.protocol import RpcError
from runner.control.registry import REGISTRY, Complete
from runner.control.results import CameraInfo, FocuserStopped
from runner.devices.interfaces import ExposureState, RoiBox


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetTemperature(_Strict):
    target_temperature: float = Field(ge=-60, le=50)


class CoolerState(_Strict):
    cooler_state: bool


class TakeImage(_Strict):
    exposure: float = Field(ge=0, le=3600)
    binning: int = Field(1, ge=1, le=16)
    # leftmost x, uppermost y, width, height in binned pixels, as the seed's (its RPC camera
    # client sends the frame size divided by the binning: floats)
    roi: tuple[float, float, float, float] | None = None
    frametype: Literal["Light", "Dark", "Bias", "Flat"] = "Light"
    camera_gain: int | None = Field(None, ge=0, description="Gain for this exposure.")
    # pyastroimageview's test client sends it; its server ignores it, and so does this one
    filename: str | None = Field(None, max_length=1024, description="Ignored: save_image.")


class SaveImage(_Strict):
    filename: str = Field(min_length=1, max_length=1024)
    # pyastroimageview's RPC camera client sends it; a frame is never overwritten here
    overwrite: bool = Field(False, description="Accepted; existing files are never replaced.")


class FocuserPosition(_Strict):
    absolute_position: int = Field(ge=0)


def _one(name: str, value: Any) -> dict[str, Any]:
    return {name: value}


def _getter(method: str, kind: str, key: str, kind_of: Any, read: Any) -> None:
    """``method`` answers ``{key: value}``, the value of type ``kind_of`` (its result model,
    ``<Method>Result``, is made here: the key is the seed's)."""
    fields: dict[str, Any] = {key: (kind_of, ...)}
    model = create_model("".join(w.title() for w in method.split("_")) + "Result",
                         __config__=ConfigDict(extra="forbid"), **fields)

    async def handler(hub: Hub, _p: BaseModel) -> dict[str, Any]:
        return _one(key, await read(hub.device(kind)))

    handler.__doc__ = f"{kind}: {method.replace('_', ' ')} (answers {{{key!r}: value}})"
    REGISTRY.method(method, result=model)(handler)


_Num = float | None  # a reading the device may not have
_getter("get_camera_x_pixelsize", "camera", "camera_x_pixelsize", float,
        lambda c: _info(c, "pixel_size"))
_getter("get_camera_y_pixelsize", "camera", "camera_y_pixelsize", float,
        lambda c: _info(c, "pixel_size"))
_getter("get_camera_max_binning", "camera", "camera_max_binning", int,
        lambda c: _info(c, "max_binning"))
_getter("get_camera_egain", "camera", "camera_egain", _Num, lambda c: _info(c, "egain"))
_getter("get_camera_gain", "camera", "camera_gain", _Num, lambda c: c.gain())
_getter("get_current_temperature", "camera", "current_temperature", _Num,
        lambda c: c.temperature())
_getter("get_target_temperature", "camera", "target_temperature", _Num,
        lambda c: c.set_point())
_getter("get_cooler_state", "camera", "cooler_state", bool, lambda c: c.cooler_on())
_getter("get_cooler_power", "camera", "cooler_power", _Num, lambda c: c.cooler_power())
_getter("focuser_get_absolute_position", "focuser", "absolute_position", int,
        lambda f: f.position())
_getter("focuser_get_max_absolute_position", "focuser", "max_absolute_position", int,
        lambda f: f.max_position())
_getter("focuser_get_current_temperature", "focuser", "current_temperature", _Num,
        lambda f: f.temperature())
_getter("focuser_is_moving", "focuser", "is_moving", bool, lambda f: f.is_moving())


async def _info(camera: Any, field: str) -> Any:
    return getattr(await camera.info(), field)


@REGISTRY.method("get_camera_info")
async def get_camera_info(hub: Hub, _p: BaseModel) -> CameraInfo:
    """Camera binning, frame size (unbinned) and region of interest (binned pixels)."""
    cam = hub.device("camera")
    info = await cam.info()
    roi = await cam.roi()
    b = await cam.binning()
    return CameraInfo(binning=b, framesize=(info.width, info.height),
                      roi=(roi.x // b, roi.y // b, roi.width // b, roi.height // b))


@REGISTRY.method("set_target_temperature", TargetTemperature, moves="camera")
async def set_target_temperature(hub: Hub, p: TargetTemperature) -> Complete:
    """Set the cooler's set point (turns the cooler on)."""
    await hub.device("camera").set_temperature(p.target_temperature)
    return Complete()


@REGISTRY.method("set_cooler_state", CoolerState, moves="camera")
async def set_cooler_state(hub: Hub, p: CoolerState) -> Complete:
    """Turn the cooler on or off."""
    await hub.device("camera").set_cooler(p.cooler_state)
    return Complete()


@REGISTRY.method("take_image", TakeImage, moves="camera")
async def take_image(hub: Hub, p: TakeImage) -> Complete:
    """Expose, and answer only when the exposure is complete; ``save_image`` writes it."""
    cam = hub.device("camera")
    async with hub.image_lock:
        await cam.set_binning(p.binning)
        b = p.binning  # the devices' ROI is in unbinned sensor pixels
        await cam.set_roi(None if p.roi is None else RoiBox(*(int(v) * b for v in p.roi)))
        if p.camera_gain is not None:
            await cam.set_gain(p.camera_gain)
        kind = p.frametype.lower()
        await cam.start_exposure(p.exposure, kind, light=kind in ("light", "flat"))
        speed = hub.clock.speed if hub.clock is not None else 1.0
        deadline = time.monotonic() + p.exposure / speed + 120.0
        try:
            while (state := await cam.exposure_status()) is not ExposureState.ready:
                if state is ExposureState.error:
                    raise RpcError("the camera reported an exposure error")
                if time.monotonic() > deadline:
                    raise RpcError("the exposure did not complete in time")
                await asyncio.sleep(0.02)
        except BaseException:
            await cam.abort_exposure()
            raise
        hub.last_image = await cam.exposure_result()
    return Complete()


class SavedImage(Complete):
    """Seed 000's ``{"complete": true}``, and where the file went (relative to the data
    directory: an absolute path from the client's machine is kept there under its name)."""

    filename: str


@REGISTRY.method("save_image", SaveImage)
async def save_image(hub: Hub, p: SaveImage) -> SavedImage:
    """Write the last ``take_image`` as FITS under the data directory."""
    if hub.last_image is None:
        raise RpcError("no image to save: take_image first")
    from runner.storage.fits import save_frame

    path = hub.safe_path(p.filename)
    await save_frame(path, hub.last_image)
    return SavedImage(filename=path.relative_to(hub.data_dir.resolve()).as_posix())


@REGISTRY.method("focuser_stop", moves="focuser")
async def focuser_stop(hub: Hub, _p: BaseModel) -> FocuserStopped:
    """Halt the focuser."""
    await hub.device("focuser").halt()
    return FocuserStopped(stop=True)


@REGISTRY.method("focuser_move_absolute_position", FocuserPosition, moves="focuser")
async def focuser_move_absolute_position(hub: Hub, p: FocuserPosition) -> Complete:
    """Start a move to an absolute position (poll ``focuser_is_moving``)."""
    foc = hub.device("focuser")
    top = await foc.max_position()
    if p.absolute_position > top:
        raise RpcError(f"absolute_position {p.absolute_position} is past the focuser's "
                       f"maximum {top}")
    await foc.move_to(p.absolute_position)
    return Complete()
