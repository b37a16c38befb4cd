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
import base64
import contextlib
import logging
import math
import socket
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from runner.clock import Clock
from runner.devices.sim.world import SimWorld
from runner.guiding.sim.star import GuideCameraParams, GuideStar

log = logging.getLogger(__name__)

PHD_VERSION = "2.6.13"
PHD_SUBVER = "nightrunner-sim"

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PARSE_ERROR = -32700

EXPOSURE_DURATIONS_MS = [
    10, 20, 50, 100, 200, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000,
    6000, 7000, 8000, 9000, 10000, 15000, 30000,
]

Event = dict[str, Any]
Handler = Callable[[Any], Any]


class RpcError(Exception):
    """A JSON-RPC error PHD2 would send: ``code`` and ``message`` go on the wire unchanged."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SimFaults:
    """Fault knobs, changeable while the simulator runs (tests, rehearsals).

    Times are clock seconds on the simulator's ``Clock`` (``clock.monotonic()``).
    """

    #: The guide star disappears (clouds) at this clock time …
    star_lost_at_s: float | None = None
    #: … for this long (None: until the knob is cleared).
    star_lost_for_s: float | None = None
    #: The next N settles never get within tolerance (they time out).
    settle_never: int = 0
    #: During the next N settles every client connection is dropped after the first frame.
    drop_mid_settle: int = 0
    #: ``set_connected`` takes this many clock seconds (PHD2 blocks while drivers connect).
    set_connected_delay_s: float = 0.0
    #: The camera cannot start capturing: ``loop`` fails; ``guide`` fails at once.
    camera_fails: bool = False


@dataclass(frozen=True)
class SimProfile:
    id: int
    name: str
    camera: str = "Simulator"
    mount: str = "On Camera"


DEFAULT_PROFILES = (
    SimProfile(1, "Nightrunner Simulator"),
    SimProfile(2, "Backyard EQ6", camera="ZWO ASI120MM Mini", mount="EQMOD ASCOM HEQ5/6"),
)


class GState(Enum):
    """The guider's own state (a reduced ``GUIDER_STATE``)."""

    idle = auto()  # no star selected (UNINITIALIZED / SELECTING)
    selected = auto()
    calibrating = auto()
    guiding = auto()


class Pause(Enum):
    none = auto()
    guiding = auto()  # guide output paused, exposures continue
    full = auto()  # exposures paused too


class Ctl(Enum):
    """``PhdController`` states."""

    idle = auto()
    setup = auto()
    attempt_start = auto()
    select_star = auto()
    wait_selected = auto()
    calibrate = auto()
    calibration_wait = auto()
    guide = auto()
    settle_begin = auto()
    settle_wait = auto()
    finish = auto()


@dataclass
class Settle:
    pixels: float
    time_s: int
    timeout_s: int


@dataclass
class _Controller:
    state: Ctl = Ctl.idle
    op: str = "guide"
    settle: Settle = field(default_factory=lambda: Settle(1.5, 10, 60))
    force_calibration: bool = False
    roi: tuple[int, int, int, int] | None = None
    auto_find_remaining: int = 3
    wait_selected_remaining: int = 3
    prior_in_range: bool = False
    timeout_start: float = 0.0
    in_range_start: float = 0.0
    frames: int = 0
    dropped: int = 0
    succeeded: bool = False
    error: str = ""
    settle_blocked: bool = False
    drop_after_frame: bool = False


# ---------------------------------------------------------------------- parameter helpers

_MISSING = object()


class Params:
    """PHD2's ``Params``: positional values map to names in order; an object maps by name."""

    def __init__(self, names: tuple[str, ...], params: Any) -> None:
        self._d: dict[str, Any] = {}
        if isinstance(params, list):
            for name, value in zip(names, params, strict=False):
                self._d[name] = value
        elif isinstance(params, dict):
            self._d = dict(params)

    def get(self, name: str) -> Any:
        return self._d.get(name, _MISSING)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return _is_int(v) or isinstance(v, float)


def _bool_param(v: Any) -> bool | None:
    """PHD2 accepts JSON booleans and integers for most boolean parameters."""
    if isinstance(v, bool):
        return v
    if _is_int(v):
        return bool(v)
    return None


def _parse_rect(v: Any) -> tuple[int, int, int, int] | None:
    if isinstance(v, list) and len(v) == 4 and all(_is_int(x) for x in v):
        return (v[0], v[1], v[2], v[3])
    return None


def _parse_settle(v: Any) -> Settle:
    if not isinstance(v, dict):
        raise RpcError(INVALID_PARAMS, "expected settle object param")
    px: Any = v.get("pixels")
    t: Any = v.get("time")
    to: Any = v.get("timeout")
    if not (_is_num(px) and _is_num(t) and _is_num(to)):
        raise RpcError(INVALID_PARAMS, "invalid settle params")
    return Settle(float(px), math.floor(t), math.floor(to))


def _r(x: float, n: int) -> float:
    return round(float(x), n) + 0.0  # + 0.0 turns -0.0 into 0.0


# ---------------------------------------------------------------------- the simulated PHD2


class PHD2Core:
    """The simulated PHD2 application: guider, controller, camera, profiles, RPC methods."""

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

        self.methods: dict[str, Handler] = {
            "get_app_state": self.rpc_get_app_state,
            "get_profiles": self.rpc_get_profiles,
            "get_profile": self.rpc_get_profile,
            "set_profile": self.rpc_set_profile,
            "get_current_equipment": self.rpc_get_current_equipment,
            "get_connected": self.rpc_get_connected,
            "set_connected": self.rpc_set_connected,
            "guide": self.rpc_guide,
            "dither": self.rpc_dither,
            "loop": self.rpc_loop,
            "stop_capture": self.rpc_stop_capture,
            "set_paused": self.rpc_set_paused,
            "get_paused": self.rpc_get_paused,
            "get_settling": self.rpc_get_settling,
            "clear_calibration": self.rpc_clear_calibration,
            "flip_calibration": self.rpc_flip_calibration,
            "get_calibrated": self.rpc_get_calibrated,
            "find_star": self.rpc_find_star,
            "deselect_star": self.rpc_deselect_star,
            "get_star_image": self.rpc_get_star_image,
            "save_image": self.rpc_save_image,
            "get_pixel_scale": self.rpc_get_pixel_scale,
            "get_lock_position": self.rpc_get_lock_position,
            "set_lock_position": self.rpc_set_lock_position,
            "get_exposure": self.rpc_get_exposure,
            "set_exposure": self.rpc_set_exposure,
            "get_exposure_durations": self.rpc_get_exposure_durations,
            "get_camera_frame_size": self.rpc_get_camera_frame_size,
            "capture_single_frame": self.rpc_capture_single_frame,
            "shutdown": self.rpc_shutdown,
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
