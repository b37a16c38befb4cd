"""The simulated PHD2's guider: state, events, the capture task on the shared clock,
stopping, star lost, star selection and starting to guide. Frame work and the controller
sit above it (controller.py); RPC handlers above those (rpc.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runner.clock import Clock
from runner.devices.sim.world import SimWorld
from runner.guiding.sim.model import (
    DEFAULT_PROFILES,
    EXPOSURE_DURATIONS_MS,
    PHD_SUBVER,
    PHD_VERSION,
    Ctl,
    Event,
    GState,
    Handler,
    Pause,
    SimFaults,
    SimProfile,
    _Controller,
    _r,
)
from runner.guiding.sim.star import GuideCameraParams, GuideStar

log = logging.getLogger(__name__)


class GuiderLoop:
    """Guider state and the capture loop."""

    def __init__(
        self,
        *,
        clock: Clock,
        emit: Callable[[Event], None],
        drop_clients: Callable[[], None],
        request_shutdown: Callable[[], None],
        world: SimWorld | None = None,
        camera: GuideCameraParams | None = None,
        faults: SimFaults | None = None,
        seed: int = 42,
        exposure_s: float = 2.0,
        profiles: tuple[SimProfile, ...] = DEFAULT_PROFILES,
        instance: int = 1,
        save_dir: Path | None = None,
        calibration_steps: int = 3,
        calibration_step_px: float = 4.0,
    ) -> None:
        self.clock = clock
        self.world = world
        self.faults = faults or SimFaults()
        self.params = camera or GuideCameraParams()
        self._emit_sink = emit
        self._drop_clients = drop_clients
        self._request_shutdown = request_shutdown
        self.rng = np.random.default_rng(seed)
        self._noise_rng = np.random.default_rng(seed + 1)
        self.star = GuideStar(self.params, np.random.default_rng(seed + 2))
        self.host = socket.gethostname()
        self.instance = instance
        self.save_dir = save_dir
        self.calibration_steps = calibration_steps
        self.calibration_step_px = calibration_step_px

        self.profiles = list(profiles)
        self.profile_id = self.profiles[0].id
        self.connected = False
        self.exposure_ms = round(exposure_s * 1000)
        self.durations_ms = sorted({*EXPOSURE_DURATIONS_MS, self.exposure_ms})

        self.capture_active = False
        self.continue_capturing = False
        self._capture_task: asyncio.Task[None] | None = None
        self._unpaused = asyncio.Event()
        self._unpaused.set()
        self._tasks: set[asyncio.Task[None]] = set()

        self.gstate = GState.idle
        self.paused = Pause.none
        self.current_pos: tuple[float, float] | None = None
        self.locked = False
        self.lock_pos: tuple[float, float] | None = None
        self.calibrated = False
        self.current_error_px = 0.0
        self.avg_dist_px = 0.0
        self.loop_frame = 0
        self.guide_frame = 0
        self.guide_t0 = 0.0
        self.image_frame = 0
        self._cal_step = 0
        self._cal_start: tuple[float, float] = (0.0, 0.0)
        self._world_guiding = False
        self._world_mount = self.star.mount_error.copy()
        self.ctl = _Controller()

        # every ``rpc_<name>`` method answers the JSON-RPC method ``<name>`` (rpc.py, core.py)
        self.methods: dict[str, Handler] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    # ================================================================== events & state

    @property
    def profile(self) -> SimProfile:
        return next(p for p in self.profiles if p.id == self.profile_id)

    def _emit(self, name: str, **fields: Any) -> None:
        ev: Event = {
            "Event": name,
            "Timestamp": _r(self.clock.now().timestamp(), 3),
            "Host": self.host,
            "Inst": self.instance,
        }
        ev.update(fields)
        self._emit_sink(ev)

    def _ev(self, name: str, **fields: Any) -> Event:
        ev: Event = {
            "Event": name,
            "Timestamp": _r(self.clock.now().timestamp(), 3),
            "Host": self.host,
            "Inst": self.instance,
        }
        ev.update(fields)
        return ev

    def exposed_state(self) -> str:
        if self.paused is not Pause.none:
            return "Paused"
        if not self.capture_active:
            return "Stopped"
        return {
            GState.idle: "Looping",
            GState.selected: "Selected",
            GState.calibrating: "Calibrating",
            GState.guiding: "Guiding" if self.locked else "LostLock",
        }[self.gstate]

    def catchup_events(self) -> list[Event]:
        """The events a new client receives, in PHD2's order, ``AppState`` last."""
        st = self.exposed_state()
        evs = [self._ev("Version", PHDVersion=PHD_VERSION, PHDSubver=PHD_SUBVER,
                        OverlapSupport=True, MsgVersion=1)]
        if self.lock_pos is not None:
            evs.append(self._ev("LockPositionSet", X=_r(self.lock_pos[0], 3),
                                Y=_r(self.lock_pos[1], 3)))
        if self.current_pos is not None and self.gstate is not GState.idle and self.locked:
            evs.append(self._ev("StarSelected", X=_r(self.current_pos[0], 3),
                                Y=_r(self.current_pos[1], 3)))
        if self.calibrated:
            evs.append(self._ev("CalibrationComplete", Mount=self.profile.mount))
        if st == "Guiding":
            evs.append(self._ev("StartGuiding"))
        elif st == "Calibrating":
            evs.append(self._ev("StartCalibration", Mount=self.profile.mount))
        elif st == "Paused":
            evs.append(self._ev("Paused"))
        evs.append(self._ev("AppState", State=st))
        return evs

    @property
    def settling(self) -> bool:
        return self.ctl.state in (Ctl.settle_begin, Ctl.settle_wait)

    # ================================================================== capture

    def _start_capture(self) -> bool:
        if not self.connected or self.faults.camera_fails:
            return False
        self.continue_capturing = True
        if self.capture_active:
            return True
        self.capture_active = True
        self.loop_frame = 0
        self._capture_task = asyncio.create_task(self._capture_loop(), name="phd2sim-capture")
        return True

    async def _capture_loop(self) -> None:
        try:
            while self.capture_active:
                if self.paused is Pause.full and self.continue_capturing:
                    self._unpaused.clear()
                    await self._unpaused.wait()
                    continue
                await self.clock.sleep(self.exposure_ms / 1000.0)
                if not self.capture_active:
                    return
                self._exposure_complete()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("PHD2 simulator: frame processing failed; capture stopped")
            self.capture_active = False

    def _exposure_complete(self) -> None:
        now = self.clock.monotonic()
        self.star.advance(now)
        self.image_frame += 1
        if not self.continue_capturing:
            self._finish_stop()
            return
        if self.gstate in (GState.idle, GState.selected):
            self._looping_frame(now)
        elif self.gstate is GState.calibrating:
            self._calibration_frame(now)
        else:
            self._guiding_frame(now)
        self._sync_world()
        self._update_controller()
        self._sync_world()

    def _finish_stop(self) -> None:
        """``MyFrame::FinishStop``: the exposure after stop_capture ended the capture."""
        if self.gstate in (GState.calibrating, GState.guiding):
            self._stop_guiding()
        self.capture_active = False
        self.continue_capturing = False
        self._capture_task = None
        self._sync_world()
        self._emit("LoopingExposuresStopped")
        self._abort_controller("Stopped capturing")

    def _stop_now(self) -> None:
        """Stop capturing without waiting for the exposure (equipment disconnected)."""
        task = self._capture_task
        if not self.capture_active:
            return
        self._finish_stop()
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _stop_guiding(self) -> None:
        was = self.gstate
        self.gstate = GState.selected if self.current_pos is not None else GState.idle
        if was is GState.guiding:
            self._emit("GuidingStopped")
        self._sync_world()

    # ------------------------------------------------------------------ star lost

    def _knob_star_lost(self, now: float) -> bool:
        f = self.faults
        if f.star_lost_at_s is None or now < f.star_lost_at_s:
            return False
        return f.star_lost_for_s is None or now < f.star_lost_at_s + f.star_lost_for_s

    def _star_lost_guiding(self, now: float) -> bool:
        lost = self._knob_star_lost(now)
        world = self.world
        if world is not None and world.take_fault("star_lost", frame=world.light_frames + 1):
            lost = True
        return lost


    # ------------------------------------------------------------------ guider operations

    def _can_guide(self) -> bool:
        return self.connected

    def _reset_guider(self) -> None:
        """``Guider::Reset(true)``: forget the star and the lock position."""
        self.gstate = GState.idle
        self.current_pos = None
        self.locked = False
        if self.lock_pos is not None:
            self.lock_pos = None
            self._emit("LockPositionLost")

    def _auto_select_star(self, roi: tuple[int, int, int, int] | None) -> bool:
        if self.image_frame == 0 or self._knob_star_lost(self.clock.monotonic()):
            return False
        x, y = self.star.observe()
        if roi is not None:
            rx, ry, rw, rh = roi
            if not (rx <= x < rx + rw and ry <= y < ry + rh):
                return False
        self.current_pos = (x, y)
        self.locked = True
        if self.gstate is GState.idle:
            self.gstate = GState.selected
        self._emit("StarSelected", X=_r(x, 3), Y=_r(y, 3))
        self.lock_pos = (x, y)
        self._emit("LockPositionSet", X=_r(x, 3), Y=_r(y, 3))
        return True

    def _start_guiding(self) -> bool:
        """``MyFrame::StartGuiding``: calibrate first when needed."""
        if self.gstate is not GState.selected or not self.capture_active:
            return False
        if not self.calibrated:
            self.gstate = GState.calibrating
            self._cal_step = 0
            self._cal_start = self.current_pos or (0.0, 0.0)
            self._emit("StartCalibration", Mount=self.profile.mount)
        else:
            self._begin_guiding(self.clock.monotonic())
        return True

    # ------------------------------------------------------------------ hooks (controller.py)

    def _looping_frame(self, now: float) -> None:
        raise NotImplementedError

    def _calibration_frame(self, now: float) -> None:
        raise NotImplementedError

    def _guiding_frame(self, now: float) -> None:
        raise NotImplementedError

    def _begin_guiding(self, now: float) -> None:
        raise NotImplementedError

    def _sync_world(self) -> None:
        raise NotImplementedError

    def _update_controller(self) -> None:
        raise NotImplementedError

    def _abort_controller(self, reason: str) -> None:
        raise NotImplementedError
