"""HTTP and WebSocket transports (FastAPI): JSON-RPC 2.0 at ``POST /rpc`` and ``/ws`` (with
the event stream pushed as ``event`` notifications), and one typed ``POST /api/v1/{method}``
endpoint per registered method, which is what the OpenAPI document describes."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

from fastapi import Body, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, create_model
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from runner.control.http_guard import MAX_BODY, BodyGuard
from runner.control.protocol import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    UNAUTHORIZED,
    Dispatcher,
    Session,
    error,
)
from runner.control.registry import REGISTRY, Method, NoParams

MAX_WS_CLIENTS = 64
MAX_IN_FLIGHT = 16  # requests of one WebSocket client being answered at once


def _bearer(headers: Any, query: Any = None) -> str | None:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return str(auth[7:].strip())
    if query is not None and query.get("token"):
        return str(query.get("token"))  # browsers cannot set headers on a WebSocket
    return None


def _unauthorised() -> JSONResponse:
    return JSONResponse(error(None, UNAUTHORIZED, "unauthorized: bearer token required"),
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


class TokenGate:
    """With a token set, every HTTP request needs it, checked before routing: a client
    without it gets 401 and nothing else (no body is read, parsed or validated for it).

    A GET may carry it as ``?token=`` (a browser's ``<img>`` and ``EventSource`` cannot set
    headers); the status page and its assets, which hold no data, need none."""

    def __init__(self, app: ASGIApp, hub: Any) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hub.token is not None and not _public(scope):
            get = scope.get("method") == "GET"
            given = _bearer(Headers(scope=scope), QueryParams(scope.get("query_string", b""))
                            if get else None)
            if given is None or not self.hub.token_ok(given):
                await _unauthorised()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _public(scope: Scope) -> bool:
    from runner.control.web import PUBLIC

    path = str(scope.get("path", ""))
    return scope.get("method") == "GET" and (path == "/" or path.startswith(PUBLIC[1:]))


def build_app(dispatcher: Dispatcher) -> FastAPI:
    hub = dispatcher.hub
    app = FastAPI(title="Nightrunner control plane", version=hub.version,
                  docs_url=None, redoc_url=None,
                  description="JSON-RPC 2.0 at POST /rpc and /ws; each method also as "
                              "POST /api/v1/{method}. Bearer token when one is set.")
    app.add_middleware(BodyGuard)
    app.add_middleware(TokenGate, hub=hub)  # the outer one: no body is read without the token
    ws_clients = 0

    @app.post("/rpc", summary="JSON-RPC 2.0 (a request or a batch)")
    async def rpc(request: Request) -> Response:
        reply = await dispatcher.handle_text(await request.body(),  # BodyGuard bounded it
                                             Session("http", authenticated=True))
        if reply is None:
            return Response(status_code=204)
        return Response(reply, media_type="application/json")

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        nonlocal ws_clients
        given = _bearer(socket.headers, socket.query_params)
        if hub.token is not None and (given is None or not hub.token_ok(given)):
            await socket.close(code=1008, reason="unauthorized")
            return
        if ws_clients >= MAX_WS_CLIENTS:
            await socket.close(code=1013, reason="too many clients")
            return
        ws_clients += 1
        await socket.accept()
        session = Session("ws", authenticated=True)
        send_lock = asyncio.Lock()

        async def send(text: str) -> None:
            async with send_lock:
                await socket.send_text(text)

        async def pump(sub: Any) -> None:
            while True:
                event = await sub.next()
                await send(json.dumps({"jsonrpc": "2.0", "method": "event",
                                       "params": event}, default=str))

        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

        async def answer(text: str | bytes) -> None:
            try:
                reply = await dispatcher.handle_text(text, session)
                if reply is not None:
                    await send(reply)
            finally:
                in_flight.release()

        pending: set[asyncio.Task[None]] = set()
        try:
            with hub.events.subscribe() as sub:
                pusher = asyncio.create_task(pump(sub))
                try:
                    while True:
                        msg = await socket.receive()
                        if msg["type"] == "websocket.disconnect":
                            break
                        data = msg.get("text") if msg.get("text") is not None \
                            else msg.get("bytes")
                        if data is None:
                            continue
                        if len(data) > MAX_BODY:
                            await send(json.dumps(error(None, INVALID_REQUEST,
                                                        "message too large")))
                            continue
                        await in_flight.acquire()
                        task = asyncio.create_task(answer(data))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                finally:
                    pusher.cancel()
                    for t in pending:
                        t.cancel()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            ws_clients -= 1

    for method in REGISTRY.all():
        _add_typed_route(app, dispatcher, method)

    from runner.control.web import register

    register(app, hub)  # seed 004 and 002 over HTTP, and the status page (docs/web.md)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": {"code": INVALID_PARAMS,
                                       "message": _readable_request_error(exc)}},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = PARSE_ERROR if exc.status_code == 400 else INVALID_REQUEST
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse(error(None, -32603, "internal error"), status_code=500)

    return app


def _add_typed_route(app: FastAPI, dispatcher: Dispatcher, method: Method) -> None:
    """``POST /api/v1/<method>`` with the params model as its body: the OpenAPI view."""

    async def endpoint(request: Request, params: Any = None) -> Response:
        raw = params.model_dump(mode="json") if isinstance(params, BaseModel) else {}
        reply = await dispatcher.handle_one(
            {"jsonrpc": "2.0", "id": 1, "method": method.name, "params": raw},
            Session("http", authenticated=True))
        assert reply is not None
        if "error" in reply:
            code = reply["error"]["code"]
            status = 404 if code == -32601 else 422 if code == -32602 else \
                500 if code == -32603 else 409
            return JSONResponse({"error": reply["error"]}, status_code=status)
        return JSONResponse({"result": reply["result"]})

    body_default = Body(None) if method.params is NoParams else Body(...)
    endpoint.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Request),
        inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=method.params | None if method.params is NoParams
                          else method.params, default=body_default),
    ])
    result: Any = method.result if method.result is not None else dict[str, Any]
    reply = create_model(f"{_title(method.name)}Reply", result=(result, ...))
    app.add_api_route(f"/api/v1/{method.name}", endpoint, methods=["POST"],
                      summary=method.summary or method.name, name=method.name,
                      tags=[method.name.split(".")[0] if "." in method.name else "hub"],
                      response_model=reply, responses=ERROR_RESPONSES)


class RpcErrorBody(BaseModel):
    code: int
    message: str


class ErrorReply(BaseModel):
    error: RpcErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorReply, "description": "the body is not JSON: JSON-RPC code -32700"},
    409: {"model": ErrorReply, "description": "refused (the night owns the device) or failed "
          "(a device error): JSON-RPC code -1"},
    413: {"model": ErrorReply, "description": "body larger than 1 MiB"},
    422: {"model": ErrorReply, "description": "invalid params: JSON-RPC code -32602"},
}


def _title(name: str) -> str:
    return "".join(w.title() for w in name.replace(".", "_").split("_"))


def _readable_request_error(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "params"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "invalid params: " + "; ".join(parts)

