"""Every field of the plan and profile languages changes what a run does.

tests/plan/test_option_audit.py lists every field (``AUDIT``) and where the code reads it. This
module shows the *effect*: for each field, either

* a mutation case (``MUTATIONS``): a small plan and profile that exercise the field run twice on
  the virtual clock, as ``nightrunner run --dry-run`` runs them (the executor on the nominal
  rig, :mod:`effects_night`), once as written and once with the field changed, and the
  difference in the record (events, frames handed to the frame store, the clock at the end)
  is the one the field promises — or, for a figure only validation reads, the change makes
  validation reject a plan it accepted; or
* a reference (``REFERENCES``): the pytest node id of an existing test that shows the effect of
  a field a dry run cannot show (device addresses, PHD2, notification channels, the
  simulators' image model, FITS headers, stacking). The referenced test must exist.

A field of the audit with neither fails ``test_every_audited_field_shows_its_effect``.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from effects_night import (
    AMS,
    ROOT,
    START,
    Night,
    base_plan,
    base_profile,
    load,
    night,
)
from test_option_audit import AUDIT, Rejected

from runner.devices.sim.nominal import GUIDE_CALIBRATION_S

REMOVE = object()  #: a change that deletes the key


@dataclass(frozen=True)
class Mutation:
    """``plan`` and ``profile`` as written, then with ``change`` (dotted path → value; paths
    start at ``plan.`` or ``profile.``). ``effect(before, after)`` is what the field promises;
    with ``rejects``, the changed plan fails validation with that message instead."""

    says: str
    plan: dict[str, Any]
    profile: dict[str, Any]
    change: dict[str, Any]
    effect: Callable[[Night, Night], bool] | None = None
    rejects: str | None = None
    start: datetime = START
    store: bool = False  #: write the frames as a night does (headers, paths)
    guide_rms: float | None = None  #: the guider reports this RMS (arcsec)
    hfr: list[float] | None = None  #: the light frames' HFRs, in turn
    temperature_drift: float | None = None  #: the focuser reads the ambient drifting, °C/h
    stacking: bool = False  #: a live stacker is attached (``Night.stack``)
    camera_lag: float = 0.0  #: the camera reads out this much slower than its profile says
    solver_miss: float | None = None  #: a plate solver finds the frames this far off, arcsec


def m(says: str, change: dict[str, Any], effect: Callable[[Night, Night], bool] | None = None,
      *, plan: dict[str, Any] | None = None, profile: dict[str, Any] | None = None,
      rejects: str | None = None, start: datetime = START, store: bool = False,
      guide_rms: float | None = None, hfr: list[float] | None = None,
      temperature_drift: float | None = None, stacking: bool = False,
      camera_lag: float = 0.0, solver_miss: float | None = None) -> Mutation:
    return Mutation(says, plan if plan is not None else base_plan(),
                    profile if profile is not None else base_profile(), change, effect,
                    rejects, start, store, guide_rms, hfr, temperature_drift, stacking,
                    camera_lag, solver_miss)


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    node: Any = doc
    for k in keys[:-1]:
        if isinstance(node, dict) and k not in node:
            node[k] = {}
        node = node[k]
    if value is REMOVE:
        del node[keys[-1]]
    elif isinstance(node, list) and keys[-1] == len(node):
        node.append(value)
    else:
        node[keys[-1]] = value


def mutated(case: Mutation) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = {"plan": copy.deepcopy(case.plan), "profile": copy.deepcopy(case.profile)}
    for path, value in case.change.items():
        root, _, rest = path.partition(".")
        _set(docs[root], rest, value)
    return docs["plan"], docs["profile"]


# ---- the record, read the way the fields talk about it

def near(x: float, y: float, tol: float = 1e-6) -> bool:
    return abs(x - y) <= tol


def longer(a: Night, b: Night, by: float, tol: float = 1e-6) -> bool:
    """``b`` ended ``by`` clock seconds after ``a``."""
    return near(b.end - a.end, by, tol)


def step_seconds(n: Night, step_id: str) -> float:
    """Clock seconds from the start of step ``step_id`` to the next step or target end."""
    ts = [e["t"] for e in n.events]
    i = next(i for i, e in enumerate(n.events) if e["event"] == "step" and e["id"] == step_id)
    later = [j for j in range(i + 1, len(n.events))
             if n.events[j]["event"] in ("step", "target_end", "phase")]
    return float(ts[later[0]] - ts[i])


def step_at(n: Night, step_id: str) -> float:
    return float(next(e["t"] for e in n.of("step") if e["id"] == step_id))


def frames_of(n: Night, attr: str) -> list[Any]:
    return [getattr(f, attr) for f, _ in n.frames]


def meta_of(n: Night, key: str) -> list[Any]:
    return [meta[key] for _, meta in n.frames]


def header(n: Night, card: str) -> list[Any]:
    """``card`` of every frame file the night wrote."""
    from astropy.io import fits

    return [fits.getheader(f)[card] for f in n.files]


def status(n: Night, target: int = 0) -> str:
    return str(n.of("target_end")[target]["status"])


def reason(n: Night, target: int = 0) -> str:
    return str(n.of("target_end")[target].get("reason", ""))


def started(n: Night, target: int = 0) -> float:
    """When the target's first step began (after any wait for its constraints)."""
    steps = [e for e in n.of("step") if str(e["id"]).startswith(f"T{target}/")]
    return float(steps[0]["t"])


def expose(**args: Any) -> dict[str, Any]:
    return {"expose": {"count": 1, "exposure": 10, **args}}


def seq(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return base_plan(list(steps), **top)


#: A sub-frame of the base camera.
ROI = {"x": 8, "y": 16, "width": 200, "height": 100}


def _roi_is(key: str, before: int, after: int) -> Callable[[Night, Night], bool]:
    def effect(a: Night, b: Night) -> bool:
        return bool(getattr(frames_of(a, "roi")[0], key) == before
                    and getattr(frames_of(b, "roi")[0], key) == after)
    return effect


S0 = "plan.targets.0.sequence.0"
S1 = "plan.targets.0.sequence.1"
T0 = "plan.targets.0"
GUIDED = base_profile(guider=True)
MOUNTED = base_profile(mount=True)
#: A guide exposure of 2 s; the nominal guider settles in settle.time + 3 guide exposures.
GUIDE_EXPOSURE = 2.0
DOWNLOAD = 1.5
#: Twenty minutes after sunset on the base night (sunset 16:39 local): twilight still bright.
DUSK = datetime(2026, 11, 25, 17, 0, tzinfo=AMS)
#: A long wait for the sky.
WAIT = {"max": 6 * 3600}
#: The focuser's position before anything moves it: ``simulation.best_focus``.
BEST_FOCUS = 25_000


MUTATIONS: dict[str, Mutation] = {
    # ---- plan
    "Plan.version": m(
        "only version 1 exists", {"plan.version": 2}, rejects="expected 1, got 2"),
    "Plan.equipment": m(
        "names the profile the night runs with: the built-in simulator downloads in 1.5 s",
        {"plan.equipment": "simulator"},
        lambda a, b: longer(a, b, 2 * (1.5 - 4.0)),
        profile=base_profile(camera={**base_profile()["camera"], "download_time": 4.0})),
    "Plan.defaults": m(
        "gives steps their defaults", {"plan.defaults": {"expose": {"gain": 120}}},
        lambda a, b: frames_of(a, "gain") == [0, 0] and frames_of(b, "gain") == [120, 120]),
    "Plan.startup": m(
        "runs before the first target", {"plan.startup": [{"wait": {"for": 60}}]},
        lambda a, b: near(started(b) - started(a), 60) and longer(a, b, 60)),
    "Plan.triggers": m(
        "adds work between frames",
        {"plan.triggers": [{"autofocus": {"every_frames": 1}}]},
        lambda a, b: not a.of("autofocus") and len(b.of("autofocus")) == 1),
    "Plan.targets": m(
        "lists what the night images, in order",
        {"plan.targets.1": {"name": "M 31", "coordinates": {"ra": 10.68, "dec": 41.27},
                            "sequence": [expose()]}},
        lambda a, b: [e["target"] for e in b.of("target_start")] == ["NGC 188", "M 31"]
        and [e["target"] for e in a.of("target_start")] == ["NGC 188"]),
    "Plan.blocks": m(
        "a use step runs the block of that name",
        {"plan.blocks.short": [expose(exposure=3)]},
        lambda a, b: a.exposures() == [10.0] and b.exposures() == [3.0],
        plan=seq({"use": "short"}, blocks={"short": [expose(exposure=10)]})),
    "Plan.shutdown": m(
        "runs after the last target", {"plan.shutdown": [{"wait": {"for": 60}}]},
        lambda a, b: longer(a, b, 60)),
    "Plan.on_error": m(
        "the plan's error policy applies to a step without its own",
        {"plan.on_error": {"then": "skip_step"}},
        lambda a, b: status(a) == "skipped" and a.exposures() == []
        and status(b) == "completed" and b.exposures() == [10.0],
        plan=seq({"cool": {"to": -20, "timeout": 10}}, expose())),
    "Site.latitude": m(
        "NGC 188 stands 47-57° high at 52° N, 35-45° at 40° N",
        {"plan.site.latitude": 40}, rejects="never gets above 44.8° at latitude 40°",
        plan=seq(expose(), target={"constraints": {"min_altitude": 46}})),
    "Site.latitude (sky)": m(
        "further south, a target rising in the east climbs to 30° sooner",
        {"plan.site.latitude": 30},
        lambda a, b: step_at(b, "T0/seq[1]") < step_at(a, "T0/seq[1]") - 600,
        plan=seq({"wait": {"altitude": 30}}, expose(),
                 target={"coordinates": {"ra": "08:00:00", "dec": "+10:00:00"}})),
    "Site.longitude": m(
        "15° further east, the sky turns an hour (sidereal) earlier by the clock",
        {"plan.site.longitude": 19.89},
        lambda a, b: near(started(a) - started(b), 3590.0, 60),
        plan=seq(expose(), target={"coordinates": {"ra": "08:00:00", "dec": "+10:00:00"},
                                   "constraints": {"min_altitude": 20}, "wait": WAIT})),
    "Site.timezone": m(
        "clock times are the site's: 23:30 in London is an hour after 23:30 in Amsterdam",
        {"plan.site.timezone": "Europe/London"},
        lambda a, b: near(started(b) - started(a), 3600),
        plan=seq(expose(), target={"constraints": {"after": "23:30"}, "wait": WAIT})),
    "Defaults.expose": m(
        "gain, offset and binning of frames that do not set them",
        {"plan.defaults.expose": {"gain": 50, "offset": 7, "binning": 2}},
        lambda a, b: (frames_of(b, "gain"), frames_of(b, "offset"), frames_of(b, "binning"))
        == ([50, 50], [7, 7], [2, 2]) and frames_of(a, "binning") == [1, 1]),
    "ExposeSettings.gain": m(
        "the default gain", {"plan.defaults.expose.gain": 200},
        lambda a, b: frames_of(a, "gain") == [100, 100] and frames_of(b, "gain") == [200, 200],
        plan=base_plan(defaults={"expose": {"gain": 100}})),
    "ExposeSettings.offset": m(
        "the default offset", {"plan.defaults.expose.offset": 30},
        lambda a, b: frames_of(a, "offset") == [10, 10] and frames_of(b, "offset") == [30, 30],
        plan=base_plan(defaults={"expose": {"offset": 10}})),
    "ExposeSettings.binning": m(
        "the default binning", {"plan.defaults.expose.binning": 3},
        lambda a, b: frames_of(a, "binning") == [2, 2] and frames_of(b, "binning") == [3, 3],
        plan=base_plan(defaults={"expose": {"binning": 2}})),
    "Defaults.settle": m(
        "settling after guide start takes settle.time + 3 guide exposures",
        {"plan.defaults.settle": {"time": 20}},
        lambda a, b: near(b.first("settled")["seconds"] - a.first("settled")["seconds"], 12)
        and longer(a, b, 12),
        plan=base_plan(startup=[{"guide": "start"}], defaults={"settle": {"time": 8}}),
        profile=GUIDED),
    "Settle.time": m(
        "seconds the guide error must stay low", {"plan.startup.0.guide.settle.time": 30},
        lambda a, b: near(a.first("settled")["seconds"], 4 + 3 * GUIDE_EXPOSURE)
        and near(b.first("settled")["seconds"], 30 + 3 * GUIDE_EXPOSURE),
        plan=base_plan(startup=[{"guide": {"action": "start", "settle": {"time": 4}}}]),
        profile=GUIDED),
    "Settle.pixels": m(
        "the distance that counts as settled", {"plan.startup.0.guide.settle.pixels": 0.8},
        lambda a, b: [c["settle_pixels"] for _, c in a.guider] == [2.0]
        and [c["settle_pixels"] for _, c in b.guider] == [0.8],
        plan=base_plan(startup=[{"guide": {"action": "start", "settle": {"pixels": 2.0}}}]),
        profile=GUIDED),
    "Settle.timeout": m(
        "how long the guider may take to settle (the guider gives up after it)",
        {"plan.startup.0.guide.settle.timeout": 5},
        lambda a, b: [c["settle_timeout"] for _, c in a.guider] == [60]
        and [c["settle_timeout"] for _, c in b.guider] == [5],
        plan=base_plan(startup=[{"guide": {"action": "start",
                                           "settle": {"time": 8, "timeout": 60}}}]),
        profile=GUIDED),
    # ---- error policies
    "ErrorPolicy.retry": m(
        "a failed step is tried again, retry times",
        {f"{S0}.on_error.retry": 2},
        lambda a, b: len(a.of("retry")) == 0 and len(b.of("retry")) == 2
        and len(b.of("error")) == 3,
        plan=seq({"cool": {"to": -20, "timeout": 10}, "on_error": {"retry": 0}}, expose())),
    "ErrorPolicy.backoff": m(
        "the pause before a retry", {f"{S0}.on_error.backoff": 50},
        lambda a, b: [e["delay"] for e in a.of("retry")] == [5.0]
        and [e["delay"] for e in b.of("retry")] == [50.0] and longer(a, b, 45),
        plan=seq({"cool": {"to": -20, "timeout": 10}, "on_error": {"retry": 1, "backoff": 5}},
                 expose())),
    "ErrorPolicy.then": m(
        "what a step that keeps failing does: skip_step goes on with the target",
        {f"{S0}.on_error.then": "skip_step"},
        lambda a, b: status(a) == "skipped" and status(b) == "completed"
        and b.exposures() == [10.0],
        plan=seq({"cool": {"to": -20, "timeout": 10}, "on_error": {"then": "skip_target"}},
                 expose())),
    # ---- steps
    "StepBase.timeout": m(
        "a step that runs longer fails", {f"{S0}.timeout": 10},
        lambda a, b: status(a) == "completed" and status(b) == "skipped"
        and "timed out after 10 s" in reason(b),
        plan=seq({"wait": {"for": 100}}, expose())),
    "StepBase.on_error": m(
        "the step's own error policy wins over the plan's",
        {f"{S0}.on_error": {"then": "skip_step"}},
        lambda a, b: status(a) == "skipped" and status(b) == "completed",
        plan=seq({"cool": {"to": -20, "timeout": 10}}, expose(),
                 on_error={"then": "skip_target"})),
    "CoolStep.cool": m(
        "cools the camera to its set point", {S0: {"cool": {"to": -5, "rate": 5}}},
        lambda a, b: not a.of("temperature") and b.first("temperature")["set_temp"] == -5.0
        and b.end - a.end > 200,
        plan=seq({"wait": {"for": 0}}, expose())),
    "CoolArgs.to": m(
        "the set point: from 15 °C at 5 °C/min, -5 °C is a minute further than 0 °C",
        {f"{S0}.cool.to": -5},
        lambda a, b: a.first("temperature")["set_temp"] == 0.0
        and b.first("temperature")["set_temp"] == -5.0 and longer(a, b, 60, 2),
        plan=seq({"cool": {"to": 0, "rate": 5}}, expose())),
    "CoolArgs.rate": m(
        "the ramp: 20 °C at 2 °C/min takes 6 minutes longer than at 5 °C/min",
        {f"{S0}.cool.rate": 2},
        lambda a, b: near(step_seconds(b, "T0/seq[0]") - step_seconds(a, "T0/seq[0]"), 360, 8),
        plan=seq({"cool": {"to": -5, "rate": 5}}, expose())),
    "CoolArgs.timeout": m(
        "cooling that takes longer fails", {f"{S0}.cool.timeout": 60},
        lambda a, b: not a.of("error") and "within 60 s" in b.first("error")["message"],
        plan=seq({"cool": {"to": -5, "rate": 5}}, expose())),
    "WarmStep.warm": m(
        "warms the camera to its set point", {S1: {"warm": {"to": 10, "rate": 5}}},
        lambda a, b: [e["set_temp"] for e in b.of("temperature")] == [-5.0, 10.0]
        and b.end - a.end > 150,
        plan=seq({"cool": {"to": -5, "rate": 5}}, {"wait": {"for": 0}})),
    "FilterStep.filter": m(
        "moves the wheel: the frames are taken through that filter",
        {f"{S0}.filter": "R"},
        lambda a, b: meta_of(a, "filter") == ["L"] and meta_of(b, "filter") == ["R"],
        plan=seq({"filter": "L"}, expose())),
    "FocusStep.focus": m(
        "moves the focuser", {S0: {"focus": {"by": 250}}},
        lambda a, b: meta_of(a, "focus_position") == [BEST_FOCUS]
        and meta_of(b, "focus_position") == [BEST_FOCUS + 250],
        plan=seq({"wait": {"for": 0}}, expose())),
    "FocusArgs.position": m(
        "an absolute position", {f"{S0}.focus.position": 12_000},
        lambda a, b: meta_of(a, "focus_position") == [10_000]
        and meta_of(b, "focus_position") == [12_000],
        plan=seq({"focus": {"position": 10_000}}, expose())),
    "FocusArgs.by": m(
        "a relative move", {f"{S0}.focus.by": -300},
        lambda a, b: meta_of(a, "focus_position") == [BEST_FOCUS + 100]
        and meta_of(b, "focus_position") == [BEST_FOCUS - 300],
        plan=seq({"focus": {"by": 100}}, expose())),
    "FocusArgs.auto": m(
        "runs an autofocus", {f"{S0}.focus": {"auto": {}}},
        lambda a, b: not a.of("autofocus") and b.first("autofocus")["ok"] is True,
        plan=seq({"focus": {"by": 100}}, expose())),
    "FocusAuto.steps": m(
        "samples per V-curve: 4 more cost 4 × (exposure + download + overhead) and 4 steps"
        " of travel each way",
        {f"{S0}.focus.auto.steps": 13},
        lambda a, b: near(b.first("autofocus")["seconds"] - a.first("autofocus")["seconds"],
                          4 * (3 + DOWNLOAD + 10) + 2 * 4 * 150 / 1000),
        plan=seq({"focus": {"auto": {"steps": 9}}}, expose())),
    "FocusAuto.exposure": m(
        "exposure per sample: 2 s more on each of 9 samples",
        {f"{S0}.focus.auto.exposure": 5},
        lambda a, b: near(b.first("autofocus")["seconds"] - a.first("autofocus")["seconds"],
                          9 * 2, 1e-3),
        plan=seq({"focus": {"auto": {"exposure": 3}}}, expose())),
    "FocusAuto.step_size": m(
        "spacing of the samples: a wider V-curve travels further",
        {f"{S0}.focus.auto.step_size": 300},
        lambda a, b: b.first("autofocus")["seconds"] > a.first("autofocus")["seconds"],
        plan=seq({"focus": {"auto": {"step_size": 100}}}, expose())),
    "ExposeStep.expose": m(
        "takes frames", {S0: expose(count=3)},
        lambda a, b: len(a.frames) == 0 and len(b.frames) == 3,
        plan=seq({"wait": {"for": 0}})),
    "ExposeArgs.count": m(
        "frames taken: 3 more cost 3 × (exposure + download)", {f"{S0}.expose.count": 5},
        lambda a, b: len(a.frames) == 2 and len(b.frames) == 5
        and longer(a, b, 3 * (10 + DOWNLOAD))),
    "ExposeArgs.exposure": m(
        "seconds per frame", {f"{S0}.expose.exposure": 25},
        lambda a, b: a.exposures() == [10.0, 10.0] and b.exposures() == [25.0, 25.0]
        and frames_of(b, "exposure") == [25.0, 25.0] and longer(a, b, 30)),
    "ExposeArgs.type": m(
        "the frame type", {f"{S0}.expose.type": "dark"},
        lambda a, b: [str(e["type"]) for e in a.of("frame")] == ["light", "light"]
        and [str(e["type"]) for e in b.of("frame")] == ["dark", "dark"]),
    "ExposeArgs.filter": m(
        "the filter of the frames", {f"{S0}.expose.filter": "Ha"},
        lambda a, b: meta_of(a, "filter") == ["L", "L"] and meta_of(b, "filter") == ["Ha", "Ha"]
        and [e["filter"] for e in b.of("filter")] == ["Ha"],
        plan=seq(expose(count=2, filter="L"))),
    "ExposeArgs.gain": m(
        "the frames' gain, over the default", {f"{S0}.expose.gain": 300},
        lambda a, b: frames_of(a, "gain") == [100] and frames_of(b, "gain") == [300],
        plan=seq(expose(), defaults={"expose": {"gain": 100}})),
    "ExposeArgs.offset": m(
        "the frames' offset, over the default", {f"{S0}.expose.offset": 40},
        lambda a, b: frames_of(a, "offset") == [10] and frames_of(b, "offset") == [40],
        plan=seq(expose(), defaults={"expose": {"offset": 10}})),
    "ExposeArgs.binning": m(
        "the frames' binning, over the default", {f"{S0}.expose.binning": 4},
        lambda a, b: frames_of(a, "binning") == [2] and frames_of(b, "binning") == [4],
        plan=seq(expose(), defaults={"expose": {"binning": 2}})),
    "ExposeArgs.roi": m(
        "a sub-frame", {f"{S0}.expose.roi": {"x": 10, "y": 20, "width": 100, "height": 50}},
        lambda a, b: [(r.x, r.y, r.width, r.height) for r in frames_of(b, "roi")]
        == [(10, 20, 100, 50)] and frames_of(a, "roi") != frames_of(b, "roi"),
        plan=seq(expose())),
    **{f"Roi.{k}": m(
        f"the sub-frame's {k}", {f"{S0}.expose.roi.{k}": 64}, _roi_is(k, ROI[k], 64),
        plan=seq(expose(roi=dict(ROI)))) for k in ROI},
    "GuideStep.guide": m(
        "starts guiding, and settles", {S0: {"guide": "start"}},
        lambda a, b: not a.of("guiding") and b.first("guiding")["state"] == "guiding"
        and b.of("settled"),
        plan=seq({"wait": {"for": 0}}, expose()), profile=GUIDED),
    "GuideArgs.action": m(
        "stop stops guiding", {f"{S1}.guide.action": "stop"},
        lambda a, b: [e["state"] for e in a.of("guiding")][-1] == "guiding"
        and [e["state"] for e in b.of("guiding")][-1] == "stopped"
        and len(b.of("settled")) == 1,
        plan=seq({"guide": "start"}, {"guide": {"action": "start"}}, expose()),
        profile=GUIDED),
    "GuideArgs.settle": m(
        "settle criteria of this start", {f"{S0}.guide.settle": {"time": 30}},
        lambda a, b: near(b.first("settled")["seconds"] - a.first("settled")["seconds"], 22),
        plan=seq({"guide": {"action": "start"}}, expose()), profile=GUIDED),
    "GuideArgs.recalibrate": m(
        "a fresh calibration before guiding", {f"{S0}.guide.recalibrate": True},
        lambda a, b: [c["recalibrate"] for _, c in b.guider] == [True]
        and near(b.first("guiding")["t"] - a.first("guiding")["t"], GUIDE_CALIBRATION_S),
        plan=seq({"guide": {"action": "start"}}, expose()), profile=GUIDED),
    "DitherStep.dither": m(
        "dithers, and settles", {S1: {"dither": {}}},
        lambda a, b: not a.of("dithered") and b.first("dithered")["amount"] == 5.0
        and b.of("settled")[-1]["after"] == "dither",
        plan=seq({"guide": "start"}, {"wait": {"for": 0}}, expose()), profile=GUIDED),
    "DitherArgs.amount": m(
        "the dither's size", {f"{S1}.dither.amount": 9},
        lambda a, b: a.first("dithered")["amount"] == 2.0
        and b.first("dithered")["amount"] == 9.0,
        plan=seq({"guide": "start"}, {"dither": {"amount": 2}}, expose()), profile=GUIDED),
    "DitherArgs.ra_only": m(
        "dithers along RA only", {f"{S1}.dither.ra_only": True},
        lambda a, b: [c["ra_only"] for n, c in a.guider if n == "dither"] == [False]
        and [c["ra_only"] for n, c in b.guider if n == "dither"] == [True],
        plan=seq({"guide": "start"}, {"dither": {"amount": 2}}, expose()), profile=GUIDED),
    "DitherArgs.settle": m(
        "settle criteria of this dither", {f"{S1}.dither.settle": {"time": 30}},
        lambda a, b: near(b.of("settled")[-1]["seconds"] - a.of("settled")[-1]["seconds"], 22),
        plan=seq({"guide": "start"}, {"dither": {}}, expose()), profile=GUIDED),
    "WaitStep.wait": m(
        "waits", {S0: {"wait": {"for": 90}}}, lambda a, b: longer(a, b, 90),
        plan=seq({"wait": {"for": 0}}, expose())),
    "WaitArgs.for_": m(
        "waits this long", {f"{S0}.wait.for": 100}, lambda a, b: longer(a, b, 70),
        plan=seq({"wait": {"for": 30}}, expose())),
    "WaitArgs.until": m(
        "waits until this clock time", {f"{S0}.wait.until": "22:30"},
        lambda a, b: longer(a, b, 1200, 1e-3),
        plan=seq({"wait": {"until": "22:10"}}, expose())),
    "WaitArgs.altitude": m(
        "waits until the target stands this high",
        {f"{S0}.wait.altitude": 30},
        lambda a, b: b.end - a.end > 1800,
        plan=seq({"wait": {"altitude": 10}}, expose(),
                 target={"coordinates": {"ra": "08:00:00", "dec": "+10:00:00"}})),
}

#: A target 13 minutes east of the meridian at ``START`` (RA 01:50): the flip falls early.
EAST = {"ra": "01:50:00", "dec": "+30:00:00"}
SIDEREAL = 0.9972696
FLIPPING = seq({"slew": {}}, expose(count=30, exposure=120),
               target={"coordinates": EAST}, triggers=[{"meridian_flip": {"after": 0}}])


def flip_at(n: Night) -> float:
    return float(next(e["t"] for e in n.of("trigger") if e["kind"] == "meridian_flip"))


def slewed(n: Night) -> list[tuple[float, float]]:
    return [(round(e["ra"], 4), round(e["dec"], 4)) for e in n.of("slewed")]


MUTATIONS.update({
    "SlewStep.slew": m(
        "points the mount at the target", {S0: {"slew": {}}},
        lambda a, b: not a.of("slewed") and slewed(b) == [(12.1083, 85.245)],
        plan=seq({"wait": {"for": 0}}, expose()), profile=MOUNTED),
    "SlewArgs.ra": m(
        "a right ascension of its own", {f"{S0}.slew.ra": "02:00:00"},
        lambda a, b: slewed(a) == [(12.1083, 85.245)] and slewed(b) == [(30.0, 85.245)],
        plan=seq({"slew": {}}, expose()), profile=MOUNTED),
    "SlewArgs.dec": m(
        "a declination of its own", {f"{S0}.slew.dec": "+45:00:00"},
        lambda a, b: slewed(b) == [(12.1083, 45.0)] and b.end > a.end,
        plan=seq({"slew": {}}, expose()), profile=MOUNTED),
    "SlewArgs.center": m(
        "plate-solves after the slew", {f"{S0}.slew.center": True},
        lambda a, b: not a.of("centring") and len(b.of("centring")) == 1,
        plan=seq({"slew": {}}, expose()), profile=MOUNTED),
    "CenterArgs.exposure": m(
        "the centring frame's exposure: 20 s instead of 5 s",
        {f"{S0}.slew.center.exposure": 20},
        lambda a, b: longer(a, b, 15, 1e-3),
        plan=seq({"slew": {"center": {"exposure": 5}}}, expose()), profile=MOUNTED),
    "ParkStep.park": m(
        "parks the mount", {S1: {"park": {}}},
        lambda a, b: not a.of("parked") and len(b.of("parked")) == 1,
        plan=seq({"slew": {}}, {"wait": {"for": 0}}), profile=MOUNTED),
    "CalibrationStep.calibration": m(
        "takes calibration frames", {S0: {"calibration": {"kind": "bias", "count": 3}}},
        lambda a, b: not a.frames and [e["type"] for e in b.of("frame")] == ["bias"] * 3,
        plan=seq({"wait": {"for": 0}})),
    "CalibrationArgs.kind": m(
        "the frame type", {f"{S0}.calibration.kind": "flat",
                           f"{S0}.calibration.exposures": [2]},
        lambda a, b: [str(e["type"]) for e in a.of("frame")] == ["dark"] * 2
        and [str(e["type"]) for e in b.of("frame")] == ["flat"] * 2,
        plan=seq({"calibration": {"kind": "dark", "count": 2, "exposures": [2]}})),
    "CalibrationArgs.count": m(
        "frames per set", {f"{S0}.calibration.count": 5},
        lambda a, b: len(a.frames) == 2 and len(b.frames) == 5,
        plan=seq({"calibration": {"kind": "bias", "count": 2}})),
    "CalibrationArgs.exposures": m(
        "one set of darks per exposure time", {f"{S0}.calibration.exposures": [5, 30]},
        lambda a, b: a.exposures() == [5.0, 5.0] and b.exposures() == [5.0, 5.0, 30.0, 30.0],
        plan=seq({"calibration": {"kind": "dark", "count": 2, "exposures": [5]}})),
    "CalibrationArgs.filters": m(
        "flats through each filter", {f"{S0}.calibration.filters": ["R", "G"]},
        lambda a, b: meta_of(a, "filter") == ["L"] and meta_of(b, "filter") == ["R", "G"],
        plan=seq({"calibration": {"kind": "flat", "count": 1, "filters": ["L"]}})),
    "CalibrationArgs.gain": m(
        "the frames' gain", {f"{S0}.calibration.gain": 120},
        lambda a, b: frames_of(a, "gain") == [0] and frames_of(b, "gain") == [120],
        plan=seq({"calibration": {"kind": "bias", "count": 1}})),
    "CalibrationArgs.offset": m(
        "the frames' offset", {f"{S0}.calibration.offset": 25},
        lambda a, b: frames_of(a, "offset") == [0] and frames_of(b, "offset") == [25],
        plan=seq({"calibration": {"kind": "bias", "count": 1}})),
    "CalibrationArgs.binning": m(
        "the frames' binning", {f"{S0}.calibration.binning": 2},
        lambda a, b: frames_of(a, "binning") == [1] and frames_of(b, "binning") == [2],
        plan=seq({"calibration": {"kind": "bias", "count": 1}})),
    "UseStep.use": m(
        "runs the named block", {f"{S0}.use": "long"},
        lambda a, b: a.exposures() == [5.0] and b.exposures() == [50.0],
        plan=seq({"use": "short"}, blocks={"short": [expose(exposure=5)],
                                           "long": [expose(exposure=50)]})),
    "RepeatStep.repeat": m(
        "runs its steps again", {f"{S0}.repeat.count": 3},
        lambda a, b: len(a.frames) == 1 and len(b.frames) == 3,
        plan=seq({"repeat": {"count": 1}, "steps": [expose()]})),
    "RepeatStep.steps": m(
        "what each iteration runs", {f"{S0}.steps": [expose(exposure=4), expose(exposure=6)]},
        lambda a, b: a.exposures() == [10.0] * 2 and b.exposures() == [4.0, 6.0] * 2,
        plan=seq({"repeat": {"count": 2}, "steps": [expose()]})),
    "RepeatArgs.count": m(
        "iterations", {f"{S0}.repeat.count": 4},
        lambda a, b: len(a.frames) == 2 and len(b.frames) == 4,
        plan=seq({"repeat": {"count": 2}, "steps": [expose()]})),
    "RepeatArgs.until": m(
        "loops until a condition holds", {f"{S0}.repeat": {"until": {"frames": 5}}},
        lambda a, b: len(a.frames) == 2 and len(b.frames) == 5,
        plan=seq({"repeat": {"count": 2}, "steps": [expose()]})),
    "RepeatUntil.frames": m(
        "stops after this many frames", {f"{S0}.repeat.until.frames": 7},
        lambda a, b: len(a.frames) == 3 and len(b.frames) == 7,
        plan=seq({"repeat": {"until": {"frames": 3}}, "steps": [expose()]})),
    "RepeatUntil.time": m(
        "stops at this clock time: 10 minutes later is 10 minutes of 60 s frames more",
        {f"{S0}.repeat.until.time": "22:20"},
        lambda a, b: 8 <= len(b.frames) - len(a.frames) <= 11 and near(b.end - a.end, 600, 62),
        plan=seq({"repeat": {"until": {"time": "22:10"}}, "steps": [expose(exposure=60)]})),
    "RepeatUntil.altitude_below": m(
        "stops when the target sinks below this altitude: a setting target, a higher limit",
        {f"{S0}.repeat.until.altitude_below": 30},
        lambda a, b: len(b.frames) < len(a.frames) and b.end < a.end - 1800,
        plan=seq({"repeat": {"until": {"altitude_below": 15}}, "steps": [expose(exposure=300)]},
                 target={"coordinates": {"ra": "23:00:00", "dec": "+10:00:00"}})),
    "EachFilterStep.each_filter": m(
        "runs its steps through each filter", {f"{S0}.each_filter": ["R", "G", "B"]},
        lambda a, b: meta_of(a, "filter") == ["L"] and meta_of(b, "filter") == ["R", "G", "B"],
        plan=seq({"each_filter": ["L"], "steps": [expose()]})),
    "EachFilterStep.steps": m(
        "what runs through each filter",
        {f"{S0}.steps": [expose(exposure=4), expose(exposure=6)]},
        lambda a, b: a.exposures() == [10.0] * 2 and b.exposures() == [4.0, 6.0] * 2,
        plan=seq({"each_filter": ["L", "R"], "steps": [expose()]})),
    # ---- triggers
    "TriggerItem.dither": m(
        "dithers between light frames", {"plan.triggers": [{"dither": {"every": 1}}]},
        lambda a, b: not a.of("dithered") and len(b.of("dithered")) == 1,
        plan=base_plan(startup=[{"guide": "start"}]), profile=GUIDED),
    "DitherTrigger.every": m(
        "frames between dithers: every 2nd of 6 frames, then every 3rd",
        {"plan.triggers.0.dither.every": 3},
        lambda a, b: len(a.of("dithered")) == 2 and len(b.of("dithered")) == 1,
        plan=seq(expose(count=6), startup=[{"guide": "start"}],
                 triggers=[{"dither": {"every": 2}}]), profile=GUIDED),
    "DitherTrigger.amount": m(
        "the dither's size", {"plan.triggers.0.dither.amount": 8},
        lambda a, b: a.first("dithered")["amount"] == 3.0
        and b.first("dithered")["amount"] == 8.0,
        plan=base_plan(startup=[{"guide": "start"}],
                       triggers=[{"dither": {"every": 1, "amount": 3}}]), profile=GUIDED),
    "DitherTrigger.ra_only": m(
        "dithers along RA only", {"plan.triggers.0.dither.ra_only": True},
        lambda a, b: [c["ra_only"] for n, c in a.guider if n == "dither"] == [False]
        and [c["ra_only"] for n, c in b.guider if n == "dither"] == [True],
        plan=base_plan(startup=[{"guide": "start"}], triggers=[{"dither": {"every": 1}}]),
        profile=GUIDED),
    "DitherTrigger.settle": m(
        "settle criteria after the dither", {"plan.triggers.0.dither.settle": {"time": 30}},
        lambda a, b: near(b.of("settled")[-1]["seconds"] - a.of("settled")[-1]["seconds"], 22)
        and longer(a, b, 22),
        plan=base_plan(startup=[{"guide": "start"}], triggers=[{"dither": {"every": 1}}]),
        profile=GUIDED),
    "TriggerItem.autofocus": m(
        "refocuses between frames", {"plan.triggers": [{"autofocus": {"every_frames": 1}}]},
        lambda a, b: not a.of("autofocus") and len(b.of("autofocus")) == 1),
    "AutofocusTrigger.every_frames": m(
        "frames between autofocus runs: 6 frames, every 2nd then every 3rd",
        {"plan.triggers.0.autofocus.every_frames": 3},
        lambda a, b: len(a.of("autofocus")) == 2 and len(b.of("autofocus")) == 1,
        plan=seq(expose(count=6), triggers=[{"autofocus": {"every_frames": 2}}])),
    "AutofocusTrigger.every_minutes": m(
        "minutes between autofocus runs: 20 × 60 s frames, every 5 then every 10 minutes",
        {"plan.triggers.0.autofocus.every_minutes": 10},
        lambda a, b: len(b.of("autofocus")) < len(a.of("autofocus")) and b.of("autofocus"),
        plan=seq(expose(count=20, exposure=60), triggers=[{"autofocus": {"every_minutes": 5}}])),
    "AutofocusTrigger.filter_change": m(
        "refocuses when the filter changed", {"plan.triggers.0.autofocus.filter_change": True},
        lambda a, b: not a.of("autofocus")
        and [e["filter"] for e in b.of("autofocus")] == ["R"],
        plan=seq(expose(filter="L"), expose(filter="R"),
                 triggers=[{"autofocus": {"filter_change": False, "every_frames": 100}}])),
    "AutofocusTrigger.settings": m(
        "the triggered autofocus's settings: 4 more samples",
        {"plan.triggers.0.autofocus.settings": {"steps": 13}},
        lambda a, b: near(b.first("autofocus")["seconds"] - a.first("autofocus")["seconds"],
                          4 * (3 + DOWNLOAD + 10) + 2 * 4 * 150 / 1000),
        plan=base_plan(triggers=[{"autofocus": {"every_frames": 1}}])),
    "TriggerItem.meridian_flip": m(
        "flips the mount after the meridian",
        {"plan.triggers": [{"meridian_flip": {"after": 0}}]},
        lambda a, b: not a.of("trigger") and len(a.of("slewed")) == 1
        and [e["kind"] for e in b.of("trigger")] == ["meridian_flip"]
        and len(b.of("slewed")) == 2,
        plan={k: v for k, v in FLIPPING.items() if k != "triggers"}, profile=MOUNTED),
    "MeridianFlipTrigger.after": m(
        "minutes past the meridian to flip at: 20 minutes (sidereal) later",
        {"plan.triggers.0.meridian_flip.after": 20},
        lambda a, b: near(flip_at(b) - flip_at(a), 20 * 60 * SIDEREAL, 1),
        plan=FLIPPING, profile=MOUNTED),
})


def _insert(cases: dict[str, Mutation]) -> None:
    for k, v in cases.items():
        assert k not in MUTATIONS, k
        MUTATIONS[k] = v


#: Low in the west at ``START`` (11° high) and setting.
SETTING = {"ra": "20:00:00", "dec": "+10:00:00"}
#: A 30-minute target: 30 frames of 60 s.
HALF_HOUR = [expose(count=30, exposure=60)]
#: The Moon, full on the base night (2026-11-24), stands near RA 04:10, Dec +21.
NEAR_MOON = {"ra": "04:10:00", "dec": "+21:00:00"}

_insert({
    # ---- targets
    "Target.name": m(
        "names the frames' target", {f"{T0}.name": "Cluster"},
        lambda a, b: meta_of(a, "target") == ["NGC 188"] * 2
        and meta_of(b, "target") == ["Cluster"] * 2
        and [e["target"] for e in b.of("target_start")] == ["Cluster"]),
    "Target.coordinates": m(
        "where the target is: the frames' RA/Dec and the slew",
        {f"{T0}.coordinates": {"ra": "02:00:00", "dec": "+45:00:00"}},
        lambda a, b: (meta_of(b, "ra"), meta_of(b, "dec")) == ([30.0], [45.0])
        and slewed(b) == [(30.0, 45.0)] and slewed(a) == [(12.1083, 85.245)],
        plan=seq({"slew": {}}, expose()), profile=MOUNTED),
    "Coordinates.ra": m(
        "the target's right ascension", {f"{T0}.coordinates.ra": "03:00:00"},
        lambda a, b: meta_of(a, "ra") == [pytest.approx(12.1083, abs=1e-3)]
        and meta_of(b, "ra") == [45.0],
        plan=seq(expose())),
    "Coordinates.dec": m(
        "the target's declination", {f"{T0}.coordinates.dec": "+80:00:00"},
        lambda a, b: meta_of(a, "dec") == [pytest.approx(85.245, abs=1e-3)]
        and meta_of(b, "dec") == [80.0],
        plan=seq(expose())),
    "Target.constraints": m(
        "the target runs only while they hold", {f"{T0}.constraints": {"min_altitude": 30}},
        lambda a, b: status(a) == "completed" and status(b) == "skipped"
        and "altitude" in reason(b) and not b.frames,
        plan=seq(expose(), target={"coordinates": SETTING})),
    "Target.sequence": m(
        "what the target runs", {f"{T0}.sequence": [expose(exposure=7)]},
        lambda a, b: a.exposures() == [10.0, 10.0] and b.exposures() == [7.0]),
    "Target.on_error": m(
        "the target's error policy applies to its steps",
        {f"{T0}.on_error": {"then": "skip_step"}},
        lambda a, b: status(a) == "skipped" and status(b) == "completed"
        and b.exposures() == [10.0],
        plan=seq({"cool": {"to": -20, "timeout": 10}}, expose())),
    "Target.wait": m(
        "waits for the constraints instead of skipping: 23:30 is 90 minutes after 22:00",
        {f"{T0}.wait": {"max": 7200}},
        lambda a, b: status(a) == "skipped" and status(b) == "completed"
        and near(started(b), 5400, 1),
        plan=seq(expose(), target={"constraints": {"after": "23:30"}})),
    "WaitPolicy.max": m(
        "the longest wait: 30 minutes does not reach 23:30",
        {f"{T0}.wait.max": 1800},
        lambda a, b: status(a) == "completed" and status(b) == "skipped",
        plan=seq(expose(), target={"constraints": {"after": "23:30"}, "wait": {"max": 7200}})),
    "WaitPolicy.then": m(
        "abort ends the night when the wait runs out, skip goes on to the next target",
        {f"{T0}.wait.then": "abort"},
        lambda a, b: [e["target"] for e in a.of("target_start")] == ["NGC 188", "M 31"]
        and [e["target"] for e in b.of("target_start")] == ["NGC 188"],
        plan=seq(expose(), target={"constraints": {"after": "23:30"},
                                   "wait": {"max": 60, "then": "skip"}},
                 more_targets=[{"name": "M 31", "coordinates": {"ra": 10.68, "dec": 41.27},
                                "sequence": [expose()]}])),
    "Constraints.min_altitude": m(
        "a target setting in the west, 11° high: above 5°, not above 30°",
        {f"{T0}.constraints.min_altitude": 30},
        lambda a, b: status(a) == "completed" and status(b) == "skipped"
        and "altitude" in reason(b),
        plan=seq(expose(), target={"coordinates": SETTING,
                                   "constraints": {"min_altitude": 5}})),
    "Constraints.max_airmass": m(
        "a target setting in the west, 11° high, is at airmass 5: below 8, not below 2",
        {f"{T0}.constraints.max_airmass": 2},
        lambda a, b: status(a) == "completed" and status(b) == "skipped"
        and "airmass" in reason(b),
        plan=seq(expose(), target={"coordinates": SETTING,
                                   "constraints": {"max_airmass": 8}})),
    "Constraints.twilight": m(
        "astronomical twilight ends over an hour after civil twilight",
        {f"{T0}.constraints.twilight": "astronomical"},
        lambda a, b: started(b) - started(a) > 3600,
        plan=seq(expose(), target={"constraints": {"twilight": "civil"}, "wait": WAIT}),
        start=DUSK),
    "Constraints.max_sun_altitude": m(
        "the Sun reaches -18° over an hour after -6°",
        {f"{T0}.constraints.max_sun_altitude": -18},
        lambda a, b: started(b) - started(a) > 3600,
        plan=seq(expose(), target={"constraints": {"max_sun_altitude": -6}, "wait": WAIT}),
        start=DUSK),
    "Constraints.moon_separation": m(
        "a target beside the Moon is skipped when it must stand 30° away",
        {f"{T0}.constraints.moon_separation": 30},
        lambda a, b: status(a) == "completed" and status(b) == "skipped"
        and "moon" in reason(b).lower(),
        plan=seq(expose(), target={"coordinates": NEAR_MOON,
                                   "constraints": {"moon_separation": 1}})),
    "Constraints.max_moon_illumination": m(
        "the Moon is full on the base night: 50% at most skips the target",
        {f"{T0}.constraints.max_moon_illumination": 0.5},
        lambda a, b: status(a) == "completed" and status(b) == "skipped"
        and "moon" in reason(b).lower(),
        plan=seq(expose(), target={"constraints": {"max_moon_illumination": 1.0}})),
    "Constraints.after": m(
        "not before this clock time: 23:00 is 30 minutes after 22:30",
        {f"{T0}.constraints.after": "23:00"},
        lambda a, b: near(started(a), 1800, 1) and near(started(b), 3600, 1),
        plan=seq(expose(), target={"constraints": {"after": "22:30"}, "wait": WAIT})),
    "Constraints.until": m(
        "not after this clock time: the target ends at 22:10 with 10 minutes of frames",
        {f"{T0}.constraints.until": "22:10"},
        lambda a, b: len(a.frames) == 30 and 8 <= len(b.frames) <= 10
        and status(b) != "completed",
        plan=seq(*HALF_HOUR, target={"constraints": {"until": "23:59"}})),
})


def profile_with(section: str, **changes: Any) -> dict[str, Any]:
    prof = base_profile(mount=True, guider=True)
    prof[section] = {**prof[section], **changes}
    return prof


P_CAM = "profile.camera"
P_FW = "profile.filter_wheel"
P_FOC = "profile.focuser"
P_MOUNT = "profile.mount"
#: A slew of 60° in declination, from NGC 188 to +25°.
LONG_SLEW = seq({"slew": {}}, {"slew": {"dec": "+25:00:00"}}, expose())

_insert({
    # ---- equipment profile
    "Equipment.camera": m(
        "the camera's figures: a 4 s download instead of 1.5 s on two frames",
        {P_CAM: {"backend": "simulator", "download_time": 4.0}},
        lambda a, b: longer(a, b, 2 * 2.5)),
    "CameraProfile.download_time": m(
        "each frame costs its download: 2 frames × 2.5 s more",
        {f"{P_CAM}.download_time": 4.0}, lambda a, b: longer(a, b, 2 * 2.5)),
    "CameraProfile.width": m(
        "a sub-frame must fit the sensor", {f"{P_CAM}.width": 800},
        rejects="exceeds the sensor (800×768)",
        plan=seq(expose(roi={"x": 0, "y": 0, "width": 900, "height": 100}))),
    "CameraProfile.height": m(
        "a sub-frame must fit the sensor", {f"{P_CAM}.height": 600},
        rejects="exceeds the sensor (1024×600)",
        plan=seq(expose(roi={"x": 0, "y": 0, "width": 100, "height": 700}))),
    "CameraProfile.max_binning": m(
        "binning above the camera's maximum", {f"{P_CAM}.max_binning": 2},
        rejects="binning", plan=seq(expose(binning=4))),
    "CameraProfile.gain_range": m(
        "a gain outside the camera's range", {f"{P_CAM}.gain_range": [0, 100]},
        rejects="gain", plan=seq(expose(gain=300))),
    "CameraProfile.offset_range": m(
        "an offset outside the camera's range", {f"{P_CAM}.offset_range": [0, 20]},
        rejects="offset", plan=seq(expose(offset=50))),
    "CameraProfile.cooler": m(
        "a camera without a cooler cannot cool", {f"{P_CAM}.cooler": False},
        rejects="cool", plan=seq({"cool": {"to": -5}}, expose())),
    "Equipment.filter_wheel": m(
        "without a wheel there is no filter to change", {"profile.filter_wheel": REMOVE},
        rejects="filter", plan=seq({"filter": "R"}, expose())),
    "FilterWheelProfile.filters": m(
        "the wheel's filters: a plan may use only those",
        {f"{P_FW}.filters": [{"name": "L"}, {"name": "R"}]},
        rejects="Ha", plan=seq({"filter": "Ha"}, expose())),
    "FilterSpec.name": m(
        "the name plans use for a slot", {f"{P_FW}.filters.4.name": "H-alpha"},
        rejects="Ha", plan=seq({"filter": "Ha"}, expose())),
    "FilterWheelProfile.change_time": m(
        "each filter change costs it: three changes × 7 s more",
        {f"{P_FW}.change_time": 10},
        lambda a, b: longer(a, b, 3 * 7, 0.01),
        plan=seq({"filter": "R"}, {"filter": "G"}, {"filter": "B"}, expose())),
    "FilterSpec.focus_offset": m(
        "the focuser follows the filter's offset: R 15 → 115 steps out",
        {f"{P_FW}.filters.1.focus_offset": 115},
        lambda a, b: meta_of(a, "focus_position") == [BEST_FOCUS, BEST_FOCUS + 15]
        and meta_of(b, "focus_position") == [BEST_FOCUS, BEST_FOCUS + 115],
        plan=seq(expose(filter="L"), expose(filter="R"))),
    "Equipment.focuser": m(
        "without a focuser there is nothing to focus", {"profile.focuser": REMOVE},
        rejects="focuser", plan=seq({"focus": {"by": 100}}, expose())),
    "FocuserProfile.speed": m(
        "a 5000-step move at 1000 then 250 steps/s: 15 s longer",
        {f"{P_FOC}.speed": 250},
        lambda a, b: near(step_seconds(b, "T0/seq[0]") - step_seconds(a, "T0/seq[0]"), 15),
        plan=seq({"focus": {"by": 5000}}, expose())),
    "FocuserProfile.backlash": m(
        "an inward move travels the backlash too: 50 → 1050 steps at 1000 steps/s",
        {f"{P_FOC}.backlash": 1050},
        lambda a, b: near(step_seconds(b, "T0/seq[0]") - step_seconds(a, "T0/seq[0]"), 1.0),
        plan=seq({"focus": {"by": -1000}}, expose())),
    "FocuserProfile.step_size": m(
        "the autofocus step when the plan gives none: a wider V-curve travels further",
        {f"{P_FOC}.step_size": 300},
        lambda a, b: near(b.first("autofocus")["seconds"] - a.first("autofocus")["seconds"],
                          2 * 8 * 150 / 1000),
        plan=seq({"focus": {"auto": {}}}, expose())),
    "FocuserProfile.move_timeout": m(
        "a move that takes longer fails: 20,000 steps take 20 s",
        {f"{P_FOC}.move_timeout": 10},
        lambda a, b: not a.of("error") and b.of("error") and status(b) == "skipped",
        plan=seq({"focus": {"by": 20_000}}, expose())),
    "FocuserProfile.min_position": m(
        "a focus position below the focuser's travel", {f"{P_FOC}.min_position": 5000},
        rejects="position", plan=seq({"focus": {"position": 1000}}, expose())),
    "FocuserProfile.max_position": m(
        "a focus position past the focuser's travel", {f"{P_FOC}.max_position": 10_000},
        rejects="position", plan=seq({"focus": {"position": 20_000}}, expose())),
    "Equipment.mount": m(
        "without a mount there is nothing to slew", {"profile.mount": REMOVE},
        rejects="mount", plan=seq({"slew": {}}, expose()), profile=MOUNTED),
    "MountProfile.slew_rate": m(
        "60° at 3°/s, then at 1°/s: 40 s longer",
        {f"{P_MOUNT}.slew_rate": 1},
        lambda a, b: b.end - a.end > 30 and slewed(a) == slewed(b),
        plan=LONG_SLEW, profile=MOUNTED),
    "MountProfile.settle_time": m(
        "each slew waits it out: two slews × 15 s more", {f"{P_MOUNT}.settle_time": 20},
        lambda a, b: longer(a, b, 2 * 15, 1e-3), plan=LONG_SLEW, profile=MOUNTED),
    "MountProfile.slew_timeout": m(
        "a slew that takes longer fails", {f"{P_MOUNT}.slew_timeout": 5},
        lambda a, b: not a.of("error") and b.of("error") and status(b) == "skipped",
        plan=LONG_SLEW, profile=MOUNTED),
    "Equipment.guider": m(
        "without a guider there is no guiding", {"profile.guider": REMOVE},
        rejects="guider", plan=seq({"guide": "start"}, expose()), profile=GUIDED),
    "GuiderProfile.exposure": m(
        "a settle takes 3 guide exposures: 3 × 3 s more", {"profile.guider.exposure": 5},
        lambda a, b: near(b.first("settled")["seconds"] - a.first("settled")["seconds"], 9),
        plan=base_plan(startup=[{"guide": "start"}]), profile=GUIDED),
    "Equipment.safety": m(
        "a safety trigger needs the monitor", {"profile.safety": REMOVE},
        rejects="safety", plan=base_plan(triggers=[{"safety": {}}])),
    "Equipment.autofocus_overhead": m(
        "per autofocus sample: 9 samples × 5 s more", {"profile.autofocus_overhead": 15},
        lambda a, b: near(b.first("autofocus")["seconds"] - a.first("autofocus")["seconds"],
                          9 * 5),
        plan=seq({"focus": {"auto": {}}}, expose())),
    "Equipment.simulation": m(
        "the simulated sky: a colder ambient is a shorter way down to -5 °C",
        {"profile.simulation": {"ambient": 5}},
        lambda a, b: near(step_seconds(a, "T0/seq[0]") - step_seconds(b, "T0/seq[0]"), 120, 8),
        plan=seq({"cool": {"to": -5, "rate": 5}}, expose())),
    "Simulation.ambient": m(
        "where cooling starts: from 5 °C instead of 15 °C, 2 minutes less at 5 °C/min",
        {"profile.simulation.ambient": 5},
        lambda a, b: near(step_seconds(a, "T0/seq[0]") - step_seconds(b, "T0/seq[0]"), 120, 8),
        plan=seq({"cool": {"to": -5, "rate": 5}}, expose())),
    "Simulation.best_focus": m(
        "where the simulated focuser starts", {"profile.simulation.best_focus": 30_000},
        lambda a, b: meta_of(a, "focus_position") == [BEST_FOCUS] * 2
        and meta_of(b, "focus_position") == [30_000] * 2),
})


_insert({
    # ---- what the frame files say (the night's frame store, on the virtual clock)
    "Defaults.output": m(
        "the frame files' path template", {"plan.defaults.output": "{type}/{seq:03d}.fits"},
        lambda a, b: [f.name for f in a.files] == ["NGC 188_L_10s_0001.fits"]
        and [f"{f.parent.name}/{f.name}" for f in b.files] == ["light/001.fits"],
        plan=seq(expose(filter="L")), store=True),
    "Equipment.focal_length": m(
        "FOCALLEN", {"profile.focal_length": 530},
        lambda a, b: header(a, "FOCALLEN") == [400.0] and header(b, "FOCALLEN") == [530.0],
        plan=seq(expose()), store=True),
    "Equipment.telescope": m(
        "TELESCOP", {"profile.telescope": "Refractor 80"},
        lambda a, b: header(a, "TELESCOP") == ["Nightrunner Sim Scope"]
        and header(b, "TELESCOP") == ["Refractor 80"],
        plan=seq(expose()), store=True),
    "CameraProfile.name": m(
        "INSTRUME", {f"{P_CAM}.name": "ASI 2600"},
        lambda a, b: header(a, "INSTRUME") == ["Nightrunner Sim Camera"]
        and header(b, "INSTRUME") == ["ASI 2600"],
        plan=seq(expose()), store=True),
    "CameraProfile.pixel_size": m(
        "XPIXSZ, times the binning", {f"{P_CAM}.pixel_size": 4.63},
        lambda a, b: header(a, "XPIXSZ") == [7.52] and header(b, "XPIXSZ") == [9.26],
        plan=seq(expose(binning=2)), store=True),
    "CameraProfile.egain": m(
        "EGAIN", {f"{P_CAM}.egain": 0.25},
        lambda a, b: header(a, "EGAIN") == [1.0] and header(b, "EGAIN") == [0.25],
        plan=seq(expose()), store=True),
})

#: Guiding at 3″ RMS, gated at 5″: the gate never holds an exposure.
GATED = seq(expose(count=2), startup=[{"guide": "start"}],
            triggers=[{"guiding_rms": {"max_rms": 5, "wait": 60}}])


def pauses(n: Night) -> list[bool]:
    return [c["paused"] for name, c in n.guider if name == "pause"]


_insert({
    # ---- guiding in poor seeing, pauses
    "TriggerItem.guiding_rms": m(
        "holds an exposure while the RMS is above the limit, up to its wait",
        {"plan.triggers": [{"guiding_rms": {"max_rms": 2, "wait": 60}}]},
        lambda a, b: longer(a, b, 2 * 60)
        and b.text().count("guiding RMS 3.00 above 2 after 60 s; exposing anyway") == 2
        and "RMS" not in a.text(),
        plan=seq(expose(count=2), startup=[{"guide": "start"}]), profile=GUIDED,
        guide_rms=3.0),
    "GuidingRmsTrigger.max_rms": m(
        "the RMS limit: 3″ passes a 5″ gate; a 2″ gate holds each of 2 frames 60 s",
        {"plan.triggers.0.guiding_rms.max_rms": 2},
        lambda a, b: longer(a, b, 2 * 60) and "above 2 after 60 s" in b.text()
        and "RMS" not in a.text(),
        plan=GATED, profile=GUIDED, guide_rms=3.0),
    "GuidingRmsTrigger.wait": m(
        "how long the gate holds an exposure: 120 s instead of 60 s, on each of 2 frames",
        {"plan.triggers.0.guiding_rms.wait": 120},
        lambda a, b: longer(a, b, 2 * 60) and "after 120 s" in b.text(),
        plan=seq(expose(count=2), startup=[{"guide": "start"}],
                 triggers=[{"guiding_rms": {"max_rms": 2, "wait": 60}}]),
        profile=GUIDED, guide_rms=3.0),
    "Defaults.guiding": m(
        "guiding options: paused around filter changes",
        {"plan.defaults.guiding": {"pause_during": ["filter"]}},
        lambda a, b: pauses(a) == [] and pauses(b) == [True, False],
        plan=seq({"guide": "start"}, {"filter": "R"}, expose()), profile=GUIDED),
    "GuidingOptions.pause_during": m(
        "what guiding pauses around: filter changes instead of autofocus runs",
        {"plan.defaults.guiding.pause_during": ["filter"]},
        lambda a, b: pauses(a) == [True, False] and pauses(b) == [True, False]
        and [e.get("during") for e in a.of("guiding") if e["state"] == "paused"]
        == ["autofocus"]
        and [e.get("during") for e in b.of("guiding") if e["state"] == "paused"] == ["filter"],
        plan=seq({"guide": "start"}, {"filter": "R"}, {"focus": {"auto": {}}}, expose(),
                 defaults={"guiding": {"pause_during": ["autofocus"]}}), profile=GUIDED),
    # ---- what validation reads
    "Plan.site": m(
        "where the night is: NGC 188 never rises at 40° S",
        {"plan.site": {"latitude": -40, "longitude": 150, "timezone": "Australia/Sydney"}},
        rejects="never rises at latitude -40°"),
    "TriggerItem.safety": m(
        "the plan needs a safety monitor (which is watched whenever the profile has one)",
        {"plan.triggers": [{"safety": {}}]}, rejects="safety",
        profile={k: v for k, v in base_profile().items() if k != "safety"}),
})


def refocus_reasons(n: Night) -> list[str]:
    return [e["reason"] for e in n.of("trigger") if e["kind"] == "autofocus"]


_insert({
    # ---- refocusing on what the frames and the focuser measure
    "AutofocusTrigger.temperature_change": m(
        "refocuses once the temperature moved this far: -1.5 °C over 45 minutes",
        {"plan.triggers.0.autofocus.temperature_change": 1.0},
        lambda a, b: refocus_reasons(a) == [] and len(refocus_reasons(b)) == 1
        and "temperature changed -1." in refocus_reasons(b)[0],
        plan=seq(expose(count=45, exposure=58.5),
                 triggers=[{"autofocus": {"temperature_change": 2.0}}]),
        temperature_drift=-2.0),
    "AutofocusTrigger.hfr_increase": m(
        "refocuses once the HFR grew by this fraction: 2.0 → 2.5 px is +25 %",
        {"plan.triggers.0.autofocus.hfr_increase": 0.2},
        lambda a, b: refocus_reasons(a) == []
        and refocus_reasons(b) == ["HFR rose to 2.50 px from 2.00 px"],
        plan=seq(expose(count=6), triggers=[{"autofocus": {"hfr_increase": 0.5}}]),
        hfr=[2.0, 2.1, 2.5, 2.5, 2.5, 2.5]),
})


def stacked(n: Night) -> list[str]:
    """What the live stacker was asked, by kind, in order (every target ends its stacks)."""
    return [kind for kind, _ in n.stack]


_insert({
    # ---- live stacking
    "Target.stack": m(
        "stacks the target's lights live", {f"{T0}.stack": True},
        lambda a, b: stacked(a) == ["end"]
        and stacked(b) == ["begin", "submit", "submit", "end"],
        stacking=True),
    "StackStep.stack": m(
        "off stops the target's live stack: the frame after it is not stacked",
        {f"{S1}.stack": "off"},
        lambda a, b: stacked(a) == ["begin", "submit", "begin", "submit", "end"]
        and stacked(b) == ["begin", "submit", "end", "end"],
        plan=seq(expose(), {"stack": "on"}, expose(), target={"stack": True}), stacking=True),
    "CalibrationArgs.master": m(
        "the set becomes a master for the lights after it",
        {f"{S0}.calibration.master": True},
        lambda a, b: stacked(a) == ["end"] and stacked(b) == ["calibration"] * 2 + ["end"],
        plan=seq({"calibration": {"kind": "bias", "count": 2}}), stacking=True),
})

_insert({
    "Equipment.exposure_margin": m(
        "the slack a frame gets beyond exposure + download: a camera 20 s slow needs more",
        {"profile.exposure_margin": 10},
        lambda a, b: status(a) == "completed" and len(a.frames) == 2
        and status(b) == "skipped" and not b.frames and b.of("error"),
        profile=base_profile(exposure_margin=30), camera_lag=20),
})


def centring(n: Night) -> list[str]:
    return [e["action"] for e in n.of("centring")]


#: Every centring frame solves 60″ from the target.
MISSING = seq({"slew": {"center": {"tolerance": 120, "attempts": 3}}}, expose())

_insert({
    # ---- centring with a plate solver that always finds the mount 60″ off
    "CenterArgs.tolerance": m(
        "how close is centred: 60″ off passes 120″, never 30″",
        {f"{S0}.slew.center.tolerance": 30},
        lambda a, b: centring(a) == ["done"] and status(a) == "completed"
        and centring(b) == ["offset"] * 3 and status(b) == "skipped"
        and "not centred within 30″ after 3 attempt(s)" in reason(b),
        plan=MISSING, profile=MOUNTED, solver_miss=60),
    "CenterArgs.attempts": m(
        "solves before giving up", {f"{S0}.slew.center.attempts": 5},
        lambda a, b: centring(a) == ["offset"] * 3 and centring(b) == ["offset"] * 5,
        plan=seq({"slew": {"center": {"tolerance": 30, "attempts": 3}}}, expose()),
        profile=MOUNTED, solver_miss=60),
    "CenterArgs.solve_timeout": m(
        "each solve's time limit", {f"{S0}.slew.center.solve_timeout": 90},
        lambda a, b: a.solves == [30.0] and b.solves == [90.0],
        plan=seq({"slew": {"center": {"solve_timeout": 30}}}, expose()),
        profile=MOUNTED, solver_miss=0),
})

def _run(tmp: Path, case: Mutation) -> tuple[Night, Night]:
    kw: dict[str, Any] = {"store": case.store, "guide_rms": case.guide_rms, "hfr": case.hfr,
                          "temperature_drift": case.temperature_drift,
                          "stacking": case.stacking, "camera_lag": case.camera_lag,
                          "solver_miss": case.solver_miss}
    before = night(tmp / "before", case.plan, case.profile, case.start, **kw)
    plan, profile = mutated(case)
    after = night(tmp / "after", plan, profile, case.start, **kw)
    return before, after


@pytest.mark.parametrize("name", sorted(k for k, v in MUTATIONS.items() if v.effect))
def test_changing_the_field_changes_the_night_as_it_says(tmp_path: Path, name: str) -> None:
    case = MUTATIONS[name]
    assert case.effect is not None
    before, after = _run(tmp_path, case)
    assert _holds(case.effect, before, after), (
        f"{name} {case.says}: not so\nbefore: {before.kinds()} end {before.end}\n"
        f"after:  {after.kinds()} end {after.end}\n{before.events}\n{after.events}")
    # the effect is the change's: a night compared with itself does not show it
    assert not _holds(case.effect, before, before), f"{name}: holds without the change"
    assert not _holds(case.effect, after, after), f"{name}: holds without the change"


def _holds(effect: Callable[[Night, Night], bool], a: Night, b: Night) -> bool:
    try:
        return bool(effect(a, b))
    except (AssertionError, LookupError, StopIteration):  # an event the night does not have
        return False


@pytest.mark.parametrize("name", sorted(k for k, v in MUTATIONS.items() if v.rejects))
def test_changing_the_field_makes_validation_reject_the_plan(tmp_path: Path, name: str) -> None:
    case = MUTATIONS[name]
    assert case.rejects is not None
    loaded = load(tmp_path / "before", case.plan, case.profile)
    assert loaded.ok, [d.format() for d in loaded.diagnostics]
    plan, profile = mutated(case)
    messages = [d.format() for d in load(tmp_path / "after", plan, profile).diagnostics]
    assert any(case.rejects in msg and ": error: " in msg for msg in messages), messages



def test_the_rig_is_named_by_its_profile_name_in_what_validation_says(tmp_path: Path) -> None:
    """``Equipment.name`` is a label: the diagnostics about the rig use it."""
    plan = seq({"slew": {}}, expose())
    for name in ("simulator", "roof rig"):
        loaded = load(tmp_path / name, plan, base_profile(name=name))
        assert [d.message for d in loaded.diagnostics] == [
            f"slew step, but equipment '{name}' has no mount"]


def test_the_site_elevation_moves_the_topocentric_moon_by_arcseconds_only() -> None:
    """``Site.elevation`` enters the observer's place (astropy's EarthLocation): the Moon, the
    nearest body, shifts by its parallax — a few arcseconds for a few kilometres, nothing a
    constraint in whole degrees can notice."""
    import numpy as np

    from runner.plan.models import Site
    from runner.sky.ephemeris import bodies

    unix = np.array([START.timestamp()])
    low = bodies(Site(latitude=52.37, longitude=4.89, elevation=0,
                      timezone="Europe/Amsterdam"), unix)
    high = bodies(Site(latitude=52.37, longitude=4.89, elevation=4000,
                       timezone="Europe/Amsterdam"), unix)
    shift = abs(float(high["moon_alt"][0] - low["moon_alt"][0])) * 3600
    assert 0.1 < shift < 30, shift


def test_a_night_without_speed_runs_at_the_profiles_simulation_speed(tmp_path: Path) -> None:
    from runner.engine.run import Run, RunOptions

    for speed in (1.0, 60.0):
        loaded = load(tmp_path / str(speed), base_plan(),
                      base_profile(simulation={"speed": speed}))
        assert loaded.plan is not None and loaded.equipment is not None
        run = Run(loaded.plan, loaded.equipment, RunOptions(data_dir=tmp_path, progress="none"))
        assert run.clock.speed == speed
        fast = Run(loaded.plan, loaded.equipment,
                   RunOptions(data_dir=tmp_path, speed=300, progress="none"))
        assert fast.clock.speed == 300  # --speed wins


def test_the_profiles_data_dir_is_where_a_night_without_data_dir_records() -> None:
    from runner.engine.run import default_data_dir
    from runner.plan.equipment import Equipment

    rig = Equipment.model_validate(base_profile(data_dir="~/astro/frames"))
    assert default_data_dir(rig) == Path.home() / "astro/frames"
    assert default_data_dir(Equipment.model_validate(base_profile())) == (
        Path.cwd() / "nightrunner-data")


HERE = "tests/plan/test_option_effects.py"
NOTIFY = "tests/notify/test_notify.py"
EMAIL = "tests/notify/test_notify_email.py"
TLS = "tests/notify/test_notify_starttls.py"
INCLUDES = "tests/plan/test_includes.py"
FAULTS = "tests/engine/test_faults_and_abort.py"
SIMCAM = "tests/devices/test_sim_camera.py"
PHD2 = "tests/guiding/test_phd2_end_to_end.py"
BACKENDS = "tests/devices/backends/test_plan_on_real_backends.py"
CENTRING = "tests/solve/test_centring.py"
CENTER_OPTIONS = "tests/plan/test_center_options.py"
STAR_LOST = f"{FAULTS}::test_a_lost_guide_star_is_recovered_before_the_next_exposure"
STACK_LINK = f"{HERE}::test_the_targets_stack_options_reach_the_live_stacker_as_written"

#: Fields whose effect a dry run cannot show, and the tests (pytest node ids) that show it.
REFERENCES: dict[str, tuple[str, ...]] = {
    "Plan.name": (f"{NOTIFY}::test_the_webhook_hears_the_start_and_the_finish_with_the_summary",),
    "Plan.include": (f"{INCLUDES}::test_included_blocks_and_targets_are_merged",),
    # an included file's own includes are followed: a cycle through them is found
    "IncludedPlan.include": (f"{INCLUDES}::test_include_cycles_and_missing_files_are_errors",),
    "IncludedPlan.blocks": (f"{INCLUDES}::test_included_blocks_and_targets_are_merged",),
    "IncludedPlan.targets": (f"{INCLUDES}::test_included_blocks_and_targets_are_merged",),
    "Plan.notify": (f"{NOTIFY}::test_the_webhook_hears_the_start_and_the_finish_with_the_summary",),
    "Equipment.notify": (
        "tests/notify/test_notify_profile.py::"
        "test_the_profile_owner_hears_a_night_whose_plan_says_nothing",),
    "Notify.command": (
        f"{NOTIFY}::test_a_command_gets_the_json_on_stdin_and_the_event_in_its_environment",),
    "Notify.webhook": (
        f"{NOTIFY}::test_the_webhook_hears_the_start_and_the_finish_with_the_summary",),
    "Notify.webhook_token_env": (
        f"{NOTIFY}::test_the_webhook_hears_the_start_and_the_finish_with_the_summary",),
    "Notify.email": (
        f"{EMAIL}::test_the_morning_mail_arrives_and_the_password_is_nowhere_on_disk",),
    "Notify.on": (f"{NOTIFY}::test_an_abort_is_told_at_once_and_the_end_says_aborted",),
    "Notify.retries": (
        f"{NOTIFY}::test_a_failing_endpoint_is_retried_then_given_up_with_a_warning",),
    "Notify.backoff": (
        f"{NOTIFY}::test_a_failing_endpoint_is_retried_then_given_up_with_a_warning",),
    "Notify.timeout": (f"{NOTIFY}::test_a_hanging_endpoint_does_not_hold_the_night",),
    **{f"NotifyEmail.{k}": (
        f"{EMAIL}::test_the_morning_mail_arrives_and_the_password_is_nowhere_on_disk",)
       for k in ("host", "port", "from_", "to", "username", "password_env")},
    "NotifyEmail.starttls": (
        f"{TLS}::test_starttls_upgrades_verifies_the_server_and_then_logs_in",
        f"{TLS}::test_without_starttls_such_a_server_gets_no_login_and_no_mail"),
    "Site.elevation": (
        f"{HERE}::test_the_site_elevation_moves_the_topocentric_moon_by_arcseconds_only",),
    "Equipment.name": (
        f"{HERE}::test_the_rig_is_named_by_its_profile_name_in_what_validation_says",),
    "Equipment.data_dir": (
        f"{HERE}::test_the_profiles_data_dir_is_where_a_night_without_data_dir_records",),
    "Simulation.speed": (
        f"{HERE}::test_a_night_without_speed_runs_at_the_profiles_simulation_speed",),
    # the nominal autofocus times the V-curve; the fit runs on measured HFRs
    "FocusAuto.fit": (f"{HERE}::test_the_autofocus_fit_is_the_curve_fitted_to_the_v_curve",
                      "tests/engine/test_autofocus.py::test_finds_best_focus_near_the_start"),
    # a nominal guider never loses its star nor fails to settle
    "TriggerItem.star_lost": (STAR_LOST,),
    "StarLostTrigger.wait": (STAR_LOST,),
    "StarLostTrigger.restart_guiding": (
        STAR_LOST, f"{PHD2}::test_the_star_lost_fault_is_surfaced_and_recovery_restarts_guiding"),
    "StarLostTrigger.then": (STAR_LOST,),
    "DitherTrigger.on_settle_failure": (
        f"{FAULTS}::test_settle_failure_follows_the_dither_policy",),
    # the stacker's options: handed over as written (here), and what each does (the stacker)
    "StackOptions.align": (STACK_LINK,
                           "tests/stacking/test_stack_register.py::"
                           "test_registration_error_is_below_a_tenth_of_a_pixel"),
    "StackOptions.reject": (STACK_LINK,
                            "tests/stacking/test_stack_accumulate.py::"
                            "test_a_satellite_trail_in_one_frame_of_twenty_is_gone_from_the_"
                            "rejecting_stack"),
    "StackOptions.kappa": (STACK_LINK,
                           f"{HERE}::test_kappa_is_how_far_from_the_mean_a_pixel_is_rejected"),
    "StackOptions.flip": (STACK_LINK,
                          "tests/stacking/test_stack_register.py::"
                          "test_without_field_rotation_only_a_meridian_flip_may_rotate_the_field"),
    "StackOptions.field_rotation": (
        STACK_LINK, "tests/stacking/test_stack_register.py::"
        "test_without_field_rotation_only_a_meridian_flip_may_rotate_the_field"),
    "StackOptions.auto_stretch": (
        STACK_LINK, "tests/stacking/test_stack_stretch.py::"
        "test_auto_stretch_lifts_the_sky_to_a_quarter_grey_without_clipping_stars"),
    "StackOptions.calibration": (
        STACK_LINK, "tests/engine/test_run_stacks.py::"
        "test_a_master_dark_built_during_the_night_calibrates_the_lights_after_it"),
    # devices: which driver, where
    "Connection.backend": (f"{BACKENDS}::test_the_engine_runs_a_plan_on_real_servers",
                           "tests/devices/test_sim_motion.py::"
                           "test_factory_mixes_real_back_ends_with_simulators_per_device"),
    "Connection.address": (f"{BACKENDS}::test_the_engine_runs_a_plan_on_real_servers",),
    "Connection.device": (f"{BACKENDS}::test_the_engine_runs_a_plan_on_real_servers",
                          "tests/devices/backends/test_backend_contract.py::"
                          "test_unknown_device_is_an_error"),
    "GuiderProfile.backend": (
        f"{PHD2}::test_phd2_guider_on_the_simulator_moves_the_world_and_measures_rms",),
    "GuiderProfile.host": ("tests/engine/test_fault_shutdown.py::"
                           "test_losing_phd2_does_not_keep_the_mount_from_parking",),
    "GuiderProfile.port": (
        f"{PHD2}::test_phd2_guider_on_the_simulator_moves_the_world_and_measures_rms",),
    "GuiderProfile.profile": (
        f"{HERE}::test_the_guider_selects_the_phd2_profile_the_profile_names",),
    "GuiderProfile.pixel_scale": (
        f"{PHD2}::test_without_a_known_pixel_scale_stats_are_in_pixels",),
    # the simulators' image and sky model
    "CameraProfile.read_noise": (f"{HERE}::test_the_simulated_read_noise_is_the_profiles",
                                 f"{SIMCAM}::test_bias_dark_and_hot_pixels"),
    "CameraProfile.bayer": (f"{SIMCAM}::test_one_shot_colour_camera_writes_a_bayer_mosaic",),
    "Simulation.seed": (f"{SIMCAM}::test_same_seed_same_frames_other_seed_other_sky",),
    "Simulation.focus_drift": (f"{SIMCAM}::test_best_focus_drifts_with_temperature_and_filter",
                               "tests/engine/test_autofocus.py::"
                               "test_refocus_follows_temperature_drift"),
    "Simulation.ambient_drift": (
        f"{SIMCAM}::test_best_focus_drifts_with_temperature_and_filter",),
    "Simulation.stars": (f"{HERE}::test_the_simulated_field_has_as_many_stars_as_the_profile_says",
                         "tests/engine/test_autofocus.py::test_no_stars_fails_and_returns_to_the_start"),
    "Simulation.sky_background": (
        f"{HERE}::test_the_simulated_sky_is_as_bright_as_the_profile_says",),
    "Simulation.tracking_drift": (f"{SIMCAM}::test_frames_shift_with_dithers_and_unguided_drift",),
    "Simulation.sky": (
        "tests/solve/test_solve_frames.py::test_the_solved_wcs_puts_catalogue_stars_within_two_arcsec",
        f"{CENTER_OPTIONS}::test_centring_on_the_synthetic_sky_is_warned_about"),
    "Simulation.pointing_error": (
        f"{CENTRING}::test_a_ten_arcmin_pointing_error_is_centred_within_three_attempts",
        f"{CENTRING}::test_center_true_on_a_well_pointed_mount_takes_one_attempt"),
    "PointingError.arcmin": (
        f"{CENTRING}::test_a_ten_arcmin_pointing_error_is_centred_within_three_attempts",),
    "PointingError.angle": (
        f"{CENTRING}::test_a_ten_arcmin_pointing_error_is_centred_within_three_attempts",),
    # the simulators' faults
    "Simulation.faults": (f"{FAULTS}::test_camera_disconnect_is_retried_and_the_night_goes_on",),
    "Fault.kind": (f"{FAULTS}::test_camera_disconnect_is_retried_and_the_night_goes_on",
                   f"{FAULTS}::test_a_stuck_focuser_times_out_and_the_step_policy_decides"),
    "Fault.at_frame": (f"{FAULTS}::test_camera_disconnect_is_retried_and_the_night_goes_on",),
    "Fault.at_time": (
        f"{FAULTS}::test_unsafe_weather_aborts_the_exposure_at_once_and_shuts_down",),
    "Fault.duration": (
        f"{FAULTS}::test_a_lost_guide_star_is_recovered_before_the_next_exposure",),
    "Fault.times": (f"{PHD2}::test_the_star_lost_fault_is_surfaced_and_recovery_restarts_guiding",),
}


def _test_functions(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {n.name for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")}


def test_every_audited_field_shows_its_effect() -> None:
    """A field of the audit needs a mutation case, a reference to a test of its effect, or an
    audit entry saying validation rejects it."""
    mutated_fields = {k.split(" ")[0] for k in MUTATIONS}
    rejected = {k for k, v in AUDIT.items() if isinstance(v, Rejected)}
    missing = sorted(AUDIT.keys() - mutated_fields - REFERENCES.keys() - rejected)
    assert not missing, f"fields whose effect no test shows (add a MUTATIONS case): {missing}"
    unknown = sorted((mutated_fields | REFERENCES.keys()) - AUDIT.keys())
    assert not unknown, f"effects of fields the audit does not list: {unknown}"
    both = sorted(mutated_fields & REFERENCES.keys())
    assert not both, f"fields with a mutation case and a reference (keep the case): {both}"


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_a_referenced_test_exists_and_sets_the_field(name: str) -> None:
    """The reference cannot rot: the test is there, and its file sets the field's key."""
    key = name.split(".")[1].rstrip("_")
    for node in REFERENCES[name]:
        path, _, test = node.partition("::")
        assert test in _test_functions(path), f"{name}: no test {node}"
        if path != HERE:
            assert key in (ROOT / path).read_text(encoding="utf-8"), (
                f"{name}: {path} never mentions '{key}'")


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_mutation_changes_its_own_field(name: str) -> None:
    """Each case changes the field it is filed under: the field's key is on the changed path,
    or in the value written there (a section or a step put in whole)."""
    case = MUTATIONS[name]
    model, _, key = name.split(" ")[0].partition(".")
    key = key.rstrip("_")
    assert case.change, name
    assert any(key in [p.rstrip("_") for p in path.split(".")] or key in _keys(value)
               for path, value in case.change.items()), (model, case.change)


def _keys(value: Any) -> set[str]:
    """Every mapping key in ``value``, at any depth."""
    if isinstance(value, dict):
        return {str(k).rstrip("_") for k in value} | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


STACK_OPTIONS = [("align", "none", "align", False), ("reject", "none", "reject", False),
                 ("kappa", 2.5, "kappa", 2.5), ("flip", True, "flip", True),
                 ("field_rotation", True, "field_rotation", True),
                 ("auto_stretch", False, "auto_stretch", False),
                 ("calibration", ["dark-300s"], "calibration", ["dark-300s"])]


@pytest.mark.parametrize(("key", "value", "kwarg", "given"), STACK_OPTIONS)
def test_the_targets_stack_options_reach_the_live_stacker_as_written(
    tmp_path: Path, key: str, value: Any, kwarg: str, given: Any
) -> None:
    """What a target's ``stack:`` says is what its stacks start with (the stacker's own tests
    show what each option does to a stack)."""
    import asyncio

    from runner.engine.compiler import compile_plan
    from runner.engine.events import EventBus
    from runner.engine.stacking_link import StackingLink

    def options(stack: dict[str, Any]) -> dict[str, Any]:
        loaded = load(tmp_path, base_plan(target={"stack": stack}), base_profile())
        assert loaded.plan is not None and loaded.equipment is not None
        [ct] = compile_plan(loaded.plan, loaded.equipment).targets
        started: dict[str, Any] = {}

        async def begin() -> None:
            link = StackingLink(tmp_path / "data", EventBus(wall_time=False))
            link.stacks.begin = lambda target, **kw: started.update(kw)  # type: ignore[method-assign]
            link.begin(ct)

        asyncio.run(begin())
        return started

    default, changed = options({}), options({key: value})
    assert default[kwarg] != given and changed[kwarg] == given
    assert {k: v for k, v in changed.items() if k != kwarg} == {
        k: v for k, v in default.items() if k != kwarg}


def test_kappa_is_how_far_from_the_mean_a_pixel_is_rejected() -> None:
    """``StackOptions.kappa`` on the stack itself: a 6σ outlier is rejected at κ = 3 and kept
    at κ = 10."""
    import numpy as np

    from runner.stacking.accumulate import SigmaClipStack

    rng = np.random.default_rng(7)
    frames = [rng.normal(100.0, 1.0, (32, 32)).astype(np.float32) for _ in range(12)]
    frames[9][5, 5] += 6.0
    others = float(np.mean([f[5, 5] for i, f in enumerate(frames) if i != 9]))
    every = float(np.mean([f[5, 5] for f in frames]))  # the outlier adds 0.5
    pixel = {}
    for kappa in (3.0, 10.0):
        stack = SigmaClipStack(kappa)
        for f in frames:
            stack.add(f, noise=1.0)
        pixel[kappa] = float(stack.result()[5, 5])
    assert abs(pixel[3.0] - others) < 0.05
    assert abs(pixel[10.0] - every) < 0.05


def _sim_frame(kind: str, **changes: Any) -> Any:
    """One 30 s frame of the simulated camera of ``devsim_helpers.rig`` with ``changes``
    (``camera.<field>`` or a simulation field)."""
    import asyncio

    from runner.devices.sim import SimCamera, SimWorld
    from tests.devices.devsim_helpers import ManualClock, rig, take

    cam_changes = {k.split(".")[1]: v for k, v in changes.items() if k.startswith("camera.")}
    sim = {k: v for k, v in changes.items() if not k.startswith("camera.")}
    eq = rig(**sim)
    eq = eq.model_copy(update={"camera": eq.camera.model_copy(update=cam_changes)})

    async def expose() -> Any:
        clock = ManualClock()
        cam = SimCamera(SimWorld(clock, eq))
        await cam.connect()
        return await take(cam, clock, 30.0, kind)

    return asyncio.run(expose())


def test_the_simulated_read_noise_is_the_profiles() -> None:
    """``CameraProfile.read_noise``: a bias frame's scatter grows from 3 e- to 12 e-."""
    import numpy as np

    quiet = float(np.std(_sim_frame("bias").data.astype(float)))
    noisy = float(np.std(_sim_frame("bias", **{"camera.read_noise": 12.0}).data.astype(float)))
    assert quiet < 5 and 11 < noisy < 14, (quiet, noisy)


def test_the_simulated_sky_is_as_bright_as_the_profile_says() -> None:
    """``Simulation.sky_background`` (e-/s/px): twice the rate, twice the sky above the bias."""
    import numpy as np

    base = float(np.median(_sim_frame("light", sky_background=8.0).data)) - 50
    bright = float(np.median(_sim_frame("light", sky_background=16.0).data)) - 50
    assert bright / base == pytest.approx(2.0, rel=0.1), (base, bright)


def test_the_simulated_field_has_as_many_stars_as_the_profile_says() -> None:
    """``Simulation.stars``: a field of 30 stars shows far fewer than one of 600."""
    from runner.stacking.detect import detect_stars

    sparse = len(detect_stars(_sim_frame("light", stars=30).data))
    rich = len(detect_stars(_sim_frame("light", stars=600).data))
    assert sparse < 30 < rich, (sparse, rich)


def test_the_guider_selects_the_phd2_profile_the_profile_names() -> None:
    """``GuiderProfile.profile``: connecting selects that PHD2 equipment profile (PHD2's
    simulator has two); without it PHD2 keeps the one it has."""
    import asyncio

    from runner.clock import ScaledClock
    from runner.devices.sim.world import SimWorld
    from runner.guiding import open_guider
    from runner.plan.equipment import Equipment, GuiderProfile

    async def selected(profile: str | None) -> str:
        clock = ScaledClock(speed=50)
        eq = Equipment(name="rig", guider=GuiderProfile(backend="simulator", exposure=1.0,
                                                        profile=profile))
        async with open_guider(eq, clock, SimWorld(clock=clock, profile=eq)) as guider:
            [current] = [p.name for p in await guider.client.get_profiles() if p.selected]
            return current

    assert asyncio.run(selected(None)) == "Nightrunner Simulator"
    assert asyncio.run(selected("Backyard EQ6")) == "Backyard EQ6"


def test_the_autofocus_fit_is_the_curve_fitted_to_the_v_curve() -> None:
    """``FocusAuto.fit``: a true hyperbola (HFR² quadratic in position, asymmetric samples) is
    fitted exactly as a hyperbola, and with a worse r² and another minimum as a parabola."""
    from runner.engine.autofocus import CurveFit, fit_curve

    positions = [24_550 + 150 * i for i in range(9)]  # best focus 25,000 is off-centre
    hfrs = [(1.5 ** 2 + ((p - 25_000) / 100) ** 2) ** 0.5 for p in positions]
    hyperbola = fit_curve(positions, hfrs, "hyperbola")
    parabola = fit_curve(positions, hfrs, "parabola")
    assert isinstance(hyperbola, CurveFit) and isinstance(parabola, CurveFit)
    assert abs(hyperbola.best - 25_000) < 1 and hyperbola.r2 > 0.9999
    assert abs(parabola.best - 25_000) > 10 and parabola.r2 < hyperbola.r2
