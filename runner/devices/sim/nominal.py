"""Nominal devices: the simulators with rendering off, timed exactly by the profile's figures.

They succeed at every step and take exactly the time the equipment profile says — download
time, filter change time, focuser speed and backlash, slew rate, settle, guide exposure — so the
executor itself, run on a :class:`runner.clock.VirtualClock`, produces the night's timeline
(``nightrunner estimate``, ``run --dry-run``, the mid-night ETA). A status query made while an
operation runs waits (on the virtual clock) for its end, so the engine's polling adds nothing.

Each device records when it was busy in :class:`BusyLog`; the estimate charges a phase's time to
categories from it and from the executor's events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runner.clock import Clock
from runner.devices.interfaces import (
    Camera,
    CameraInfo,
    ExposureState,
    FilterWheel,
    Focuser,
    Guider,
    GuiderState,
    Mount,
    PierSide,
    SafetyMonitor,
)
from runner.errors import DeviceBusy
from runner.plan.equipment import Equipment
from runner.records import Frame, GuideStats, RoiBox

#: Default cooler speed (°C/min) when a cool/warm step gives no rate.
DEFAULT_COOL_RATE = 5.0
#: Guide exposures a settle waits for after its ``time`` (the guider's frames it settles on).
SETTLE_GUIDE_FRAMES = 3
#: Extra time of ``guide: start`` with ``recalibrate: true``.
GUIDE_CALIBRATION_S = 120.0


@dataclass
class BusyLog:
    """Clock intervals (monotonic seconds) during which a device worked, by what it did."""

    spans: list[tuple[str, float, float]] = field(default_factory=list)

    def add(self, what: str, start: float, end: float) -> None:
        if end > start:
            self.spans.append((what, start, end))


class _Nominal:
    def __init__(self, clock: Clock, log: BusyLog) -> None:
        self.clock = clock
        self.log = log
        self._connected = False

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def now(self) -> float:
        return self.clock.monotonic()

    async def until(self, t: float) -> None:
        if t > self.now():
            await self.clock.sleep(t - self.now())


class NominalCamera(_Nominal, Camera):
    def __init__(self, clock: Clock, log: BusyLog, eq: Equipment) -> None:
        super().__init__(clock, log)
        self.download = eq.camera.download_time
        self.has_cooler = eq.camera.cooler
        self._ambient = eq.simulation.ambient
        self._temp_at = (self._ambient, 0.0)  # temperature at a clock instant
        self._set: float | None = None
        self._end: float | None = None
        self._exposure = 0.0
        self._type = "light"
        self._roi = RoiBox(0, 0, 16, 16)
        self._gain = self._offset = 0
        self._binning = 1

    async def info(self) -> CameraInfo:
        return CameraInfo("nominal", 16, 16, 3.76, 4, self.has_cooler, 1.0)

    async def start_exposure(
        self, seconds: float, frame_type: str = "light", *, light: bool = True
    ) -> None:
        if self._end is not None:
            raise DeviceBusy("the camera is exposing")
        t = self.now()
        self._exposure, self._type = seconds, frame_type
        self._end = t + seconds + self.download
        self.log.add("exposure", t, t + seconds)
        self.log.add("download", t + seconds, self._end)

    async def exposure_status(self) -> ExposureState:
        if self._end is None:
            return ExposureState.idle
        await self.until(self._end)
        return ExposureState.ready

    async def exposure_result(self) -> Frame:
        self._end = None
        return Frame(np.zeros((1, 1), np.uint16), self._exposure, self.clock.now(), self._type,
                     self._binning, self._gain, self._offset, await self.temperature(),
                     self._set, self._roi)

    async def abort_exposure(self) -> None:
        self._end = None

    # the sensor follows the set point at DEFAULT_COOL_RATE (°C/min)
    def _temperature(self) -> float:
        temp, since = self._temp_at
        goal = self._ambient if self._set is None else self._set
        step = DEFAULT_COOL_RATE / 60.0 * (self.now() - since)
        return goal if abs(goal - temp) <= step else temp + math.copysign(step, goal - temp)

    async def set_cooler(self, on: bool) -> None:
        self._temp_at = (self._temperature(), self.now())
        if not on:
            self._set = None

    async def set_temperature(self, celsius: float) -> None:
        self._temp_at = (self._temperature(), self.now())
        self._set = celsius

    async def cooler_on(self) -> bool:
        return self._set is not None

    async def temperature(self) -> float:
        return self._temperature()

    async def set_point(self) -> float | None:
        return self._set

    async def cooler_power(self) -> float:
        return 0.0 if self._set is None else 50.0

    async def set_roi(self, roi: RoiBox | None) -> None:
        self._roi = roi or RoiBox(0, 0, 16, 16)

    async def roi(self) -> RoiBox:
        return self._roi

    async def set_gain(self, gain: int) -> None:
        self._gain = gain

    async def gain(self) -> int:
        return self._gain

    async def set_offset(self, offset: int) -> None:
        self._offset = offset

    async def offset(self) -> int:
        return self._offset

    async def set_binning(self, binning: int) -> None:
        self._binning = binning

    async def binning(self) -> int:
        return self._binning


class NominalFilterWheel(_Nominal, FilterWheel):
    def __init__(self, clock: Clock, log: BusyLog, eq: Equipment) -> None:
        super().__init__(clock, log)
        assert eq.filter_wheel is not None
        self._names = [f.name for f in eq.filter_wheel.filters]
        self.change_time = eq.filter_wheel.change_time
        self._slot: int | None = None
        self._arrive = 0.0

    async def names(self) -> list[str]:
        return list(self._names)

    async def position(self) -> int | None:
        await self.until(self._arrive)
        return self._slot

    async def move_to(self, slot: int) -> None:
        t = self.now()
        self._arrive = t + self.change_time
        self.log.add("filter", t, self._arrive)
        self._slot = slot


class NominalFocuser(_Nominal, Focuser):
    def __init__(self, clock: Clock, log: BusyLog, eq: Equipment) -> None:
        super().__init__(clock, log)
        assert eq.focuser is not None
        self.speed = eq.focuser.speed
        self.backlash = eq.focuser.backlash
        self._max = eq.focuser.max_position if hasattr(eq.focuser, "max_position") else 100_000
        self._pos = eq.simulation.best_focus
        self._arrive = 0.0

    async def position(self) -> int:
        await self.until(self._arrive)
        return self._pos

    async def max_position(self) -> int:
        return int(self._max)

    async def move_to(self, position: int) -> None:
        await self.until(self._arrive)
        steps = abs(position - self._pos) + (self.backlash if position < self._pos else 0)
        t = self.now()
        self._arrive = t + steps / self.speed
        self.log.add("focus", t, self._arrive)
        self._pos = position

    async def is_moving(self) -> bool:
        await self.until(self._arrive)
        return False

    async def halt(self) -> None:
        self._arrive = min(self._arrive, self.now())

    async def temperature(self) -> float | None:
        return None  # a temperature-change autofocus cannot be predicted


def local_sidereal_deg(clock: Clock, longitude: float) -> float:
    """Mean sidereal time (IAU 1982, ample for a side of pier)."""
    jd = clock.now().timestamp() / 86400.0 + 2440587.5
    return (280.46061837 + 360.98564736629 * (jd - 2451545.0) + longitude) % 360.0


class NominalMount(_Nominal, Mount):
    """Slews at ``slew_rate`` over the great-circle distance; parks at the pole."""

    def __init__(self, clock: Clock, log: BusyLog, eq: Equipment, latitude: float,
                 longitude: float) -> None:
        super().__init__(clock, log)
        assert eq.mount is not None
        self.rate = eq.mount.slew_rate
        self.longitude = longitude
        self._pole = 90.0 if latitude >= 0 else -90.0
        self._pointing: tuple[float, float] | None = None  # None: parked at the pole
        self._parked = True
        self._tracking = False
        self._arrive = 0.0
        self._side = PierSide.east

    def _go(self, ra: float | None, dec: float, flip: bool = False) -> None:
        if flip:  # the RA axis turns half a revolution
            distance = 180.0
        elif self._pointing is None or ra is None:
            here_dec = self._pointing[1] if self._pointing else self._pole
            distance = abs(dec - here_dec)
        else:
            distance = angular_distance(self._pointing[0], self._pointing[1], ra, dec)
        t = self.now()
        self._arrive = t + distance / self.rate
        self.log.add("slew", t, self._arrive)

    async def slew_to(self, ra_deg: float, dec_deg: float) -> None:
        ha = (local_sidereal_deg(self.clock, self.longitude) - ra_deg + 180.0) % 360.0 - 180.0
        side = PierSide.west if ha < 0 else PierSide.east
        self._go(ra_deg, dec_deg, flip=self._pointing is not None and side != self._side)
        self._pointing = (ra_deg, dec_deg)
        self._tracking = True
        self._side = side

    async def is_slewing(self) -> bool:
        await self.until(self._arrive)
        return False

    async def abort_slew(self) -> None:
        self._arrive = min(self._arrive, self.now())

    async def coordinates(self) -> tuple[float, float]:
        await self.until(self._arrive)
        return self._pointing or (local_sidereal_deg(self.clock, self.longitude), self._pole)

    async def set_tracking(self, on: bool) -> None:
        self._tracking = on

    async def tracking(self) -> bool:
        return self._tracking

    async def park(self) -> None:
        if self._pointing is not None:
            self._go(None, self._pole)
        self._pointing = None
        self._parked = True
        self._tracking = False

    async def unpark(self) -> None:
        self._parked = False

    async def is_parked(self) -> bool:
        await self.until(self._arrive)
        return self._parked

    async def side_of_pier(self) -> PierSide:
        return self._side


class NominalSafety(_Nominal, SafetyMonitor):
    async def is_safe(self) -> bool:
        return True


class NominalGuider(Guider):
    """Settles take ``settle.time`` plus SETTLE_GUIDE_FRAMES guide exposures."""

    def __init__(self, clock: Clock, log: BusyLog, eq: Equipment) -> None:
        self.clock = clock
        self.log = log
        self.exposure = eq.guider.exposure if eq.guider is not None else 2.0
        self._state = GuiderState.stopped

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        self._state = GuiderState.stopped

    async def state(self) -> GuiderState:
        return self._state

    async def _settle(self, seconds: float) -> None:
        t = self.clock.monotonic()
        self.log.add("settle", t, t + seconds)
        await self.clock.sleep(seconds)

    async def guide(
        self, settle_pixels: float, settle_time: float, settle_timeout: float,
        recalibrate: bool = False,
    ) -> None:
        extra = GUIDE_CALIBRATION_S if recalibrate else 0.0
        await self._settle(settle_time + SETTLE_GUIDE_FRAMES * self.exposure + extra)
        self._state = GuiderState.guiding

    async def dither(
        self, amount: float, ra_only: bool, settle_pixels: float, settle_time: float,
        settle_timeout: float,
    ) -> None:
        await self._settle(settle_time + SETTLE_GUIDE_FRAMES * self.exposure)

    async def stop(self) -> None:
        self._state = GuiderState.stopped

    async def pause(self, paused: bool) -> None:
        return None

    def start_stats(self) -> None:
        return None

    def stats(self) -> GuideStats | None:
        return None


def angular_distance(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (haversine, stable for small angles)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dl = math.radians(ra2 - ra1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


@dataclass
class NominalRig:
    """Every device the profile names, nominal; ``log`` says when each was busy."""

    camera: NominalCamera
    filter_wheel: NominalFilterWheel | None
    focuser: NominalFocuser | None
    mount: NominalMount | None
    safety: NominalSafety | None
    guider: NominalGuider | None
    log: BusyLog
    filter_slots: dict[str, int]

    @classmethod
    def build(cls, eq: Equipment, clock: Clock, latitude: float, longitude: float) -> NominalRig:
        log = BusyLog()
        return cls(
            camera=NominalCamera(clock, log, eq),
            filter_wheel=NominalFilterWheel(clock, log, eq) if eq.filter_wheel else None,
            focuser=NominalFocuser(clock, log, eq) if eq.focuser else None,
            mount=NominalMount(clock, log, eq, latitude, longitude) if eq.mount else None,
            safety=NominalSafety(clock, log) if eq.safety else None,
            guider=NominalGuider(clock, log, eq) if eq.guider else None,
            log=log,
            filter_slots={f.name: i for i, f in enumerate(eq.filter_wheel.filters)}
            if eq.filter_wheel else {},
        )

    async def connect(self) -> None:
        for d in (self.camera, self.filter_wheel, self.focuser, self.mount, self.safety):
            if d is not None:
                await d.connect()

    def autofocuser(self, eq: Equipment, clock: Clock) -> Any:
        """Autofocus at its nominal cost: steps × (exposure + download + overhead) plus the
        focuser's travel out, through the curve and back (with backlash); focus is unchanged."""
        if self.focuser is None or eq.focuser is None:
            return None
        focuser = eq.focuser
        log = self.log

        async def autofocus(settings: Any, filter_name: str | None) -> dict[str, Any]:
            per_sample = settings.exposure + eq.camera.download_time + eq.autofocus_overhead
            step = settings.step_size or focuser.step_size
            travel = 2 * (settings.steps - 1) * step + focuser.backlash
            seconds = settings.steps * per_sample + travel / focuser.speed
            t = clock.monotonic()
            log.add("autofocus", t, t + seconds)
            await clock.sleep(seconds)
            return {"ok": True, "filter": filter_name, "seconds": seconds, "nominal": True}

        return autofocus
