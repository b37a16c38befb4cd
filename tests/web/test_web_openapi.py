"""The OpenAPI document: every HTTP endpoint in it, the checked-in copy current, and errors in
JSON (never a traceback) for unknown paths, ids and bad parameters."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from runner.control.openapi_doc import openapi_document, openapi_text
from tests.control.cpkit import assert_no_traceback, serve_rig

ROOT = Path(__file__).resolve().parents[2]
WEB_PATHS = {
    "/api/camera", "/api/camera/status", "/api/camera/formats", "/api/camera/stream",
    "/api/camera/options", "/api/camera/option/all", "/api/camera/option/any",
    "/api/camera/option/{option_id}", "/api/stacker/start", "/api/stacker/control",
    "/api/stacker/stretch", "/api/stacker/status", "/api/updates/live/histogram",
    "/api/updates/stacked/histogram", "/api/updates/stacking_status", "/api/video/live",
    "/api/video/stacked", "/media/data/{path}", "/still", "/stream", "/api/images",
    "/api/images/{image_id}", "/", "/static/{name}", "/api/night/history",
    "/api/updates/night",
}


def test_checked_in_openapi_is_current() -> None:
    on_disk = (ROOT / "schemas" / "openapi.json").read_text(encoding="utf-8")
    assert on_disk == openapi_text(), "schemas/openapi.json is stale: run " \
        "`nightrunner schema --write`"
    assert set(json.loads(on_disk)["paths"]) >= WEB_PATHS


async def test_served_document_is_the_checked_in_one(tmp_path: Path) -> None:
    async with serve_rig(tmp_path) as rig, \
            httpx.AsyncClient(base_url=rig.url, timeout=30) as client:
        served = (await client.get("/openapi.json")).json()
        served["info"]["version"] = openapi_document()["info"]["version"]
        assert served == openapi_document()
        for path, status in (("/no/such/thing", 404), ("/api/images/12345", 404),
                             ("/api/images?limit=0", 422), ("/api/images?since=yesterday", 422),
                             ("/static/../../etc/passwd", 404), ("/static/nope.js", 404),
                             ("/api/camera/option/nope", 404), ("/stream?ss=0", 422)):
            r = await client.get(path)
            assert r.status_code == status, (path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/json")
            assert_no_traceback(r.text)
            body = r.json()
            assert body.get("msg") or body["error"]["message"]
        r = await client.post("/api/stacker/start", content=b"{not json",
                              headers={"content-type": "application/json"})
        assert r.status_code in (400, 422) and r.json()["error"]["message"]
        r = await client.post("/api/stacker/control", json={"operation": "explode"})
        assert r.status_code == 422 and "operation" in r.json()["error"]["message"]
