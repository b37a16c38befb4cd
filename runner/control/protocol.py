"""JSON-RPC 2.0 over any transport: parse, check, dispatch, and shape replies.

Lenient where pyastroimageview's clients need it (``"jsonrpc"`` may be omitted), strict
everywhere else: -32700 parse error, -32600 invalid request, -32601 unknown method, -32602
invalid params (pydantic's errors made readable), -32603 internal (never a traceback),
batches, notifications. Application errors (a device refused, the night owns the camera) use
code -1 as pyastroimageview's hub does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from runner.control.registry import REGISTRY, Registry

log = logging.getLogger("nightrunner.control")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32001
APPLICATION_ERROR = -1

MAX_BATCH = 64
MAX_DEPTH = 32
BIG_MESSAGE = 64 * 1024  # characters: parsed off the loop above this


class RpcError(Exception):
    """An error a method raises on purpose: its message goes to the client as it is."""

    def __init__(self, message: str, code: int = APPLICATION_ERROR) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Session:
    """One client's connection: what it may do and what it last did."""

    transport: str  # http | ws | tcp
    authenticated: bool
    peer: str = ""


def json_depth_ok(text: str, limit: int = MAX_DEPTH) -> bool:
    """Nesting deeper than ``limit`` is refused before parsing (the parser would recurse)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


@dataclass
class _Parsed:
    value: Any


@dataclass
class _Refused:
    reply: dict[str, Any]


def _parse(text: str) -> _Parsed | _Refused:
    if not json_depth_ok(text):
        return _Refused(error(None, INVALID_REQUEST,
                              f"invalid request: nested deeper than {MAX_DEPTH} levels"))
    try:
        return _Parsed(json.loads(text, parse_constant=_no_constant))
    except (ValueError, RecursionError) as exc:
        return _Refused(error(None, PARSE_ERROR, f"parse error: {exc}"))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _dumps(reply: Any) -> str:
    """Strict JSON (no NaN or Infinity, which a strict client's parser refuses)."""
    try:
        return json.dumps(reply, default=str, allow_nan=False)
    except ValueError:
        replies = reply if isinstance(reply, list) else [reply]
        return json.dumps([_finite(r) for r in replies] if isinstance(reply, list)
                          else _finite(replies[0]), default=str)


def _finite(reply: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(reply, default=str, allow_nan=False)
        return reply
    except ValueError:
        return error(reply.get("id"), INTERNAL_ERROR,
                     "internal error: the answer holds a number JSON cannot carry (NaN, inf)")


def error(id_: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


def _readable(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False):
        where = ".".join(str(p) for p in e["loc"]) or "params"
        parts.append(f"{where}: {e['msg']}")
    return "invalid params: " + "; ".join(parts)


class Dispatcher:
    """Turns request text into reply text; ``hub`` is what the methods act on."""

    def __init__(self, hub: Any, registry: Registry = REGISTRY) -> None:
        self.hub = hub
        self.registry = registry

    async def handle_text(self, text: str | bytes, session: Session) -> str | None:
        """The reply to one message (a request or a batch), or None when nothing is due."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                return json.dumps(error(None, PARSE_ERROR, "parse error: not UTF-8 text"))
        # a big message is checked and parsed in a thread: ~30 ms a MiB, which on the loop
        # would be the engine's lag (the thread gives the GIL back every 5 ms)
        parsed = await asyncio.to_thread(_parse, text) if len(text) > BIG_MESSAGE \
            else _parse(text)
        if isinstance(parsed, _Refused):
            return json.dumps(parsed.reply)
        reply = await self.handle(parsed.value, session)
        return None if reply is None else _dumps(reply)

    async def handle(self, message: Any, session: Session) -> Any:
        if isinstance(message, list):
            if not message:
                return error(None, INVALID_REQUEST, "invalid request: empty batch")
            if len(message) > MAX_BATCH:
                return error(None, INVALID_REQUEST,
                             f"invalid request: batch of {len(message)} (at most {MAX_BATCH})")
            replies = await asyncio.gather(*(self.handle_one(m, session) for m in message))
            out = [r for r in replies if r is not None]
            return out or None
        return await self.handle_one(message, session)

    async def handle_one(self, req: Any, session: Session) -> dict[str, Any] | None:
        if not isinstance(req, dict):
            return error(None, INVALID_REQUEST, "invalid request: not a JSON object")
        id_ = req.get("id")
        notification = "id" not in req
        if isinstance(id_, bool) or (id_ is not None and not isinstance(id_, (str, int, float))) \
                or (isinstance(id_, float) and not math.isfinite(id_)):
            return error(None, INVALID_REQUEST, "invalid request: id must be a string or number")
        if "jsonrpc" in req and req["jsonrpc"] != "2.0":
            return error(id_, INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"')
        name = req.get("method")
        if not isinstance(name, str):
            return error(id_, INVALID_REQUEST, 'invalid request: "method" must be a string')
        reply = await self._call(name, req.get("params"), session, id_)
        return None if notification else reply

    async def _call(self, name: str, raw: Any, session: Session, id_: Any) -> dict[str, Any]:
        if name == "authenticate":
            token = raw.get("token") if isinstance(raw, dict) else None
            if not isinstance(token, str) or not self.hub.token_ok(token):
                return error(id_, UNAUTHORIZED, "unauthorized: wrong token")
            session.authenticated = True
            return {"jsonrpc": "2.0", "id": id_, "result": {"authenticated": True}}
        if not session.authenticated:
            return error(id_, UNAUTHORIZED, "unauthorized: authenticate with the token first")
        method = self.registry.get(name)
        if method is None:
            return error(id_, METHOD_NOT_FOUND, f"method not found: {name}")
        try:
            params = self._params(method.params, raw)
        except ValidationError as exc:
            return error(id_, INVALID_PARAMS, _readable(exc))
        except TypeError as exc:
            return error(id_, INVALID_PARAMS, f"invalid params: {exc}")
        try:
            if method.moves_hardware:
                self.hub.check_may_move(method.device or "rig", name)
            result = await method.handler(self.hub, params)
        except RpcError as exc:
            return error(id_, exc.code, exc.message)
        except Exception as exc:  # a device or engine error: one readable line, logged in full
            from runner.errors import NightrunnerError

            if isinstance(exc, NightrunnerError):
                return error(id_, APPLICATION_ERROR, str(exc))
            log.exception("method %s failed", name)
            return error(id_, INTERNAL_ERROR, f"internal error in {name}: {type(exc).__name__}")
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        return {"jsonrpc": "2.0", "id": id_, "result": result}

    @staticmethod
    def _params(model: type[BaseModel], raw: Any) -> BaseModel:
        if raw is None:
            raw = {}
        if isinstance(raw, list):
            fields = list(model.model_fields)
            if len(raw) > len(fields):
                raise TypeError(f"{len(raw)} positional params, the method takes {len(fields)}")
            raw = dict(zip(fields, raw, strict=False))
        if not isinstance(raw, dict):
            raise TypeError("params must be an object or an array")
        return model.model_validate(raw)
