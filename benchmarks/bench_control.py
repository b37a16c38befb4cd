"""Control-plane bars, measured against a real night on the simulators.

Each night runs in a fresh process (``--night``), on the simulators at ``--speed`` (60×), with
2048×2048 frames, 30 s lights (0.5 s real) and live stacking on (``stack: true``), served by
``run_served`` with the control plane on ephemeral loopback ports. The night's process also
samples its own event loop's lag every 10 ms. Clients run in a second process (``--client``,
httpx and websockets), so that they neither share the night's GIL nor its loop; the control
plane holds the night back until they are connected and subscribed (``GatedPlane``), so that
a subscriber can be checked for every frame event of the night.

(a) ``status`` over HTTP ``POST /rpc`` at 100 requests/s for ~20 s: p50 ≤ 3 ms, p99 ≤ 20 ms,
    client side (request sent → reply parsed), from one thread taking turns on two keep-alive
    connections: ``http.client`` (least client work; the bars apply to it) and
    ``httpx.Client`` (printed beside it: on 2 cores shared with the night, httpx's own
    per-request work adds ~1 ms to the median).
(b) meanwhile, the night's event-loop lag p99 ≤ 50 ms, and no frame lost: frames counted in
    the summary == frame events a WebSocket subscriber received.
(c) abort over RPC, 1.5 s into a 300 s light (several nights): from sending ``abort`` to the
    camera's exposure aborted (``abort_exposure`` returned, timed in the night's process),
    shutdown entered and the warm-up step started (their events' emit times) ≤ 1 s, and the
    guiding stop requested (the shutdown's ``guide: stop`` step) ≤ 1 s.
(d) 50 WebSocket subscribers + 5 TCP (seed 000) clients during a night: each gets every frame
    event, in order; the night's real duration within ±10 % of the same night without any
    (interleaved rounds, medians).

``--web``: the same bars with the web side watched too in every night that has clients: the
status page open in headless Chromium (Debian's, driven by Playwright; it follows three SSE
streams and both MJPEG videos), and besides it both MJPEG streams and all four SSE streams
(``/api/updates/live/histogram``, ``stacked/histogram``, ``stacking_status``, ``night``) read
by the client process; how many parts and messages each got is printed.

Figures are printed beside their bars; the exit code is 1 when a bar is missed.

Run: .venv/bin/python benchmarks/bench_control.py [--speed 60] [--size 2048] [--rounds 2] [--web]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from math import inf
from pathlib import Path
from typing import Any

RATE = 100.0  # status requests per second
POLL_SECONDS = 20.0
LAG_PERIOD = 0.01  # s
N_WS, N_TCP = 50, 5
ABORT_AFTER = 1.5  # s of real time into the long exposure
NIGHT_TIMEOUT = 150.0  # s: a night process that takes longer is killed
WEB = False  # --web: the page, both MJPEG streams and every SSE stream watched as well
WEB_SSE = ("/api/updates/live/histogram", "/api/updates/stacked/histogram",
           "/api/updates/stacking_status", "/api/updates/night")
WEB_VIDEO = ("/api/video/live", "/api/video/stacked")
CHROMIUM = "/usr/bin/chromium"

EQ = """\
name: bench-control
camera: {{backend: simulator, width: {size}, height: {size}, download_time: 1}}
# the default 30 s download allowance is 0.5 s of real time at 60×: too little for the CPU
# work of a 2k frame while the clients load both cores
exposure_margin: 300
filter_wheel: {{backend: simulator, filters: [{{name: L}}]}}
guider: {{backend: simulator, exposure: 1}}
"""
PLAN = """\
version: 1
name: control bench {scenario}
site: {{latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}}
equipment: eq.yaml
defaults: {{settle: {{pixels: 2, time: 2, timeout: 30}}}}
startup: [{{guide: start}}]
targets:
  - name: NGC 188
    coordinates: {{ra: "00:48:26", dec: "+85:14:42"}}
    stack: true
    sequence:
      - filter: L
{sequence}
shutdown: [{{guide: stop}}, {{warm: {{to: 10, rate: 10}}}}]
"""
SEQUENCES = {
    # 40 × (0.5 s exposure + download, write, stack) ≈ 25 s: outlasts the 20 s of polling
    "status": "      - expose: {count: 40, exposure: 30}",
    "quiet": "      - expose: {count: 20, exposure: 30}",
    "crowd": "      - expose: {count: 20, exposure: 30}",
    # a few frames in the stack, then a 300 s light (5 s real) that the abort lands in
    "abort": "      - expose: {count: 3, exposure: 30}\n"
             "      - expose: {count: 5, exposure: 300}",
}
CLIENTS = {"status": (1, 0), "abort": (1, 0), "crowd": (N_WS, N_TCP), "quiet": None}


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# --------------------------------------------------------------------------- client process


async def _ws_subscriber(url: str, out: list[tuple[float, dict[str, Any]]],
                         connected: list[Any]) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=1 << 22, open_timeout=20) as ws:
        connected.append(ws)
        async for message in ws:
            msg = json.loads(message)
            if msg.get("method") != "event":
                continue
            ev = msg["params"]
            out.append((time.time(), ev))
            if ev.get("event") == "run_end":
                return


async def _tcp_subscriber(host: str, port: int, out: list[tuple[float, dict[str, Any]]],
                          connected: list[Any]) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    try:
        hello = json.loads(await reader.readline())
        assert hello.get("Event") == "Connection", hello
        connected.append(writer)
        for _ in range(1_000_000):  # bounded: a night sends a few hundred events
            line = await reader.readline()
            if not line:
                return
            msg = json.loads(line)
            if "Event" not in msg:
                continue
            ev = {"event": msg["Event"], **{k: v for k, v in msg.items() if k != "Event"}}
            out.append((time.time(), ev))
            if ev["event"] == "run_end":
                return
    finally:
        writer.close()


async def _rpc(hc: Any, method: str, params: dict[str, Any] | None = None) -> Any:
    r = await hc.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method,
                                    "params": params or {}})
    reply = r.json()
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def _poll_status(base: str, ended: threading.Event) -> dict[str, Any]:
    """``status`` at RATE per second (open loop: a late request does not push the schedule
    back) for POLL_SECONDS or until the night ends, from this thread, alternating between two
    keep-alive connections: the standard library's ``http.client`` (the least client-side
    work: the figure the bars apply to) and ``httpx.Client`` (a client library's own cost
    added, for comparison)."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    import httpx

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status", "params": {}}).encode()
    headers = {"Content-Type": "application/json"}
    url = urlsplit(base)
    lean = HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    hx = httpx.Client(base_url=base, timeout=10)

    def lean_call() -> Any:
        lean.request("POST", "/rpc", body, headers)  # headers and body in one send
        return json.loads(lean.getresponse().read())

    def httpx_call() -> Any:
        return hx.post("/rpc", content=body, headers=headers).json()

    lat: dict[str, list[float]] = {"lean": [], "httpx": []}
    calls = (("lean", lean_call), ("httpx", httpx_call))
    period = 1.0 / RATE
    w0 = time.time()
    t0 = time.perf_counter()
    try:
        for i in range(int(POLL_SECONDS * RATE)):
            if ended.is_set():
                break
            delay = t0 + i * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            name, call = calls[i % 2]
            t = time.perf_counter()
            reply = call()
            lat[name].append(time.perf_counter() - t)
            assert "phase" in reply["result"], reply
    finally:
        lean.close()
        hx.close()
    return {"latencies": lat, "window": [w0, time.time()],
            "elapsed": time.perf_counter() - t0}


async def _web_reader(client: Any, path: str, counts: dict[str, int], opened: list[str]) -> None:
    """Read a stream to its end, counting SSE messages or MJPEG parts (never decoded here:
    the browser decodes its own; this is the load of one more viewer)."""
    marker = b"--nightrunnerframe" if "/video/" in path else b"\n\ndata:"
    counts[path] = 0
    tail = b""
    async with client.stream("GET", path) as r:
        opened.append(path)
        async for chunk in r.aiter_bytes():
            data = tail + chunk
            counts[path] += data.count(marker) - tail.count(marker)
            tail = data[-32:]


def _have_chromium() -> bool:
    return Path(CHROMIUM).exists()


async def _open_page(http: str) -> tuple[Any, Any]:
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                       args=["--no-sandbox", "--disable-gpu"])
    page = await browser.new_page(viewport={"width": 412, "height": 1400})
    await page.goto(http + "/")
    await page.wait_for_function("document.querySelector('#conn').textContent === 'live'",
                                 timeout=30_000)
    return pw, browser


async def client_main(scenario: str, http: str, tcp: str) -> dict[str, Any]:
    import httpx

    n_ws, n_tcp = CLIENTS[scenario] or (0, 0)
    ws_url = http.replace("http", "ws", 1) + "/ws"
    host, _, port = tcp.rpartition(":")
    streams: list[list[tuple[float, dict[str, Any]]]] = [[] for _ in range(n_ws + n_tcp)]
    connected: list[Any] = []
    readers = [asyncio.create_task(_ws_subscriber(ws_url, streams[i], connected))
               for i in range(n_ws)]
    readers += [asyncio.create_task(_tcp_subscriber(host, int(port), streams[n_ws + i],
                                                    connected)) for i in range(n_tcp)]
    out: dict[str, Any] = {}
    web_counts: dict[str, int] = {}
    web_tasks: list[asyncio.Task[None]] = []
    page: tuple[Any, Any] | None = None
    web_client = httpx.AsyncClient(base_url=http, timeout=httpx.Timeout(10, read=None))
    if WEB:
        opened: list[str] = []
        web_tasks = [asyncio.create_task(_web_reader(web_client, p, web_counts, opened))
                     for p in WEB_SSE + WEB_VIDEO]
        if _have_chromium():
            page = await _open_page(http)
        for _ in range(600):
            if len(opened) == len(web_tasks):
                break
            await asyncio.sleep(0.05)
    async with httpx.AsyncClient(base_url=http, timeout=10) as hc:
        for _ in range(600):  # until every subscriber is subscribed (status counts them)
            if len(connected) == n_ws + n_tcp and \
                    (await _rpc(hc, "status"))["subscribers"] >= n_ws + n_tcp:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("subscribers did not all connect")
        print("ready", flush=True)
        ended = threading.Event()
        all_read = asyncio.gather(*readers)
        all_read.add_done_callback(lambda _f: ended.set())
        if scenario == "status":
            out["status"] = await asyncio.to_thread(_poll_status, http, ended)
        elif scenario == "abort":
            for _ in range(30_000):  # the long exposure started
                if any(e.get("event") == "exposure_start" and e.get("seconds") == 300
                       for _t, e in streams[0]):
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(ABORT_AFTER)
            t0 = time.time()
            result = await _rpc(hc, "abort")
            out["abort"] = {"sent": t0, "reply": time.time() - t0, "result": result}
        async with asyncio.timeout(NIGHT_TIMEOUT):
            await all_read
    for task in web_tasks:
        task.cancel()
    await asyncio.gather(*web_tasks, return_exceptions=True)
    await web_client.aclose()
    if page is not None:
        with contextlib.suppress(Exception):
            await page[1].close()
            await page[0].stop()
    if WEB:
        out["web"] = {"counts": web_counts, "page": page is not None}
    out["streams"] = [[(t, {k: e.get(k) for k in ("event", "seq", "key", "kind", "phase",
                                                  "state", "time")})
                       for t, e in s] for s in streams]
    return out


# --------------------------------------------------------------------------- night process


def _gated_plane_class() -> Any:
    from runner.control.server import ControlPlane

    @dataclass
    class GatedPlane(ControlPlane):
        """The control plane, which starts the client process once it is listening and
        holds the night back until the client says its subscribers are in."""

        client: list[str] | None = None
        proc: Any = None

        async def start(self) -> None:
            await super().start()
            if self.client is None:
                return
            host, port = self.bound["tcp"]
            self.proc = await asyncio.create_subprocess_exec(
                *self.client, "--http", str(self.url()), "--tcp", f"{host}:{port}",
                stdout=asyncio.subprocess.PIPE)
            assert self.proc.stdout is not None
            async with asyncio.timeout(60):
                line = await self.proc.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"client did not get ready: {line!r}")

        async def client_result(self) -> dict[str, Any] | None:
            if self.proc is None:
                return None
            assert self.proc.stdout is not None
            async with asyncio.timeout(NIGHT_TIMEOUT):
                data = await self.proc.stdout.read()
                await self.proc.wait()
            if self.proc.returncode != 0:
                raise RuntimeError(f"client failed with exit code {self.proc.returncode}")
            result: dict[str, Any] = json.loads(data.strip().splitlines()[-1])
            return result

    return GatedPlane


async def _sample_lag(samples: list[tuple[float, float]], stop: asyncio.Event) -> None:
    for _ in range(int(NIGHT_TIMEOUT / LAG_PERIOD)):
        if stop.is_set():
            return
        t = time.perf_counter()
        await asyncio.sleep(LAG_PERIOD)
        samples.append((time.time(), time.perf_counter() - t - LAG_PERIOD))


async def _time_camera_abort(run: Any, marks: dict[str, float]) -> None:
    """Wrap the night's camera's ``abort_exposure`` to time it (the executor calls it on the
    same object)."""
    for _ in range(6000):
        if run.devices is not None and run.devices.camera is not None:
            break
        await asyncio.sleep(0.01)
    else:
        return
    cam = run.devices.camera
    original = cam.abort_exposure

    async def timed() -> None:
        marks.setdefault("camera_abort_called", time.time())
        await original()
        marks.setdefault("camera_abort_done", time.time())

    cam.abort_exposure = timed


async def night_main(scenario: str, work: Path, speed: float, size: int) -> dict[str, Any]:
    from runner.control.hub import Hub
    from runner.control.night import run_served
    from runner.engine.run import Run, RunOptions
    from runner.plan.loader import load_plan

    (work / "eq.yaml").write_text(EQ.format(size=size))
    (work / "plan.yaml").write_text(PLAN.format(scenario=scenario,
                                                sequence=SEQUENCES[scenario]))
    loaded = load_plan(work / "plan.yaml")
    assert loaded.plan is not None and loaded.equipment is not None, loaded.diagnostics
    data = work / "data"
    run = Run(loaded.plan, loaded.equipment,
              RunOptions(data_dir=data, speed=speed, progress="none"))
    client = None
    if CLIENTS[scenario] is not None:
        client = [sys.executable, __file__, "--client", scenario] + (["--web"] if WEB else [])
    plane = _gated_plane_class()(Hub(data), http=("127.0.0.1", 0), tcp=("127.0.0.1", 0),
                                 client=client)
    samples: list[tuple[float, float]] = []
    marks: dict[str, float] = {}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_lag(samples, stop))
    watcher = asyncio.create_task(_time_camera_abort(run, marks))
    try:
        result = await run_served(run, plane)
    finally:
        stop.set()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await sampler
    assert not plane.problems, plane.problems
    got = await plane.client_result()
    events = [json.loads(x) for x in
              (result.run_dir / "events.jsonl").read_text().splitlines()]
    frames = [e for e in events if e["event"] == "frame"]
    first = next((e for e in events if e["event"] == "exposure_start"), None)
    out: dict[str, Any] = {
        "outcome": result.outcome,
        "real_seconds": result.summary["real_seconds"],
        "lights": result.summary["frames"]["light"],
        "errors": [str(e) for e in result.summary["errors"]],
        "frame_keys": [e["key"] for e in frames],
        "frame_loop": stamp(frames[-1]["time"]) - stamp(first["time"])
        if frames and first else None,
        "marks": marks,
        "lag_all": samples,
        "first_exposure": stamp(first["time"]) if first else None,
    }
    if got is None:
        return out
    if "status" in got:
        w0, w1 = got["status"]["window"]
        out["lag_window"] = [(t, lag) for t, lag in samples if w0 <= t <= w1]
        out["status"] = {k: v for k, v in got["status"].items()}
    if "abort" in got:
        out["abort"] = got["abort"]
        out["emitted"] = [{k: e.get(k) for k in ("event", "kind", "phase", "state", "time")}
                          for e in events]
    out["streams"] = got["streams"]
    if "web" in got:
        out["web"] = got["web"]
    return out


# --------------------------------------------------------------------------- the report


class Bars:
    def __init__(self) -> None:
        self.missed: list[str] = []

    def check(self, label: str, value: float, bar: float, unit: str, *, upper: bool = True,
              fmt: str = "7.1f") -> None:
        ok = value <= bar if upper else value >= bar
        print(f"  {label:<58} {value:{fmt}} {unit:<3} (bar {'≤' if upper else '≥'} "
              f"{bar:g} {unit})  {'ok' if ok else 'MISSED'}")
        if not ok:
            self.missed.append(label)

    def require(self, label: str, ok: bool, detail: str) -> None:
        print(f"  {label:<58} {detail}  {'ok' if ok else 'MISSED'}")
        if not ok:
            self.missed.append(label)


def spawn_night(scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-control-") as d:
        cmd = [sys.executable, __file__, "--night", scenario, "--work", d,
               "--speed", str(args.speed), "--size", str(args.size)] + \
            (["--web"] if args.web else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=NIGHT_TIMEOUT + 60,
                              check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"night {scenario} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if "web" in result:
        counts = ", ".join(f"{k.rsplit('/', 2)[-2]}/{k.rsplit('/', 1)[-1]} {v}"
                           for k, v in result["web"]["counts"].items())
        page = "page open in Chromium" if result["web"]["page"] else "no Chromium"
        print(f"  [{scenario} night, {result['lights']} frames: {page}; web streams read: "
              f"{counts}]", flush=True)
    return result


def frame_stream(stream: list[list[Any]]) -> tuple[list[str], bool]:
    """The frame keys a subscriber received, and whether its sequence numbers rose."""
    seqs = [e["seq"] for _t, e in stream]
    keys = [e["key"] for _t, e in stream if e["event"] == "frame"]
    return keys, all(a < b for a, b in itertools.pairwise(seqs))


def report_status(r: dict[str, Any], bars: Bars) -> None:
    st = r["status"]
    lean = [x * 1e3 for x in st["latencies"]["lean"]]
    hx = [x * 1e3 for x in st["latencies"]["httpx"]]
    n = len(lean) + len(hx)
    print(f"\n(a) status over HTTP POST /rpc: {n} requests in {st['elapsed']:.1f} s "
          f"({n / st['elapsed']:.0f}/s) on two keep-alive connections taking turns; night "
          f"{r['outcome']}, {r['lights']} frames of {r['size']}×{r['size']}, live stacking")
    bars.check("requests per second sustained", n / st["elapsed"], 0.95 * RATE, "/s",
               upper=False)
    bars.check("status latency p50 (http.client)", pct(lean, 50), 3, "ms", fmt="7.2f")
    bars.check("status latency p99 (http.client)", pct(lean, 99), 20, "ms", fmt="7.2f")
    print(f"  {'(http.client: p90, max)':<58} {pct(lean, 90):7.2f} ms, {max(lean):.1f} ms")
    print(f"  {'(httpx.Client, same load: p50, p99, max)':<58} {pct(hx, 50):7.2f} ms, "
          f"{pct(hx, 99):.2f} ms, {max(hx):.1f} ms")
    lag = [x * 1e3 for _t, x in r["lag_window"]]
    print(f"\n(b) the night's event loop meanwhile ({len(lag)} samples, every 10 ms)")
    bars.check("event-loop lag p99", pct(lag, 99), 50, "ms")
    set_up = [x * 1e3 for t, x in r["lag_window"] if t < r["first_exposure"]]
    imaging = [x * 1e3 for t, x in r["lag_window"] if t >= r["first_exposure"]]
    print(f"  {'(p50; max before the first exposure, max after)':<58} {pct(lag, 50):7.1f} ms; "
          f"{max(set_up, default=0):.1f} ms, {max(imaging, default=0):.1f} ms")
    keys, rising = frame_stream(r["streams"][0])
    bars.require("frames in the summary == frame events on /ws",
                 r["lights"] == len(keys) and keys == r["frame_keys"] and rising,
                 f"{r['lights']} == {len(keys)}")


def report_abort(rs: list[dict[str, Any]], bars: Bars) -> None:
    rows: dict[str, list[float]] = {k: [] for k in (
        "reply", "abort", "camera_abort_done", "shutdown", "guide_stop", "guiding_stopped",
        "warm", "ws_shutdown", "ws_warm", "stack_saved")}
    for r in rs:
        t0 = r["abort"]["sent"]
        assert r["outcome"] == "aborted", r["outcome"]
        rows["reply"].append(r["abort"]["reply"])
        rows["camera_abort_done"].append(r["marks"].get("camera_abort_done", inf) - t0)
        shutdown = False
        for e in r["emitted"]:
            t = stamp(e["time"]) - t0
            if e["event"] == "abort":
                rows["abort"].append(t)
            if e["event"] == "stack_saved" and not shutdown:
                rows["stack_saved"].append(t)
            if e["event"] == "phase" and e["phase"] == "shutdown":
                rows["shutdown"].append(t)
                shutdown = True
            if shutdown and e["event"] == "step" and e["kind"] == "guide" and \
                    len(rows["guide_stop"]) < len(rows["shutdown"]):
                rows["guide_stop"].append(t)
            if shutdown and e["event"] == "guiding" and e["state"] == "stopped":
                rows["guiding_stopped"].append(t)
            if shutdown and e["event"] == "step" and e["kind"] == "warm":
                rows["warm"].append(t)
        for t, e in r["streams"][0]:
            if e["event"] == "phase" and e["phase"] == "shutdown":
                rows["ws_shutdown"].append(t - t0)
            if e["event"] == "step" and e["kind"] == "warm":
                rows["ws_warm"].append(t - t0)
    print(f"\n(c) abort over RPC, {ABORT_AFTER} s into a 300 s light, {len(rs)} nights "
          "(max over nights; from the abort request being sent)")
    ms = {k: max(v, default=inf) * 1e3 for k, v in rows.items()}
    print(f"  {'RPC reply':<58} {ms['reply']:7.1f} ms")
    print(f"  {'abort event emitted':<58} {ms['abort']:7.1f} ms")
    bars.check("camera exposure aborted (abort_exposure returned)", ms["camera_abort_done"],
               1000, "ms")
    if rows["stack_saved"]:  # the target's stack is saved before the shutdown may start
        print(f"  {'live stack saved (stack_saved emitted, before shutdown)':<58} "
              f"{ms['stack_saved']:7.1f} ms")
    bars.check("shutdown entered (phase event emitted)", ms["shutdown"], 1000, "ms")
    bars.check("guiding stop requested (shutdown guide step)", ms["guide_stop"], 1000, "ms")
    print(f"  {'guiding stopped (guiding event)':<58} {ms['guiding_stopped']:7.1f} ms")
    bars.check("warm-up started (warm step emitted)", ms["warm"], 1000, "ms")
    print(f"  {'the same two as a /ws subscriber received them':<58} "
          f"{ms['ws_shutdown']:7.1f} ms, {ms['ws_warm']:.1f} ms")


def report_crowd(quiet: list[dict[str, Any]], crowd: list[dict[str, Any]], bars: Bars) -> None:
    print(f"\n(d) {N_WS} WebSocket + {N_TCP} TCP subscribers, {len(crowd)} nights, against "
          f"{len(quiet)} nights without any (interleaved)")
    bad = 0
    n = 0
    for r in crowd:
        for s in r["streams"]:
            keys, rising = frame_stream(s)
            n += 1
            if keys != r["frame_keys"] or not rising or len(keys) != r["lights"]:
                bad += 1
    bars.require("subscribers with every frame event, in order", bad == 0,
                 f"{n - bad}/{n} (of {crowd[0]['lights']} frames each)")
    q = statistics.median(x["real_seconds"] for x in quiet)
    c = statistics.median(x["real_seconds"] for x in crowd)
    print("  run real seconds without / with subscribers: "
          + ", ".join(f"{x['real_seconds']:.2f}" for x in quiet) + " / "
          + ", ".join(f"{x['real_seconds']:.2f}" for x in crowd))
    print(f"  {'(with / without − 1, medians)':<58} {(c / q - 1) * 100:+7.1f} %")
    bars.check("|run duration with / without subscribers − 1|", abs(c / q - 1) * 100, 10,
               "%")
    fq = statistics.median(x["frame_loop"] for x in quiet)
    fc = statistics.median(x["frame_loop"] for x in crowd)
    print(f"  {'(frame loop only: without / with)':<58} {fq:.2f} s / {fc:.2f} s "
          f"({(fc / fq - 1) * 100:+.1f} %)")
    lag = [x * 1e3 for r in crowd for t, x in r["lag_all"] if t >= r["first_exposure"]]
    print(f"  {'(lag with subscribers after the first exposure: p99, max)':<58} "
          f"{pct(lag, 99):7.1f} ms, {max(lag):.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=2, help="quiet/crowd night pairs for (d)")
    ap.add_argument("--aborts", type=int, default=3, help="nights aborted for (c)")
    ap.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where the nights write their frames (default: tmpfs)")
    ap.add_argument("--web", action="store_true",
                    help="also watch the web side: the page, both MJPEG and all SSE streams")
    ap.add_argument("--night", choices=list(SEQUENCES), help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--client", choices=list(SEQUENCES), help=argparse.SUPPRESS)
    ap.add_argument("--http", help=argparse.SUPPRESS)
    ap.add_argument("--tcp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global WEB
    WEB = args.web
    if args.client:
        print(json.dumps(asyncio.run(client_main(args.client, args.http, args.tcp))))
        return
    if args.night:
        out = asyncio.run(night_main(args.night, Path(args.work), args.speed, args.size))
        print(json.dumps({**out, "size": args.size}))
        return
    t = time.perf_counter()
    print(f"nights on the simulators at {args.speed:g}×, {args.size}×{args.size} frames, "
          f"live stacking, frames on {args.dir or 'the temp dir'}", flush=True)
    bars = Bars()
    report_status(spawn_night("status", args), bars)
    report_abort([spawn_night("abort", args) for _ in range(args.aborts)], bars)
    quiet, crowd = [], []
    for _ in range(args.rounds):
        quiet.append(spawn_night("quiet", args))
        crowd.append(spawn_night("crowd", args))
    report_crowd(quiet, crowd, bars)
    print(f"\n{time.perf_counter() - t:.0f} s in all; "
          + (f"{len(bars.missed)} bar(s) missed: {', '.join(bars.missed)}" if bars.missed
             else "every bar met"))
    sys.exit(1 if bars.missed else 0)


if __name__ == "__main__":
    main()
