"""Seed 004 over HTTP while a real simulated night stacks: the stacking status pushed after
every stacked frame, both MJPEG streams, histograms, the stacker the night owns, the files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from tests.control.cpkit import assert_no_traceback, wait_for
from tests.web.webkit import mjpeg_parts, serve_stacking_night, sse_messages

FRAMES = 6


async def test_sse_stacking_status_after_every_stacked_frame(tmp_path: Path) -> None:
    async with serve_stacking_night(tmp_path, count=FRAMES) as night, \
            httpx.AsyncClient(base_url=night.url, timeout=60) as client:
        seen: list[dict[str, Any]] = []

        async def follow() -> None:
            async for status in sse_messages(client, "/api/updates/stacking_status"):
                seen.append(status)
                if status["status"] == "finished":
                    return

        await asyncio.wait_for(follow(), 60)
        stacked = [s["stacked"] for s in seen]
        # one message per processed frame: every stacked count from 1 to the last appears
        final = seen[-1]
        assert final["stacked"] >= FRAMES - 1, final  # at most one frame may not register
        assert set(range(1, final["stacked"] + 1)) <= set(stacked), stacked
        assert all(set(s) >= {"status", "frames", "processed", "stacked", "dropped",
                              "error_message"} for s in seen)
        # the result is served read-only from the data directory, as seed 004 lays it out
        # (while the night's control plane is up: it stops with the night)
        sid = final["stacking_id"]
        meta = (await client.get(f"/media/data/stacked/{sid}_final.json")).json()
        assert meta["stacking_id"] == sid and meta["stacked_frames"] == final["stacked"]
        jpeg = await client.get(f"/media/data/stacked/{sid}_final.jpeg")
        assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
        log = await client.get(f"/media/data/debug/{sid}/log.txt")
        assert log.status_code == 200 and '"event": "start"' in log.text
        assert night.task is not None
        await asyncio.wait_for(night.task, 30)
        # pushed from the event stream: the night's events carry the same statuses
        logged = [e["status"]["stacked"] for e in night.events_file()
                  if e["event"] == "stack_status"]
        assert set(logged) - {0} == set(stacked) - {0}


async def test_mjpeg_streams_deliver_decodable_frames(tmp_path: Path) -> None:
    async with serve_stacking_night(tmp_path, count=40, speed=100) as night, \
            httpx.AsyncClient(base_url=night.url, timeout=60) as client:
        live, stacked = await asyncio.wait_for(asyncio.gather(
            mjpeg_parts(client, "/api/video/live", 3),
            mjpeg_parts(client, "/api/video/stacked", 3)), 60)
        for parts in (live, stacked):
            assert len(parts) == 3
            assert all(p.width == 320 and p.height == 240 for p in parts), \
                [p.size for p in parts]
        # a stream sends a part per change: three parts are three different frames
        assert len({p.tobytes() for p in live}) == 3


async def test_histograms_and_the_night_owns_the_stacker(tmp_path: Path) -> None:
    async with serve_stacking_night(tmp_path, count=40, speed=100) as night, \
            httpx.AsyncClient(base_url=night.url, timeout=60) as client:

        async def first(path: str) -> Any:
            async for msg in sse_messages(client, path):
                return msg

        live = await asyncio.wait_for(first("/api/updates/live/histogram"), 30)
        stacked = await asyncio.wait_for(first("/api/updates/stacked/histogram"), 30)
        for h in (live, stacked):
            assert h["type"] == "mono" and len(h["Y"]) == 256
            assert abs(sum(h["Y"]) - 1.0) < 1e-6
        # a manual start is refused while the night owns the stacker; its controls work
        r = await client.post("/api/stacker/start", json={"name": "mine"})
        assert r.status_code == 409 and r.json()["status"] == "fail"
        assert "night owns" in r.json()["msg"]
        r = await client.post("/api/stacker/stretch", json={"auto_stretch": False,
                                                            "stretch_low": 0.1,
                                                            "stretch_high": 0.9})
        assert r.json() == {"status": "ok", "msg": ""}
        r = await client.post("/api/stacker/control", json={"operation": "pause"})
        assert r.json()["status"] == "ok"
        assert (await client.get("/api/stacker/status")).json()["status"] == "paused"
        await client.post("/api/stacker/control", json={"operation": "resume"})
        assert (await client.get("/api/stacker/status")).json()["status"] == "stacking"
        # the camera is the night's too
        r = await client.post("/api/camera/option/gain", json={"value": 100})
        assert r.status_code == 409 and "night owns the camera" in r.json()["msg"]
        assert (await client.get("/api/camera/status")).json() == {"status": "streaming"}
        assert night.run is not None and night.run.executor is not None
        await wait_for(lambda: night.run.executor.counters.lights >= 2,  # type: ignore[union-attr]
                       what="two light frames")


async def test_media_is_read_only_and_confined(tmp_path: Path) -> None:
    async with serve_stacking_night(tmp_path, count=40, speed=100) as night, \
            httpx.AsyncClient(base_url=night.url, timeout=30) as client:
        (tmp_path / "secret.txt").write_text("outside", encoding="utf-8")
        stacked = night.data / "stacked"
        stacked.mkdir(parents=True, exist_ok=True)
        (stacked / "escape.json").symlink_to(tmp_path / "secret.txt")
        for path in ("stacked/../../secret.txt", "stacked/%2e%2e/%2e%2e/secret.txt",
                     "stacked/escape.json", "runs", "index.sqlite", "stacked/none.jpeg",
                     "/etc/passwd", "stacked//x"):
            r = await client.get(f"/media/data/{path}")
            assert r.status_code == 404, (path, r.status_code)
            assert_no_traceback(r.text)
            assert "outside" not in r.text
        for method in ("post", "put", "delete"):
            r = await getattr(client, method)("/media/data/stacked/escape.json")
            assert r.status_code == 405, (method, r.status_code)
            assert json.loads(r.text)["error"]["message"]
