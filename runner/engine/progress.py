"""Output for people: a live rich panel on a terminal, plain timestamped lines otherwise (cron).

Both are event listeners; neither can slow or stop the run.
"""

from __future__ import annotations

import sys
from datetime import datetime, tzinfo
from typing import Any, TextIO

PLAIN_EVENTS = {
    "phase", "target_start", "target_end", "target_skipped", "frame", "dithered", "autofocus",
    "error", "warning", "retry", "policy", "waiting", "loop_end", "loop_zero_iterations",
    "guiding", "temperature", "slewed", "parked", "abort", "run_end", "trigger", "paused",
    "resumed", "reconnected", "calibration_set", "stack_dropped", "resume", "centring",
}


def _describe(e: dict[str, Any]) -> str:
    ev = e["event"]
    if ev == "frame":
        hfr = f" HFR {e['hfr']:.2f}px" if e.get("hfr") else ""
        rms = f" RMS {e['guiding_rms']:.2f}" if e.get("guiding_rms") else ""
        what = f"{e['type']} {e.get('filter') or '-'} {e['exposure']:g}s"
        return f"frame {what}{hfr}{rms} → {e['path']}"
    if ev == "target_start":
        return f"target {e['target']} started"
    if ev == "target_end":
        reason = f" ({e['reason']})" if e.get("reason") else ""
        return f"target {e['target']} {e['status']}{reason}"
    if ev == "resume":
        parts = [f"resuming run {e.get('run')}: {e.get('frames')} frames already taken"]
        for key, what in (("adopted", "kept {n} complete unjournalled frame{s}"),
                          ("lost", "{n} journalled frame{s} missing, taken again"),
                          ("temp_files_removed", "removed {n} partial file{s}")):
            files = [str(f) for f in e.get(key) or []]
            if files:
                shown = ", ".join(files[:5]) + (" …" if len(files) > 5 else "")
                label = what.format(n=len(files), s="" if len(files) == 1 else "s")
                parts.append(f"{label}: {shown}")
        return "; ".join(parts)
    if ev == "slewed" and e.get("ra") is not None and e.get("dec") is not None:
        return f"slewed to RA {_hms(float(e['ra']))} Dec {_dms(float(e['dec']))}"
    if ev == "centring":
        where = ""
        if e.get("ra") is not None and e.get("dec") is not None:
            where = f" at RA {_hms(float(e['ra']))} Dec {_dms(float(e['dec']))}"
        off = f", {float(e['error_arcsec']):.1f}″ off" if e.get("error_arcsec") is not None else ""
        return f"centring attempt {e.get('attempt')}{where}{off} → {e.get('action')}"
    if ev == "autofocus":
        best = e.get("best_position", e.get("position"))
        value = e.get("hfr", e.get("final_hfr"))
        shown = f"{value:.2f} px" if isinstance(value, int | float) else "?"
        return f"autofocus → {best} (HFR {shown})"
    fields = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "time", "clock"))
    return f"{ev} {fields}".rstrip()


def _hms(ra_deg: float) -> str:
    """Right ascension as astronomers read it (the engine keeps degrees)."""
    total = round((ra_deg % 360.0) / 15.0 * 3600.0)
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{h % 24:02d}h{m:02d}m{sec:02d}s"


def _dms(dec_deg: float) -> str:
    sign = "-" if dec_deg < 0 else "+"
    total = round(abs(dec_deg) * 3600.0)
    d, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{sign}{d:02d}°{m:02d}′{sec:02d}″"


class PlainProgress:
    """One line per meaningful event, for logs and cron mail, stamped in the site's time (as
    the estimate and the plan's clock times are), with the zone named once at the start."""

    def __init__(self, stream: TextIO | None = None, tz: tzinfo | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tz = tz
        self._zone_told = False

    def __call__(self, e: dict[str, Any]) -> None:
        if e["event"] not in PLAIN_EVENTS:
            return
        when = datetime.fromisoformat(e["time"])
        if self.tz is not None:
            when = when.astimezone(self.tz)
            if not self._zone_told:
                self._zone_told = True
                print(f"(times are site time, {when.tzname()})", file=self.stream, flush=True)
        stamp = when.strftime("%H:%M:%S")
        print(f"{stamp} {_describe(e)}", file=self.stream, flush=True)


class RichProgress:
    """A live panel: target, step, frame k/n, exposure countdown, temperature, HFR, guiding."""

    def __init__(self, planned_lights: int, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=False)
        self.planned = planned_lights
        self.info: dict[str, Any] = {"phase": "starting", "lights": 0}
        self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                         transient=False)
        self.live.start()

    def _render(self) -> Any:
        from rich.table import Table

        i = self.info
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold cyan")
        t.add_column()
        t.add_row("phase", f"{i.get('phase')}  {i.get('state', '')}")
        t.add_row("target", str(i.get("target", "-")))
        t.add_row("frames", f"{i['lights']} / {self.planned} lights")
        t.add_row("filter", str(i.get("filter", "-")))
        t.add_row("exposure", str(i.get("exposure", "-")))
        t.add_row("camera", f"{i.get('ccd_temp', '-')} °C")
        t.add_row("HFR", str(i.get("hfr", "-")))
        t.add_row("guiding", f"{i.get('guiding', '-')}  RMS {i.get('rms', '-')}")
        t.add_row("last", str(i.get("last", "")))
        return t

    def __call__(self, e: dict[str, Any]) -> None:
        ev = e["event"]
        i = self.info
        if ev == "phase":
            i["phase"] = e["phase"]
        elif ev == "state":
            # the state names the phase too ("imaging:expose"): no "phase" event announces
            # imaging, so the panel used to say "startup" all night
            i["state"] = e["state"]
            i["phase"] = str(e["state"]).split(":", 1)[0]
        elif ev == "target_start":
            i["target"] = e["target"]
        elif ev == "exposure_start":
            i["exposure"] = f"{e['type']} {e['seconds']:g}s ({e['key']})"
        elif ev == "frame":
            if e["type"] == "light":
                i["lights"] += 1
            if e.get("hfr"):
                i["hfr"] = f"{e['hfr']:.2f} px"
            if e.get("guiding_rms") is not None:
                i["rms"] = f"{e['guiding_rms']:.2f}"
        elif ev == "filter":
            i["filter"] = e["filter"]
        elif ev == "temperature":
            i["ccd_temp"] = f"{e['ccd_temp']:.1f}"
        elif ev == "guiding":
            i["guiding"] = e["state"]
        if ev in PLAIN_EVENTS:
            i["last"] = _describe(e)
        self.live.update(self._render())

    def close(self) -> None:
        self.live.stop()
