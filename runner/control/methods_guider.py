"""Seed 001: LightAPT's PHD2 client API as ``guider.<name>`` methods, with the seed's names,
parameter names and result shapes (commands answer ``{"message": null}``; a failure is a
JSON-RPC error, code −1, whose message is what the seed would have put in ``message``).

Which PHD2 connection a method uses (the night's while it guides, else the hub's own) is
``runner.control.guider_link``'s business; methods that move the guider are refused while a
night runs unless it is paused.

``connect_server`` / ``disconnect_server`` / ``reconnect_server`` manage only the hub's own
connection: they can never cut a night off its guider. ``start_phd2`` starts, for a
``backend: simulator`` profile, the in-process PHD2 simulator (on the profile's port, or a free
one when that is taken; the answer says which), and for ``backend: phd2`` on a loopback host
the PHD2 executable at ``path``; ``stop_phd2`` stops only what ``start_phd2`` started.
``generate_profile`` is refused: PHD2's event server has no way to create a profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runner.control.guider_link import (
    DEFAULT_PORT,
    guider_client,
    guider_host,
    guider_profile,
    hub_guider,
    start_executable,
    start_simulator,
)
from runner.control.hub import Hub
from runner.control.protocol import RpcError
from runner.control.registry import REGISTRY, Handler, NoParams
from runner.control.results import GuiderDone, GuideStamp, Phd2Started, SavedPath, ScanResult
from runner.guiding.phd2_client import PHD2Client, scan_servers
from runner.guiding.phd2_process import stop_phd2
from runner.guiding.phd2_types import PHD2Profile, SettleParams

PREFIX = "guider."
DONE: dict[str, Any] = {"message": None}
MAX_SCAN_PORTS = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GuideStartPhd2(_Strict):
    path: str | None = Field(
        None, max_length=4096,
        description="full path of the PHD2 executable (backend phd2; ignored by the simulator)")


class GuideScan(_Strict):
    range: tuple[int, int] = Field((DEFAULT_PORT, DEFAULT_PORT + 9),
                                   description="[first, last] port, inclusive")

    @model_validator(mode="after")
    def _span(self) -> GuideScan:
        first, last = self.range
        if not (1 <= first <= last <= 65535):
            raise ValueError("range must be [first, last] with 1 <= first <= last <= 65535")
        if last - first + 1 > MAX_SCAN_PORTS:
            raise ValueError(f"range spans {last - first + 1} ports (at most {MAX_SCAN_PORTS})")
        return self


class GuidePort(_Strict):
    port: int | None = Field(None, ge=1, le=65535,
                             description="default: the PHD2 start_phd2 started, else the "
                             "profile's port, else 4400")


class GuideProfileId(_Strict):
    profile_id: int


class GuideNewProfile(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int | None = None
    name: str | None = Field(None, max_length=200)
    camera: str | None = Field(None, max_length=200)
    mount: str | None = Field(None, max_length=200)


class GuideSettle(_Strict):
    pixel: float = Field(1.5, gt=0, le=100,
                         description="in range when the guide error is below this, px")
    time: float = Field(10, ge=0, le=3600, description="in range this long, s")
    timeout: float = Field(60, gt=0, le=3600, description="give up settling after, s")

    def settle(self) -> SettleParams:
        return SettleParams(self.pixel, self.time, self.timeout)


class GuideStart(GuideSettle):
    recalibration: bool = False


class GuideDither(GuideSettle):
    raonly: bool = False
    amount: float = Field(5, gt=0, le=100, description="pixels")


class GuideClearCalibration(_Strict):
    which: Literal["mount", "ao", "both"] = "both"


class GuideImage(_Strict):
    size: int = Field(15, ge=15, le=63, description="stamp size, px")


_namespaced = REGISTRY.namespace(PREFIX, "guider")


def _reg(name: str, params: type[BaseModel] = NoParams, *, moves: bool = False,
         result: type[BaseModel] | None = GuiderDone) -> Callable[[Handler], Handler]:
    """A ``guider.`` method; a command answers ``{"message": null}`` unless ``result`` says."""
    return _namespaced(name, params, moves=moves, result=result)


# ------------------------------------------------------------------ PHD2 itself


@_reg("start_phd2", GuideStartPhd2, moves=True, result=Phd2Started)
async def start_phd2(hub: Hub, p: GuideStartPhd2) -> dict[str, Any]:
    """Start PHD2 (the in-process simulator for a simulator profile); answers its port."""
    prof = guider_profile(hub)
    if prof is None:
        raise RpcError("start_phd2: the equipment profile has no guider")
    link = hub_guider(hub)
    async with link.lock:
        if link.started_port is not None:
            return {**DONE, "port": link.started_port}
        if prof.backend == "simulator":
            port = await start_simulator(hub, link, prof.port)
        else:
            port = await start_executable(link, prof.host, prof.port, p.path)
    return {**DONE, "port": port}


@_reg("stop_phd2", moves=True)
async def stop_phd2_method(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Stop the PHD2 (or simulator) that start_phd2 started."""
    link = hub_guider(hub)
    async with link.lock:
        if link.simulator is None and link.process is None:
            raise RpcError("stop_phd2: this hub did not start PHD2; it stops only a PHD2 "
                           "that start_phd2 started")
        if link.client is not None and link.client.port == link.started_port:
            await link.client.disconnect_server()
            link.client = None
        if link.simulator is not None:
            sim, link.simulator = link.simulator, None
            await sim.stop()
        if link.process is not None:
            proc, link.process = link.process, None
            await stop_phd2(proc)
    return DONE


# ------------------------------------------------------------------ the server connection


@_reg("scan_server", GuideScan, result=ScanResult)
async def scan_server(hub: Hub, p: GuideScan) -> dict[str, Any]:
    """Ports in ``range`` where a PHD2 event server answers, on the profile's host."""
    first, last = p.range
    found = await scan_servers(guider_host(hub), range(first, last + 1), timeout_s=1.0)
    return {"list": found or None}


@_reg("connect_server", GuidePort)
async def connect_server(hub: Hub, p: GuidePort) -> dict[str, Any]:
    """Open the hub's own connection to PHD2's event server."""
    link = hub_guider(hub)
    prof = guider_profile(hub)
    port = p.port or link.started_port or (prof.port if prof is not None else DEFAULT_PORT)
    async with link.lock:
        old = link.client
        if old is not None and old.connected and old.port == port:
            return DONE
        if old is not None:
            link.client = None
            await old.disconnect_server()
        client = PHD2Client(guider_host(hub), port, clock=hub.clock,
                            pixel_scale_arcsec=prof.pixel_scale if prof is not None else None)
        await client.connect_server()
        link.client = client
    return DONE


@_reg("disconnect_server")
async def disconnect_server(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Close the hub's own connection to PHD2 (a night's connection is its own)."""
    link = hub_guider(hub)
    async with link.lock:
        client, link.client = link.client, None
        if client is not None:
            await client.disconnect_server()
    return DONE


@_reg("reconnect_server")
async def reconnect_server(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Close and reopen the hub's own connection to PHD2."""
    link = hub_guider(hub)
    async with link.lock:
        if link.client is None:
            raise RpcError("reconnect_server: not connected; call guider.connect_server")
        await link.client.reconnect_server()
    return DONE


# ------------------------------------------------------------------ profiles and equipment


def _profile_dict(p: PHD2Profile) -> dict[str, Any]:
    out: dict[str, Any] = {"id": p.id, "name": p.name, "selected": p.selected}
    for kind, dev in p.devices.items():
        out[kind] = {"name": dev.name, "connected": dev.connected}
    return out


@_reg("get_profiles", result=None)
async def get_profiles(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """PHD2's equipment profiles (PHD2 reveals the devices of the selected one only)."""
    return {"list": [_profile_dict(p) for p in await guider_client(hub).get_profiles()]}


@_reg("get_current_profile", result=None)
async def get_current_profile(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """The selected profile with its devices."""
    return _profile_dict(await guider_client(hub).get_current_profile())


@_reg("set_profile", GuideProfileId, moves=True)
async def set_profile(hub: Hub, p: GuideProfileId) -> dict[str, Any]:
    """Select a profile by id (PHD2's equipment is disconnected first)."""
    await guider_client(hub).set_profile(p.profile_id)
    return DONE


@_reg("generate_profile", GuideNewProfile)
async def generate_profile(hub: Hub, p: GuideNewProfile) -> dict[str, Any]:
    """Refused: PHD2's event server cannot create profiles."""
    raise RpcError("generate_profile: PHD2's event server has no method to create a profile; "
                   "create it in PHD2 (Manage Profiles → New using Connection Wizard) and select "
                   "it with guider.set_profile")


@_reg("connect_device", moves=True)
async def connect_device(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Connect the selected profile's equipment."""
    await guider_client(hub).connect_equipment()
    return DONE


@_reg("disconnect_device", moves=True)
async def disconnect_device(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Disconnect PHD2's equipment (guiding stops)."""
    await guider_client(hub).disconnect_equipment()
    return DONE


@_reg("reconnect_device", moves=True)
async def reconnect_device(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Disconnect and connect PHD2's equipment again."""
    await guider_client(hub).reconnect_equipment()
    return DONE


# ------------------------------------------------------------------ calibration


@_reg("start_calibration", GuideSettle, moves=True)
async def start_calibration(hub: Hub, p: GuideSettle) -> dict[str, Any]:
    """Calibrate now; answers at CalibrationComplete (guiding then goes on and settles)."""
    await guider_client(hub).start_calibration(p.settle())
    return DONE


@_reg("stop_calibration", moves=True)
async def stop_calibration(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Stop calibrating (and looping); answers once PHD2 is stopped."""
    await guider_client(hub).stop_calibration()
    return DONE


@_reg("clear_calibration_data", GuideClearCalibration, moves=True)
async def clear_calibration_data(hub: Hub, p: GuideClearCalibration) -> dict[str, Any]:
    """Forget the calibration (the next guide calibrates)."""
    await guider_client(hub).clear_calibration(p.which)
    return DONE


@_reg("flip_calibration_data", moves=True)
async def flip_calibration_data(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Flip the calibration for the other side of the pier."""
    await guider_client(hub).flip_calibration()
    return DONE


# ------------------------------------------------------------------ guiding


@_reg("start_guiding", GuideStart, moves=True)
async def start_guiding(hub: Hub, p: GuideStart) -> dict[str, Any]:
    """Start guiding; answers once settled (an error if settling failed or timed out)."""
    await guider_client(hub).start_guiding(p.settle(), recalibrate=p.recalibration)
    return DONE


@_reg("stop_guiding", moves=True)
async def stop_guiding(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Stop guiding and looping; answers once PHD2 is stopped."""
    await guider_client(hub).stop_guiding()
    return DONE


@_reg("pause_guiding", moves=True)
async def pause_guiding(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Pause guide corrections; exposures go on."""
    await guider_client(hub).pause_guiding()
    return DONE


@_reg("resume_guiding", moves=True)
async def resume_guiding(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Resume guide corrections."""
    await guider_client(hub).resume_guiding()
    return DONE


@_reg("dither", GuideDither, moves=True)
async def dither(hub: Hub, p: GuideDither) -> dict[str, Any]:
    """Dither by ``amount`` px while guiding; answers once settled again."""
    await guider_client(hub).dither(p.amount, p.settle(), ra_only=p.raonly)
    return DONE


# ------------------------------------------------------------------ looping and images


@_reg("start_looping", moves=True)
async def start_looping(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Loop exposures (to select a star)."""
    await guider_client(hub).start_looping()
    return DONE


@_reg("stop_looping", moves=True)
async def stop_looping(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Stop looping (and guiding); answers once PHD2 is stopped."""
    await guider_client(hub).stop_looping()
    return DONE


@_reg("get_image", GuideImage, result=GuideStamp)
async def get_image(hub: Hub, p: GuideImage) -> dict[str, Any]:
    """The stamp around the guide star: base64 of little-endian uint16, row-major."""
    img = await guider_client(hub).get_image(p.size)
    return {"frame": img.frame, "width": img.width, "height": img.height,
            "image": img.pixels_base64, "star_position": [img.star_x_px, img.star_y_px]}


@_reg("save_image", result=SavedPath)
async def save_image(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """PHD2 saves the guide frame as FITS; when that file is on this machine it is moved into
    the data directory's ``guider/`` folder. Answers the file's full path."""
    written = await guider_client(hub).save_image()
    return {"path": str(await asyncio.to_thread(_keep, written, hub.data_dir / "guider"))}


def _keep(written: Path, folder: Path) -> Path:
    if not written.is_file():
        return written  # PHD2 runs elsewhere: the path is on its machine
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / written.name
    n = 1
    while target.exists():
        target = folder / f"{written.stem}-{n}{written.suffix}"
        n += 1
    with contextlib.suppress(OSError):
        return Path(shutil.move(written, target)).resolve()
    return written
