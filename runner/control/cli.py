"""``nightrunner status | abort | pause | resume | skip | watch | serve``: the control plane
from a second terminal. Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 nothing listening."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

NOT_LISTENING = 3
DEFAULT_URL = "http://127.0.0.1:8765"

Url = Annotated[str, typer.Option(help="The control plane's address.",
                                  envvar="NIGHTRUNNER_URL")]
Token = Annotated[str | None, typer.Option(help="Bearer token (else $NIGHTRUNNER_TOKEN).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the JSON result.")]


def call(url: str, token: str | None, method: str, params: dict[str, Any] | None = None,
         timeout: float = 10.0, quiet: bool = False) -> Any:
    """One JSON-RPC call; exits with the contract's code on failure (``quiet``: an error
    the method answered is not printed)."""
    import httpx

    token = token or os.environ.get("NIGHTRUNNER_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    try:
        r = httpx.post(url.rstrip("/") + "/rpc", json=body, headers=headers, timeout=timeout)
    except httpx.ConnectError:
        typer.echo(f"error: nothing is listening at {url} (is a night or `nightrunner serve` "
                   "running?)", err=True)
        raise typer.Exit(NOT_LISTENING) from None
    except httpx.HTTPError as exc:
        typer.echo(f"error: {url}: {exc}", err=True)
        raise typer.Exit(NOT_LISTENING) from None
    try:
        reply = r.json()
    except ValueError:
        typer.echo(f"error: {url} answered HTTP {r.status_code} without JSON", err=True)
        raise typer.Exit(1) from None
    if "error" in reply:
        if not quiet:
            typer.echo(f"error: {reply['error'].get('message')}", err=True)
        raise typer.Exit(1)
    return reply.get("result")


def site_zone(url: str, token: str | None) -> Any:
    """The zone the night's plan names for its site (the console's site time), else the
    machine's: `watch` prints times as `nightrunner run` does."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        plan = call(url, token, "get_plan", quiet=True)
        return ZoneInfo(plan["plan"]["site"]["timezone"])
    except (typer.Exit, KeyError, TypeError, ValueError, ZoneInfoNotFoundError):
        return None  # no night yet, or no zone: the machine's


def clock_hms(ev: dict[str, Any], zone: Any) -> str:
    from datetime import datetime

    stamp = ev.get("clock") or ev.get("time") or ""
    try:
        return datetime.fromisoformat(stamp).astimezone(zone).strftime("%H:%M:%S")
    except ValueError:
        return stamp[11:19]


def panel(s: dict[str, Any]) -> str:
    """The status as a compact panel for a terminal."""
    lines = [f"{s.get('plan') or 'no night'} — {s.get('phase', 'idle')}"
             + (f" ({s['state']})" if s.get("state") else "")
             + (f" — run {s['run_id']}" if s.get("run_id") else "")]
    if s.get("target"):
        fr = s.get("frames") or {}
        lines.append(f"target {s['target']}  filter {s.get('filter') or '-'}  "
                     f"lights {fr.get('light', 0)}/{fr.get('planned_light', '?')}")
    exp = s.get("exposure")
    if exp:
        rem = s.get("exposure_remaining")
        lines.append(f"exposing {exp.get('type')} {exp.get('seconds')} s"
                     + (f", {rem:.0f} s left" if rem is not None else ""))
    cam = (s.get("rig") or {}).get("camera") or {}
    if cam:
        lines.append(f"camera {cam.get('temperature')} °C (set {cam.get('set_point')}, "
                     f"power {cam.get('cooler_power')} %)")
    rms = s.get("guide_rms")
    lines.append(f"guiding {'on' if s.get('guiding') else 'off'}"
                 + (f", RMS {rms['total']:.2f} {rms['unit']}" if rms else ""))
    last = s.get("last_frame")
    if last:
        lines.append(f"last frame {last.get('path')} HFR {last.get('hfr')}")
    if s.get("error_count"):
        lines.append(f"{s['error_count']} errors; last: {s['errors'][-1]}")
    return "\n".join(lines)


def _print(result: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(result, indent=2, default=str) if as_json else text)


def register(app: typer.Typer) -> None:
    @app.command()
    def status(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
        """What the night is doing (from a second terminal or another machine)."""
        result = call(url, token, "status")
        _print(result, as_json, panel(result))

    @app.command()
    def abort(
        url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False,
        wait: Annotated[bool, typer.Option("--wait", help="Return when shutdown is done.")]
        = False,
    ) -> None:
        """Stop the night safely: the exposure is aborted, then the shutdown sequence runs."""
        result = call(url, token, "abort", {"wait": wait}, timeout=900 if wait else 10)
        _print(result, as_json, "shutdown done" if result.get("done") else
               "abort requested: shutdown started" if result.get("aborting")
               else str(result.get("message")))

    @app.command()
    def pause(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
        """Pause between exposures (guiding and cooling keep running)."""
        _print(call(url, token, "pause"), as_json, "pause requested")

    @app.command()
    def resume(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
        """Resume a paused night."""
        _print(call(url, token, "resume"), as_json, "resumed")

    @app.command()
    def skip(
        what: Annotated[str, typer.Argument(help="target | step")] = "target",
        url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False,
    ) -> None:
        """Leave the current target (before its next light frame), or end the current step."""
        if what not in ("target", "step"):
            typer.echo("error: skip what? `skip target` or `skip step`", err=True)
            raise typer.Exit(2)
        _print(call(url, token, "skip", {"what": what}), as_json, "skip requested")

    @app.command()
    def watch(url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False) -> None:
        """Follow the night's events as they happen (Ctrl-C to stop watching)."""
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        token = token or os.environ.get("NIGHTRUNNER_TOKEN")
        ws_url = url.replace("http", "ws", 1).rstrip("/") + "/ws"
        headers = {"Authorization": f"Bearer {token}"} if token else None
        zone = None if as_json else site_zone(url, token)
        try:
            with connect(ws_url, additional_headers=headers) as ws:
                for message in ws:
                    msg = json.loads(message)
                    ev = msg.get("params") if msg.get("method") == "event" else None
                    if ev is None:
                        continue
                    if as_json:
                        typer.echo(json.dumps(ev, default=str))
                    else:
                        rest = {k: v for k, v in ev.items()
                                if k not in ("event", "time", "clock", "seq")}
                        typer.echo(f"{clock_hms(ev, zone)} "
                                   f"{ev.get('event')} {json.dumps(rest, default=str)}")
                    if ev.get("event") == "run_end":
                        return
        except (OSError, WebSocketException) as exc:
            typer.echo(f"error: cannot watch {ws_url}: {exc}", err=True)
            raise typer.Exit(NOT_LISTENING) from None
        except KeyboardInterrupt:
            return

    @app.command()
    def serve(
        equipment: Annotated[Path | None, typer.Option(help="Equipment profile "
                                                      "(default: the simulators).")] = None,
        data_dir: Annotated[Path, typer.Option(help="Frames, index and runs.")]
        = Path("nightrunner-data"),
        rpc: Annotated[str, typer.Option(help="HTTP/WebSocket address.",
                                         envvar="NIGHTRUNNER_RPC")] = "127.0.0.1:8765",
        tcp: Annotated[str, typer.Option(help="Seed 000 TCP address.",
                                         envvar="NIGHTRUNNER_TCP")] = "127.0.0.1:8800",
        token_file: Annotated[Path | None, typer.Option(help="Token file "
                                                       "(else $NIGHTRUNNER_TOKEN).")] = None,
        tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
        tls_key: Annotated[Path | None, typer.Option(help="TLS key (PEM).")] = None,
        speed: Annotated[float | None, typer.Option(min=0.001, help="Simulated clock speed.")]
        = None,
        plans: Annotated[list[Path] | None, typer.Option(
            help="A directory run_plan and validate_plan may read plans from (repeatable; "
                 "DATA_DIR/plans always).")] = None,
    ) -> None:
        """A long-running hub: holds the rig's devices, serves the control plane and the
        seed 000 TCP protocol, and runs plans sent with ``run_plan``, one at a time."""
        import asyncio

        from runner.control.serve import serve_forever
        from runner.errors import ConfigError, NightrunnerError

        try:
            code = asyncio.run(serve_forever(equipment, data_dir, rpc, tcp, token_file,
                                             tls_cert, tls_key, speed, plans))
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except NightrunnerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        raise typer.Exit(code)
