"""Every key of the plan and profile languages does something, or validation rejects it.

``AUDIT`` lists every field of every model reachable from ``Plan``, ``IncludedPlan`` and
``Equipment``: either where the engine (or the estimate, or validation itself) reads it — the
file and a line of code that must still be there — or the plan/profile text that sets it and
the error ``validate`` gives. A new field without an entry fails
``test_every_field_has_an_entry``: decide what it does before it ships.

Options that work only in some combinations (``address`` on a simulated device, ``at_frame`` on
the weather, ``timeout`` on a ``repeat``) are in tests/plan/test_profile_validation.py.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from runner.plan import equipment, models
from runner.plan.loader import load_equipment, load_plan

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Used:
    """Read at ``where`` (repository path) by the code ``needle``."""

    where: str
    needle: str


@dataclass(frozen=True)
class Rejected:
    """Accepted by the schema for its default only: ``text`` (a step, a trigger or a profile
    line, see ``_validate``) must fail with ``message``."""

    where: str  # "step", "trigger" or "profile"
    text: str
    message: str


EX = "runner/engine/executor.py"
RUN = "runner/engine/run.py"
COMP = "runner/engine/compiler.py"
TRIG = "runner/engine/triggers.py"
STORE = "runner/engine/framestore.py"
LINK = "runner/engine/stacking_link.py"
SEM = "runner/plan/semantic.py"
LOAD = "runner/plan/loader.py"
SKY = "runner/sky/constraints.py"
WORLD = "runner/devices/sim/world.py"
SIMCAM = "runner/devices/sim/camera.py"
WALK = "runner/estimate/walk.py"
NOT_YET = "is not implemented yet"
NOTIFY = "runner/notify/notifier.py"
CHANNELS = "runner/notify/channels.py"

AUDIT: dict[str, Used | Rejected] = {
    # ---- plan
    "Plan.version": Used("runner/plan/models.py", "version: Literal[1]"),
    "Plan.name": Used(RUN, '"plan_name": self.plan.name'),
    "Plan.site": Used(RUN, "build_devices(eq, self.clock, site=self.plan.site)"),
    "Plan.equipment": Used(LOAD, "resolve_equipment_path(plan.equipment, path)"),
    "Plan.include": Used(LOAD, 'includes = data.get("include")'),
    "Plan.defaults": Used(EX, "self.p.plan.defaults.expose"),
    "Plan.startup": Used(COMP, "c.nodes(plan.startup"),
    "Plan.triggers": Used("runner/plan/models.py", "for item in self.triggers"),
    "Plan.targets": Used(COMP, "enumerate(plan.targets)"),
    "Plan.blocks": Used(COMP, "self.plan.blocks[step.use]"),
    "Plan.shutdown": Used(COMP, "c.nodes(plan.shutdown"),
    "Plan.on_error": Used(COMP, "plan.on_error"),
    "Plan.notify": Used(NOTIFY, "Notifier(run.plan.notify, run.plan.name)"),
    "Notify.command": Used(NOTIFY, "argv = cfg.argv()"),
    "Notify.webhook": Used(NOTIFY, "if cfg.webhook is not None:"),
    "Notify.webhook_token_env": Used(NOTIFY, "cfg.webhook, cfg.webhook_token_env"),
    "Notify.email": Used(NOTIFY, "if cfg.email is not None:"),
    "Notify.on": Used(NOTIFY, "kind not in cfg.on"),
    "Notify.retries": Used(NOTIFY, "attempts = cfg.retries + 1"),
    "Notify.backoff": Used(NOTIFY, "delay = cfg.backoff"),
    "Notify.timeout": Used(NOTIFY, "timeout = cfg.timeout"),
    "NotifyEmail.host": Used(CHANNELS, "smtplib.SMTP(cfg.host, cfg.port"),
    "NotifyEmail.port": Used(CHANNELS, "smtplib.SMTP(cfg.host, cfg.port"),
    "NotifyEmail.from_": Used(CHANNELS, 'msg["From"] = cfg.from_'),
    "NotifyEmail.to": Used(CHANNELS, 'msg["To"] = ", ".join(cfg.to)'),
    "NotifyEmail.starttls": Used(CHANNELS, "if cfg.starttls:"),
    "NotifyEmail.username": Used(CHANNELS, "smtp.login(cfg.username, password)"),
    "NotifyEmail.password_env": Used(CHANNELS, 'secret(cfg.password_env, "e-mail")'),
    "IncludedPlan.include": Used(LOAD, "_merge_includes(doc.data"),
    "IncludedPlan.blocks": Used(LOAD, 'doc.data.get("blocks")'),
    "IncludedPlan.targets": Used(LOAD, 'doc.data.get("targets")'),
    "Site.latitude": Used("runner/sky/ephemeris.py", "lat=site.latitude"),
    "Site.longitude": Used("runner/sky/ephemeris.py", "lon=site.longitude"),
    "Site.elevation": Used("runner/sky/ephemeris.py", "height=site.elevation"),
    "Site.timezone": Used("runner/sky/timeutil.py", "ZoneInfo(site.timezone)"),
    "Defaults.expose": Used(EX, "self.p.plan.defaults.expose"),
    "Defaults.settle": Used(COMP, "defaults.settle"),
    "Defaults.guiding": Used(EX, "defaults.guiding"),
    "Defaults.output": Used(STORE, "self.plan.defaults.output"),
    "ExposeSettings.gain": Used(EX, "else d.gain"),
    "ExposeSettings.offset": Used(EX, "else d.offset"),
    "ExposeSettings.binning": Used(EX, "a.binning or d.binning"),
    "GuidingOptions.pause_during": Used(EX, "pause_during"),
    "Settle.pixels": Used(EX, "st.pixels"),
    "Settle.time": Used(EX, "st.time"),
    "Settle.timeout": Used(EX, "st.timeout"),
    "ErrorPolicy.retry": Used(EX, "policy.retry"),
    "ErrorPolicy.backoff": Used(EX, "policy.backoff"),
    "ErrorPolicy.then": Used(EX, "policy.then"),
    # ---- steps
    "StepBase.timeout": Used(COMP, "step.timeout"),
    "StepBase.on_error": Used(COMP, "step.on_error or policy"),
    "CoolStep.cool": Used(EX, "step.cool"),
    "WarmStep.warm": Used(EX, "step.warm"),
    "CoolArgs.to": Used(EX, "args.to"),
    "CoolArgs.rate": Used(EX, "args.rate"),
    "CoolArgs.timeout": Used(EX, "args.timeout"),
    "FilterStep.filter": Used(EX, "step.filter"),
    "FocusStep.focus": Used(EX, "step.focus"),
    "FocusArgs.position": Used(EX, "f.position"),
    "FocusArgs.by": Used(EX, "f.by"),
    "FocusArgs.auto": Used(EX, "step.focus.auto"),
    "FocusAuto.steps": Used(RUN, "settings.steps"),
    "FocusAuto.step_size": Used(RUN, "settings.step_size"),
    "FocusAuto.exposure": Used(RUN, "exposure=settings.exposure"),
    "FocusAuto.fit": Used(RUN, "fit=settings.fit"),
    "ExposeStep.expose": Used(EX, "step.expose"),
    "ExposeArgs.count": Used(EX, "range(a.count)"),
    "ExposeArgs.exposure": Used(EX, "a.exposure"),
    "ExposeArgs.type": Used(EX, "a.type"),
    "ExposeArgs.filter": Used(EX, "a.filter"),
    "ExposeArgs.gain": Used(EX, "a.gain"),
    "ExposeArgs.offset": Used(EX, "a.offset"),
    "ExposeArgs.binning": Used(EX, "a.binning"),
    "ExposeArgs.roi": Used(EX, "a.roi"),
    "Roi.x": Used(EX, "a.roi.x"),
    "Roi.y": Used(EX, "a.roi.y"),
    "Roi.width": Used(EX, "a.roi.width"),
    "Roi.height": Used(EX, "a.roi.height"),
    "GuideStep.guide": Used(EX, "step.guide"),
    "GuideArgs.action": Used(EX, "guide.action"),
    "GuideArgs.settle": Used(EX, "step.guide.settle"),
    "GuideArgs.recalibrate": Used(EX, "step.guide.recalibrate"),
    "DitherStep.dither": Used(EX, "step.dither"),
    "DitherArgs.amount": Used(EX, "d.amount"),
    "DitherArgs.ra_only": Used(EX, "d.ra_only"),
    "DitherArgs.settle": Used(EX, "step.dither.settle"),
    "WaitStep.wait": Used(EX, "step.wait"),
    "WaitArgs.for_": Used(EX, "w.for_"),
    "WaitArgs.until": Used(EX, "w.until"),
    "WaitArgs.altitude": Used(EX, "w.altitude"),
    "SlewStep.slew": Used(EX, "step.slew"),
    "SlewArgs.ra": Used(EX, "step.slew.ra"),
    "SlewArgs.dec": Used(EX, "step.slew.dec"),
    "SlewArgs.center": Rejected("step", "slew: {center: true}", "plate-solve centring is coming"),
    "ParkStep.park": Used(EX, "actions.park("),
    "StackStep.stack": Used(EX, "step.stack"),
    "CalibrationStep.calibration": Used(EX, "step.calibration"),
    "CalibrationArgs.kind": Used(EX, "c.kind"),
    "CalibrationArgs.count": Used(EX, "c.count"),
    "CalibrationArgs.exposures": Used(EX, "c.exposures"),
    "CalibrationArgs.filters": Used(EX, "c.filters"),
    "CalibrationArgs.gain": Used(EX, "gain=c.gain"),
    "CalibrationArgs.offset": Used(EX, "offset=c.offset"),
    "CalibrationArgs.binning": Used(EX, "binning=c.binning"),
    "CalibrationArgs.master": Rejected(
        "step", "calibration: {kind: bias, master: true}", "calibration masters are coming"
    ),
    "UseStep.use": Used(COMP, "step.use"),
    "RepeatStep.repeat": Used(COMP, "step.repeat"),
    "RepeatStep.steps": Used(COMP, "step.steps"),
    "RepeatArgs.count": Used(EX, "spec.count"),
    "RepeatArgs.until": Used(EX, "spec.until"),
    "RepeatUntil.time": Used(EX, "until.time"),
    "RepeatUntil.altitude_below": Used(EX, "until.altitude_below"),
    "RepeatUntil.frames": Used(EX, "until.frames"),
    "EachFilterStep.each_filter": Used(COMP, "step.each_filter"),
    "EachFilterStep.steps": Used(COMP, "step.steps"),
    # ---- triggers
    "TriggerItem.dither": Used(EX, "tr.dither"),
    "TriggerItem.autofocus": Used(EX, "tr.autofocus"),
    "TriggerItem.meridian_flip": Used(EX, "tr.meridian_flip"),
    "TriggerItem.guiding_rms": Used(EX, "tr.guiding_rms"),
    "TriggerItem.star_lost": Used(EX, "tr.star_lost"),
    # the monitor is watched whenever the profile has one; the trigger needs that device
    "TriggerItem.safety": Used(SEM, 'k == "safety" and eq.safety is None'),
    "DitherTrigger.every": Used(TRIG, "d.every"),
    "DitherTrigger.amount": Used(EX, "d.amount"),
    "DitherTrigger.ra_only": Used(EX, "d.ra_only"),
    "DitherTrigger.settle": Used(EX, "d.settle"),
    "DitherTrigger.on_settle_failure": Used(EX, "d.on_settle_failure"),
    "AutofocusTrigger.temperature_change": Used(TRIG, "af.temperature_change"),
    "AutofocusTrigger.hfr_increase": Used(TRIG, "af.hfr_increase"),
    "AutofocusTrigger.filter_change": Used(TRIG, "af.filter_change"),
    "AutofocusTrigger.every_minutes": Used(TRIG, "af.every_minutes"),
    "AutofocusTrigger.every_frames": Used(TRIG, "af.every_frames"),
    "AutofocusTrigger.settings": Used(EX, "tr.autofocus.settings"),
    "MeridianFlipTrigger.after": Used(EX, "mf.after"),
    "MeridianFlipTrigger.pause_before": Rejected(
        "trigger", "meridian_flip: {pause_before: 2}", f"'pause_before' {NOT_YET}"
    ),
    "GuidingRmsTrigger.max_rms": Used(EX, "gate.max_rms"),
    "GuidingRmsTrigger.wait": Used(EX, "gate.wait"),
    "StarLostTrigger.wait": Used(EX, "sl.wait"),
    "StarLostTrigger.restart_guiding": Used(EX, "sl.restart_guiding"),
    "StarLostTrigger.then": Used(EX, "sl.then"),
    "SafetyTrigger.wait_for_safe": Rejected(
        "trigger", "safety: {wait_for_safe: 60}", f"'wait_for_safe' {NOT_YET}"
    ),
    # ---- targets
    "Target.name": Used(EX, "target.name"),
    "Target.coordinates": Used(EX, "t.coordinates"),
    "Target.constraints": Used("runner/sky/visibility.py", "target.constraints, reference"),
    "Target.wait": Used(EX, "ct.target.wait"),
    "Target.stack": Used(LINK, "ct.target.stack"),
    "Target.on_error": Used(COMP, "t.on_error"),
    "Target.sequence": Used(COMP, "t.sequence"),
    "Coordinates.ra": Used(EX, "coordinates.ra"),
    "Coordinates.dec": Used(EX, "coordinates.dec"),
    "Constraints.min_altitude": Used(SKY, "c.min_altitude"),
    "Constraints.max_airmass": Used(SKY, "c.max_airmass"),
    "Constraints.twilight": Used(SKY, "c.twilight"),
    "Constraints.max_sun_altitude": Used(SKY, "c.max_sun_altitude"),
    "Constraints.moon_separation": Used(SKY, "c.moon_separation"),
    "Constraints.max_moon_illumination": Used(SKY, "c.max_moon_illumination"),
    "Constraints.after": Used(SKY, "c.after"),
    "Constraints.until": Used(SKY, "c.until"),
    "WaitPolicy.max": Used(EX, "wait.max"),
    "WaitPolicy.then": Used(EX, "wait.then"),
    "StackOptions.align": Used(LINK, "opts.align"),
    "StackOptions.reject": Used(LINK, "opts.reject"),
    "StackOptions.kappa": Used(LINK, "opts.kappa"),
    "StackOptions.flip": Used(LINK, "opts.flip"),
    "StackOptions.field_rotation": Used(LINK, "opts.field_rotation"),
    "StackOptions.auto_stretch": Used(LINK, "opts.auto_stretch"),
    "StackOptions.calibration": Used(LINK, "opts.calibration"),
    # ---- equipment profile
    "Equipment.name": Used(SEM, "eq.name"),
    "Equipment.camera": Used("runner/devices/factory.py", "equipment.camera"),
    "Equipment.filter_wheel": Used("runner/devices/factory.py", "equipment.filter_wheel"),
    "Equipment.focuser": Used("runner/devices/factory.py", "equipment.focuser"),
    "Equipment.mount": Used("runner/devices/factory.py", "equipment.mount"),
    "Equipment.guider": Used("runner/guiding/session.py", "equipment.guider"),
    "Equipment.safety": Used("runner/devices/factory.py", "equipment.safety"),
    "Equipment.focal_length": Used(STORE, "self.eq.focal_length"),
    "Equipment.telescope": Used(STORE, "self.eq.telescope"),
    "Equipment.data_dir": Used(RUN, "eq.data_dir"),
    "Equipment.simulation": Used(RUN, "equipment.simulation.speed"),
    "Equipment.exposure_margin": Used(EX, "equipment.exposure_margin"),
    "Equipment.cool_timeout": Rejected(
        "profile", "cool_timeout: 600", "'cool_timeout' is not used"
    ),
    "Equipment.autofocus_overhead": Used(WALK, "eq.autofocus_overhead"),
    "Connection.backend": Used("runner/devices/factory.py", "conn.backend"),
    "Connection.address": Used("runner/devices/alpaca/build.py", "conn.address"),
    "Connection.device": Used("runner/devices/alpaca/build.py", "conn.device"),
    "CameraProfile.name": Used(STORE, "instrument=self.eq.camera.name"),
    "CameraProfile.width": Used(SEM, "cam.width"),
    "CameraProfile.height": Used(SEM, "cam.height"),
    "CameraProfile.pixel_size": Used(STORE, "camera.pixel_size"),
    "CameraProfile.max_binning": Used(SEM, "cam.max_binning"),
    "CameraProfile.gain_range": Used(SEM, "cam.gain_range"),
    "CameraProfile.offset_range": Used(SEM, "cam.offset_range"),
    "CameraProfile.egain": Used(STORE, "camera.egain"),
    "CameraProfile.read_noise": Used("runner/devices/sim/sensor.py", "profile.read_noise"),
    "CameraProfile.download_time": Used(EX, "camera.download_time"),
    "CameraProfile.cooler": Used(SEM, "cam.cooler"),
    "CameraProfile.bayer": Used(SIMCAM, "p.bayer"),
    "FilterWheelProfile.filters": Used(EX, "fw.filters"),
    "FilterWheelProfile.change_time": Used(EX, "filter_wheel.change_time"),
    "FilterSpec.name": Used("runner/plan/equipment.py", "f.name for f in self.filter_wheel"),
    "FilterSpec.focus_offset": Used(EX, "f.focus_offset"),
    "FocuserProfile.min_position": Used(SEM, "eq.focuser.min_position"),
    "FocuserProfile.max_position": Used(SEM, "eq.focuser.max_position"),
    "FocuserProfile.speed": Used("runner/devices/sim/focuser.py", "profile.speed"),
    "FocuserProfile.backlash": Used(RUN, "eq.focuser.backlash"),
    "FocuserProfile.step_size": Used(RUN, "eq.focuser.step_size"),
    "FocuserProfile.move_timeout": Used(EX, "focuser.move_timeout"),
    "MountProfile.slew_rate": Used("runner/devices/sim/mount.py", "profile.slew_rate"),
    "MountProfile.settle_time": Used(EX, "mount.settle_time"),
    "MountProfile.slew_timeout": Used(EX, "mount.slew_timeout"),
    "GuiderProfile.backend": Used("runner/guiding/session.py", "profile.backend"),
    "GuiderProfile.host": Used("runner/guiding/phd2_guider.py", "profile.host"),
    "GuiderProfile.port": Used("runner/guiding/phd2_guider.py", "profile.port"),
    "GuiderProfile.profile": Used("runner/guiding/phd2_guider.py", "profile=profile.profile"),
    "GuiderProfile.pixel_scale": Used("runner/guiding/phd2_guider.py", "profile.pixel_scale"),
    "GuiderProfile.exposure": Used("runner/guiding/phd2_guider.py", "profile.exposure"),
    "Simulation.seed": Used(WORLD, "simulation.seed"),
    "Simulation.speed": Used(RUN, "equipment.simulation.speed"),
    "Simulation.ambient": Used(WORLD, "sim.ambient"),
    "Simulation.best_focus": Used(WORLD, "simulation.best_focus"),
    "Simulation.focus_drift": Used(WORLD, "sim.focus_drift"),
    "Simulation.ambient_drift": Used(WORLD, "sim.ambient_drift"),
    "Simulation.stars": Used(SIMCAM, "sim.stars"),
    "Simulation.sky_background": Used(SIMCAM, "sim.sky_background"),
    "Simulation.tracking_drift": Used(WORLD, "simulation.tracking_drift"),
    "Simulation.faults": Used(WORLD, "simulation.faults"),
    "Fault.kind": Used(WORLD, "f.kind != kind"),
    "Fault.at_frame": Used(WORLD, "f.at_frame"),
    "Fault.at_time": Used(WORLD, "f.at_time"),
    "Fault.duration": Used(WORLD, "f.duration"),
    "Fault.times": Used(WORLD, "f.times"),
}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def _reachable() -> list[type[BaseModel]]:
    roots: list[type[BaseModel]] = [
        models.Plan, models.IncludedPlan, *models.STEP_KINDS.values(), equipment.Equipment
    ]
    seen: list[type[BaseModel]] = []
    while roots:
        m = roots.pop()
        if m in seen:
            continue
        seen.append(m)
        for f in m.model_fields.values():
            roots += _models_in(f.annotation)
    return seen


def _owner(model: type[BaseModel], field: str) -> str:
    """The class that declares ``field`` (``CameraProfile.address`` is ``Connection``'s)."""
    for base in reversed(model.__mro__):
        if isinstance(base, type) and issubclass(base, BaseModel) and field in getattr(
            base, "__annotations__", {}
        ):
            return base.__name__
    return model.__name__


def all_fields() -> set[str]:
    return {f"{_owner(m, name)}.{name}" for m in _reachable() for name in m.model_fields}


def test_every_field_has_an_entry() -> None:
    fields = all_fields()
    missing = sorted(fields - AUDIT.keys())
    assert not missing, f"fields without an audit entry (add them to AUDIT): {missing}"
    stale = sorted(AUDIT.keys() - fields)
    assert not stale, f"audit entries for fields that no longer exist: {stale}"


@pytest.mark.parametrize(
    "field", sorted(k for k, v in AUDIT.items() if isinstance(v, Used))
)
def test_a_used_field_is_read_where_the_table_says(field: str) -> None:
    entry = AUDIT[field]
    assert isinstance(entry, Used)
    text = (ROOT / entry.where).read_text(encoding="utf-8")
    assert entry.needle in text, f"{field}: '{entry.needle}' no longer in {entry.where}"


PLAN = """\
version: 1
name: audit
site: {{latitude: 52, longitude: 5, timezone: Europe/Amsterdam}}
equipment: eq.yaml
triggers:
  - {trigger}
targets:
  - name: T
    coordinates: {{ra: "10:00:00", dec: "+60:00:00"}}
    sequence:
      - {step}
"""
PROFILE = """\
name: audit rig
mount: {{backend: simulator}}
safety: {{backend: simulator}}
{profile}
"""
#: Where the option under test stands: (file, line).
LINES = {"step": ("plan.yaml", 11), "trigger": ("plan.yaml", 6), "profile": ("eq.yaml", 4)}


def _validate(tmp_path: Path, entry: Rejected) -> list[str]:
    """Diagnostics of a plan (and profile) with ``entry.text`` at its place, else defaults."""
    text = {entry.where: entry.text}
    (tmp_path / "eq.yaml").write_text(PROFILE.format(profile=text.get("profile", "")))
    (tmp_path / "plan.yaml").write_text(PLAN.format(
        trigger=text.get("trigger", "meridian_flip: {}"),
        step=text.get("step", "expose: {exposure: 1}"),
    ))
    if entry.where == "profile":
        _, diags = load_equipment(tmp_path / "eq.yaml")
    else:
        diags = load_plan(tmp_path / "plan.yaml").diagnostics
    return [d.format() for d in diags]


@pytest.mark.parametrize(
    "field", sorted(k for k, v in AUDIT.items() if isinstance(v, Rejected))
)
def test_an_option_that_does_nothing_yet_is_rejected_at_its_line(
    tmp_path: Path, field: str
) -> None:
    entry = AUDIT[field]
    assert isinstance(entry, Rejected)
    messages = _validate(tmp_path, entry)
    file, line = LINES[entry.where]
    hits = [m for m in messages if entry.message in m]
    assert hits, messages
    assert all(m.startswith(f"{tmp_path / file}:{line}:") and ": error: " in m for m in hits), hits


def test_the_defaults_of_rejected_options_validate(
    write_plan: Callable[..., Path],
) -> None:
    """Rejecting ``center: true`` must not reject ``center: false`` (or leaving it out)."""
    plan = write_plan(
        """\
        version: 1
        name: defaults
        site: {latitude: 52, longitude: 5, timezone: Europe/Amsterdam}
        triggers:
          - meridian_flip: {after: 5, pause_before: 0}
          - safety: {wait_for_safe: 0}
        targets:
          - name: T
            coordinates: {ra: "10:00:00", dec: "+60:00:00"}
            sequence:
              - slew: {center: false}
              - calibration: {kind: bias, count: 2, master: false}
              - calibration: {kind: dark, exposures: [10], count: 2}
        """
    )
    result = load_plan(plan)
    assert result.ok, [d.format() for d in result.diagnostics]
