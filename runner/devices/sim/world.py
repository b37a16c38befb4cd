"""The shared state of the simulated observatory.

Simulated devices are not independent toys: the camera renders what the focuser, filter wheel,
mount and guider did. They share one ``SimWorld`` — clock, ambient temperature, where the
telescope points, guiding error, injected faults — so that autofocus, dithering, registration
and safety handling do real work on the simulator.

Conventions (see docs/simulators.md): positions are J2000 degrees, offsets arcsec, the focuser
position here is the *optical* one (after backlash), temperatures °C, times clock seconds.
"""

from __future__ import annotations

import math
import threading
import zlib
from dataclasses import dataclass, field

import numpy as np

from runner.clock import Clock
from runner.devices.interfaces import PierSide
from runner.plan.equipment import Equipment, Fault
from runner.solve.geometry import offset_point, tangent_offset

#: Sidereal rate: how fast RA under a non-tracking telescope grows, degrees per clock second.
SIDEREAL_DEG_PER_S = 360.98564736629 / 86400.0

#: Field centre used when no mount ever pointed anywhere (camera-only rigs).
DEFAULT_POINTING = (83.82, -5.39)


@dataclass
class FaultState:
    fault: Fault
    remaining: int
    started_at: float | None = None  # clock seconds when it first fired


@dataclass(frozen=True)
class Optics:
    """The V-curve: HFR = sqrt(hfr_min² + (defocus_px_per_step · |pos − best|)²).

    A hyperbola: minimal at best focus, linear in |pos − best| away from it (the geometric
    blur circle grows linearly with defocus; seeing rounds the bottom).
    """

    hfr_min_px: float = 1.5  # unbinned pixels, seeing-limited
    defocus_px_per_step: float = 0.008  # HFR growth per focuser step, unbinned px
    moffat_beta: float = 3.0

    def hfr_px(self, position: float, best: float) -> float:
        return math.hypot(self.hfr_min_px, self.defocus_px_per_step * (position - best))


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
    #: Light frames completed by the camera (fault ``at_frame`` counts against this + 1).
    light_frames: int = 0
    #: Optical focuser position, steps (the motor position minus the backlash lag).
    focuser_position: int = 0
    filter_name: str | None = None
    #: Site (degrees; longitude east) for hour angle and side of pier; None: Greenwich, north.
    site_latitude: float | None = None
    site_longitude: float | None = None
    #: Mount tracking; while off the RA under the telescope grows at the sidereal rate.
    tracking: bool = True
    tracking_off_since: float = 0.0
    pier_side: PierSide = PierSide.unknown
    #: The main camera sees the field turned 180° on the east side of the pier (after a flip).
    flip_rotates_field: bool = True
    optics: Optics = field(default_factory=Optics)
    #: Added to the profile's ambient temperature: tests and rehearsals change the weather.
    ambient_offset: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: list[FaultState] = field(default_factory=list)
    #: Where the telescope really points relative to where the mount believes it points:
    #: (east, north) arcsec in the tangent plane (``simulation.pointing_error``; a sync
    #: replaces it with the error the sync leaves).
    mount_error: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.profile.simulation.seed)
        pe = self.profile.simulation.pointing_error
        if pe is not None:
            a = math.radians(pe.angle)
            self.mount_error = (pe.arcmin * 60.0 * math.sin(a), pe.arcmin * 60.0 * math.cos(a))
        self.faults = [FaultState(f, f.times) for f in self.profile.simulation.faults]
        self.focuser_position = self.profile.simulation.best_focus

    def child_rng(self, name: str, *extra: int) -> np.random.Generator:
        """An independent, reproducible random stream per device (and per frame).

        Devices draw from their own streams so that, e.g., moving the focuser does not change
        the camera's noise: output depends on the seed and the sequence of each device's
        operations only.
        """
        key = [self.profile.simulation.seed & 0xFFFFFFFF, zlib.crc32(name.encode())]
        return np.random.default_rng([*key, *(e & 0xFFFFFFFF for e in extra)])

    # ---------------------------------------------------------------- environment

    def ambient_temperature(self) -> float:
        """Ambient °C: the profile's value drifting linearly through the night."""
        hours = self.clock.monotonic() / 3600.0
        sim = self.profile.simulation
        return sim.ambient + sim.ambient_drift * hours + self.ambient_offset

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

    def hfr_px(self) -> float:
        """True HFR of the stars now (unbinned px), from the focuser and the V-curve."""
        return self.optics.hfr_px(self.focuser_position, self.best_focus())

    # ---------------------------------------------------------------- pointing

    def local_sidereal_deg(self) -> float:
        """Local apparent sidereal time, degrees (GMST formula; good to a few seconds)."""
        now = self.clock.now()
        jd = now.timestamp() / 86400.0 + 2440587.5
        gmst = 280.46061837 + 360.98564736629 * (jd - 2451545.0)
        return (gmst + (self.site_longitude or 0.0)) % 360.0

    def hour_angle_deg(self, ra: float) -> float:
        """Hour angle of ``ra`` now, degrees in [-180, 180) (negative: east of the meridian)."""
        return (self.local_sidereal_deg() - ra + 180.0) % 360.0 - 180.0

    def pointing(self) -> tuple[float, float]:
        """Where the telescope points now (J2000 degrees), including sidereal drift when the
        mount does not track; the default field when no mount ever pointed."""
        if self.ra is None or self.dec is None:
            return DEFAULT_POINTING
        ra = self.ra
        if not self.tracking:
            ra += SIDEREAL_DEG_PER_S * (self.clock.monotonic() - self.tracking_off_since)
        return ra % 360.0, self.dec

    def set_pointing(self, ra: float, dec: float, pier_side: PierSide) -> None:
        """A completed slew: new field, offsets and unguided drift start from zero."""
        with self.lock:
            self.ra = ra % 360.0
            self.dec = max(-90.0, min(90.0, dec))
            self.pier_side = pier_side
            self.offset_ra = 0.0
            self.offset_dec = 0.0
            self.drift_since = self.clock.monotonic()
            if not self.tracking:
                self.tracking_off_since = self.clock.monotonic()

    def set_tracking(self, on: bool) -> None:
        with self.lock:
            if on == self.tracking:
                return
            now = self.clock.monotonic()
            if on and self.ra is not None:
                self.ra = (self.ra + SIDEREAL_DEG_PER_S * (now - self.tracking_off_since)) % 360
            self.tracking_off_since = now
            self.tracking = on

    def true_from_mount(self, ra: float, dec: float) -> tuple[float, float]:
        """Where the telescope really points when the mount believes it points at (ra, dec)."""
        east, north = self.mount_error
        if east == north == 0.0:
            return ra % 360.0, dec
        return offset_point(ra, dec, east, north)

    def mount_from_true(self, ra: float, dec: float) -> tuple[float, float]:
        """What the mount reports while the telescope really points at (ra, dec)."""
        east, north = self.mount_error
        if east == north == 0.0:
            return ra % 360.0, dec
        # the inverse of true_from_mount to second order in the error (≪ 1″ for errors of
        # a degree away from the pole); refined once by a fixed-point step
        guess = offset_point(ra, dec, -east, -north)
        back = self.true_from_mount(*guess)
        d_e, d_n = tangent_offset(ra, dec, *back)
        return offset_point(guess[0], guess[1], -d_e, -d_n)

    def sync_mount(self, ra: float, dec: float) -> None:
        """The mount is told that it points at (ra, dec): from now on it reports (and slews
        by) that, so the error left is the difference between the truth and (ra, dec)."""
        true_ra, true_dec = self.pointing()
        with self.lock:
            self.mount_error = tangent_offset(ra, dec, true_ra, true_dec)

    def field_rotation_deg(self) -> float:
        """Rotation of the field on the main camera: 180° on the east side of the pier."""
        return 180.0 if self.flip_rotates_field and self.pier_side is PierSide.east else 0.0

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
