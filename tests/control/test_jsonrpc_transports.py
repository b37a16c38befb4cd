"""JSON-RPC 2.0 in full, the same on all three transports (HTTP POST /rpc, WebSocket /ws and
seed 000's TCP lines): the standard error codes with readable messages, batches,
notifications, and never a traceback in a reply (every client here checks every reply)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runner.control.protocol import MAX_BATCH, MAX_DEPTH
from runner.storage.index import INDEX_FILENAME
from tests.control.cpkit import Served, client_for

TRANSPORTS = ["http", "ws", "tcp"]


def _error(reply: Any, code: int, id_: Any = None) -> str:
    assert isinstance(reply, dict), reply
    assert reply.get("jsonrpc") == "2.0" and "result" not in reply, reply
    assert reply["id"] == id_, reply
    assert reply["error"]["code"] == code, reply
    message = reply["error"]["message"]
    assert isinstance(message, str) and message, reply
    return message


def _deep(levels: int) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status",
                       "params": {"a": json.loads("[" * levels + "]" * levels)}})


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_malformed_requests_get_the_standard_errors(rig: Served, transport: str) -> None:
    async with client_for(transport, rig) as c:
        # -32700: not JSON (a half line, and bytes that are not UTF-8)
        _error(await c.send('{"jsonrpc": "2.0", "method": "status", "id": 1'), -32700)
        _error(await c.send(b'{"method": "status", "id": 1, "x": "\xff\xfe"}'), -32700)
        # -32600: JSON, but not a request
        assert "object" in _error(await c.send("42"), -32600)
        assert "jsonrpc" in _error(
            await c.send('{"jsonrpc": "1.0", "id": 7, "method": "status"}'), -32600, 7)
        assert "method" in _error(await c.send('{"jsonrpc": "2.0", "id": 8, "method": 5}'),
                                  -32600, 8)
        assert "empty batch" in _error(await c.send("[]"), -32600)
        too_many = [{"jsonrpc": "2.0", "id": n, "method": "status"}
                    for n in range(MAX_BATCH + 1)]
        assert str(MAX_BATCH) in _error(await c.send(json.dumps(too_many)), -32600)
        assert "nested" in _error(await c.send(_deep(MAX_DEPTH + 5)), -32600)
        # a batch of non-objects: one error per element
        replies = await c.send("[1, 2]")
        assert isinstance(replies, list) and len(replies) == 2
        for r in replies:
            _error(r, -32600)
        # -32601: no such method, named in the message
        assert "no_such_method" in _error(
            await c.call("no_such_method", {}, id_="x"), -32601, "x")
        # -32602: pydantic's complaint, made readable (the field, what is wrong; no URL)
        msg = _error(await c.call("take_image", {"exposure": "long"}, id_=2), -32602, 2)
        assert msg.startswith("invalid params: exposure:") and "number" in msg
        assert "pydantic.dev" not in msg and "\n" not in msg
        msg = _error(await c.call("set_target_temperature", {"target_temperature": -100},
                                  id_=3), -32602, 3)
        assert "target_temperature" in msg and "-60" in msg
        msg = _error(await c.call("status", {"verbose": True}, id_=4), -32602, 4)
        assert "verbose" in msg and "xtra" in msg
        msg = _error(await c.call("get_events", [1, 2, 3], id_=5), -32602, 5)
        assert "positional" in msg
        # nesting within the limit is parsed: refused for the unknown param, not its depth
        _error(await c.send(_deep(MAX_DEPTH - 3)), -32602, 1)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_batches_and_notifications(rig: Served, transport: str) -> None:
    async with client_for(transport, rig) as c:
        batch = [
            {"jsonrpc": "2.0", "id": "a", "method": "get_current_temperature"},
            {"jsonrpc": "2.0", "method": "status"},  # a notification: no reply for it
            {"jsonrpc": "2.0", "id": "b", "method": "nope"},
            {"jsonrpc": "2.0", "id": "c", "method": "focuser_get_absolute_position"},
        ]
        replies = await c.send(json.dumps(batch))
        assert isinstance(replies, list)
        by_id = {r["id"]: r for r in replies}
        assert sorted(by_id) == ["a", "b", "c"]
        assert isinstance(by_id["a"]["result"]["current_temperature"], float)
        assert by_id["b"]["error"]["code"] == -32601
        assert by_id["c"]["result"] == {"absolute_position": 25000}
        # a notification is never answered, even when it fails; nor is a batch of them
        await c.send_expecting_no_reply('{"jsonrpc": "2.0", "method": "status"}')
        await c.send_expecting_no_reply('{"jsonrpc": "2.0", "method": "no_such_method"}')
        await c.send_expecting_no_reply(json.dumps([{"jsonrpc": "2.0", "method": "status"}] * 3))
        # a notification that moves hardware is still carried out
        await c.send_expecting_no_reply(json.dumps(
            {"jsonrpc": "2.0", "method": "set_cooler_state", "params": {"cooler_state": True}}))
        assert (await c.result("get_cooler_state")) == {"cooler_state": True}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_internal_error_is_one_line_without_a_traceback(
    rig: Served, transport: str,
) -> None:
    # a corrupt image index: sqlite3 raises, which no method expects (a bug's stand-in)
    (rig.data / INDEX_FILENAME).write_bytes(b"this is not an SQLite database" * 100)
    async with client_for(transport, rig) as c:
        msg = _error(await c.call("list_frames", {}, id_=9), -32603, 9)
        assert msg.startswith("internal error in list_frames")
        assert "\n" not in msg
        # and the server goes on answering
        assert (await c.result("status"))["phase"] == "idle"
