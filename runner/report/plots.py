"""The report's plots, drawn with matplotlib's Agg back-end (no display) as PNG bytes.

Each function draws one figure from a :class:`~runner.report.collect.Night` and returns
``None`` when the night has nothing to show for it (no guiding, no frames), so that the page
leaves it out instead of showing an empty frame.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from runner.report.collect import Night, altitude_series

DPI = 80
_COLOURS = {"L": "#444444", "R": "#d62728", "G": "#2ca02c", "B": "#1f77b4", "Ha": "#9467bd",
            "OIII": "#17becf", "SII": "#8c564b"}

#: Events on the time line: (label, event names, colour).
TIMELINE = [
    ("slew", ("slewed",), "#1f77b4"),
    ("flip", ("trigger:meridian_flip",), "#ff7f0e"),
    ("autofocus", ("autofocus",), "#2ca02c"),
    ("dither", ("dithered",), "#7f7f7f"),
    ("pause", ("paused", "resumed"), "#9467bd"),
    ("retry", ("retry",), "#bcbd22"),
    ("error", ("error",), "#d62728"),
    ("abort", ("abort", "unsafe"), "#000000"),
]


#: Fixed margins (fractions of the figure) instead of a layout engine: constrained layout
#: measured every tick label's extent on every draw and took half of the report's time
#: (bench_report); the figures all have one size, so one set of margins fits them all.
MARGINS = {"left": 0.105, "right": 0.93, "top": 0.9, "bottom": 0.2}


def _figure() -> tuple[Figure, Any]:
    """A figure drawn straight on the Agg canvas: no pyplot (its import and its registry of
    open figures are for interactive use), nothing to close afterwards."""
    fig = Figure(figsize=(9, 3.2), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**MARGINS)
    return fig, fig.add_subplot()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _tz(night: Night) -> Any:
    return night.tz()


def _axes(title: str, ylabel: str, night: Night) -> tuple[Figure, Any]:
    fig, ax = _figure()
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    tz = _tz(night)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))  # type: ignore[no-untyped-call]
    ax.set_xlabel(f"time ({getattr(tz, 'key', None) or tz})", fontsize=8)
    ax.grid(alpha=0.3)
    return fig, ax


def _marks(ax: Any, times: list[datetime], colour: str, label: str) -> None:
    """Dashed vertical lines at ``times``: one artist for all (an ``axvline`` each was a
    third of the report's time on a night of 170 dithers)."""
    if times:
        ax.vlines(times, 0, 1, transform=ax.get_xaxis_transform(), colors=colour, lw=0.8,
                  linestyles="--", alpha=0.7, label=label)


def hfr(night: Night) -> bytes | None:
    pts = [f for f in night.frames if f.hfr is not None]
    if not pts:
        return None
    fig, ax = _axes("HFR per frame, by filter (dashed: autofocus runs)", "HFR (px)", night)
    for name in sorted({f.filter or "-" for f in pts}):
        sel = [f for f in pts if (f.filter or "-") == name]
        ax.scatter([f.time for f in sel], [f.hfr for f in sel], s=9, label=name,
                   color=_COLOURS.get(name))
    _marks(ax, night.times("autofocus"), "#2ca02c", "autofocus")
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


def guiding(night: Night) -> bytes | None:
    pts = [f for f in night.frames if f.rms is not None]
    if not pts:
        return None
    fig, ax = _axes("Guiding RMS per frame (dashed: dithers)", "RMS", night)
    t = [f.time for f in pts]
    ax.plot(t, [f.rms for f in pts], ".-", lw=0.8, ms=3, label="total", color="black")
    if any(f.rms_ra is not None for f in pts):
        ax.plot(t, [f.rms_ra for f in pts], ".", ms=3, label="RA", color="#1f77b4")
        ax.plot(t, [f.rms_dec for f in pts], ".", ms=3, label="Dec", color="#d62728")
    _marks(ax, night.times("dithered"), "#7f7f7f", "dither")
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


def temperature(night: Night) -> bytes | None:
    """Sensor temperature and set point (the run's minute-by-minute ``cooler`` samples, and
    each frame's own reading), cooler power on its own axis: a cooler near 100 % is one
    that cannot hold its set point."""
    pts = [f for f in night.frames if f.ccd_temp is not None]
    steps = [e for e in night.events if e.get("event") == "temperature" and "clock" in e]
    cooler = [e for e in night.events if e.get("event") == "cooler" and "clock" in e]
    if not pts and not steps and not cooler:
        return None
    fig, ax = _axes("Camera: sensor temperature, set point and cooler power", "°C", night)
    if cooler:
        t = [datetime.fromisoformat(e["clock"]) for e in cooler]
        ax.plot(t, [e.get("ccd_temp") for e in cooler], lw=0.8, color="#1f77b4",
                label="sensor")
        ax.step(t, [e.get("set_temp") for e in cooler], where="post", color="#d62728",
                label="set point")
    if pts:
        ax.plot([f.time for f in pts], [f.ccd_temp for f in pts], ".", ms=3, color="#1f77b4",
                label="sensor (per frame)")
        sp = [f for f in pts if f.set_temp is not None]
        if not cooler:
            ax.step([f.time for f in sp], [f.set_temp for f in sp], where="post",
                    color="#d62728", label="set point")
    if steps:
        ax.scatter([datetime.fromisoformat(e["clock"]) for e in steps],
                   [e.get("ccd_temp") for e in steps], marker="x", color="black",
                   label="cool/warm step")
    handles, labels = ax.get_legend_handles_labels()
    power = [e for e in cooler if e.get("cooler_power") is not None]
    top = ax
    if power:
        top = ax.twinx()  # drawn over the first axes: the legend goes on it
        (line,) = top.plot([datetime.fromisoformat(e["clock"]) for e in power],
                           [e["cooler_power"] for e in power], color="#ff7f0e", lw=0.8)
        top.set_ylim(0, 105)
        top.set_ylabel("cooler power (%)")
        handles, labels = [*handles, line], [*labels, "cooler power"]
    top.legend(handles, labels, fontsize=8, loc="upper right")
    return _png(fig)


def altitude(night: Night, series: dict[str, Any] | None = None,
             windows: dict[str, list[tuple[datetime, datetime]]] | None = None) -> bytes | None:
    """Each target's altitude over the night, twilights shaded, its imaging windows (when
    its constraints allow imaging, from the estimate) shaded under its curve, its imaging
    time drawn thick."""
    series = series if series is not None else altitude_series(night)
    if series is None:
        return None
    import numpy as np

    tz = _tz(night)
    grid = np.array(series["grid"])
    times = [datetime.fromtimestamp(x, tz) for x in grid]
    sun = np.array(series["sun"])
    fig, ax = _axes("Target altitude (grey: twilights; coloured: imaging windows; thick: "
                    "imaging)", "altitude (°)", night)
    for limit in (-0.833, -6.0, -12.0, -18.0):
        ax.fill_between(times, 0, 90, where=sun < limit, color="#000044", alpha=0.09, lw=0)
    for i, (name, _, _) in enumerate(night.targets):
        alt = np.array(series["alt"][i])
        (line,) = ax.plot(times, alt, lw=1, label=name)
        spans = (windows or {}).get(name, [])
        if spans:
            inside = np.zeros(len(grid), dtype=bool)
            for a, b in spans:
                inside |= (grid >= a.timestamp()) & (grid <= b.timestamp())
            ax.fill_between(times, 0, alt, where=inside, color=line.get_color(), alpha=0.15,
                            lw=0)
        mine = sorted(f.time for f in night.frames if f.target == name)
        if mine:
            at = np.interp([t.timestamp() for t in mine], grid, alt)
            ax.plot(mine, at, "o-", lw=4, ms=3, alpha=0.6, color=line.get_color())
    ax.set_ylim(0, 90)
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


def frames(night: Night) -> bytes | None:
    """Per target × filter: light frames taken and, with live stacking, the stacker's
    stacked, dropped and refused, side by side."""
    counts = night.counts()
    if not counts:
        return None
    stacks = night.stacks()
    fig, ax = _figure()
    ax.set_title("Frames per target × filter: taken" + (", and the live stacker's stacked / "
                 "dropped / refused" if stacks else ""), fontsize=10)
    keys = sorted(set(counts) | set(stacks))
    bars: list[tuple[str, list[int], str | None]] = [
        ("taken", [counts.get(k, 0) for k in keys], "#555555" if stacks else None)]
    if stacks:
        empty = {"stacked": 0, "dropped": 0, "refused": 0}
        bars += [(what, [stacks.get(k, empty)[what] for k in keys], colour)
                 for what, colour in (("stacked", "#2ca02c"), ("dropped", "#ff7f0e"),
                                      ("refused", "#d62728"))]
    width = 0.8 / len(bars)
    for j, (what, values, colour) in enumerate(bars):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(keys))]
        colours = colour or [_COLOURS.get(k[1], "#777777") for k in keys]  # by filter
        ax.bar(xs, values, width, color=colours, label=what)
        for x, v in zip(xs, values, strict=True):
            ax.text(x, v, str(v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(keys)), [f"{t}\n{f}" for t, f in keys])
    if stacks:
        ax.legend(fontsize=8, loc="upper right")
    ax.set_ylabel("light frames")
    return _png(fig)


def timeline(night: Night) -> bytes | None:
    rows: list[tuple[str, list[datetime], str]] = []
    for label, names, colour in TIMELINE:
        times = []
        for e in night.events:
            ev = e.get("event")
            key = f"trigger:{e.get('kind')}" if ev == "trigger" else ev
            if key in names and "clock" in e:
                times.append(datetime.fromisoformat(e["clock"]))
        if times:
            rows.append((label, times, colour))
    if not rows:
        return None
    fig, ax = _axes("Time line of events", "", night)
    for i, (_, times, colour) in enumerate(rows):
        ax.scatter(times, [i] * len(times), marker="|", s=200, color=colour)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    return _png(fig)


ALL = [("hfr", hfr), ("guiding", guiding), ("temperature", temperature),
       ("altitude", altitude), ("frames", frames), ("timeline", timeline)]
