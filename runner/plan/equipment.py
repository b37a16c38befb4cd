"""Equipment profiles: which back-end drives each device, and the figures the engine and the
estimate need (download time, filter change time, focuser range, slew rate …).

Profiles are separate YAML files (``schemas/equipment.schema.json``) so that one plan runs on
different rigs. ``simulator`` is built in (``runner/plan/profiles/simulator.yaml``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from runner.plan.models import Model, Notify
from runner.plan.units import Duration

Backend = Literal["simulator", "alpaca", "indi"]


def check_host_port(address: str, what: str) -> str:
    """``host[:port]`` with a port in 1–65535: a bad address fails at validation, not at dusk."""
    host, sep, port = address.strip().rpartition(":")
    if not sep:
        host, port = address.strip(), ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # [::1]:7624
    if not host:
        raise ValueError(f"{what} '{address}' has no host; write host:port, e.g. 127.0.0.1:11111")
    if port:
        if not port.isdigit():
            raise ValueError(f"{what} '{address}': the port must be a number")
        if not 1 <= int(port) <= 65_535:
            raise ValueError(f"{what} '{address}': port {int(port)} is outside 1–65535")
    return address.strip()


class Connection(Model):
    backend: Backend = Field("simulator", description="Driver: simulator, alpaca or indi.")
    address: str | None = Field(
        None,
        description="host:port of the Alpaca server or indiserver (default 127.0.0.1:11111 "
        "for Alpaca, 127.0.0.1:7624 for INDI); not for simulated devices.",
    )
    device: str | int | None = Field(
        None,
        description="Alpaca device number (default 0) or INDI device name (default: the only "
        "device of its kind on the server); not for simulated devices.",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None, info: ValidationInfo) -> str | None:
        backend = info.data.get("backend")
        if value is None:
            return None
        if backend == "simulator":
            raise ValueError("a simulated device has no address; 'address' applies to "
                             "backend alpaca or indi")
        return check_host_port(value, f"{backend} address")

    @field_validator("device")
    @classmethod
    def _device(cls, value: Any, info: ValidationInfo) -> Any:
        backend = info.data.get("backend")
        if value is None:
            return None
        if backend == "simulator":
            raise ValueError("a simulated device has no 'device'; it applies to backend alpaca "
                             "(a device number) or indi (a device name)")
        if backend == "alpaca":
            number = value if isinstance(value, int) else (
                int(value.strip()) if isinstance(value, str) and value.strip().isdigit() else None
            )
            if isinstance(value, bool) or number is None or number < 0:
                raise ValueError(f"an Alpaca device is a device number (0, 1, …), got {value!r}; "
                                 "`nightrunner scan alpaca` lists them")
            return number
        if backend == "indi" and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"an INDI device is named by a string (e.g. \"CCD Simulator\"), "
                             f"got {value!r}; `nightrunner scan indi` lists them")
        return value


class CameraProfile(Connection):
    name: str = Field("Nightrunner Sim Camera", description="Written to INSTRUME.")
    width: int = Field(1024, ge=16, le=20_000, description="Sensor width, pixels.")
    height: int = Field(768, ge=16, le=20_000, description="Sensor height, pixels.")
    pixel_size: float = Field(3.76, gt=0, description="Pixel size, µm.")
    max_binning: int = Field(4, ge=1, le=16)
    gain_range: tuple[int, int] = Field((0, 500), description="Allowed gain, driver units.")
    offset_range: tuple[int, int] = Field((0, 500), description="Allowed offset, ADU.")
    egain: float = Field(1.0, gt=0, description="Electrons per ADU at the default gain.")
    read_noise: float = Field(3.0, ge=0, description="Read noise, electrons.")
    download_time: Duration = Field(2.0, description="Seconds to read out a full frame.")
    cooler: bool = Field(True, description="Has a regulated cooler.")
    bayer: Literal["RGGB", "BGGR", "GRBG", "GBRG"] | None = Field(
        None, description="Bayer pattern for one-shot-colour cameras."
    )


class FilterSpec(Model):
    name: str = Field(..., min_length=1)
    focus_offset: int = Field(0, description="Focuser offset relative to L, steps.")


class FilterWheelProfile(Connection):
    filters: list[FilterSpec] = Field(..., min_length=1)
    change_time: Duration = Field(3.0, description="Seconds per filter change.")

    @model_validator(mode="after")
    def _unique(self) -> FilterWheelProfile:
        names = [f.name for f in self.filters]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"filter names must be unique (repeated: {', '.join(sorted(dup))})")
        return self


class FocuserProfile(Connection):
    min_position: int = Field(0, ge=0, description="Lowest position, steps.")
    max_position: int = Field(50_000, gt=0, description="Highest position, steps.")
    speed: float = Field(1000.0, gt=0, description="Steps per second.")
    backlash: int = Field(0, ge=0, description="Backlash, steps (compensated inward moves).")
    step_size: int = Field(100, gt=0, description="Default autofocus step, steps.")
    move_timeout: Duration = Field(120.0, description="Seconds a move may take.")


class MountProfile(Connection):
    slew_rate: float = Field(3.0, gt=0, description="Slew speed, degrees per second.")
    settle_time: Duration = Field(5.0, description="Seconds to settle after a slew.")
    slew_timeout: Duration = Field(300.0)


class GuiderProfile(Model):
    backend: Literal["simulator", "phd2"] = Field(
        "simulator",
        description="simulator: PHD2 simulator started in-process; phd2: a real PHD2.",
    )
    host: str = Field("127.0.0.1", description="Host of a real PHD2 (backend phd2 only).")
    port: int = Field(
        4400, ge=1, le=65_535, description="PHD2 event server port; with backend simulator, "
        "where `nightrunner serve` starts the simulator (a night's own takes a free port)."
    )
    profile: str | None = Field(None, description="PHD2 equipment profile to select.")
    pixel_scale: float | None = Field(
        None, gt=0, description="Guide camera scale, arcsec/px (else read from PHD2)."
    )
    exposure: Duration = Field(2.0, description="Guide exposure, s.")

    @field_validator("host")
    @classmethod
    def _real_phd2_only(cls, value: Any, info: ValidationInfo) -> Any:
        # validators run on given values only: the default never trips this
        if info.data.get("backend") == "simulator":
            raise ValueError("the PHD2 simulator runs on this machine (127.0.0.1); 'host' "
                             "applies to backend phd2")
        return value


class SafetyProfile(Connection):
    pass


FaultKind = Literal[
    "camera_disconnect",
    "exposure_hang",
    "focuser_stuck",
    "unsafe_weather",
    "star_lost",
    "settle_never",
    "guider_drop",
]

#: The options each fault kind honours (``runner/devices/sim/world.py``): a focuser move or
#: the weather has no frame number, and the weather is a state, not a count of operations.
FAULT_OPTIONS: dict[str, frozenset[str]] = {
    "camera_disconnect": frozenset({"at_frame", "at_time", "duration", "times"}),
    "exposure_hang": frozenset({"at_frame", "at_time", "duration", "times"}),
    "star_lost": frozenset({"at_frame", "at_time", "duration", "times"}),
    "settle_never": frozenset({"at_frame", "at_time", "duration", "times"}),
    "guider_drop": frozenset({"at_frame", "at_time", "duration", "times"}),
    "focuser_stuck": frozenset({"at_time", "duration", "times"}),
    "unsafe_weather": frozenset({"at_time", "duration"}),
}

#: The profile section of the simulated device each fault kind acts on.
FAULT_DEVICE: dict[str, str] = {
    "camera_disconnect": "camera",
    "exposure_hang": "camera",
    "focuser_stuck": "focuser",
    "unsafe_weather": "safety",
    "star_lost": "guider",
    "settle_never": "guider",
    "guider_drop": "guider",
}


class Fault(Model):
    """A fault the simulators inject, for tests and rehearsals (simulated devices only)."""

    kind: FaultKind = Field(..., description="What goes wrong.")
    at_frame: int | None = Field(
        None, ge=1, description="Light frame number (1-based); not for focuser_stuck and "
        "unsafe_weather."
    )
    at_time: Duration | None = Field(None, description="Seconds after the run starts.")
    duration: Duration | None = Field(None, description="How long it lasts, s (default: ever).")
    times: int = Field(
        1, ge=1, description="How many consecutive operations it affects; not for "
        "unsafe_weather (a state: use duration)."
    )

    @field_validator("at_frame", "times")
    @classmethod
    def _supported(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        name = info.field_name or "?"
        if kind in FAULT_OPTIONS and name not in FAULT_OPTIONS[kind]:
            allowed = ", ".join(sorted(FAULT_OPTIONS[kind]))
            what = "the weather" if kind == "unsafe_weather" else "a focuser move"
            why = ("the weather is a state, not a count of operations: use duration"
                   if name == "times" else f"{what} has no frame number: use at_time")
            raise ValueError(f"'{name}' is not supported for {kind} ({why}); it takes: "
                             f"{allowed}")
        return value


class PointingError(Model):
    """How far from the commanded coordinates the simulated telescope really points: a mount
    that was never aligned. The mount reports the coordinates it was sent to; the camera sees
    the sky this far away, until a sync (plate-solved centring) teaches the mount the truth."""

    arcmin: float = Field(..., ge=0, le=600, description="Size of the error, arcmin.")
    angle: float = Field(
        45.0, ge=0, lt=360, description="Direction of the true pointing from the commanded "
        "one, degrees east of north."
    )


class Simulation(Model):
    seed: int = Field(42, description="Random seed: simulator output is deterministic.")
    speed: float = Field(1.0, gt=0, description="Default time acceleration (--speed wins).")
    ambient: float = Field(15.0, ge=-40, le=45, description="Ambient temperature, °C.")
    best_focus: int = Field(25_000, ge=0, description="Best focus at 20 °C, steps.")
    focus_drift: float = Field(-40.0, description="Best-focus change per °C, steps.")
    ambient_drift: float = Field(-0.5, description="Ambient change per hour, °C.")
    stars: int = Field(300, ge=0, le=100_000, description="Stars in the synthetic field.")
    sky_background: float = Field(
        8.0, ge=0, description="Sky background, electrons per pixel per second."
    )
    tracking_drift: float = Field(0.05, ge=0, description="Unguided drift, px per s.")
    sky: Literal["synthetic", "catalogue"] = Field(
        "synthetic", description="synthetic: seeded random stars; catalogue: the real sky "
        "(Tycho-2 stars from astrometry.net's index files, plus `stars` fainter synthetic "
        "ones), so frames plate-solve to where the telescope points."
    )
    pointing_error: PointingError | None = Field(
        None, description="The simulated mount's pointing error (default: none)."
    )
    faults: list[Fault] = Field(default_factory=list)


class Equipment(Model):
    name: str = Field(..., min_length=1)
    camera: CameraProfile = Field(default_factory=CameraProfile)
    filter_wheel: FilterWheelProfile | None = None
    focuser: FocuserProfile | None = None
    mount: MountProfile | None = None
    guider: GuiderProfile | None = None
    safety: SafetyProfile | None = None
    focal_length: float = Field(400.0, gt=0, description="Telescope focal length, mm.")
    telescope: str = Field("Nightrunner Sim Scope", description="Written to TELESCOP.")
    data_dir: str | None = Field(None, description="Default data directory.")
    simulation: Simulation = Field(default_factory=Simulation)
    exposure_margin: Duration = Field(
        30.0, description="Download allowance added to exposure timeouts, s."
    )
    cool_timeout: Duration | None = Field(
        None, description="Not used: give the `cool`/`warm` step a `timeout` (default 900 s)."
    )

    @field_validator("cool_timeout")
    @classmethod
    def _not_used(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("'cool_timeout' is not used; set 'timeout' on the cool or warm "
                             "step instead (default 900 s)")
        return value
    autofocus_overhead: Duration = Field(
        10.0, description="Per-sample overhead of an autofocus run besides exposure, s."
    )
    notify: Notify | None = Field(
        None, description="The rig owner's notifications, for every night run on this rig "
        "(besides the plan's own `notify:`; a channel both name is delivered once)."
    )

    def filter_names(self) -> list[str]:
        return [f.name for f in self.filter_wheel.filters] if self.filter_wheel else []

    @property
    def pixel_scale(self) -> float:
        """Main camera image scale, arcsec per unbinned pixel."""
        return 206.265 * self.camera.pixel_size / self.focal_length
