"""Output for people: a live rich panel on a terminal, plain timestamped lines otherwise (cron).

Both are event listeners; neither can slow or stop the run.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, TextIO

PLAIN_EVENTS = {
    "phase", "target_start", "target_end", "target_skipped", "frame", "dithered", "autofocus",
    "error", "warning", "retry", "policy", "waiting", "loop_end", "loop_zero_iterations",
    "guiding", "temperature", "slewed", "parked", "abort", "run_end", "trigger", "paused",
    "resumed", "reconnected", "calibration_set", "stack_dropped", "resume",
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
        orphans = list(e.get("orphans") or [])
        shown = ", ".join(str(o) for o in orphans[:5]) + (" …" if len(orphans) > 5 else "")
        plural = "" if len(orphans) == 1 else "s"
        removed = f"; removed {len(orphans)} unjournalled file{plural}: {shown}" if orphans else ""
        return f"resuming run {e.get('run')}: {e.get('frames')} frames already taken{removed}"
    if ev == "autofocus":
        best = e.get("best_position", e.get("position"))
        return f"autofocus → {best} (HFR {e.get('hfr', e.get('final_hfr', '?'))})"
    fields = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "time", "clock"))
    return f"{ev} {fields}".rstrip()


class PlainProgress:
    """One line per meaningful event, for logs and cron mail."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, e: dict[str, Any]) -> None:
        if e["event"] not in PLAIN_EVENTS:
            return
        stamp = datetime.fromisoformat(e["time"]).strftime("%H:%M:%S")
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
            i["state"] = e["state"]
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
