"""Every key of the plan and profile languages does something, or validation rejects it.

``AUDIT`` lists every field of every model reachable from ``Plan``, ``IncludedPlan`` and
``Equipment``: either where the engine (or the estimate, or validation itself) reads it — the
file and a line of code that must still be there — or the plan/profile text that sets it and
the error ``validate`` gives. A new field without an entry fails
``test_every_field_has_an_entry``: decide what it does before it ships.

Options that work only in some combinations (``address`` on a simulated device, ``at_frame`` on
the weather, ``timeout`` on a ``repeat``) are in tests/plan/test_profile_validation.py.

``Used`` says only that the code still reads the field. What the field *does* is shown in
tests/plan/test_option_effects.py: a mutation case on the virtual clock for every field a dry
run can show, else a reference to the test that shows its effect.
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
SERVICES = "runner/engine/run_services.py"
COMP = "runner/engine/compiler.py"
TRIG = "runner/engine/triggers.py"
STORE = "runner/engine/framestore.py"
LINK = "runner/engine/stacking_link.py"
SEM = "runner/plan/semantic.py"
LOAD = "runner/plan/loader.py"
SKY = "runner/sky/constraints.py"
WORLD = "runner/devices/sim/world.py"
SIMCAM = "runner/devices/sim/camera.py"
EXEC_FRAMES = "runner/engine/exec_frames.py"
EXEC_GUIDING = "runner/engine/exec_guiding.py"
EXEC_POLICY = "runner/engine/exec_policy.py"
EXEC_FOCUS = "runner/engine/exec_focus.py"
EXEC_GAPS = "runner/engine/exec_gaps.py"
EXEC_MOUNT = "runner/engine/exec_mount.py"
EXEC_CORE = "runner/engine/exec_core.py"
EXEC_CENTRE = "runner/engine/exec_centre.py"
NOMINAL = "runner/devices/sim/nominal.py"
NOT_YET = "is not implemented yet"
NOTIFY = "runner/notify/notifier.py"
CHANNELS = "runner/notify/channels.py"

AUDIT: dict[str, Used | Rejected] = {
    # ---- plan
    "Plan.version": Used("runner/plan/models/plan.py", "version: Literal[1]"),
    "Plan.name": Used("runner/engine/run_dirs.py", '"plan_name": plan_name'),
    "Plan.site": Used(SERVICES, "build_devices(eq, run.clock, site=run.plan.site)"),
    "Plan.equipment": Used(LOAD, "resolve_equipment_path(plan.equipment, path)"),
    "Plan.include": Used(LOAD, 'includes = data.get("include")'),
    "Plan.defaults": Used(EXEC_FRAMES, "self.p.plan.defaults.expose"),
    "Plan.startup": Used(COMP, "c.nodes(plan.startup"),
    "Plan.triggers": Used("runner/plan/models/plan.py", "for item in self.triggers"),
    "Plan.targets": Used(COMP, "enumerate(plan.targets)"),
    "Plan.blocks": Used(COMP, "self.plan.blocks[step.use]"),
    "Plan.shutdown": Used(COMP, "c.nodes(plan.shutdown"),
    "Plan.on_error": Used(COMP, "plan.on_error"),
    "Plan.notify": Used(NOTIFY, "Notifier(run.plan.notify, run.plan.name,"),
    "Notify.command": Used(NOTIFY, "argv = cfg.argv()"),
    "Notify.webhook": Used(NOTIFY, "if cfg.webhook is not None and"),
    "Notify.webhook_token_env": Used(NOTIFY, "cfg.webhook, cfg.webhook_token_env"),
    "Notify.email": Used(NOTIFY, "if cfg.email is not None and"),
    "Notify.on": Used(NOTIFY, "if kind in ch.cfg.on"),
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
    "Defaults.expose": Used(EXEC_FRAMES, "self.p.plan.defaults.expose"),
    "Defaults.settle": Used(COMP, "defaults.settle"),
    "Defaults.guiding": Used(EXEC_GUIDING, "defaults.guiding"),
    "Defaults.output": Used(STORE, "self.plan.defaults.output"),
    "ExposeSettings.gain": Used(EXEC_FRAMES, "else d.gain"),
    "ExposeSettings.offset": Used(EXEC_FRAMES, "else d.offset"),
    "ExposeSettings.binning": Used(EXEC_FRAMES, "a.binning or d.binning"),
    "GuidingOptions.pause_during": Used(EXEC_GUIDING, "pause_during"),
    "Settle.pixels": Used(EXEC_GUIDING, "st.pixels"),
    "Settle.time": Used(EXEC_GUIDING, "st.time"),
    "Settle.timeout": Used(EXEC_GUIDING, "st.timeout"),
    "ErrorPolicy.retry": Used(EXEC_POLICY, "policy.retry"),
    "ErrorPolicy.backoff": Used(EXEC_POLICY, "policy.backoff"),
    "ErrorPolicy.then": Used(EXEC_POLICY, "policy.then"),
    # ---- steps
    "StepBase.timeout": Used(COMP, "step.timeout"),
    "StepBase.on_error": Used(COMP, "step.on_error or policy"),
    "CoolStep.cool": Used(EXEC_POLICY, "step.cool"),
    "WarmStep.warm": Used(EXEC_POLICY, "step.warm"),
    "CoolArgs.to": Used(EXEC_POLICY, "args.to"),
    "CoolArgs.rate": Used(EXEC_POLICY, "args.rate"),
    "CoolArgs.timeout": Used(EXEC_POLICY, "args.timeout"),
    "FilterStep.filter": Used(EXEC_POLICY, "step.filter"),
    "FocusStep.focus": Used(EXEC_FOCUS, "step.focus"),
    "FocusArgs.position": Used(EXEC_FOCUS, "f.position"),
    "FocusArgs.by": Used(EXEC_FOCUS, "f.by"),
    "FocusArgs.auto": Used(EXEC_POLICY, "step.focus.auto"),
    "FocusAuto.steps": Used(SERVICES, "settings.steps"),
    "FocusAuto.step_size": Used(SERVICES, "settings.step_size"),
    "FocusAuto.exposure": Used(SERVICES, "exposure=settings.exposure"),
    "FocusAuto.fit": Used(SERVICES, "fit=settings.fit"),
    "ExposeStep.expose": Used(EXEC_POLICY, "step.expose"),
    "ExposeArgs.count": Used(EXEC_FRAMES, "range(a.count)"),
    "ExposeArgs.exposure": Used(EXEC_FRAMES, "a.exposure"),
    "ExposeArgs.type": Used(EXEC_FRAMES, "a.type"),
    "ExposeArgs.filter": Used(EXEC_FRAMES, "a.filter"),
    "ExposeArgs.gain": Used(EXEC_FRAMES, "a.gain"),
    "ExposeArgs.offset": Used(EXEC_FRAMES, "a.offset"),
    "ExposeArgs.binning": Used(EXEC_FRAMES, "a.binning"),
    "ExposeArgs.roi": Used(EXEC_FRAMES, "a.roi"),
    "Roi.x": Used(EXEC_FRAMES, "a.roi.x"),
    "Roi.y": Used(EXEC_FRAMES, "a.roi.y"),
    "Roi.width": Used(EXEC_FRAMES, "a.roi.width"),
    "Roi.height": Used(EXEC_FRAMES, "a.roi.height"),
    "GuideStep.guide": Used(EXEC_POLICY, "step.guide"),
    "GuideArgs.action": Used(EXEC_POLICY, "guide.action"),
    "GuideArgs.settle": Used(EXEC_POLICY, "step.guide.settle"),
    "GuideArgs.recalibrate": Used(EXEC_POLICY, "step.guide.recalibrate"),
    "DitherStep.dither": Used(EXEC_POLICY, "step.dither"),
    "DitherArgs.amount": Used(EXEC_GAPS, "d.amount"),
    "DitherArgs.ra_only": Used(EXEC_GAPS, "d.ra_only"),
    "DitherArgs.settle": Used(EXEC_POLICY, "step.dither.settle"),
    "WaitStep.wait": Used(EXEC_POLICY, "step.wait"),
    "WaitArgs.for_": Used(EXEC_POLICY, "w.for_"),
    "WaitArgs.until": Used(EXEC_POLICY, "w.until"),
    "WaitArgs.altitude": Used(EXEC_POLICY, "w.altitude"),
    "SlewStep.slew": Used(EXEC_MOUNT, "step.slew"),
    "SlewArgs.ra": Used(EXEC_MOUNT, "step.slew.ra"),
    "SlewArgs.dec": Used(EXEC_MOUNT, "step.slew.dec"),
    "SlewArgs.center": Used(EXEC_MOUNT, "step.slew.center"),
    "CenterArgs.tolerance": Used(EXEC_CENTRE, "error <= c.tolerance"),
    "CenterArgs.attempts": Used(EXEC_CENTRE, "range(1, c.attempts + 1)"),
    "CenterArgs.exposure": Used(EXEC_CENTRE, "c.exposure, \"light\", timeout"),
    "CenterArgs.solve_timeout": Used(EXEC_CENTRE, "c.solve_timeout)"),
    "ParkStep.park": Used(EXEC_POLICY, "actions.park("),
    "StackStep.stack": Used(EXEC_POLICY, "step.stack"),
    "CalibrationStep.calibration": Used(EXEC_FRAMES, "step.calibration"),
    "CalibrationArgs.kind": Used(EXEC_FRAMES, "c.kind"),
    "CalibrationArgs.count": Used(EXEC_FRAMES, "c.count"),
    "CalibrationArgs.exposures": Used(EXEC_FRAMES, "c.exposures"),
    "CalibrationArgs.filters": Used(EXEC_FRAMES, "c.filters"),
    "CalibrationArgs.gain": Used(EXEC_FRAMES, "gain=c.gain"),
    "CalibrationArgs.offset": Used(EXEC_FRAMES, "offset=c.offset"),
    "CalibrationArgs.binning": Used(EXEC_FRAMES, "binning=c.binning"),
    "CalibrationArgs.master": Used(EXEC_FRAMES, "c.master and self.s.stacking"),
    "UseStep.use": Used(COMP, "step.use"),
    "RepeatStep.repeat": Used(COMP, "step.repeat"),
    "RepeatStep.steps": Used(COMP, "step.steps"),
    "RepeatArgs.count": Used(EX, "spec.count"),
    "RepeatArgs.until": Used(EX, "spec.until"),
    "RepeatUntil.time": Used(EXEC_CORE, "until.time"),
    "RepeatUntil.altitude_below": Used(EXEC_CORE, "until.altitude_below"),
    "RepeatUntil.frames": Used(EXEC_CORE, "until.frames"),
    "EachFilterStep.each_filter": Used(COMP, "step.each_filter"),
    "EachFilterStep.steps": Used(COMP, "step.steps"),
    # ---- triggers
    "TriggerItem.dither": Used(EXEC_GAPS, "tr.dither"),
    "TriggerItem.autofocus": Used(EXEC_GAPS, "tr.autofocus"),
    "TriggerItem.meridian_flip": Used(EXEC_GAPS, "tr.meridian_flip"),
    "TriggerItem.guiding_rms": Used(EXEC_GUIDING, "tr.guiding_rms"),
    "TriggerItem.star_lost": Used(EXEC_GUIDING, "tr.star_lost"),
    # the monitor is watched whenever the profile has one; the trigger needs that device
    "TriggerItem.safety": Used(SEM, 'k == "safety" and eq.safety is None'),
    "DitherTrigger.every": Used(TRIG, "d.every"),
    "DitherTrigger.amount": Used(EXEC_GAPS, "d.amount"),
    "DitherTrigger.ra_only": Used(EXEC_GAPS, "d.ra_only"),
    "DitherTrigger.settle": Used(EXEC_GAPS, "d.settle"),
    "DitherTrigger.on_settle_failure": Used(EXEC_GAPS, "d.on_settle_failure"),
    "AutofocusTrigger.temperature_change": Used(TRIG, "af.temperature_change"),
    "AutofocusTrigger.hfr_increase": Used(TRIG, "af.hfr_increase"),
    "AutofocusTrigger.filter_change": Used(TRIG, "af.filter_change"),
    "AutofocusTrigger.every_minutes": Used(TRIG, "af.every_minutes"),
    "AutofocusTrigger.every_frames": Used(TRIG, "af.every_frames"),
    "AutofocusTrigger.settings": Used(EXEC_GAPS, "tr.autofocus.settings"),
    "MeridianFlipTrigger.after": Used(EXEC_MOUNT, "mf.after"),
    "MeridianFlipTrigger.pause_before": Rejected(
        "trigger", "meridian_flip: {pause_before: 2}", f"'pause_before' {NOT_YET}"
    ),
    "GuidingRmsTrigger.max_rms": Used(EXEC_GUIDING, "gate.max_rms"),
    "GuidingRmsTrigger.wait": Used(EXEC_GUIDING, "gate.wait"),
    "StarLostTrigger.wait": Used(EXEC_GUIDING, "sl.wait"),
    "StarLostTrigger.restart_guiding": Used(EXEC_GUIDING, "sl.restart_guiding"),
    "StarLostTrigger.then": Used(EXEC_GUIDING, "sl.then"),
    "SafetyTrigger.wait_for_safe": Rejected(
        "trigger", "safety: {wait_for_safe: 60}", f"'wait_for_safe' {NOT_YET}"
    ),
    # ---- targets
    "Target.name": Used(EXEC_FRAMES, "target.name"),
    "Target.coordinates": Used(EXEC_FRAMES, "t.coordinates"),
    "Target.constraints": Used("runner/sky/visibility.py", "target.constraints, reference"),
    "Target.wait": Used(EX, "ct.target.wait"),
    "Target.stack": Used(LINK, "ct.target.stack"),
    "Target.on_error": Used(COMP, "t.on_error"),
    "Target.sequence": Used(COMP, "t.sequence"),
    "Coordinates.ra": Used(EXEC_FRAMES, "coordinates.ra"),
    "Coordinates.dec": Used(EXEC_FRAMES, "coordinates.dec"),
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
    "Equipment.exposure_margin": Used(EXEC_FRAMES, "equipment.exposure_margin"),
    "Equipment.cool_timeout": Rejected(
        "profile", "cool_timeout: 600", "'cool_timeout' is not used"
    ),
    "Equipment.autofocus_overhead": Used(NOMINAL, "eq.autofocus_overhead"),
    "Equipment.notify": Used(NOTIFY, 'owner=getattr(run.equipment, "notify", None)'),
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
    "CameraProfile.download_time": Used(EXEC_FRAMES, "camera.download_time"),
    "CameraProfile.cooler": Used(SEM, "cam.cooler"),
    "CameraProfile.bayer": Used(SIMCAM, "p.bayer"),
    "FilterWheelProfile.filters": Used(EXEC_FOCUS, "fw.filters"),
    "FilterWheelProfile.change_time": Used(EXEC_FOCUS, "filter_wheel.change_time"),
    "FilterSpec.name": Used("runner/plan/equipment.py", "f.name for f in self.filter_wheel"),
    "FilterSpec.focus_offset": Used(EXEC_FOCUS, "f.focus_offset"),
    "FocuserProfile.min_position": Used(SEM, "eq.focuser.min_position"),
    "FocuserProfile.max_position": Used(SEM, "eq.focuser.max_position"),
    "FocuserProfile.speed": Used("runner/devices/sim/focuser.py", "profile.speed"),
    "FocuserProfile.backlash": Used(SERVICES, "eq.focuser.backlash"),
    "FocuserProfile.step_size": Used(SERVICES, "eq.focuser.step_size"),
    "FocuserProfile.move_timeout": Used(EXEC_FOCUS, "focuser.move_timeout"),
    "MountProfile.slew_rate": Used("runner/devices/sim/mount.py", "profile.slew_rate"),
    "MountProfile.settle_time": Used(EXEC_MOUNT, "mount.settle_time"),
    "MountProfile.slew_timeout": Used(EXEC_MOUNT, "mount.slew_timeout"),
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
    "Simulation.sky": Used(SIMCAM, 'sim.sky == "catalogue"'),
    "Simulation.pointing_error": Used(WORLD, "self.profile.simulation.pointing_error"),
    "PointingError.arcmin": Used(WORLD, "pe.arcmin * 60.0"),
    "PointingError.angle": Used(WORLD, "math.radians(pe.angle)"),
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
