"""The shared state of the simulated observatory.

Simulated devices are not independent toys: the camera renders what the focuser, filter wheel,
mount and guider did. They share one ``SimWorld`` — clock, ambient temperature, where the
telescope points, guiding error, injected faults — so that autofocus, dithering, registration
and safety handling do real work on the simulator.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from runner.clock import Clock
from runner.plan.equipment import Equipment, Fault


@dataclass
class FaultState:
    fault: Fault
    remaining: int
    started_at: float | None = None  # clock seconds when it first fired


@dataclass
class SimWorld:
    clock: Clock
    profile: Equipment
    rng: np.random.Generator = field(init=False)
    #: Pointing (J2000 degrees) the mount was last sent to; None before the first slew.
    ra: float | None = None
    dec: float | None = None
    #: Offset of the field on the main camera, arcsec (RA, Dec): dithers + guiding error.
    offset_ra: float = 0.0
    offset_dec: float = 0.0
    guiding: bool = False
    #: Clock seconds when guiding stopped last (unguided drift accumulates from there).
    drift_since: float = 0.0
    light_frames: int = 0
    focuser_position: int = 0
    filter_name: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: list[FaultState] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.profile.simulation.seed)
        self.faults = [FaultState(f, f.times) for f in self.profile.simulation.faults]
        self.focuser_position = self.profile.simulation.best_focus

    # ---------------------------------------------------------------- environment

    def ambient_temperature(self) -> float:
        """Ambient °C: the profile's value drifting linearly through the night."""
        hours = self.clock.monotonic() / 3600.0
        return self.profile.simulation.ambient + self.profile.simulation.ambient_drift * hours

    def best_focus(self) -> int:
        """Best focus position (steps) now, with temperature drift and the filter's offset."""
        sim = self.profile.simulation
        offset = 0
        if self.profile.filter_wheel and self.filter_name:
            for f in self.profile.filter_wheel.filters:
                if f.name == self.filter_name:
                    offset = f.focus_offset
        drift = sim.focus_drift * (self.ambient_temperature() - 20.0)
        return round(sim.best_focus + drift + offset)

    def pointing_offset_px(self) -> tuple[float, float]:
        """Field shift on the main camera, unbinned pixels (x, y)."""
        scale = self.profile.pixel_scale
        dx = self.offset_ra / scale
        dy = self.offset_dec / scale
        if not self.guiding:
            t = self.clock.monotonic() - self.drift_since
            drift = self.profile.simulation.tracking_drift * t
            dx += drift * math.cos(0.3)
            dy += drift * math.sin(0.3)
        return dx, dy

    def set_guiding(self, on: bool) -> None:
        with self.lock:
            if self.guiding and not on:
                self.drift_since = self.clock.monotonic()
            self.guiding = on

    def add_offset_arcsec(self, d_ra: float, d_dec: float) -> None:
        """A dither (or any pointing nudge) moves the field."""
        with self.lock:
            self.offset_ra += d_ra
            self.offset_dec += d_dec

    # ---------------------------------------------------------------- faults

    def take_fault(self, kind: str, *, frame: int | None = None) -> bool:
        """True (and consumes one occurrence) when a fault of ``kind`` is due now.

        A fault with ``at_frame`` fires when ``frame`` reaches it; one with ``at_time`` fires
        once the clock passes it, for ``duration`` seconds when given.
        """
        now = self.clock.monotonic()
        with self.lock:
            for st in self.faults:
                f = st.fault
                if f.kind != kind:
                    continue
                if f.at_frame is not None and (frame is None or frame < f.at_frame):
                    continue
                if f.at_time is not None and now < f.at_time:
                    continue
                if f.duration is not None and st.started_at is not None:
                    if now - st.started_at <= f.duration:
                        return True
                    continue
                if st.remaining <= 0:
                    continue
                st.remaining -= 1
                if st.started_at is None:
                    st.started_at = now
                return True
        return False

    def fault_active(self, kind: str) -> bool:
        """For state-like faults (unsafe weather): active from ``at_time`` for ``duration``."""
        now = self.clock.monotonic()
        for st in self.faults:
            f = st.fault
            if f.kind != kind:
                continue
            start = f.at_time or 0.0
            if now >= start and (f.duration is None or now <= start + f.duration):
                return True
        return False
