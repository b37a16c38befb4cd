"""Per-frame work (looping, calibration, guiding frames) and ``PhdController::
UpdateControllerState``: the guide sequence and PHD2's settle rule."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from runner.guiding.sim.guider_loop import GuiderLoop
from runner.guiding.sim.model import (
    Ctl,
    GState,
    Pause,
    _r,
)

log = logging.getLogger(__name__)


class Controller(GuiderLoop):
    """Frames and the guide/settle controller."""

    # ------------------------------------------------------------------ per-frame work

    def _star_fields(self) -> dict[str, Any]:
        return {
            "StarMass": round(self.star.mass * self.rng.uniform(0.95, 1.05)),
            "SNR": _r(self.star.snr * self.rng.uniform(0.9, 1.1), 2),
            "HFD": _r(self.params.star_hfd_px * self.rng.uniform(0.95, 1.05), 2),
        }

    def _looping_frame(self, now: float) -> None:
        self.loop_frame += 1
        fields: dict[str, Any] = {"Frame": self.loop_frame}
        if self.gstate is GState.selected:
            if self._knob_star_lost(now):
                self.locked = False
                fields.update(ErrorCode=1, Status="star lost")
            else:
                self.current_pos = self.star.observe()
                self.locked = True
                fields.update(self._star_fields())
        self._emit("LoopingExposures", **fields)

    def _calibration_frame(self, now: float) -> None:
        mount = self.profile.mount
        if self._knob_star_lost(now):
            self.locked = False
            self.gstate = GState.selected
            self._emit("CalibrationFailed", Mount=mount,
                       Reason="star lost during calibration")
            self._abort_controller("Calibration failed")
            return
        n = self.calibration_steps
        phase, idx = divmod(self._cal_step, n)
        direction, d_ra, d_dec = (
            ("West", 1.0, 0.0), ("East", -1.0, 0.0), ("North", 0.0, 1.0), ("South", 0.0, -1.0)
        )[phase]
        step = self.calibration_step_px
        self.star.move_mount(d_ra * step, d_dec * step)
        x, y = self.star.observe()
        self.current_pos = (x, y)
        self.locked = True
        dx, dy = x - self._cal_start[0], y - self._cal_start[1]
        self._emit("Calibrating", Mount=mount, dir=direction, dist=_r(math.hypot(dx, dy), 3),
                   dx=_r(dx, 3), dy=_r(dy, 3), pos=[_r(x, 2), _r(y, 2)], step=idx + 1,
                   State=f"{direction} calibration step {idx + 1}")
        self._cal_step += 1
        if self._cal_step >= 4 * n:
            self.calibrated = True
            self._emit("CalibrationComplete", Mount=mount)
            self._begin_guiding(now)

    def _begin_guiding(self, now: float) -> None:
        self.gstate = GState.guiding
        self.guide_frame = 0
        self.guide_t0 = now
        self.avg_dist_px = 0.0
        self.locked = True
        self._emit("StartGuiding")

    def _guiding_frame(self, now: float) -> None:
        self.guide_frame += 1
        t = now - self.guide_t0
        if self._star_lost_guiding(now):
            self.locked = False
            self._emit("StarLost", Frame=self.guide_frame, Time=_r(t, 3), StarMass=0, SNR=0.0,
                       HFD=0.0, AvgDist=_r(self.avg_dist_px, 2), ErrorCode=1,
                       Status="Star lost - no star found")
            return
        x, y = self.star.observe()
        self.current_pos = (x, y)
        self.locked = True
        assert self.lock_pos is not None
        dx, dy = x - self.lock_pos[0], y - self.lock_pos[1]
        self.current_error_px = math.hypot(dx, dy)
        if self.paused is not Pause.none:
            return  # PHD2 measures the star but neither guides nor reports a GuideStep
        ra, dec = self.star.camera_to_mount(dx, dy)
        c_ra, c_dec = self.star.correction(ra, dec)
        self.star.move_mount(c_ra, c_dec)
        self.avg_dist_px = 0.7 * self.avg_dist_px + 0.3 * self.current_error_px
        fields: dict[str, Any] = {
            "Frame": self.guide_frame, "Time": _r(t, 3), "Mount": self.profile.mount,
            "dx": _r(dx, 3), "dy": _r(dy, 3), "RADistanceRaw": _r(ra, 3),
            "DECDistanceRaw": _r(dec, 3), "RADistanceGuide": _r(-c_ra, 3),
            "DECDistanceGuide": _r(-c_dec, 3),
        }
        if c_ra:
            fields.update(RADuration=self.star.pulse_ms(c_ra),
                          RADirection="West" if c_ra < 0 else "East")
        if c_dec:
            fields.update(DECDuration=self.star.pulse_ms(c_dec),
                          DECDirection="South" if c_dec < 0 else "North")
        fields.update(self._star_fields())
        fields["AvgDist"] = _r(self.avg_dist_px, 2)
        self._emit("GuideStep", **fields)

    def _sync_world(self) -> None:
        """Mirror guiding into the shared world: the main camera's field follows the mount
        while PHD2 guides (so dithers shift it), and unguided drift applies otherwise."""
        world = self.world
        guiding = (self.gstate is GState.guiding and self.capture_active and self.locked
                   and self.paused is Pause.none)
        if world is None:
            return
        if guiding and self._world_guiding:
            scale = self.params.pixel_scale_arcsec or 2.5
            d = self.star.mount_error - self._world_mount
            if d.any():
                world.add_offset_arcsec(float(d[0]) * scale, float(d[1]) * scale)
        if guiding != self._world_guiding:
            world.set_guiding(guiding)
            self._world_guiding = guiding
        self._world_mount = self.star.mount_error.copy()


    # ------------------------------------------------------------------ the controller

    def _reentrancy(self, op: str) -> str:
        return f"Cannot initiate {op} while {self.ctl.op} is in progress"

    def _fail(self, msg: str) -> None:
        self.ctl.succeeded = False
        self.ctl.error = msg
        self.ctl.state = Ctl.finish

    def _abort_controller(self, reason: str) -> None:
        if self.ctl.state is not Ctl.idle:
            self._fail(reason)
            self._update_controller()

    def _update_controller(self) -> None:
        c = self.ctl
        done = False
        while not done:
            s = c.state
            if s is Ctl.idle:
                done = True
            elif s is Ctl.setup:
                c.auto_find_remaining = 3
                c.state = Ctl.attempt_start
            elif s is Ctl.attempt_start:
                if not self._can_guide():
                    self._fail("all equipment must be connected first")
                elif self.gstate in (GState.calibrating, GState.guiding):
                    if c.force_calibration:
                        c.state = Ctl.calibrate
                    elif self.gstate is GState.guiding:
                        c.state = Ctl.settle_begin
                    else:
                        c.state = Ctl.calibration_wait
                        done = True
                elif not self.capture_active:
                    if not self.connected or self.faults.camera_fails:
                        self._fail("unable to start capturing")
                        continue
                    self._reset_guider()
                    self._start_capture()
                    c.state = Ctl.select_star
                    done = True
                elif self.gstate is GState.selected:
                    c.state = Ctl.calibrate
                else:
                    c.state = Ctl.select_star
            elif s is Ctl.select_star:
                if not self._auto_select_star(c.roi):
                    c.auto_find_remaining -= 1
                    if c.auto_find_remaining == 0:
                        self._fail("failed to find a suitable guide star")
                    else:
                        self._reset_guider()
                        c.state = Ctl.attempt_start
                        done = True
                else:
                    c.state = Ctl.wait_selected
                    c.wait_selected_remaining = 3
                    done = True
            elif s is Ctl.wait_selected:
                if self.gstate is GState.selected:
                    c.state = Ctl.calibrate
                else:
                    c.wait_selected_remaining -= 1
                    if c.wait_selected_remaining == 0:
                        c.state = Ctl.attempt_start
                    done = True
            elif s is Ctl.calibrate:
                if c.force_calibration:
                    self.calibrated = False
                    c.force_calibration = False
                    if self.gstate is GState.guiding:
                        self._stop_guiding()
                if not self.calibrated:
                    if not self._start_guiding():
                        self._fail("could not start calibration")
                        continue
                    c.state = Ctl.calibration_wait
                    done = True
                else:
                    c.state = Ctl.guide
            elif s is Ctl.calibration_wait:
                if self.calibrated and self.gstate is GState.guiding:
                    c.state = Ctl.settle_begin
                else:
                    done = True
            elif s is Ctl.guide:
                if not self._start_guiding():
                    self._fail("could not start guiding")
                    continue
                c.state = Ctl.settle_begin
                done = True
            elif s is Ctl.settle_begin:
                self._emit("SettleBegin")
                c.prior_in_range = False
                c.frames = c.dropped = 0
                c.timeout_start = self.clock.monotonic()
                c.settle_blocked = self._take_settle_fault("settle_never")
                c.drop_after_frame = self._take_settle_fault("guider_drop")
                c.state = Ctl.settle_wait
                done = True
            elif s is Ctl.settle_wait:
                done = self._settle_frame()
            elif s is Ctl.finish:
                if c.succeeded:
                    self._emit("SettleDone", Status=0, TotalFrames=c.frames,
                               DroppedFrames=c.dropped)
                else:
                    self._emit("SettleDone", Status=1, Error=c.error, TotalFrames=c.frames,
                               DroppedFrames=c.dropped)
                c.state = Ctl.idle
                c.settle_blocked = c.drop_after_frame = False
                done = True

    def _take_settle_fault(self, kind: str) -> bool:
        f = self.faults
        if kind == "settle_never" and f.settle_never > 0:
            f.settle_never -= 1
            return True
        if kind == "guider_drop" and f.drop_mid_settle > 0:
            f.drop_mid_settle -= 1
            return True
        world = self.world
        return world is not None and world.take_fault(kind, frame=world.light_frames + 1)

    def _settle_frame(self) -> bool:
        """One frame of ``STATE_SETTLE_WAIT``; returns ``done``."""
        c = self.ctl
        now = self.clock.monotonic()
        locked = self.locked and self.gstate is GState.guiding
        error = self.current_error_px
        if c.settle_blocked:
            error = max(error, c.settle.pixels + 1.0)
        in_range = locked and error <= c.settle.pixels
        time_in_range = 0.0
        c.frames += 1
        if not locked:
            c.dropped += 1
        if in_range:
            if not c.prior_in_range:
                if c.settle.time_s <= 0:
                    c.succeeded = True
                    c.state = Ctl.finish
                    return False
                c.in_range_start = now
            else:
                time_in_range = now - c.in_range_start
                if math.floor(time_in_range) >= c.settle.time_s:
                    c.succeeded = True
                    c.state = Ctl.finish
                    return False
        if math.floor(now - c.timeout_start) >= c.settle.timeout_s:
            self._fail("timed-out waiting for guider to settle")
            return False
        self._emit("Settling", Distance=_r(error, 2), Time=_r(time_in_range, 1),
                   SettleTime=float(c.settle.time_s), StarLocked=locked)
        c.prior_in_range = in_range
        if c.drop_after_frame:
            c.drop_after_frame = False
            asyncio.get_running_loop().call_soon(self._drop_clients)
        return True

    # ================================================================== RPC methods

