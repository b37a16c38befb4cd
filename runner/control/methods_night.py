"""The night's methods: one ``status`` with everything a dashboard shows, the controls
(abort, pause, resume, skip) and the records (plan, events, frames, log)."""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.control.hub import Hub
from runner.control.protocol import RpcError
from runner.control.registry import REGISTRY
from runner.control.results import (
    AbortResult,
    EventsResult,
    FramesResult,
    LogResult,
    PauseResult,
    PlanResult,
    ResumeResult,
    RunPlanResult,
    SkipResult,
    Status,
    ValidateResult,
)
from runner.engine.machine import FINAL
from runner.estimate.eta import EtaCache

_ETA = EtaCache()  # one re-estimate per frame, not per status request


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AbortParams(_Strict):
    wait: bool = False
    reason: str = Field("abort requested over the control plane", max_length=200)


class SkipParams(_Strict):
    what: Literal["target", "step"] = Field(
        "target", description="target: leave the target before its next light; step: end the "
        "step running now (an exposure in progress is discarded) and go on with the next")


class EventsParams(_Strict):
    since: int = Field(0, ge=0, description="events after this sequence number (1-based)")
    limit: int = Field(1000, ge=1, le=10000)


class FramesParams(_Strict):
    target: str | None = None
    filter: str | None = None
    frame_type: Literal["light", "dark", "flat", "bias"] | None = None
    run_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(100, ge=1, le=10000)


class LogParams(_Strict):
    lines: int = Field(100, ge=1, le=5000)


class PlanPath(_Strict):
    path: str = Field(min_length=1, max_length=4096)


def _night(hub: Hub) -> Any:
    if hub.run is None:
        raise RpcError("no night is running")
    return hub.run


@REGISTRY.method("status", result=Status)
async def status(hub: Hub, _p: BaseModel) -> dict[str, Any]:
    """Everything a dashboard needs, in one call (answered from memory)."""
    run = hub.run or hub.last_run
    out: dict[str, Any] = {
        "server": "nightrunner", "version": hub.version, "running": hub.night_active,
        "rig": hub.telemetry_latest(),
        "subscribers": hub.events.subscribers, "events_dropped": hub.events.dropped,
    }
    if run is None:
        out["phase"] = "idle"
        return Status.answer(out)
    ex = run.executor
    out.update({
        "plan": run.plan.name,
        "run_id": run.run_dir.name if run.run_dir else None,
        "clock": run.clock.now().isoformat(), "speed": run.clock.speed,
    })
    _add_altitude(out["rig"], run.plan.site, run.clock.now())
    if ex is None:
        out["phase"] = "starting"
        return Status.answer(out)
    state = ex.model.state
    current = ex.current_exposure
    remaining = None
    if current is not None and "started" in current:
        elapsed = (run.clock.now() - datetime.fromisoformat(current["started"])).total_seconds()
        remaining = round(max(0.0, current["seconds"] - elapsed), 1)
    stats = ex.s.guider.stats() if ex.s.guider is not None else None
    stacker = getattr(ex.s.stacking, "stacker", None)
    stacking = getattr(stacker, "status", None)
    out.update({
        "phase": state.split(":")[0], "state": state, "outcome": ex.outcome,
        "paused": state == "paused", "pause_requested": ex.pause_requested,
        "target": ex.target.target.name if ex.target else None,
        "step": hub.events.step,
        "filter": ex.filter, "guiding": ex.guiding,
        "guide_rms": None if stats is None else {
            "ra": stats.rms_ra, "dec": stats.rms_dec, "total": stats.rms_total,
            "unit": stats.unit},
        "exposure": current, "exposure_remaining": remaining,
        "frames": {"light": ex.counters.lights, "dark": ex.counters.darks,
                   "flat": ex.counters.flats, "bias": ex.counters.biases,
                   "planned_light": run.program.light_frames_planned()},
        "per_target": ex.counters.per_target,
        "last_frame": ex.last_frame or None,
        "errors": [str(e) for e in ex.counters.errors][-20:],
        "error_count": len(ex.counters.errors),
        "warnings": list(hub.events.warnings), "warning_count": hub.events.warning_count,
        "stacker": stacking() if callable(stacking) else None,
    })
    if run is hub.run and hub.night_active:
        eta = _ETA.get(run)
        if eta is not None:
            out["eta_target"] = eta.target.isoformat() if eta.target else None
            out["eta_night"] = eta.night.isoformat()
    return Status.answer(out)


def _add_altitude(rig: dict[str, Any], site: Any, now: datetime) -> None:
    """The mount's altitude (degrees, ±0.5°: J2000 RA/Dec, no refraction) at the engine's
    time, from its RA/Dec and the plan's site."""
    mount = rig.get("mount")
    if not mount or mount.get("ra") is None or mount.get("dec") is None:
        return
    days = now.timestamp() / 86400.0 + 2440587.5 - 2451545.0
    lst = (280.46061837 + 360.98564736629 * days + site.longitude) % 360.0
    ha, dec, lat = (math.radians(x) for x in (lst - mount["ra"], mount["dec"], site.latitude))
    sin_alt = math.sin(dec) * math.sin(lat) + math.cos(dec) * math.cos(lat) * math.cos(ha)
    rig["mount"] = {**mount, "alt": round(math.degrees(math.asin(max(-1.0, min(1.0, sin_alt)))),
                                          2)}


@REGISTRY.method("abort", AbortParams, result=AbortResult)
async def abort(hub: Hub, p: AbortParams) -> dict[str, Any]:
    """Safe stop: the exposure is aborted and the shutdown sequence starts (idempotent);
    ``wait: true`` answers when the shutdown is done."""
    run = _night(hub) if hub.night_active else None
    if run is None:
        return AbortResult.answer({"aborting": False, "message": "no night is running"})
    run.abort(p.reason)
    if p.wait and hub.night_task is not None:
        await asyncio.shield(asyncio.wait({hub.night_task}))
        return AbortResult.answer({"aborting": True, "done": True, "outcome":
                                   run.executor.outcome if run.executor else "aborted"})
    return AbortResult.answer({"aborting": True, "done": False})


@REGISTRY.method("pause")
async def pause(hub: Hub, _p: BaseModel) -> PauseResult:
    """Pause between exposures (guiding and cooling keep running)."""
    run = _night(hub)
    state = run.executor.model.state if run.executor is not None else None
    if not hub.night_active or state is None or state in FINAL or state.startswith("shutdown"):
        raise RpcError("the night is not imaging (it is being set up, shutting down or over): "
                       "nothing to pause")
    run.pause()
    return PauseResult(pause_requested=True)


@REGISTRY.method("resume")
async def resume(hub: Hub, _p: BaseModel) -> ResumeResult:
    """Resume; the plan's filter, focus and set point are restored before the next exposure."""
    run = _night(hub)
    ex = run.executor
    if not hub.night_active or ex is None or (ex.model.state != "paused"
                                              and not ex.pause_requested):
        raise RpcError("the night is not paused: nothing to resume")
    run.resume()
    return ResumeResult(resumed=True)


@REGISTRY.method("skip", SkipParams)
async def skip(hub: Hub, p: SkipParams) -> SkipResult:
    """Leave the current target before its next light frame, or end the current step."""
    run = _night(hub)
    ex = run.executor
    reason = "skipped over the control plane"
    if p.what == "step":
        if ex is None or ex.request_skip_step(reason) is None:
            raise RpcError("no step of the plan is running: nothing to skip")
    elif ex is None or not ex.request_skip_target(reason):
        raise RpcError("no target is being imaged: nothing to skip")
    return SkipResult(skip_requested=p.what)


@REGISTRY.method("get_plan")
async def get_plan(hub: Hub, _p: BaseModel) -> PlanResult:
    """The running (or last) night's plan, as its models dump it."""
    run = hub.run or hub.last_run
    if run is None:
        raise RpcError("no night has run on this hub")
    return PlanResult(path=str(run.opt.plan_path) if run.opt.plan_path else None,
                      plan=run.plan.model_dump(mode="json", exclude_none=True))


def _events_file(hub: Hub) -> Path:
    run = hub.run or hub.last_run
    if run is None or run.run_dir is None:
        raise RpcError("no night has run on this hub")
    return Path(run.run_dir) / "events.jsonl"


def _read_events(path: Path, since: int, limit: int) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if n <= since:
                continue
            try:
                out.append({**json.loads(line), "seq": n})
            except ValueError:
                continue  # a torn last line
            if len(out) >= limit:
                break
    return out


@REGISTRY.method("get_events", EventsParams)
async def get_events(hub: Hub, p: EventsParams) -> EventsResult:
    """What a reconnecting client missed: events after sequence number ``since``."""
    events = await asyncio.to_thread(_read_events, _events_file(hub), p.since, p.limit)
    return EventsResult(events=events, next=events[-1]["seq"] if events else p.since)


@REGISTRY.method("get_log", LogParams)
async def get_log(hub: Hub, p: LogParams) -> LogResult:
    """The last ``lines`` events of the night's log, as text lines."""
    path = _events_file(hub)

    def tail() -> list[str]:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=p.lines)]

    return LogResult(lines=await asyncio.to_thread(tail))


@REGISTRY.method("list_frames", FramesParams)
async def list_frames(hub: Hub, p: FramesParams) -> FramesResult:
    """Frames from the image index, newest first, by the index's filters."""
    from dataclasses import asdict

    from runner.storage.index import INDEX_FILENAME, ImageIndex

    if not (hub.data_dir / INDEX_FILENAME).is_file():
        return FramesResult(frames=[])

    def query() -> list[dict[str, Any]]:
        with ImageIndex(hub.data_dir) as index:
            rows = index.query(target=p.target, filter=p.filter, frame_type=p.frame_type,
                               run_id=p.run_id, since=p.since, until=p.until, limit=p.limit,
                               newest_first=True)
        return [json.loads(json.dumps(asdict(r), default=str)) for r in rows]

    return FramesResult(frames=await asyncio.to_thread(query))


@REGISTRY.method("validate_plan", PlanPath)
async def validate_plan(hub: Hub, p: PlanPath) -> ValidateResult:
    """Check a plan file on the hub's machine: FILE:LINE:COL diagnostics."""
    from runner.plan.loader import load_plan

    path = await asyncio.to_thread(hub.plan_file, p.path)
    result = await asyncio.to_thread(load_plan, path)
    return ValidateResult(valid=result.ok,
                          diagnostics=[d.format() for d in result.diagnostics])


class RunPlanParams(PlanPath):
    dry_run: bool = Field(False, description="Run the plan on nominal devices in virtual time "
                          "(as `nightrunner run --dry-run` and `estimate` do), moving no "
                          "hardware; answers with the summary once it is over")
    start: datetime | None = Field(None, description="dry run: when the night begins (an "
                                   "aware ISO time; default now)")


@REGISTRY.method("run_plan", RunPlanParams, result=RunPlanResult)
async def run_plan(hub: Hub, p: RunPlanParams) -> dict[str, Any]:
    """Start a night on the hub's devices (one at a time); answers once it has started. A dry
    run moves nothing, may run beside a night, and answers once it is over."""
    answer = await _run_plan(hub, p)
    return RunPlanResult.model_validate(answer).model_dump(mode="json", exclude_none=True)


async def _run_plan(hub: Hub, p: RunPlanParams) -> dict[str, Any]:
    path = await asyncio.to_thread(hub.plan_file, p.path)
    if p.dry_run:
        from runner.control.dry_run import dry_run_plan

        return await dry_run_plan(hub, path, p.start)
    if p.start is not None:
        raise RpcError("start: only a dry run is given its start (a night starts now)")
    if hub.night_active:
        raise RpcError("a night is already running on this hub")
    if hub.start_night is None:
        raise RpcError("this server runs one night only (nightrunner run); use nightrunner "
                       "serve to start plans remotely")
    started: dict[str, Any] = await hub.start_night(path)
    return started
