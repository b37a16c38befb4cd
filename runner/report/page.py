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
        "stacks": night.stacks(),
        "hfr_median": {k: round(statistics.median(v), 3) for k, v in sorted(per_filter.items())},
        "guiding_rms_median": round(statistics.median(rms), 3) if rms else None,
        "autofocus_runs": len(night.times("autofocus")),
        "dithers": len(night.times("dithered")),
        "errors": len(night.times("error")),
        "warnings": len(night.times("warning")),
    }


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


def render(night: Night, pictures: dict[str, bytes]) -> str:
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
            ["target", "stacked", "dropped", "refused"],
            [[t, s["stacked"], s["dropped"], s["refused"]] for t, s in fig["stacks"].items()])]
    if fig["hfr_median"]:
        parts.append(_table(["filter", "median HFR (px)"],
                            [[k, v] for k, v in fig["hfr_median"].items()]))
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


def _altitudes_later(night: Night) -> Any:
    """Start the altitude numbers: in a forked child when astropy is not loaded yet (its
    import and first transform take two seconds, as long as all the other plots), so both
    cores work; in this process when it is (at the end of a night, astropy is warm)."""
    import os
    import sys

    from runner.report import plots

    if "astropy.coordinates" in sys.modules or night.site is None or not hasattr(os, "fork"):
        return lambda: plots.altitude_series(night)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send JSON, leave without any clean-up of the parent's
        os.close(r)
        try:
            data = json.dumps(plots.altitude_series(night)).encode()
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
        return json.loads(data) if data else None

    return result


def write_page(night: Night) -> Path:
    from runner.report import plots

    altitudes = _altitudes_later(night)
    drawn = {name: draw(night) for name, draw in plots.ALL if name != "altitude"}
    drawn["altitude"] = plots.altitude(night, altitudes())  # last: its numbers come last
    pictures = {name: png for name, _ in plots.ALL if (png := drawn.get(name)) is not None}
    out = night.run_dir / "report.html"
    out.write_text(render(night, pictures), encoding="utf-8")
    report = {**figures(night), "plots": list(pictures)}
    (night.run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str),
                                               encoding="utf-8")
    return out
