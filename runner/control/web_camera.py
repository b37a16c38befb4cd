"""Seed 002 (camera_remote_ws) on an astronomy camera: ``GET /still`` and ``GET /stream``, and
the stream of short exposures that seed 004's ``/api/camera/stream`` starts too.

The seed's parameters, mapped: ``iso`` → gain, ``ss`` → exposure in microseconds, ``hres`` /
``vres`` → the output scaled to fit (never up), ``channel`` r/g/b of a colour sensor
(debayered), ``grey``, ``vflip``/``hflip``, ``text`` with ``{iso}``, ``{ss}``, ``{time}``
(``time_format``, ``textsize``, ``textcolor``), ``st`` seconds to wait before the exposure,
``wait`` for a busy camera instead of an error. ``ex`` and ``md`` (a Pi camera's exposure and
sensor modes) have no astronomy-camera meaning: they are accepted and recorded only.
Every still is written under ``still/`` as FITS and indexed (frame type ``light``, target
``still``), so ``/api/images`` recalls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from runner.control.protocol import RpcError
from runner.devices.interfaces import ExposureState, Frame

STREAM_EXPOSURE = 1.0  # s, the default of /stream and /api/camera/stream


class StillParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iso: int | None = Field(None, ge=0, le=100000, description="gain (the camera's units)")
    ss: int = Field(1_000_000, ge=1, le=3_600_000_000, description="exposure, microseconds")
    hres: int | None = Field(None, ge=1, le=20000, description="output width, px (scaled)")
    vres: int | None = Field(None, ge=1, le=20000, description="output height, px (scaled)")
    ex: str | None = Field(None, max_length=40, description="accepted, recorded only")
    channel: Literal["r", "g", "b"] | None = Field(None, description="colour sensors only")
    grey: bool = False
    md: int | None = Field(None, ge=0, le=100, description="accepted, recorded only")
    text: str | None = Field(None, max_length=200,
                             description="annotation; {iso}, {ss}, {time} are replaced")
    textsize: int = Field(16, ge=1, le=200)
    textcolor: str = Field("white", max_length=30, pattern=r"^[#A-Za-z0-9]+$")
    time_format: str = Field("%Y-%m-%d %H:%M:%S", max_length=60)
    vflip: bool = False
    hflip: bool = False
    st: float = Field(0, ge=0, le=600, description="seconds to wait before the exposure")
    wait: bool = Field(True, description="wait for a busy camera instead of answering 409")
    format: Literal["jpeg", "fits"] = "jpeg"


class StreamParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ss: int = Field(int(STREAM_EXPOSURE * 1e6), ge=1000, le=60_000_000,
                    description="exposure of each frame, microseconds")


class FailReply(BaseModel):
    """Seed 004's ``{"status": "fail", "msg"}``, with the control plane's ``error`` too."""

    status: Literal["ok", "fail"]
    msg: str


def fail(status: int, message: str) -> JSONResponse:
    """Seed 004's failure shape (also the control plane's ``error``), never a traceback."""
    return JSONResponse({"status": "fail", "msg": message,
                         "error": {"code": -1, "message": message}}, status_code=status)


async def expose(hub: Any, seconds: float, *, gain: int | None = None,
                 frame_type: str = "light") -> Frame:
    """One exposure on the hub's camera (hold ``hub.image_lock``)."""
    cam = hub.device("camera")
    if gain is not None:
        await cam.set_gain(gain)
    await cam.start_exposure(seconds, frame_type, light=frame_type in ("light", "flat"))
    clock = hub.clock or getattr(hub.run, "clock", None)
    speed = clock.speed if clock is not None else 1.0
    deadline = time.monotonic() + seconds / speed + 120.0
    try:
        while (state := await cam.exposure_status()) is not ExposureState.ready:
            if state is ExposureState.error:
                raise RpcError("the camera reported an exposure error")
            if time.monotonic() > deadline:
                raise RpcError("the exposure did not complete in time")
            await asyncio.sleep(0.01)
    except BaseException:
        await cam.abort_exposure()
        raise
    frame: Frame = await cam.exposure_result()
    return frame


class CameraStream:
    """Short exposures one after another on the hub's camera; each becomes the live picture
    (and goes to the hub's own stacker when one runs). Stops when the night starts."""

    def __init__(self, hub: Any, state: Any, seconds: float) -> None:
        self.hub, self.state, self.seconds = hub, state, seconds
        self.frames = 0
        self.error: str | None = None
        self._task = asyncio.create_task(self._loop(), name="camera-stream")

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def _loop(self) -> None:
        try:
            while not self.hub.night_active:
                async with self.hub.image_lock:
                    frame = await expose(self.hub, self.seconds)
                self.frames += 1
                self.state.show(frame.data, bayer=frame.bayer)
                manual = self.state.manual
                if manual is not None:
                    manual.submit(frame)
        except (RpcError, Exception) as exc:  # a camera error ends the stream, reported
            self.error = str(exc)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def start_stream(hub: Any, state: Any, seconds: float) -> None:
    hub.check_may_move("camera", "stream")
    hub.device("camera")
    if state.stream is not None and state.stream.running:
        raise RpcError("the camera is streaming already")
    state.stream = CameraStream(hub, state, seconds)


# --------------------------------------------------------------------------- the picture


def picture(frame: Frame, p: StillParams) -> npt.NDArray[np.uint8]:
    """The seed's options applied to a frame: 8-bit grey or RGB, flipped, scaled."""
    from runner.control.web_render import display
    from runner.stacking.stretch import to_uint8

    img = display(frame.data, frame.bayer)
    if p.channel is not None:
        if img.ndim != 3:
            raise RpcError(f"channel={p.channel}: the camera is monochrome")
        img = img[..., "rgb".index(p.channel)]
    elif p.grey and img.ndim == 3:
        img = img.mean(axis=2)
    if p.vflip:
        img = img[::-1]
    if p.hflip:
        img = img[:, ::-1]
    return to_uint8(np.ascontiguousarray(img))


def jpeg(frame: Frame, p: StillParams, when: datetime) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(picture(frame, p))
    if p.hres or p.vres:
        im.thumbnail((p.hres or im.width, p.vres or im.height), Image.Resampling.LANCZOS)
    if p.text:
        text = (p.text.replace("{iso}", str(frame.gain)).replace("{ss}", str(p.ss))
                .replace("{time}", when.strftime(p.time_format)))
        im = im.convert("RGB")
        try:
            font: Any = ImageFont.load_default(size=p.textsize)
        except TypeError:  # Pillow without scalable default font
            font = ImageFont.load_default()
        try:
            ImageDraw.Draw(im).text((4, 4), text, fill=p.textcolor, font=font)
        except ValueError as exc:
            raise RpcError(f"textcolor {p.textcolor!r}: {exc}") from None
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def store(hub: Any, frame: Frame, p: StillParams) -> tuple[Path, int]:
    """Write the still as FITS under ``still/`` and index it; returns its path and id."""
    from runner.storage.fits import FrameMeta, write_fits
    from runner.storage.index import ImageIndex

    stamp = frame.start.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = hub.data_dir / "still" / f"still_{stamp}.fits"
    path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"STILLSS": p.ss}
    if p.ex:
        extra["STILLEX"] = p.ex[:60]
    if p.md is not None:
        extra["STILLMD"] = p.md
    meta = FrameMeta(object_name="still", extra=extra)
    write_fits(path, frame, meta)
    with ImageIndex(hub.data_dir) as index:
        image_id = index.add_frame(path, frame, meta)
    return path, image_id


def router(hub: Any, state: Any) -> APIRouter:
    r = APIRouter(tags=["seed 002"])

    @r.get("/still", summary="Capture a still (seed 002); JPEG, or FITS with format=fits",
           response_class=Response,
           responses={200: {"content": {"image/jpeg": {}, "application/fits": {}}},
                      409: {"description": "busy, or the night owns the camera",
                            "model": FailReply}})
    async def still(p: Annotated[StillParams, Query()]) -> Response:
        try:
            hub.check_may_move("camera", "still")
            hub.device("camera")
            if not p.wait and hub.image_lock.locked():
                return fail(409, "the camera is busy (wait=false)")
            if state.stream is not None and state.stream.running:
                return fail(409, "the camera is streaming: stop the stream first")
            if p.st:
                await asyncio.sleep(p.st)
            async with hub.image_lock:
                hub.check_may_move("camera", "still")
                frame = await expose(hub, p.ss / 1e6, gain=p.iso)
            when = datetime.now().astimezone()
            path, image_id = await asyncio.to_thread(store, hub, frame, p)
            state.show(frame.data, bayer=frame.bayer)
            headers = {"X-Image-Id": str(image_id)}
            if p.format == "fits":
                return Response(path.read_bytes(), media_type="application/fits",
                                headers=headers)
            body = await asyncio.to_thread(jpeg, frame, p, when)
            return Response(body, media_type="image/jpeg", headers=headers)
        except RpcError as exc:
            return fail(409, exc.message)

    @r.get("/stream", summary="MJPEG of continuous short exposures (seed 002)",
           response_class=Response,
           responses={200: {"content": {"multipart/x-mixed-replace": {}}},
                      409: {"description": "the night owns the camera, or it is busy",
                            "model": FailReply}})
    async def stream(p: Annotated[StreamParams, Query()]) -> Response:
        from runner.control.streams import mjpeg

        try:
            if state.stream is None or not state.stream.running:
                start_stream(hub, state, p.ss / 1e6)
        except RpcError as exc:
            return fail(409, exc.message)
        return mjpeg(state.live, lambda: _live_jpeg(state))

    return r


async def _live_jpeg(state: Any) -> bytes | None:
    return (await state.live_jpeg.get())[1]  # type: ignore[no-any-return]
