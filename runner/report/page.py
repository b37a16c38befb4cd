"""``report.html``: one self-contained page (plots embedded as PNG data URIs) and
``report.json`` with every figure the page shows, for scripts and tests."""

from __future__ import annotations

import base64
import html
import json
import statistics
from pathlib import Path
from typing import Any

from runner.report.collect import Night
from runner.storage.durable import atomic_write_text

_STYLE = """body{font-family:system-ui,sans-serif;max-width:980px;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}
img{max-width:100%;display:block;margin:.5em 0}.bad{color:#b00}"""


def figures(night: Night) -> dict[str, Any]:
    """Every number the page shows."""
    s = night.summary
    per_filter: dict[str, list[float]] = {}
    for f in night.frames:
        if f.hfr is not None:
            per_filter.setdefault(f.filter or "-", []).append(float(f.hfr))
    rms = [float(f.rms) for f in night.frames if f.rms is not None]
    span = night.span()
    return {
        "plan": s.get("plan"),
        "outcome": s.get("outcome"),
        "abort_reason": s.get("abort_reason"),
        "rig_safe": s.get("rig_safe", True),
        "start": span[0].isoformat() if span else None,
        "end": span[1].isoformat() if span else None,
        "light_frames": len(night.frames),
        "frames": [{"target": t, "filter": f, "taken": n}
                   for (t, f), n in sorted(night.counts().items())],
        "integration_s": [{"target": t, "filter": f, "seconds": round(sec, 3)}
                          for (t, f), sec in sorted(night.integration().items())],
        "stacks": [{"target": t, "filter": f, **row}
                   for (t, f), row in sorted(night.stacks().items())],
        "hfr_median": {k: round(statistics.median(v), 3) for k, v in sorted(per_filter.items())},
        "guiding_rms_median": round(statistics.median(rms), 3) if rms else None,
        "cooler": _cooler(night),
        "autofocus_runs": len(night.times("autofocus")),
        "dithers": len(night.times("dithered")),
        "errors": len(night.times("error")),
        "warnings": len(night.times("warning")),
    }


def _cooler(night: Night) -> dict[str, Any]:
    """The camera temperature plot's cooler samples (the run's ``cooler`` events)."""
    power = [float(e["cooler_power"]) for e in night.events
             if e.get("event") == "cooler" and e.get("cooler_power") is not None]
    return {"samples": sum(e.get("event") == "cooler" for e in night.events),
            "power_median": round(statistics.median(power), 2) if power else None,
            "power_max": max(power) if power else None}


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _hms(seconds: float) -> str:
    m = round(seconds) // 60
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{seconds / 60:.1f} min"


def _preview(night: Night) -> str:
    """The live stack's last saved preview, embedded when it is a PNG or JPEG."""
    for e in reversed(night.events):
        if e.get("event") != "stack_saved" or not isinstance(e.get("paths"), dict):
            continue
        for p in e["paths"].values():
            path = Path(str(p))
            kind = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(path.suffix.lower())
            if kind and path.is_file():
                data = base64.b64encode(path.read_bytes()).decode()
                return (f"<h2>Live stack</h2><img alt='live stack preview' "
                        f"src='data:image/{kind};base64,{data}'>")
    return ""


def _versus_html(versus: dict[str, Any], night: Night) -> list[str]:
    from runner.report.versus import FRAME_HEAD, TARGET_HEAD, table_rows

    parts = ["<h2 id='estimate'>Estimate against what happened</h2>"]
    if "unavailable" in versus:
        return [*parts, f"<p>No estimate: {html.escape(str(versus['unavailable']))}.</p>"]
    frames, targets = table_rows(versus, night.tz())
    return [*parts, _table(FRAME_HEAD, frames), _table(TARGET_HEAD, targets)]


def render(night: Night, pictures: dict[str, bytes],
           versus: dict[str, Any] | None = None) -> str:
    fig = figures(night)
    title = f"Night report — {fig['plan'] or night.run_dir.name}"
    outcome = html.escape(str(fig["outcome"]))
    if fig["abort_reason"]:
        outcome += f" ({html.escape(str(fig['abort_reason']))})"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>outcome: <b>{outcome}</b>"
             + ("" if fig["rig_safe"] else " — <b class='bad'>RIG MAY NOT BE SAFE</b>")
             + f"; {fig['start'] or '?'} → {fig['end'] or '?'}</p>",
             _table(["light frames", "autofocus runs", "dithers", "errors", "warnings"],
                    [[fig["light_frames"], fig["autofocus_runs"], fig["dithers"],
                      fig["errors"], fig["warnings"]]]),
             "<h2>Integration</h2>",
             _table(["target", "filter", "frames", "time"],
                    [[i["target"], i["filter"], f["taken"], _hms(i["seconds"])]
                     for i, f in zip(fig["integration_s"], fig["frames"], strict=True)])]
    if fig["stacks"]:
        parts += ["<h2>Live stacker</h2>", _table(
            ["target", "filter", "stacked", "dropped", "refused"],
            [[s["target"], s["filter"], s["stacked"], s["dropped"], s["refused"]]
             for s in fig["stacks"]])]
    if fig["hfr_median"]:
        parts.append(_table(["filter", "median HFR (px)"],
                            [[k, v] for k, v in fig["hfr_median"].items()]))
    if versus is not None:
        parts += _versus_html(versus, night)
    parts.append(_preview(night))
    for name, png in pictures.items():
        data = base64.b64encode(png).decode()
        parts.append(f"<img id='plot-{name}' alt='{name}' src='data:image/png;base64,{data}'>")
    problems = [e for e in night.events if e.get("event") in ("error", "warning")][:200]
    if problems:
        parts += ["<h2>Problems</h2><ul>"] + [
            f"<li>{html.escape(str(e.get('clock', ''))[11:19])} {e['event']}: "
            f"{html.escape(str(e.get('message', '')))}</li>" for e in problems] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def _sky(night: Night) -> dict[str, Any]:
    """What needs astropy: the altitude plot's numbers and the estimate of the night (each
    kept beside the night once computed)."""
    from runner.report.collect import altitudes
    from runner.report.versus import predicted

    return {"altitudes": altitudes(night),
            "prediction": predicted(night.run_dir, night.events)}


def _kept_sky(night: Night) -> dict[str, Any] | None:
    """Both, when the night keeps them already (any night the engine ran: its end-of-night
    report computed them): no astropy, no child process."""
    from runner.report.collect import kept_altitudes
    from runner.report.versus import kept_prediction

    known, series = kept_altitudes(night)
    prediction = kept_prediction(night.run_dir)
    if not known or prediction is None:
        return None
    return {"altitudes": series, "prediction": prediction}


def sky_later(night: Night) -> Any:
    """Start the numbers that need astropy (the altitudes, the estimate): in a forked child
    when astropy is not loaded yet (its import and its IERS tables take 1.5 s of CPU, as
    long as everything else the report does), so both cores work; in this process when it
    is (at the end of a night, astropy is warm). Called before matplotlib is imported and
    the index is read, so that the child starts first and the rest runs beside it."""
    import os
    import sys

    kept = _kept_sky(night)
    if kept is not None:
        return lambda: kept
    if "astropy.coordinates" in sys.modules or not hasattr(os, "fork"):
        return lambda: _sky(night)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send JSON, leave without any clean-up of the parent's
        os.close(r)
        try:
            data = json.dumps(_sky(night), default=str).encode()
        except BaseException:
            data = b"null"
        with os.fdopen(w, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(w)

    def result() -> Any:
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        got = json.loads(data) if data else None
        return got if isinstance(got, dict) else _sky(night)

    return result


def write_page(night: Night, sky: Any = None) -> Path:
    """``sky``: from :func:`sky_later` (started early); else computed here."""
    from runner.report import plots
    from runner.report.versus import compare, windows

    if sky is None:
        sky = sky_later(night)
    drawn = {name: draw(night) for name, draw in plots.ALL if name != "altitude"}
    numbers = sky()  # last: the child's numbers come last
    drawn["altitude"] = plots.altitude(night, numbers["altitudes"],
                                       windows(numbers["prediction"]))
    pictures = {name: png for name, _ in plots.ALL if (png := drawn.get(name)) is not None}
    versus = compare(numbers["prediction"], night)
    out = night.run_dir / "report.html"
    atomic_write_text(out, render(night, pictures, versus))
    report = {**figures(night), "estimate": versus, "plots": list(pictures)}
    atomic_write_text(night.run_dir / "report.json", json.dumps(report, indent=2, default=str))
    _keep_in_summary(night.run_dir / "summary.json", report)
    return out


def _keep_in_summary(path: Path, report: dict[str, Any]) -> None:
    """``summary.json`` keeps every figure the page shows too (under ``report``, the plots'
    names aside), so one file holds the night's record for scripts."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no summary (a night cut short): report.json still has them
    if not isinstance(summary, dict):
        return
    summary["report"] = {k: v for k, v in report.items() if k != "plots"}
    atomic_write_text(path, json.dumps(summary, indent=2, default=str))
