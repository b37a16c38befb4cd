"""The web side, added to the control plane's FastAPI app: seed 004's live-stacker API, seed
002's ``/still`` and ``/stream``, image recall, and the status page at ``/``.

Same server, same token, same event stream as the JSON-RPC methods (see docs/web.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from runner.control import web_camera, web_files, web_stacker
from runner.control.streams import feed_sse
from runner.control.web_state import WebState

STATIC = Path(__file__).with_name("static")
#: what a browser may fetch without the token: the page and its assets, which hold no data
#: (the page then asks for the token when it is needed)
PUBLIC = ("/", "/static/")


class History(BaseModel):
    history: list[dict[str, Any]]
    log: list[dict[str, Any]]


def register(app: FastAPI, hub: Any) -> WebState:
    """Add the web routes to ``app``; the returned state follows ``hub``'s event stream
    once :meth:`WebState.start` runs (``ControlPlane.start`` calls it)."""
    state = WebState(hub)
    hub.web = state
    from runner.control.http_app import ERROR_RESPONSES, ErrorReply

    # bad parameters answer the control plane's error shape (its RequestValidationError
    # handler), and the document says so
    common: dict[int | str, dict[str, Any]] = {
        400: ERROR_RESPONSES[400], 413: ERROR_RESPONSES[413],
        422: {"model": ErrorReply, "description": "bad parameters"}}
    for r in (web_stacker.router(hub, state), web_camera.router(hub, state),
              web_files.router(hub), _page(state)):
        app.include_router(r, responses=common)
    return state


def _page(state: WebState) -> APIRouter:
    r = APIRouter(tags=["page"])

    @r.get("/", summary="The status page", response_class=Response,
           responses={200: {"content": {"text/html": {}}}})
    async def index() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @r.get("/static/{name}", summary="The page's assets", response_class=Response,
           responses={200: {"content": {"text/javascript": {}, "text/css": {}}},
                      404: {"description": "no such asset",
                            "model": web_camera.FailReply}})
    async def static(name: str) -> Response:
        found = STATIC / name if name in _assets() else None
        if found is None:
            return web_camera.fail(404, f"no asset {name!r}")
        kind = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                ".png": "image/png"}.get(found.suffix, "application/octet-stream")
        return FileResponse(found, media_type=kind, headers={"Cache-Control": "no-cache"})

    @r.get("/api/night/history", response_model=History,
           summary="The night's graph points and recent events (the page's start)")
    async def history() -> Any:
        return {"history": list(state.history), "log": list(state.log)[-100:]}

    @r.get("/api/updates/night", summary="SSE: every event of the night, with its graph "
           "point", response_class=Response,
           responses={200: {"content": {"text/event-stream": {}}}})
    async def updates() -> Response:
        def select(item: dict[str, Any]) -> Any:
            return None if item["event"].get("event") == "stack_status" else item

        return feed_sse(state.feed, select)

    return r


def _assets() -> set[str]:
    return {p.name for p in STATIC.iterdir() if p.is_file()} if STATIC.is_dir() else set()
