"""Seed 004 (OpenLiveStacker) over HTTP: camera, stacker, server-sent updates, MJPEG video and
the generated files, with the seed's paths, names and shapes.

While a night runs, the stacker it drives is the one shown and controlled here (pause,
resume, stretch, save, cancel); ``/api/stacker/start`` is refused then, and so is anything
that moves the camera, as for the hub's methods (``Hub.check_may_move``). Between nights
``start`` makes the hub's own stack of the frames ``/api/camera/stream`` takes. Replies are
the seed's ``{"status": "ok"|"fail", "msg"}``; a failure has an HTTP error code too (404
unknown id, 409 refused or failed, 422 bad parameters) and the control plane's ``error``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from runner.control.protocol import RpcError
from runner.control.streams import feed_sse, mjpeg, sse
from runner.control.web_camera import FailReply, fail, start_stream
from runner.errors import StackingError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Done = FailReply  # seed 004's reply: {"status": "ok"|"fail", "msg"}


class CameraEntry(BaseModel):
    id: int
    name: str


class CameraOp(_Strict):
    operation: Literal["open", "close"]
    id: int = Field(0, ge=0, le=1000)


class CameraStatus(BaseModel):
    status: Literal["open", "closed", "streaming"]


class FormatEntry(BaseModel):
    format_id: str
    width: int
    height: int
    framerate: float | None
    format: str


class StreamOp(_Strict):
    op: Literal["start", "stop"]
    format_id: str | None = Field(None, max_length=100)


class OptionEntry(BaseModel):
    option_id: str
    name: str
    type: Literal["boolean", "integer", "float"]
    min: float | None
    cur: Any
    max: float | None
    step: float | None
    default: Any


class OptionValue(BaseModel):
    value: Any


class OptionSet(_Strict):
    value: float | bool | int


class OptionItem(_Strict):
    option_id: str = Field(max_length=40)
    value: float | bool | int


class Where(_Strict):
    ra: float = Field(ge=0, lt=360)
    de: float = Field(ge=-90, le=90)


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    name: str | None = Field(None, max_length=100)


class StackerStart(_Strict):
    name: str = Field(min_length=1, max_length=100)
    calibration: Literal["dso", "calibration"] = "dso"
    #: for ``calibration``: which master the stack becomes (seed 004 leaves it implicit)
    frame_type: Literal["dark", "flat", "bias"] = "dark"
    target: Where | None = None
    location: Location | None = None
    source_gamma: float = Field(
        1.0, gt=0, le=10, description="Only 1.0: the cameras here give linear RAW data, "
        "there is no gamma to undo (OpenLiveStacker's webcam JPEGs have one).")
    comment: str | None = Field(None, max_length=500)
    image_flip: bool = False
    field_rotation: bool = False
    auto_stretch: bool = True
    darks: str | None = Field(None, max_length=200)
    flats: str | None = Field(None, max_length=200)
    bias: str | None = Field(None, max_length=200)
    save_data: bool = False


    @field_validator("source_gamma")
    @classmethod
    def _linear(cls, value: float) -> float:
        if value != 1.0:
            raise ValueError("only 1.0 is accepted: the cameras here give linear RAW data, so "
                             "there is no gamma to undo")
        return value


class StackerControl(_Strict):
    operation: Literal["pause", "resume", "save", "cancel"]
    save_unprocessed: bool = False


class Stretch(_Strict):
    auto_stretch: bool | None = None
    stretch_low: float | None = Field(None, ge=0, le=1)
    stretch_high: float | None = Field(None, ge=0, le=1)
    stretch_gamma: float | None = Field(None, gt=0, le=10)


class StackingStatus(BaseModel):
    status: str
    frames: int
    processed: int
    stacked: int
    dropped: int
    error_message: str | None = None
    stacking_id: str | None = None


FAILS: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown id", "model": Done},
    409: {"description": "refused (the night owns it) or failed", "model": Done},
}
STREAM: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}
VIDEO: dict[int | str, dict[str, Any]] = {200: {"content": {"multipart/x-mixed-replace": {}}}}

#: seed 004's option ids → (name, type, the camera parameter)
OPTIONS: dict[str, tuple[str, Literal["boolean", "integer", "float"], str | None]] = {
    "gain": ("Gain", "integer", "gain"),
    "offset": ("Offset", "integer", "offset"),
    "bin": ("Binning", "integer", "binning"),
    "exp": ("Exposure (ms), of the stream", "float", None),
    "cooler_target": ("Cooler set point (°C)", "float", "set_point"),
    "cooler_on": ("Cooler on", "boolean", "cooler_on"),
    "temperature": ("Sensor temperature (°C)", "float", "temperature"),
    "cooler_power": ("Cooler power (%)", "float", "cooler_power"),
}
READ_ONLY = {"temperature", "cooler_power"}


def ok(msg: str = "") -> dict[str, str]:
    return {"status": "ok", "msg": msg}


def router(hub: Any, state: Any) -> APIRouter:
    r = APIRouter(tags=["seed 004"])

    def camera() -> Any:
        return hub.device("camera")

    async def info() -> Any:
        return await camera().info()

    # ------------------------------------------------------------------ camera

    @r.get("/api/camera", summary="Cameras that can be opened", response_model=list[CameraEntry])
    async def cameras() -> Any:
        try:
            return [{"id": 0, "name": (await info()).name}]
        except RpcError:
            return []

    @r.post("/api/camera", summary="Open or close a camera", response_model=Done,
            responses=FAILS)
    async def camera_op(op: CameraOp) -> Any:
        if op.id != 0:
            return fail(404, f"no camera {op.id}: camera 0 is the profile's")
        try:
            hub.check_may_move("camera", f"camera {op.operation}")
            cam = camera()
            if op.operation == "open":
                await cam.connect()
            else:
                if state.stream is not None:
                    await state.stream.stop()
                await cam.disconnect()
        except RpcError as exc:
            return fail(409, exc.message)
        except Exception as exc:
            return fail(409, f"camera {op.operation}: {exc}")
        return ok()

    @r.get("/api/camera/status", response_model=CameraStatus)
    async def camera_status() -> Any:
        if state.stream is not None and state.stream.running:
            return {"status": "streaming"}
        if hub.night_active:
            return {"status": "streaming"}  # the night's exposures are the stream
        try:
            return {"status": "open" if camera().connected else "closed"}
        except RpcError:
            return {"status": "closed"}

    @r.get("/api/camera/formats", response_model=list[FormatEntry], responses=FAILS)
    async def formats() -> Any:
        try:
            i = await info()
        except RpcError as exc:
            return fail(409, exc.message)
        return [{"format_id": f"{i.width // b}x{i.height // b}_raw16_bin{b}",
                 "width": i.width // b, "height": i.height // b, "framerate": None,
                 "format": "RAW16"} for b in range(1, i.max_binning + 1)]

    @r.post("/api/camera/stream", summary="Start or stop the stream of short exposures",
            response_model=Done, responses=FAILS)
    async def stream(op: StreamOp) -> Any:
        try:
            if op.op == "stop":
                if state.stream is not None:
                    await state.stream.stop()
                    state.stream = None
                return ok("stopped")
            if op.format_id is not None:
                await _apply_format(op.format_id)
            start_stream(hub, state, state.exposure_ms / 1000.0)
        except RpcError as exc:
            return fail(409, exc.message)
        return ok("streaming")

    async def _apply_format(format_id: str) -> None:
        i = await info()
        for b in range(1, i.max_binning + 1):
            if format_id == f"{i.width // b}x{i.height // b}_raw16_bin{b}":
                hub.check_may_move("camera", "stream")
                await camera().set_binning(b)
                return
        raise RpcError(f"unknown format_id {format_id!r}: see /api/camera/formats")

    async def read(option_id: str) -> Any:
        if option_id == "exp":
            return state.exposure_ms
        param = OPTIONS[option_id][2]
        assert param is not None
        return await camera().get_parameter(param)

    async def offered() -> list[str]:
        has_cooler = (await info()).has_cooler
        return [o for o in OPTIONS
                if has_cooler or o not in ("cooler_target", "cooler_on", "temperature",
                                           "cooler_power")]

    async def write(option_id: str, value: Any) -> None:
        if option_id not in OPTIONS or option_id not in await offered():
            raise KeyError(option_id)
        if option_id in READ_ONLY:
            raise RpcError(f"option {option_id} is read-only")
        kind = OPTIONS[option_id][1]
        if kind == "boolean" and not isinstance(value, bool):
            raise RpcError(f"option {option_id} is a boolean")
        if kind == "integer" and (isinstance(value, bool) or float(value) != int(value)):
            raise RpcError(f"option {option_id} is an integer")
        if option_id == "exp":
            if not 1 <= float(value) <= 3_600_000:
                raise RpcError("exp must be 1 … 3600000 ms")
            state.exposure_ms = float(value)
            return
        if option_id == "bin" and not 1 <= int(value) <= (await info()).max_binning:
            raise RpcError(f"bin must be 1 … {(await info()).max_binning}")
        if option_id == "cooler_target" and not -60 <= float(value) <= 40:
            raise RpcError("cooler_target must be −60 … 40 °C")
        hub.check_may_move("camera", f"option {option_id}")
        param = OPTIONS[option_id][2]
        assert param is not None
        await camera().set_parameter(param, value)

    @r.get("/api/camera/options", summary="The camera's settings",
           response_model=list[OptionEntry], responses=FAILS)
    async def options() -> Any:
        try:
            i = await info()
            out = []
            for oid in await offered():
                name, kind, _ = OPTIONS[oid]
                lo, hi, step, default = {
                    "bin": (1, i.max_binning, 1, 1), "exp": (1, 3_600_000, 1, 1000),
                    "cooler_target": (-60, 40, 0.5, None), "cooler_on": (None, None, None, False),
                }.get(oid, (0 if kind == "integer" else None, None, 1 if kind == "integer"
                            else None, None))
                out.append({"option_id": oid, "name": name, "type": kind, "min": lo,
                            "cur": await _quiet(read(oid)), "max": hi, "step": step,
                            "default": default})
            return out
        except RpcError as exc:
            return fail(409, exc.message)

    @r.get("/api/camera/option/all", response_model=list[OptionItem], responses=FAILS)
    async def option_all() -> Any:
        try:
            return [{"option_id": o, "value": v} for o in await offered()
                    if (v := await _quiet(read(o))) is not None]
        except RpcError as exc:
            return fail(409, exc.message)

    @r.post("/api/camera/option/any", response_model=Done, responses=FAILS)
    async def option_any(items: Annotated[list[OptionItem], Body(max_length=32)]) -> Any:
        for item in items:
            failed = await _set(item.option_id, item.value)
            if failed is not None:
                return failed
        return ok()

    async def _set(option_id: str, value: Any) -> Any:
        try:
            await write(option_id, value)
        except KeyError:
            return fail(404, f"unknown option {option_id!r}: see /api/camera/options")
        except RpcError as exc:
            return fail(409, exc.message)
        except Exception as exc:
            return fail(409, f"option {option_id}: {exc}")
        return None

    @r.get("/api/camera/option/{option_id}", response_model=OptionValue, responses=FAILS)
    async def option_get(option_id: str) -> Any:
        try:
            if option_id not in OPTIONS or option_id not in await offered():
                return fail(404, f"unknown option {option_id!r}: see /api/camera/options")
            return {"value": await read(option_id)}
        except RpcError as exc:
            return fail(409, exc.message)
        except Exception as exc:
            return fail(409, f"option {option_id}: {exc}")

    @r.post("/api/camera/option/{option_id}", response_model=Done, responses=FAILS)
    async def option_set(option_id: str, body: OptionSet) -> Any:
        return await _set(option_id, body.value) or ok()

    # ------------------------------------------------------------------ stacker

    @r.post("/api/stacker/start", summary="Start the hub's own stack (refused during a night)",
            response_model=Done, responses=FAILS)
    async def stacker_start(p: StackerStart) -> Any:
        if hub.night_active:
            return fail(409, "stacker start: the night owns the stacker")
        if p.field_rotation and (p.target is None or p.location is None):
            return fail(422, "field_rotation needs target and location")
        from runner.stacking.live import LiveStacker

        if state.manual is None:
            state.manual = LiveStacker(hub.data_dir)
            state.manual.on_change = state.stacker_changed
        cal = p.calibration == "calibration"
        try:
            sid = await asyncio.to_thread(
                state.manual.start, p.name, darks=p.darks, flats=p.flats, bias=p.bias,
                field_rotation=p.field_rotation, flip=p.image_flip,
                auto_stretch=p.auto_stretch, save_data=p.save_data or cal, align=not cal,
                comment=p.comment)
        except (StackingError, KeyError) as exc:
            missing = isinstance(exc, KeyError) or "no calibration master" in str(exc)
            return fail(404 if missing else 409, str(exc).strip("'\""))
        state.calibration_kind = p.frame_type if cal else None
        return ok(sid)

    @r.post("/api/stacker/control", response_model=Done, responses=FAILS)
    async def stacker_control(p: StackerControl) -> Any:
        st = state.stacker()
        if st is None:
            return fail(409, "no stacker: no night stacks and none was started")
        try:
            if p.operation == "pause":
                st.pause()
            elif p.operation == "resume":
                st.resume()
            elif p.operation == "cancel":
                await asyncio.to_thread(st.cancel)
            else:
                paths = await st.save_async()
                msg = str(paths.jpeg.relative_to(hub.data_dir))
                if st is state.manual and state.calibration_kind is not None:
                    msg = await asyncio.to_thread(_to_master, st, state.calibration_kind)
                return ok(msg)
        except StackingError as exc:
            return fail(409, str(exc))
        return ok()

    @r.post("/api/stacker/stretch", response_model=Done, responses=FAILS)
    async def stacker_stretch(p: Stretch) -> Any:
        st = state.stacker()
        if st is None:
            return fail(409, "no stack to stretch")
        try:
            st.stretch(p.auto_stretch, p.stretch_low, p.stretch_high, p.stretch_gamma)
        except StackingError as exc:
            return fail(409, str(exc))
        state.stacking.set(state.stacking_status())  # the stacked picture is shown anew
        return ok()

    @r.get("/api/stacker/status", response_model=StackingStatus)
    async def stacker_status() -> Any:
        return state.stacking_status()

    # ------------------------------------------------------------------ updates and video

    @r.get("/api/updates/live/histogram", summary="SSE: the live frame's histogram",
           response_class=Response, responses=STREAM)
    async def live_histogram() -> Response:
        return sse(state.live, lambda: _second(state.live_hist.get()))

    @r.get("/api/updates/stacked/histogram", summary="SSE: the stack's histogram",
           response_class=Response, responses=STREAM)
    async def stacked_histogram() -> Response:
        return sse(state.stacking, lambda: _second(state.stacked_hist.get()))

    @r.get("/api/updates/stacking_status", summary="SSE: seed 004's stacking status, "
           "after every processed frame", response_class=Response, responses=STREAM)
    async def stacking_status() -> Response:
        def select(item: dict[str, Any]) -> Any:
            e = item["event"]
            return e.get("status") if e.get("event") == "stack_status" else None

        return feed_sse(state.feed, select, [state.stacking_status()])

    @r.get("/api/video/live", summary="MJPEG: each new frame, stretched",
           response_class=Response, responses=VIDEO)
    async def video_live() -> Response:
        return mjpeg(state.live, lambda: _second(state.live_jpeg.get()))

    @r.get("/api/video/stacked", summary="MJPEG: the stack, stretched",
           response_class=Response, responses=VIDEO)
    async def video_stacked() -> Response:
        return mjpeg(state.stacking, lambda: _second(state.stacked_jpeg.get()))

    return r


async def _second(aw: Any) -> Any:
    return (await aw)[1]


async def _quiet(aw: Any) -> Any:
    try:
        return await aw
    except Exception:  # a reading the back-end does not offer is null
        return None


def _to_master(st: Any, kind: str) -> str:
    """A calibration stack's saved input frames become a master in the calibration index."""
    from runner.stacking.fitsio import expand_paths

    sid = st.status()["stacking_id"]
    frames = expand_paths([str(st.data_dir / "debug" / sid / "frames")])
    master = st.library.build_master(kind, frames, master_id=sid)
    return str(master.id)
