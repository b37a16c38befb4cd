"""The simulated camera: seed 003's non-blocking exposure cycle over a synthetic or real sky.

``start_exposure`` returns at once; a task owned by the camera waits the exposure time on the
engine clock, snapshots the world (pointing, dither/drift offset, focuser, filter, sensor
temperature) at shutter close, renders the frame in a worker thread while the simulated
download time runs, and only then reports ``ready``. Rendering never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from datetime import datetime

from runner.devices.interfaces import Camera, CameraInfo, ExposureState, Frame, RoiBox
from runner.devices.sim.sensor import FLAT_PANEL_RATE, Exposure, Sensor, StarsOnSensor, egain_at
from runner.devices.sim.sky import FieldStars, catalogue_field, field_stars, filter_throughput
from runner.devices.sim.world import SimWorld
from runner.errors import DeviceBusy, DeviceDisconnected, DeviceError
from runner.plan.equipment import CameraProfile

COOL_RATE = 3.0  # °C per minute the cooler (or free warming) changes the sensor temperature
COOLER_MAX_DELTA = 35.0  # °C below ambient the cooler can hold at 100 % power
MIN_DOWNLOAD_FRACTION = 0.05  # a tiny ROI still costs this share of a full-frame readout
DEFAULT_OFFSET = 50
FRAME_TYPES = ("light", "dark", "bias", "flat")

log = logging.getLogger(__name__)


class SimCamera(Camera):
    """A cooled (or uncooled) mono or one-shot-colour camera on the shared ``SimWorld``."""

    def __init__(self, world: SimWorld, profile: CameraProfile | None = None) -> None:
        self.world = world
        self.profile = profile or world.profile.camera
        self.clock = world.clock
        self.sensor = Sensor(self.profile, world.profile.simulation.seed)
        self._connected = False
        self._state = ExposureState.idle
        self._task: asyncio.Task[None] | None = None
        self._frame: Frame | None = None
        self._exposures = 0
        self._t_start = 0.0
        self._gain = self.profile.gain_range[0]
        lo, hi = self.profile.offset_range
        self._offset = min(max(DEFAULT_OFFSET, lo), hi)
        self._binning = 1
        self._roi = RoiBox(0, 0, self.profile.width, self.profile.height)
        self._cooler = False
        self._set_point: float | None = None
        self._temp = world.ambient_temperature()
        self._temp_at = self.clock.monotonic()
        self._error: Exception | None = None
        self._fields: OrderedDict[tuple[float, float, int], FieldStars] = OrderedDict()

    # ---------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        if self.world.profile.simulation.sky == "catalogue":
            from runner.devices.sim.catalogue import load_catalogue

            await asyncio.to_thread(load_catalogue)  # ~1 s once per process: not on the loop
        self._connected = True

    async def disconnect(self) -> None:
        self._cancel()
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def _require(self) -> None:
        if not self._connected:
            raise DeviceDisconnected(f"camera '{self.profile.name}' is not connected")

    async def info(self) -> CameraInfo:
        self._require()
        p = self.profile
        return CameraInfo(
            name=p.name,
            width=p.width,
            height=p.height,
            pixel_size=p.pixel_size,
            max_binning=p.max_binning,
            has_cooler=p.cooler,
            egain=egain_at(p, self._gain),
            bayer=p.bayer,
        )

    # ---------------------------------------------------------------- exposure

    async def start_exposure(
        self, seconds: float, frame_type: str = "light", *, light: bool = True
    ) -> None:
        self._require()
        if self._state in (ExposureState.exposing, ExposureState.downloading):
            raise DeviceBusy("camera is already exposing")
        if frame_type not in FRAME_TYPES:
            raise DeviceError(f"unknown frame type '{frame_type}' (one of {FRAME_TYPES})")
        if not math.isfinite(seconds) or seconds < 0:
            raise DeviceError(f"exposure must be >= 0 s, got {seconds}")
        frame_no = self.world.light_frames + 1 if frame_type == "light" else None
        drops = self.world.take_fault("camera_disconnect", frame=frame_no)
        hangs = self.world.take_fault("exposure_hang", frame=frame_no)
        self._frame = None
        self._exposures += 1
        shutter = light and frame_type in ("light", "flat")
        start = self.clock.now()
        self._t_start = self.clock.monotonic()
        self._state = ExposureState.exposing
        self._error = None
        self._task = asyncio.create_task(
            self._expose(seconds, frame_type, shutter, start, self._exposures, drops, hangs),
            name=f"sim-camera-exposure-{self._exposures}",
        )

    async def _expose(
        self,
        seconds: float,
        frame_type: str,
        shutter: bool,
        start: datetime,
        number: int,
        drops: bool,
        hangs: bool,
    ) -> None:
        try:
            await self._expose_steps(seconds, frame_type, shutter, start, number, drops, hangs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported through exposure_status/exposure_result
            log.exception("simulated exposure failed")
            self._error = exc
            self._state = ExposureState.error

    async def _expose_steps(
        self,
        seconds: float,
        frame_type: str,
        shutter: bool,
        start: datetime,
        number: int,
        drops: bool,
        hangs: bool,
    ) -> None:
        exposure_s = 0.0 if frame_type == "bias" else seconds
        # Deadlines from the moment start_exposure was called, not from when this task runs.
        await self.clock.sleep(self._t_start + exposure_s - self.clock.monotonic())
        if hangs:
            await asyncio.Event().wait()  # never ready: only abort (or disconnect) ends it
        if drops:
            self._connected = False
            self._state = ExposureState.idle
            return
        roi, b = self._roi, self._binning
        exp, scene = self._snapshot(exposure_s, frame_type, shutter, roi, b)
        self._state = ExposureState.downloading
        t_close = self.clock.monotonic()
        rng = self.world.child_rng("camera", number)
        render = asyncio.ensure_future(asyncio.to_thread(self.sensor.render, exp, rng))
        try:
            await self.clock.sleep(t_close + self._download_time(roi, b) - self.clock.monotonic())
            data, n_stars = await render
        finally:
            if not render.done():
                render.cancel()
        scene["sim_stars"] = n_stars
        self._frame = Frame(
            data=data,
            exposure=exposure_s,
            start=start,
            frame_type=frame_type,
            binning=b,
            gain=self._gain,
            offset=self._offset,
            ccd_temp=round(exp.temperature, 2),
            set_temp=self._set_point if self._cooler else None,
            roi=roi,
            bayer=self.sensor.bayer_for(b),
            extra=scene,
        )
        if frame_type == "light":
            self.world.light_frames += 1
        self._state = ExposureState.ready

    def _download_time(self, roi: RoiBox, b: int) -> float:
        full = self.profile.width * self.profile.height
        share = (roi.width // b) * (roi.height // b) / full
        return float(self.profile.download_time) * max(MIN_DOWNLOAD_FRACTION, share)

    def _snapshot(
        self, seconds: float, frame_type: str, shutter: bool, roi: RoiBox, b: int
    ) -> tuple[Exposure, dict[str, object]]:
        """Freeze what the world looks like at shutter close (on the loop: cheap)."""
        w = self.world
        temp = self._temperature_now()
        egain = egain_at(self.profile, self._gain)
        star_tp, sky_tp = filter_throughput(w.filter_name)
        sim = w.profile.simulation
        scene: dict[str, object] = {
            "sim_filter": w.filter_name,
            "sim_focuser_position": w.focuser_position,
            "sim_best_focus": w.best_focus(),
            "sim_ambient": round(w.ambient_temperature(), 3),
        }
        stars = None
        if shutter and frame_type == "light" and seconds > 0:
            ra, dec = w.pointing()
            dx, dy = w.pointing_offset_px()
            rot = w.field_rotation_deg()
            hfr = w.hfr_px()
            field = self._field(ra, dec, math.hypot(dx, dy) + 4 * hfr)
            x, y = field.x + dx, field.y + dy
            if rot:
                c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
                x, y = c * x - s * y, s * x + c * y
            cx = (self.profile.width - 1) / 2.0
            cy = (self.profile.height - 1) / 2.0
            ox = (x + cx - roi.x - (b - 1) / 2.0) / b
            oy = (y + cy - roi.y - (b - 1) / 2.0) / b
            stars = StarsOnSensor(
                x=ox,
                y=oy,
                electrons=field.flux * star_tp * seconds,
                colour=field.colour,
                hfr=hfr / b,
                beta=w.optics.moffat_beta,
            )
            scene.update(
                {
                    "sim_pointing": (ra, dec),
                    "sim_offset_px": (dx, dy),
                    "sim_rotation": rot,
                    "sim_hfr_px": hfr / b,
                }
            )
        exp = Exposure(
            seconds=seconds,
            frame_type=frame_type,
            shutter_open=shutter,
            roi=roi,
            binning=b,
            egain=egain,
            offset_adu=float(self._offset),
            temperature=temp,
            sky_rate=sim.sky_background * sky_tp,
            flat_rate=FLAT_PANEL_RATE * star_tp,
            stars=stars,
        )
        return exp, scene

    def _field(self, ra: float, dec: float, margin_px: float) -> FieldStars:
        """Stars around the axis, cached per pointing (a field is projected once per slew)."""
        half_diag = math.hypot(self.profile.width, self.profile.height) / 2
        radius = int(math.ceil((half_diag + margin_px + 32) / 256.0) * 256)
        key = (round(ra, 9), round(dec, 9), radius)
        hit = self._fields.get(key)
        if hit is not None:
            self._fields.move_to_end(key)
            return hit
        sim = self.world.profile.simulation
        scale = self.world.profile.pixel_scale
        fov_deg2 = (self.profile.width * scale / 3600) * (self.profile.height * scale / 3600)
        make = catalogue_field if sim.sky == "catalogue" else field_stars
        field = make(sim.seed, sim.stars / fov_deg2, ra, dec, scale, radius)
        self._fields[key] = field
        while len(self._fields) > 4:
            self._fields.popitem(last=False)
        return field

    async def exposure_status(self) -> ExposureState:
        self._require()
        return self._state

    async def exposure_result(self) -> Frame:
        self._require()
        if self._state is ExposureState.error:
            self._state = ExposureState.idle
            raise DeviceError(f"exposure failed: {self._error}") from self._error
        if self._state is not ExposureState.ready or self._frame is None:
            raise DeviceError(f"no frame ready (camera is {self._state.value})")
        frame, self._frame = self._frame, None
        self._state = ExposureState.idle
        return frame

    async def abort_exposure(self) -> None:
        self._require()
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self._frame = None
        self._state = ExposureState.idle

    # ---------------------------------------------------------------- cooling

    def _temperature_now(self) -> float:
        """Advance the sensor temperature to now: a rate-limited approach to its target."""
        now = self.clock.monotonic()
        dt = max(0.0, now - self._temp_at)
        self._temp_at = now
        ambient = self.world.ambient_temperature()
        if self._cooler and self._set_point is not None:
            target = max(min(self._set_point, ambient), ambient - COOLER_MAX_DELTA)
        else:
            target = ambient
        step = COOL_RATE / 60.0 * dt
        diff = target - self._temp
        self._temp = target if abs(diff) <= step else self._temp + math.copysign(step, diff)
        return self._temp

    async def set_cooler(self, on: bool) -> None:
        self._require()
        if on and not self.profile.cooler:
            raise DeviceError(f"camera '{self.profile.name}' has no cooler")
        self._temperature_now()
        self._cooler = on
        if on and self._set_point is None:
            self._set_point = round(self._temp, 1)

    async def set_temperature(self, celsius: float) -> None:
        self._require()
        if not self.profile.cooler:
            raise DeviceError(f"camera '{self.profile.name}' has no cooler")
        if not -60.0 <= celsius <= 40.0:
            raise DeviceError(f"set point {celsius} °C is outside -60…40 °C")
        self._temperature_now()
        self._set_point = float(celsius)
        self._cooler = True

    async def cooler_on(self) -> bool:
        self._require()
        return self._cooler

    async def temperature(self) -> float:
        self._require()
        return round(self._temperature_now(), 2)

    async def set_point(self) -> float | None:
        self._require()
        return self._set_point if self._cooler else None

    async def cooler_power(self) -> float:
        """Power holds ΔT to ambient: 100 % at the cooler's capacity (35 °C below ambient)."""
        self._require()
        if not self._cooler:
            return 0.0
        delta = self.world.ambient_temperature() - self._temperature_now()
        return round(min(100.0, max(0.0, 100.0 * delta / COOLER_MAX_DELTA)), 1)

    # ---------------------------------------------------------------- settings

    def _idle_for_settings(self) -> None:
        self._require()
        if self._state in (ExposureState.exposing, ExposureState.downloading):
            raise DeviceBusy("cannot change camera settings during an exposure")

    async def set_roi(self, roi: RoiBox | None) -> None:
        self._idle_for_settings()
        p = self.profile
        if roi is None:
            self._roi = RoiBox(0, 0, p.width, p.height)
            return
        if p.bayer:  # keep the colour matrix in phase: sub-frames start on even pixels
            roi = RoiBox(roi.x - roi.x % 2, roi.y - roi.y % 2, roi.width, roi.height)
        if (
            roi.x < 0
            or roi.y < 0
            or roi.width < 1
            or roi.height < 1
            or roi.x + roi.width > p.width
            or roi.y + roi.height > p.height
        ):
            raise DeviceError(f"ROI {roi} does not fit the {p.width}×{p.height} sensor")
        self._roi = roi

    async def roi(self) -> RoiBox:
        self._require()
        return self._roi

    async def set_gain(self, gain: int) -> None:
        self._idle_for_settings()
        lo, hi = self.profile.gain_range
        if not lo <= gain <= hi:
            raise DeviceError(f"gain {gain} outside {lo}…{hi}")
        self._gain = int(gain)

    async def gain(self) -> int:
        self._require()
        return self._gain

    async def set_offset(self, offset: int) -> None:
        self._idle_for_settings()
        lo, hi = self.profile.offset_range
        if not lo <= offset <= hi:
            raise DeviceError(f"offset {offset} outside {lo}…{hi}")
        self._offset = int(offset)

    async def offset(self) -> int:
        self._require()
        return self._offset

    async def set_binning(self, binning: int) -> None:
        self._idle_for_settings()
        if not 1 <= binning <= self.profile.max_binning:
            raise DeviceError(f"binning {binning} outside 1…{self.profile.max_binning}")
        if self._roi.width // binning < 1 or self._roi.height // binning < 1:
            raise DeviceError(f"binning {binning} leaves no pixel of ROI {self._roi}")
        self._binning = int(binning)

    async def binning(self) -> int:
        self._require()
        return self._binning

    async def close(self) -> None:
        """Cancel a running exposure task (for tests and shutdown of the simulator)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
