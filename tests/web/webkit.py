"""A stacking night on the simulators with its control plane, and real clients of the web
side: an SSE reader and an MJPEG reader that decodes each part with Pillow."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from runner.control.hub import Hub
from runner.control.night import run_served
from runner.control.server import ControlPlane
from runner.engine.run import Run, RunOptions
from runner.plan.loader import load_plan
from tests.control.cpkit import EQUIPMENT, EVENING, LOOPBACK, Served, wait_for

#: ``count`` light frames of NGC 188, live-stacked, after the camera has cooled.
STACKING_NIGHT = """\
version: 1
name: web test night
site: {{latitude: 52.37, longitude: 4.89, timezone: Europe/Amsterdam}}
equipment: eq.yaml
startup:
  - cool: {{to: 12, timeout: 10min}}
targets:
  - name: NGC 188
    coordinates: {{ra: "00:48:26", dec: "+85:14:42"}}
    stack: {{align: stars, reject: sigma, kappa: 3}}
    sequence:
      - filter: L
      - expose: {{count: {count}, exposure: {exposure}}}
shutdown:
  - warm: {{to: 15, timeout: 10min}}
"""


def stacking_run(tmp: Path, *, count: int, exposure: float = 30, speed: float = 300) -> Run:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "eq.yaml").write_text(EQUIPMENT, encoding="utf-8")
    plan_path = tmp / "plan.yaml"
    plan_path.write_text(STACKING_NIGHT.format(count=count, exposure=exposure),
                         encoding="utf-8")
    result = load_plan(plan_path)
    assert result.ok and result.plan is not None and result.equipment is not None, \
        [d.format() for d in result.diagnostics]
    options = RunOptions(data_dir=tmp / "data", speed=speed, start=EVENING, progress="none",
                         plan_text=plan_path.read_bytes(), plan_path=plan_path)
    return Run(result.plan, result.equipment, options)


@contextlib.asynccontextmanager
async def serve_stacking_night(tmp: Path, *, count: int, exposure: float = 30,
                               speed: float = 300, token: str | None = None
                               ) -> AsyncIterator[Served]:
    """The night served as ``nightrunner run`` serves it, yielded as soon as its control
    plane answers (before its first frame: the camera is still cooling)."""
    run = stacking_run(tmp, count=count, exposure=exposure, speed=speed)
    hub = Hub(tmp / "data", token=token)
    plane = ControlPlane(hub, http=(LOOPBACK, 0), tcp=None)
    task = asyncio.create_task(run_served(run, plane))
    served = Served(hub, plane, tmp / "data", run, task)
    try:
        await wait_for(lambda: task.done() or "http" in plane.bound,
                       what="the control plane to answer")
        assert not task.done(), "the night ended before its control plane answered"
        yield served
    finally:
        if not task.done():
            run.abort("end of test")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await task


async def sse_messages(client: httpx.AsyncClient, path: str) -> AsyncIterator[Any]:
    """The JSON of each ``data:`` message of an SSE stream (comments skipped)."""
    async with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        data: list[str] = []
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                yield json.loads("\n".join(data))
                data = []


async def mjpeg_parts(client: httpx.AsyncClient, path: str, n: int) -> list[Image.Image]:
    """The first ``n`` parts of an MJPEG stream, each decoded as a JPEG by Pillow."""
    images: list[Image.Image] = []
    async with client.stream("GET", path) as r:
        assert r.status_code == 200, await r.aread()
        kind = r.headers["content-type"]
        assert kind.startswith("multipart/x-mixed-replace"), kind
        boundary = ("--" + kind.split("boundary=")[1]).encode()
        buf = b""
        async for chunk in r.aiter_bytes():
            buf += chunk
            while True:
                start = buf.find(boundary)
                head_end = buf.find(b"\r\n\r\n", start)
                if start < 0 or head_end < 0:
                    break
                headers = dict(
                    line.split(": ", 1) for line in
                    buf[start + len(boundary):head_end].decode().strip().split("\r\n"))
                size = int(headers["Content-Length"])
                if len(buf) < head_end + 4 + size:
                    break
                assert headers["Content-Type"] == "image/jpeg"
                body = buf[head_end + 4:head_end + 4 + size]
                im = Image.open(io.BytesIO(body))
                assert im.format == "JPEG"
                im.load()
                images.append(im)
                buf = buf[head_end + 4 + size:]
                if len(images) >= n:
                    return images
    return images
