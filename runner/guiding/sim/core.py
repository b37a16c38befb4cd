"""What the simulated PHD2 does, independent of sockets.

The structure follows PHD2's own code so that its behaviour — including the awkward parts
clients must cope with — comes out the same:

* ``exposed_state`` is ``Guider::GetExposedState``; ``catchup_events`` is
  ``send_catchup_events`` (event_server.cpp);
* ``_update_controller`` is ``PhdController::UpdateControllerState`` (phdcontrol.cpp): the
  guide sequence (capture → select star → calibrate → guide → settle) and the settle rule
  (evaluated only when a frame arrives, in-range timer reset by one out-of-range frame, timeout
  noticed on the first frame after it expired, whole seconds as PHD2 counts them);
* RPC handlers keep PHD2's parameter names, positional order, type checks, error codes and
  messages; events are emitted synchronously, so those PHD2 sends before its response (dither:
  LockPositionSet → GuidingDithered → SettleBegin) precede it on the wire here too.

Frames come from one capture task on the shared ``Clock``. Faults: ``SimFaults`` on the
simulator, and ``SimWorld`` faults ``star_lost`` / ``settle_never`` / ``guider_drop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.guiding.sim.model import (
    _MISSING,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PHD_SUBVER,
    PHD_VERSION,
    GState,
    Params,
    RpcError,
    _bool_param,
    _is_int,
    _is_num,
    _parse_rect,
    _r,
)
from runner.guiding.sim.rpc import RpcHandlers

log = logging.getLogger(__name__)


class PHD2Core(RpcHandlers):
    """The simulated PHD2 application: guider, controller, camera, profiles, RPC methods."""

    def _frame_now(self) -> npt.NDArray[np.uint16]:
        star = self.star.true_position() if not self._knob_star_lost(
            self.clock.monotonic()) else None
        return self.star.full_frame(star, self._noise_rng)

    def _fits_header(self, exposure_ms: int) -> dict[str, Any]:
        return {
            "EXPTIME": exposure_ms / 1000.0,
            "DATE-OBS": self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
            "INSTRUME": self.profile.camera,
            "FRAME": self.image_frame,
            "PIXSCALE": self.params.pixel_scale_arcsec or 0.0,
            "CREATOR": f"PHD2 {PHD_VERSION} {PHD_SUBVER}",
        }

    async def rpc_save_image(self, params: Any) -> Any:
        if self.image_frame == 0:
            raise RpcError(2, "no image available")
        data = self._frame_now()
        header = self._fits_header(self.exposure_ms)
        try:
            path = await asyncio.to_thread(_write_temp_fits, self.save_dir, data, header)
        except OSError as exc:
            log.error("PHD2 simulator could not save the image: %s", exc)
            raise RpcError(3, "error saving image") from exc
        return {"filename": str(path)}

    def rpc_get_pixel_scale(self, params: Any) -> Any:
        return self.params.pixel_scale_arcsec

    def rpc_get_lock_position(self, params: Any) -> Any:
        if self.lock_pos is None:
            return None
        return [_r(self.lock_pos[0], 2), _r(self.lock_pos[1], 2)]

    def rpc_set_lock_position(self, params: Any) -> Any:
        p = Params(("x", "y", "exact"), params)
        x, y = p.get("x"), p.get("y")
        if not (_is_num(x) and _is_num(y)):
            raise RpcError(INVALID_PARAMS, "expected lock position x, y params")
        exact = True
        e = p.get("exact")
        if e is not _MISSING:
            b = _bool_param(e)
            if b is None:
                raise RpcError(INVALID_PARAMS, "expected boolean param at index 2")
            exact = b
        if not (0 <= x < self.params.width_px and 0 <= y < self.params.height_px):
            raise RpcError(INVALID_REQUEST, "could not set lock position")
        if not exact:
            if self.image_frame == 0:
                raise RpcError(INVALID_REQUEST, "could not set lock position")
            sx, sy = self.star.observe()
            if math.hypot(sx - x, sy - y) > 15:
                raise RpcError(INVALID_REQUEST, "could not set lock position")
            x, y = sx, sy
            self.current_pos = (x, y)
            self.locked = True
            if self.gstate is GState.idle:
                self.gstate = GState.selected
        self.lock_pos = (float(x), float(y))
        self._emit("LockPositionSet", X=_r(x, 3), Y=_r(y, 3))
        return 0

    def rpc_get_exposure(self, params: Any) -> Any:
        return self.exposure_ms

    def rpc_set_exposure(self, params: Any) -> Any:
        v = Params(("exposure",), params).get("exposure")
        if not _is_int(v):
            raise RpcError(INVALID_PARAMS, "expected exposure param")
        if v not in self.durations_ms:
            raise RpcError(1, "could not set exposure duration")
        self.exposure_ms = v
        return 0

    def rpc_get_exposure_durations(self, params: Any) -> Any:
        return list(self.durations_ms)

    def rpc_get_camera_frame_size(self, params: Any) -> Any:
        if not self.connected:
            raise RpcError(1, "camera not connected")
        return [self.params.width_px, self.params.height_px]

    def rpc_capture_single_frame(self, params: Any) -> Any:
        if self.capture_active:
            raise RpcError(1, "cannot capture single frame when capture is currently active")
        if not self.connected:
            raise RpcError(1, "cannot capture single frame when camera is not connected")
        p = Params(("exposure", "binning", "gain", "subframe", "path", "save"), params)
        exposure = self.exposure_ms
        v = p.get("exposure")
        if v is not _MISSING:
            if not _is_int(v) or not 1 <= v <= 600_000:
                raise RpcError(INVALID_PARAMS, "expected exposure param")
            exposure = v
        for name, lo, hi, msg in (("binning", 1, 4, "invalid binning value: min=1, max=4"),
                                  ("gain", 0, 100,
                                   "invalid gain value: must be between 0 and 100")):
            v = p.get(name)
            if v is not _MISSING and (not _is_int(v) or not lo <= v <= hi):
                raise RpcError(INVALID_PARAMS, msg)
        v = p.get("subframe")
        if v is not _MISSING and _parse_rect(v) is None:
            raise RpcError(INVALID_PARAMS, "invalid subframe param")
        path: Path | None = None
        v = p.get("path")
        if v is not _MISSING:
            if not isinstance(v, str):
                raise RpcError(INVALID_PARAMS, "invalid path param: string expected")
            path = Path(v)
            if not path.is_absolute():
                raise RpcError(INVALID_PARAMS, "path param must be an absolute path")
            if path.exists():
                raise RpcError(INVALID_PARAMS, "destination file already exists")
        save = path is not None
        v = p.get("save")
        if v is not _MISSING:
            b = _bool_param(v)
            if b is None:
                raise RpcError(INVALID_PARAMS, "save param must be a boolean")
            save = b
        if not save and path is not None:
            raise RpcError(INVALID_PARAMS, "path param not allowed when save = false")
        self._spawn(self._single_frame(exposure, save, path))
        return 0

    async def _single_frame(self, exposure_ms: int, save: bool, path: Path | None) -> None:
        await self.clock.sleep(exposure_ms / 1000.0)
        self.star.advance(self.clock.monotonic())
        self.image_frame += 1
        if not save:
            self._emit("SingleFrameComplete", Success=True)
            return
        data = self._frame_now()
        header = self._fits_header(exposure_ms)
        try:
            written = await asyncio.to_thread(_write_fits, path, self.save_dir, data, header)
        except OSError as exc:
            self._emit("SingleFrameComplete", Success=False, Error=f"could not save: {exc}")
            return
        self._emit("SingleFrameComplete", Success=True, Path=str(written))

    def rpc_shutdown(self, params: Any) -> Any:
        self._request_shutdown()
        return 0

    # ================================================================== lifecycle

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("PHD2 simulator background task failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = [t for t in (self._capture_task, *self._tasks) if t is not None]
        self.capture_active = False
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t




def _write_fits(
    path: Path | None, save_dir: Path | None, data: npt.NDArray[np.uint16],
    header: dict[str, Any],
) -> Path:
    from astropy.io import fits  # deferred: astropy is slow to import, and only this needs it

    if path is None:
        return _write_temp_fits(save_dir, data, header)
    hdu = fits.PrimaryHDU(data)
    for k, v in header.items():
        hdu.header[k] = v
    tmp = path.with_name(path.name + ".part")
    hdu.writeto(tmp, overwrite=True)
    tmp.replace(path)
    return path


def _write_temp_fits(
    save_dir: Path | None, data: npt.NDArray[np.uint16], header: dict[str, Any]
) -> Path:
    from astropy.io import fits

    fd, name = tempfile.mkstemp(prefix="save_image_", suffix=".fits",
                                dir=str(save_dir) if save_dir else None)
    path = Path(name)
    with open(fd, "wb") as fh:
        hdu = fits.PrimaryHDU(data)
        for k, v in header.items():
            hdu.header[k] = v
        hdu.writeto(fh)
    return path
