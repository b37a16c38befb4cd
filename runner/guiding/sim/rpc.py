"""RPC handlers of the simulated PHD2, with PHD2's parameter names, positional order, type
checks, error codes and messages."""

from __future__ import annotations

import base64
import logging
from typing import Any

from runner.guiding.sim.controller import Controller
from runner.guiding.sim.model import (
    _MISSING,
    INVALID_PARAMS,
    Ctl,
    GState,
    Params,
    Pause,
    RpcError,
    _bool_param,
    _Controller,
    _is_int,
    _is_num,
    _parse_rect,
    _parse_settle,
    _r,
)

log = logging.getLogger(__name__)


class RpcHandlers(Controller):
    """The JSON-RPC methods (state, profiles, guiding, calibration, star, lock position)."""

    def rpc_get_app_state(self, params: Any) -> Any:
        return self.exposed_state()

    def rpc_get_profiles(self, params: Any) -> Any:
        out = []
        for p in self.profiles:
            d: dict[str, Any] = {"id": p.id, "name": p.name}
            if p.id == self.profile_id:
                d["selected"] = True
            out.append(d)
        return out

    def rpc_get_profile(self, params: Any) -> Any:
        return {"id": self.profile_id, "name": self.profile.name}

    def rpc_set_profile(self, params: Any) -> Any:
        v = Params(("id",), params).get("id")
        if not _is_int(v):
            raise RpcError(INVALID_PARAMS, "expected profile id param")
        if not any(p.id == v for p in self.profiles):
            raise RpcError(1, f"invalid profile id {v}")
        if self.connected:
            raise RpcError(1, "cannot change profile while equipment is connected")
        if v != self.profile_id:
            self.profile_id = v
            self.calibrated = False
            self._emit("ConfigurationChange")
        return 0

    def rpc_get_current_equipment(self, params: Any) -> Any:
        p = self.profile
        return {
            "camera": {"name": p.camera, "connected": self.connected},
            "mount": {"name": p.mount, "connected": self.connected},
        }

    def rpc_get_connected(self, params: Any) -> Any:
        return self.connected

    async def rpc_set_connected(self, params: Any) -> Any:
        v = Params(("connected",), params).get("connected")
        if not isinstance(v, bool):
            raise RpcError(INVALID_PARAMS, "expected connected boolean param")
        if v and not self.connected:
            if self.faults.set_connected_delay_s > 0:
                await self.clock.sleep(self.faults.set_connected_delay_s)
            self.connected = True
        elif not v and self.connected:
            self._stop_now()
            self.connected = False
        return 0

    def rpc_guide(self, params: Any) -> Any:
        p = Params(("settle", "recalibrate", "roi"), params)
        settle = _parse_settle(p.get("settle"))
        recal = p.get("recalibrate")
        recalibrate = False
        if recal is not _MISSING:
            b = _bool_param(recal)
            if b is None:
                raise RpcError(INVALID_PARAMS, "expected bool value for recalibrate")
            recalibrate = b
        roi_v = p.get("roi")
        roi = None
        if roi_v is not _MISSING:
            roi = _parse_rect(roi_v)
            if roi is None:
                raise RpcError(INVALID_PARAMS, "invalid ROI param")
        if not self._can_guide():
            raise RpcError(1, "all equipment must be connected first")
        if self.ctl.state is not Ctl.idle:
            raise RpcError(1, self._reentrancy("guide"))
        self.ctl = _Controller(state=Ctl.setup, op="guide", settle=settle,
                               force_calibration=recalibrate, roi=roi)
        self._update_controller()
        return 0

    def rpc_dither(self, params: Any) -> Any:
        p = Params(("amount", "raOnly", "settle"), params)
        amount = p.get("amount")
        if not _is_num(amount):
            raise RpcError(INVALID_PARAMS, "expected dither amount param")
        ra_only = False
        v = p.get("raOnly")
        if v is not _MISSING:
            b = _bool_param(v)
            if b is None:
                raise RpcError(INVALID_PARAMS, "expected dither raOnly param")
            ra_only = b
        settle = _parse_settle(p.get("settle"))
        if self.ctl.state is not Ctl.idle:
            raise RpcError(1, self._reentrancy("dither"))
        if self.gstate is not GState.guiding or not self.capture_active:
            raise RpcError(1, "Dither error")
        assert self.lock_pos is not None
        amt = abs(float(amount))
        d_ra = amt * float(self.rng.uniform(-1.0, 1.0))
        d_dec = 0.0 if ra_only else amt * float(self.rng.uniform(-1.0, 1.0))
        dx, dy = self.star.mount_to_camera(d_ra, d_dec)
        self.lock_pos = (self.lock_pos[0] + dx, self.lock_pos[1] + dy)
        self._emit("LockPositionSet", X=_r(self.lock_pos[0], 3), Y=_r(self.lock_pos[1], 3))
        self._emit("GuidingDithered", dx=_r(dx, 3), dy=_r(dy, 3))
        self.ctl = _Controller(state=Ctl.settle_begin, op="dither", settle=settle)
        self._update_controller()
        return 0

    def rpc_loop(self, params: Any) -> Any:
        if self.capture_active:
            if self.gstate in (GState.calibrating, GState.guiding):
                self._stop_guiding()
                self._abort_controller("Guiding stopped")
            self.continue_capturing = True
            return 0
        if not self._start_capture():
            raise RpcError(1, "could not start looping")
        return 0

    def rpc_stop_capture(self, params: Any) -> Any:
        if self.capture_active:
            self.continue_capturing = False
            self._unpaused.set()
        else:
            self._abort_controller("Stopped capturing")
        return 0

    def rpc_set_paused(self, params: Any) -> Any:
        p = Params(("paused", "type"), params)
        val = _bool_param(p.get("paused"))
        if val is None:
            raise RpcError(INVALID_PARAMS, "expected bool param at index 0")
        pause = Pause.none
        if val:
            pause = Pause.guiding
            t = p.get("type")
            if t is not _MISSING:
                if not isinstance(t, str):
                    raise RpcError(INVALID_PARAMS, "expected string param at index 1")
                if t == "full":
                    pause = Pause.full
        was = self.paused
        self.paused = pause
        if pause is not Pause.none and was is Pause.none:
            self._emit("Paused")
        elif pause is Pause.none and was is not Pause.none:
            self._emit("Resumed")
        if pause is not Pause.full:
            self._unpaused.set()
        self._sync_world()
        return 0

    def rpc_get_paused(self, params: Any) -> Any:
        return self.paused is not Pause.none

    def rpc_get_settling(self, params: Any) -> Any:
        return self.settling

    def rpc_clear_calibration(self, params: Any) -> Any:
        if params is not None:
            which = Params(("which",), params).get("which")
            if which is not _MISSING and not (
                isinstance(which, str) and which.lower() in ("mount", "ao", "both")
            ):
                raise RpcError(INVALID_PARAMS, 'expected param "mount", "ao", or "both"')
            if isinstance(which, str) and which.lower() == "ao":
                return 0  # no AO in the simulated rig
        self.calibrated = False
        return 0

    def rpc_flip_calibration(self, params: Any) -> Any:
        if not self.calibrated:
            raise RpcError(1, "could not flip calibration")
        self._emit("CalibrationDataFlipped", Mount=self.profile.mount)
        return 0

    def rpc_get_calibrated(self, params: Any) -> Any:
        return self.calibrated

    def rpc_find_star(self, params: Any) -> Any:
        v = Params(("roi",), params).get("roi")
        roi = None
        if v is not _MISSING:
            roi = _parse_rect(v)
            if roi is None:
                raise RpcError(INVALID_PARAMS, "invalid ROI param")
        if not self._auto_select_star(roi) or self.lock_pos is None:
            raise RpcError(1, "could not find star")
        return [_r(self.lock_pos[0], 2), _r(self.lock_pos[1], 2)]

    def rpc_deselect_star(self, params: Any) -> Any:
        if self.gstate in (GState.calibrating, GState.guiding):
            self._stop_guiding()
            self._abort_controller("Guiding stopped")
        self._reset_guider()
        return 0

    def rpc_get_star_image(self, params: Any) -> Any:
        size = 15
        v = Params(("size",), params).get("size")
        if v is not _MISSING:
            if not _is_int(v) or v < 15:
                raise RpcError(INVALID_PARAMS, "invalid image size param")
            size = v
        if (self.gstate is GState.idle or self.image_frame == 0 or self.current_pos is None
                or not self.locked):
            raise RpcError(2, "no star selected")
        half = min((size - 1) // 2, 31)
        sx, sy = round(self.current_pos[0]), round(self.current_pos[1])
        x0, y0 = max(sx - half, 0), max(sy - half, 0)
        x1 = min(sx + half, self.params.width_px - 1)
        y1 = min(sy + half, self.params.height_px - 1)
        w, h = x1 - x0 + 1, y1 - y0 + 1
        stamp = self.star.render(x0, y0, w, h, self.current_pos, self._noise_rng)
        return {
            "frame": self.image_frame,
            "width": w,
            "height": h,
            "star_pos": [_r(self.current_pos[0] - x0, 2), _r(self.current_pos[1] - y0, 2)],
            "pixels": base64.b64encode(stamp.astype("<u2").tobytes()).decode("ascii"),
        }

