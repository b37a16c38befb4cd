"""A small night on the virtual clock, recorded for the option-effect tests.

The plan runs as ``nightrunner run --dry-run`` and ``nightrunner estimate`` run it: the
executor on the nominal rig (:mod:`runner.devices.sim.nominal`) on a virtual clock. Plans and
profiles are plain dicts, written to YAML and loaded with ``load_plan``, so every night has
passed validation, semantic checks included.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from runner.devices.interfaces import ExposureState, Frame
from runner.devices.sim.nominal import NominalRig
from runner.engine.run_services import site_tz, visibility_factory
from runner.estimate.replay import replay
from runner.plan.loader import load_plan
from runner.records import GuideStats

ROOT = Path(__file__).resolve().parents[2]
AMS = ZoneInfo("Europe/Amsterdam")
#: Late on a November evening: the Sun is far down, the base target high.
START = datetime(2026, 11, 25, 22, 0, tzinfo=AMS)
SITE = {"latitude": 52.37, "longitude": 4.89, "elevation": 5, "timezone": "Europe/Amsterdam"}
#: NGC 188: circumpolar from the site, so the base night never waits for the sky.
CLUSTER = {"ra": "00:48:26", "dec": "+85:14:42"}
#: A night stops here whatever the plan says (a loop that never ends).
HORIZON = 6 * 3600.0

with (ROOT / "runner/plan/profiles/simulator.yaml").open() as _fh:
    SIMULATOR: dict[str, Any] = yaml.safe_load(_fh)


def base_plan(sequence: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    """One target (NGC 188) taking two 10 s frames, unless ``sequence`` says otherwise."""
    tgt: dict[str, Any] = {
        "name": "NGC 188",
        "coordinates": dict(CLUSTER),
        "sequence": sequence if sequence is not None else [{"expose": {"count": 2,
                                                                     "exposure": 10}}],
    }
    tgt.update(top.pop("target", {}))
    return {"version": 1, "name": "effects", "site": dict(SITE), "equipment": "eq.yaml",
            "targets": [tgt, *top.pop("more_targets", [])], **top}


def base_profile(*, mount: bool = False, guider: bool = False, **changes: Any) -> dict[str, Any]:
    """The built-in simulator rig; without mount and guider unless asked (no implicit slews or
    settles to add up)."""
    prof = copy.deepcopy(SIMULATOR)
    if not mount:
        del prof["mount"]
    if not guider:
        del prof["guider"]
    prof.update(changes)
    return prof


@dataclass
class Night:
    """What the executor did: its events (each with ``t``, clock seconds), the frames handed to
    the frame store (the camera's frame and the header metadata), what it asked the guider,
    and how it ended."""

    events: list[dict[str, Any]] = field(default_factory=list)
    frames: list[tuple[Frame, dict[str, Any]]] = field(default_factory=list)
    #: The files the frame store wrote (``night(..., store=True)``).
    files: list[Path] = field(default_factory=list)
    #: What the live stacker was asked: ("begin", target), ("submit", frame),
    #: ("end", None), ("calibration", kind).
    stack: list[tuple[str, Any]] = field(default_factory=list)
    #: The time limit of each plate solve (``night(..., solver_miss=...)``).
    solves: list[float] = field(default_factory=list)
    #: What the guider was asked to do: (method, arguments), in order.
    guider: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    end: float = 0.0
    outcome: str = "completed"
    fatal: str | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    def first(self, kind: str) -> dict[str, Any]:
        found = self.of(kind)
        assert found, f"no '{kind}' event in {[e['event'] for e in self.events]}"
        return found[0]

    def exposures(self) -> list[float]:
        return [e["seconds"] for e in self.of("exposure_start")]

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events if e["event"] not in ("state",)]

    def text(self) -> str:
        return " ".join(str(e.get("message", "")) for e in self.events)

    def span(self, first: str, last: str) -> float:
        return float(self.first(last)["t"] - self.first(first)["t"])


class _Frames:
    def __init__(self, night: Night) -> None:
        self.night = night

    def allocate(self, frame: Frame, meta: dict[str, Any]) -> Path:
        self.night.frames.append((frame, dict(meta)))
        return Path(f"(virtual)/{len(self.night.frames)}")

    async def save(self, frame: Any, meta: dict[str, Any], path: Path | None = None) -> Path:
        return path or self.allocate(frame, meta)


class _Stored(_Frames):
    """The night's frame store, recording what it was handed and the files it wrote."""

    def __init__(self, store: Any, night: Night) -> None:
        super().__init__(night)
        self.store = store

    def allocate(self, frame: Frame, meta: dict[str, Any]) -> Path:
        super().allocate(frame, meta)
        return Path(self.store.allocate(frame, meta))

    async def save(self, frame: Any, meta: dict[str, Any], path: Path | None = None) -> Path:
        written = Path(await self.store.save(frame, meta, path))
        self.night.files.append(written)
        return written


class _Stacking:
    """A live stacker that records what it is asked (begin, submit, end, calibration)."""

    def __init__(self, night: Night) -> None:
        self.night = night

    def begin(self, ct: Any) -> _Stacking:
        self.night.stack.append(("begin", ct.target.name))
        return self

    def submit(self, path: Path) -> bool:
        self.night.stack.append(("submit", str(path)))
        return True

    async def end(self) -> None:
        self.night.stack.append(("end", None))

    def end_later(self) -> None:
        self.night.stack.append(("end", None))

    def calibration_frame(self, path: Path, kind: str) -> None:
        self.night.stack.append(("calibration", kind))


class _Solver:
    """A plate solver on a mount that never lands where it is aimed: the first frame solves
    ``miss`` arcsec north of the target, and each correction overshoots so that every later
    frame does too."""

    def __init__(self, miss: float, night: Night) -> None:
        self.miss = miss
        self.night = night
        self.solved = 0

    def scale_arcsec(self, binning: int) -> float:
        return 1.9 * binning

    async def solve(self, frame: Any, name: str, hints: Any, timeout: float) -> Any:
        self.night.solves.append(timeout)
        self.solved += 1
        north = self.solved * self.miss / 3600.0  # from the mount: the last correction's miss
        sol = SimpleNamespace(ra=hints.ra, dec=hints.dec + north, seconds=1.0, solver="fake")
        return sol, Path(f"(virtual)/{name}.fits")


def _slow(camera: Any, lag: float) -> None:
    """The camera reads out ``lag`` s slower than its profile says, and reports itself
    downloading meanwhile, as a real camera's status does (the nominal camera's status
    sleeps to the end of the readout, where no timeout could see it)."""
    camera.download += lag

    async def status() -> ExposureState:
        if camera._end is None:
            return ExposureState.idle
        if camera.now() < camera._end:
            return ExposureState.downloading
        return ExposureState.ready

    camera.exposure_status = status


def _spy(guider: Any, out: Night) -> None:
    """Record the guider's ``guide``, ``dither`` and ``pause`` calls with their arguments."""
    for name in ("guide", "dither", "pause"):
        method = getattr(guider, name)
        params = list(inspect.signature(method).parameters)

        def wrapper(*args: Any, _m: Any = method, _n: str = name, _p: list[str] = params,
                    **kw: Any) -> Any:
            out.guider.append((_n, {**dict(zip(_p, args, strict=False)), **kw}))
            return _m(*args, **kw)

        setattr(guider, name, wrapper)


def load(tmp: Path, plan: dict[str, Any], profile: dict[str, Any]) -> Any:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "eq.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    (tmp / "plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return load_plan(tmp / "plan.yaml")


def night(tmp: Path, plan: dict[str, Any], profile: dict[str, Any],
          start: datetime = START, *, store: bool = False,
          guide_rms: float | None = None, hfr: list[float] | None = None,
          temperature_drift: float | None = None, stacking: bool = False,
          camera_lag: float = 0.0, solver_miss: float | None = None) -> Night:
    """Validate ``plan`` with ``profile`` (in ``tmp``) and run it on the virtual clock. With
    ``store``, the night's frame store writes the (1×1 pixel) frames under ``tmp/data`` as a
    night does, and ``Night.files`` lists them. With ``guide_rms``, the guider reports that
    total RMS (arcsec) over every interval, as a guider in poor seeing would. With ``hfr``,
    the light frames measure these HFRs in turn (px); with ``temperature_drift``, the
    focuser's sensor reads the ambient changing by that many °C per hour. With ``stacking``,
    a live stacker is attached and ``Night.stack`` lists what the executor asked of it. With
    ``camera_lag``, the camera reads out that many seconds slower than its profile says. With
    ``solver_miss``, slews centre with a plate solver that finds every frame that many arcsec
    north of the target (``Night.solves`` lists the time limits it was given)."""
    loaded = load(tmp, plan, profile)
    assert loaded.ok, [d.format() for d in loaded.diagnostics]
    assert loaded.plan is not None and loaded.equipment is not None
    p, eq = loaded.plan, loaded.equipment
    out = Night()
    tz = site_tz(p)
    frames: Any = _Frames(out)
    if store:
        from runner.engine.framestore import FrameStore

        frames = _Stored(FrameStore(tmp / "data", p, eq, "effects"), out)

    def prepare(rig: NominalRig, services: Any) -> None:
        """What the nominal rig does not model, as the case asks."""
        clock = rig.camera.clock
        if camera_lag:
            _slow(rig.camera, camera_lag)
        if rig.guider is not None:
            _spy(rig.guider, out)
            if guide_rms is not None:
                stats = GuideStats(guide_rms, 0.0, guide_rms, "arcsec", 10)
                rig.guider.stats = lambda: stats  # type: ignore[method-assign]
        if solver_miss is not None:
            services.solver = _Solver(solver_miss, out)
        if stacking:
            services.stacking = _Stacking(out)
        if hfr is not None:
            measured = iter(hfr)
            services.measure_hfr = lambda _pixels: next(measured)
        if temperature_drift is not None and rig.focuser is not None:
            drift, ambient = temperature_drift, eq.simulation.ambient

            async def temperature() -> float:
                return ambient + drift * clock.monotonic() / 3600.0

            rig.focuser.temperature = temperature  # type: ignore[method-assign]

    try:
        rp = replay(p, eq, start, visibility_factory(p, start, tz), tz, horizon=HORIZON,
                    frames=frames, prepare=prepare)
    finally:
        if store:
            frames.store.close()
    out.events = rp.events
    out.end = rp.end
    out.fatal = rp.fatal
    out.outcome = "horizon" if rp.horizon_hit else rp.outcome
    return out
