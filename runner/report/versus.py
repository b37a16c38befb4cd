"""The estimate against what happened: per target and filter, the frames and the time the
estimate predicted for this night, beside the frames taken and the time they took.

The prediction is ``nightrunner estimate`` for the plan as it was run, from the instant the
night actually began (its first event), on the plan's equipment profile: what the user
would have been told at dusk. It is computed once and kept in ``estimate.json`` beside the
night (``nightrunner report`` later reuses it). A plan file edited since the night is not
estimated (its prediction would be of another plan): the section says so.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from runner.report.collect import Night

ESTIMATE_FILENAME = "estimate.json"


def _first_clock(events: list[dict[str, Any]]) -> datetime | None:
    for e in events:
        if "clock" in e:
            return datetime.fromisoformat(e["clock"])
    return None


def kept_prediction(run_dir: Path) -> dict[str, Any] | None:
    """The estimate kept in ``estimate.json`` (None: not estimated yet)."""
    with contextlib.suppress(OSError, ValueError):
        kept = json.loads((run_dir / ESTIMATE_FILENAME).read_text(encoding="utf-8"))
        if isinstance(kept, dict) and ("timeline" in kept or "unavailable" in kept):
            return kept
    return None


def predicted(run_dir: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The estimate of this night (``{"timeline": …}``), or why there is none
    (``{"unavailable": reason}``); read from ``estimate.json`` when the night has one."""
    path = run_dir / ESTIMATE_FILENAME
    kept = kept_prediction(run_dir)
    if kept is not None:
        return kept
    out: dict[str, Any] = _off_the_loop(_estimate, run_dir, events)
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    return out


def _off_the_loop(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, in a worker thread when this thread runs an event loop: the estimate
    runs its own (virtual-time) loop, which cannot start inside a running one (the end of a
    night writes its report from the night's loop)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="report-estimate") as pool:
        return pool.submit(fn, *args).result()


def _estimate(run_dir: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"unavailable": "the night has no run.json (which plan it ran is unknown)"}
    if info.get("dry_run"):
        return {"unavailable": "a dry run is itself the estimate"}
    start = _first_clock(events)
    plan_path = info.get("plan")
    if not plan_path or start is None:
        return {"unavailable": "the night has no plan file or no events"}
    from runner.engine.journal import plan_digest

    try:
        text = Path(plan_path).read_bytes()
    except OSError:
        return {"unavailable": f"the plan {plan_path} is gone"}
    if info.get("plan_digest") and plan_digest(text) != info["plan_digest"]:
        return {"unavailable": f"the plan {plan_path} changed since the night"}
    from runner.estimate.night import estimate
    from runner.plan.loader import load_plan

    result = load_plan(Path(plan_path))
    if result.plan is None or result.equipment is None:
        return {"unavailable": f"the plan {plan_path} does not validate any more"}
    try:
        timeline = estimate(result.plan, result.equipment, start=start)
    except Exception as exc:  # the report is written anyway, without this section
        return {"unavailable": f"the estimate failed: {type(exc).__name__}: {exc}"}
    return {"start": start.isoformat(), "timeline": timeline.to_dict()}


def windows(prediction: dict[str, Any]) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each target's imaging windows (its constraints hold) in the estimate of the night."""
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for t in prediction.get("timeline", {}).get("targets", []):
        out[t["name"]] = [(datetime.fromisoformat(a), datetime.fromisoformat(b))
                          for a, b in t.get("windows", []) if a and b]
    return out


def _actual_targets(events: list[dict[str, Any]]) -> dict[str, dict[str, str | None]]:
    """Each target's first start and last end on the engine clock (over every segment)."""
    out: dict[str, dict[str, str | None]] = {}
    for e in events:
        ev, name = e.get("event"), e.get("target")
        if name is None or "clock" not in e:
            continue
        if ev == "target_start":
            out.setdefault(name, {"start": e["clock"], "end": None})
        elif ev == "target_end" and name in out:
            out[name]["end"] = e["clock"]
    return out


def _seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds(), 3)


def compare(prediction: dict[str, Any], night: Night) -> dict[str, Any]:
    """``rows``: per target × filter, frames and open-shutter seconds, predicted and taken;
    ``targets``: each target's predicted and actual start, end and duration (seconds);
    ``night``: the night's predicted and actual end."""
    if "timeline" not in prediction:
        return {"unavailable": prediction.get("unavailable", "no estimate")}
    tl = prediction["timeline"]
    counts = night.counts()
    seconds = night.integration()
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for t in tl.get("targets", []):
        for f in t.get("frames", []):
            if f.get("type") != "light":
                continue
            keys[(t["name"], f.get("filter") or "-")] = {
                "frames_predicted": int(f["count"]),
                "seconds_predicted": float(f["exposure_s"])}
    for key in counts:
        keys.setdefault(key, {"frames_predicted": 0, "seconds_predicted": 0.0})
    rows = [{"target": t, "filter": f, **p, "frames_taken": counts.get((t, f), 0),
             "seconds_taken": round(seconds.get((t, f), 0.0), 3)}
            for (t, f), p in sorted(keys.items())]
    actual = _actual_targets(night.events)
    targets = []
    for t in tl.get("targets", []):
        a = actual.get(t["name"], {"start": None, "end": None})
        targets.append({
            "target": t["name"], "start_predicted": t.get("start"),
            "end_predicted": t.get("end"),
            "duration_predicted_s": t.get("duration_s") if t.get("start") else None,
            "start_actual": a["start"], "end_actual": a["end"],
            "duration_actual_s": _seconds(a["start"], a["end"])})
    span = night.span()
    return {"start": prediction.get("start"), "rows": rows, "targets": targets,
            "night": {"end_predicted": tl.get("end"),
                      "end_actual": span[1].isoformat() if span else None}}


def _hhmm(iso: str | None, tz: Any) -> str:
    if not iso:
        return "—"
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%H:%M")


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def table_rows(versus: dict[str, Any], tz: Any) -> tuple[list[list[Any]], list[list[Any]]]:
    """The two tables of the section as text cells: per target × filter, per target."""
    frames = [[r["target"], r["filter"], r["frames_predicted"], r["frames_taken"],
               _minutes(r["seconds_predicted"]), _minutes(r["seconds_taken"])]
              for r in versus.get("rows", [])]
    targets = [[t["target"], _hhmm(t["start_predicted"], tz), _hhmm(t["start_actual"], tz),
                _hhmm(t["end_predicted"], tz), _hhmm(t["end_actual"], tz),
                _minutes(t["duration_predicted_s"]), _minutes(t["duration_actual_s"])]
               for t in versus.get("targets", [])]
    return frames, targets


FRAME_HEAD = ["target", "filter", "frames predicted", "frames taken", "light predicted",
              "light taken"]
TARGET_HEAD = ["target", "start predicted", "start", "end predicted", "end",
               "time predicted", "time taken"]


def markdown(versus: dict[str, Any], tz: Any) -> str:
    """The section for report.md."""
    lines = ["## Estimate against what happened", ""]
    if "unavailable" in versus:
        return "\n".join([*lines, f"No estimate: {versus['unavailable']}.", ""])
    frames, targets = table_rows(versus, tz)
    for head, rows in ((FRAME_HEAD, frames), (TARGET_HEAD, targets)):
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def markdown_of_report(run_dir: Path, zone: str | None) -> str:
    """The section for report.md from report.json's numbers ("" without a report.json)."""
    try:
        versus = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))["estimate"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    from datetime import UTC
    from zoneinfo import ZoneInfo

    return markdown(versus, ZoneInfo(zone) if zone else UTC)
