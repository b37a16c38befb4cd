"""Fuzz: while a night images, schemathesis drives every typed endpoint of the OpenAPI
document, and a corpus of malformed JSON-RPC (bad JSON, wrong types, huge and deep batches,
unknown methods, binary, half lines, over-long lines) and of slow clients (slowloris, idle
connections) hits all three transports. Never a 5xx, never a traceback in a reply, and the
night goes on and finishes its frames (``night_under_fuzz``)."""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from runner.control.http_guard import MAX_BODY
from runner.control.protocol import MAX_BATCH
from tests.control.cpkit import LOOPBACK, LineSocket, assert_no_traceback
from tests.control.fuzzkit import ThreadedNight, night_under_fuzz, strict_json

#: Methods that end or hold the night on purpose: fuzzing them would end what is watched.
NIGHT_ENDING = {"abort", "pause", "skip"}
EXAMPLES = 4  # per operation and generation mode: the whole file stays well under a minute


def test_schemathesis_on_the_openapi_document(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with night_under_fuzz(tmp_path, monkeypatch) as night:
        schema = schemathesis.openapi.from_url(f"{night.s.url}/openapi.json")
        operations = [r.ok() for r in schema.get_all_operations()]
        fuzzed = [op for op in operations
                  if op.path.removeprefix("/api/v1/") not in NIGHT_ENDING
                  and op.path.startswith("/api/v1/")]
        assert len(fuzzed) > 60  # every registered method has its typed endpoint
        checks = [not_a_server_error, status_code_conformance, content_type_conformance,
                  response_schema_conformance]
        calls = 0
        for op in fuzzed:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def exercise(case: Any) -> None:
                    nonlocal calls
                    response = case.call(base_url=night.s.url, timeout=30)
                    calls += 1
                    assert_no_traceback(response.text)
                    case.validate_response(response, checks=checks)

                exercise()
        assert calls >= len(fuzzed)


# --------------------------------------------------------------------------- the corpus

def _batch(n: int) -> bytes:
    return json.dumps([{"jsonrpc": "2.0", "id": i, "method": "status"}
                       for i in range(n)]).encode()


_noise = random.Random(188)
CORPUS: list[bytes] = [
    b"{", b"}", b"null", b"true", b'"status"', b"[]", b"[[]]", b"{}", b"[{}, 1, null]",
    b'{"jsonrpc": "2.0"}', b'{"id": 1}', b'{"method": "status", "id": [1]}',
    b'{"method": "status", "id": {"a": 1}}', b'{"method": "status", "id": 1e999}',
    b'{"method": null, "id": 1}', b'{"method": "status", "params": "x", "id": 1}',
    b'{"method": "status", "params": 5, "id": 1}',
    b'{"method": "take_image", "params": {"exposure": NaN}, "id": 1}',
    b'{"method": "take_image", "params": {"exposure": 1e999, "roi": "x"}, "id": 1}',
    b'{"method": "get_events", "params": {"since": -1}, "id": 1}',
    b'{"method": "get_events", "params": {"since": 1' + b"0" * 5000 + b"}, \"id\": 1}",
    b'{"method": "save_image", "params": {"filename": "../../etc/passwd"}, "id": 1}',
    b'{"method": "camera.call", "params": {"name": "__class__", "params": {}}, "id": 1}',
    b'{"method": "__init__", "id": 1}', b'{"method": "../status", "id": 1}',
    b'{"method": "' + b"m" * 10_000 + b'", "id": 1}',
    b'{"method": "status", "id": "\\ud800"}', "{\"method\": \"stätus\", \"id\": 1}".encode(),
    "\ufeff{\"method\": \"status\", \"id\": 1}".encode(),
    json.dumps({"method": "status", "id": 1}).encode("utf-16"),
    b"\x00" * 64, bytes(_noise.randrange(256) for _ in range(4096)),
    _batch(MAX_BATCH), _batch(MAX_BATCH + 1), _batch(5000),
    b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"method": "status", "id": 1, "params": {"x": "' + b"y" * (MAX_BODY - 100) + b'"}}',
]


def _check_reply(text: str) -> None:
    assert_no_traceback(text)
    reply = strict_json(text)
    for one in reply if isinstance(reply, list) else [reply]:
        assert one.get("jsonrpc") == "2.0" and ("result" in one or "error" in one), one


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """The server closes ``sock`` within ``seconds`` (reads whatever it sends first)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


def _http_corpus(night: ThreadedNight) -> None:
    with httpx.Client(base_url=night.s.url, timeout=30) as h:
        for raw in CORPUS:
            r = h.post("/rpc", content=raw, headers={"content-type": "application/json"})
            assert r.status_code < 500, (raw[:80], r.status_code, r.text[:300])
            if r.status_code == 200:
                _check_reply(r.text)
            else:
                assert_no_traceback(r.text)
        too_big = h.post("/rpc", content=b"[" + b" " * MAX_BODY + b"]")
        assert too_big.status_code == 413
        too_big = h.post("/api/v1/status", content=b"{" + b" " * MAX_BODY + b"}")
        assert too_big.status_code == 413
        for path, method in (("/rpc", "GET"), ("/nowhere", "POST"), ("/api/v1/nope", "POST"),
                             ("/rpc", "DELETE")):
            r = h.request(method, path, content=b"{}")
            assert 400 <= r.status_code < 500 and "Traceback" not in r.text
    port = night.s.plane.bound["http"][1]
    # a body that never ends: 408 when the body deadline passes
    with socket.create_connection((LOOPBACK, port)) as s:
        s.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"method\"")
        s.settimeout(10)
        assert s.recv(65536).startswith(b"HTTP/1.1 408 ")
    # slowloris: headers dribbled a byte at a time, and a connection that says nothing
    with socket.create_connection((LOOPBACK, port)) as dribbler, \
            socket.create_connection((LOOPBACK, port)) as silent:
        dribbler.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for byte in b"X-Slow: " + b"a" * 100:
            try:
                dribbler.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
        assert closed or _closed_within(dribbler, 3), "a slowloris kept its HTTP connection"
        assert _closed_within(silent, 3), "an HTTP connection that never spoke was kept"
    # raw garbage instead of HTTP
    with socket.create_connection((LOOPBACK, port)) as s:
        s.sendall(bytes(_noise.randrange(256) for _ in range(2048)) + b"\r\n\r\n")
        s.settimeout(10)
        answer = s.recv(65536)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:100]


def _ws_corpus(night: ThreadedNight) -> None:
    with connect(night.s.ws_url, open_timeout=10, max_size=None) as ws:
        for raw in CORPUS:
            if len(raw) > MAX_BODY:
                continue
            ws.send(raw)  # a binary message
            ws.send(raw.decode("latin-1"))  # and a text one
            for _ in range(2):
                while True:
                    text = ws.recv(timeout=30)
                    assert isinstance(text, str)
                    msg = strict_json(text)
                    if isinstance(msg, dict) and msg.get("method") == "event":
                        continue
                    _check_reply(text)
                    break
    # a message over the limit closes that connection (1009), nothing else
    with connect(night.s.ws_url, open_timeout=10) as ws:
        ws.send(b"[" + b" " * MAX_BODY + b"]")
        with pytest.raises(ConnectionClosed):
            for _ in range(10_000):
                ws.recv(timeout=10)
    # slowloris inside a frame: pings go unanswered, and the connection is closed
    port = night.s.plane.bound["http"][1]
    with socket.create_connection((LOOPBACK, port)) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade"
                  b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        s.settimeout(10)
        assert s.recv(65536).startswith(b"HTTP/1.1 101 ")
        s.sendall(b"\x81\xfe\x10\x00")  # a masked text frame of 4096 bytes… that never come
        assert _closed_within(s, 5), "a WebSocket slowloris kept its connection"


def _tcp_corpus(night: ThreadedNight) -> None:
    port = night.s.tcp_port
    with LineSocket(port, timeout=30) as c:
        assert c.read_event()["Event"] == "Connection"
        for raw in CORPUS:
            line = raw.replace(b"\n", b" ")
            c.send_line(line)
            while True:
                got = c.read_line()
                assert got is not None, f"the server hung up after {raw[:60]!r}"
                msg = strict_json(got.decode())
                if isinstance(msg, dict) and "Event" in msg:
                    continue
                _check_reply(got.decode())
                break
    # a line longer than the limit: an error, then the server hangs up
    with LineSocket(port, timeout=30) as c:
        c.read_event()
        c.sock.sendall(b"{" + b" " * (MAX_BODY + 10))
        while (got := c.read_line()) is not None and b'"Event"' in got:
            pass
        assert got is not None and b"longer than" in got
        assert c.read_line() is None
    # a half line left hanging, and one dribbled a byte at a time: dropped
    with LineSocket(port) as half, LineSocket(port) as dribbler, LineSocket(port) as quiet:
        half.sock.sendall(b'{"method": "status", "id": 1}\n{"method": "sta')
        for byte in b'{"method": "status"':
            try:
                dribbler.sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        assert _closed_within(half.sock, 5) and _closed_within(dribbler.sock, 5)
        # a client that connected and never spoke is fine (pyastroimageview's may not)
        assert quiet.read_event()["Event"] == "Connection"
        assert "result" in quiet.request("status")
    # the client limit: the one over it is told so, the others keep working
    held = [LineSocket(port) for _ in range(16)]
    try:
        with LineSocket(port) as over:
            line = over.read_line()
            assert line is not None and b"too many clients" in line
            assert over.read_line() is None
    finally:
        for s in held:
            s.close()


def test_a_malformed_corpus_and_slow_clients_on_every_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with night_under_fuzz(tmp_path, monkeypatch) as night:
        _http_corpus(night)
        _ws_corpus(night)
        _tcp_corpus(night)
        # and every transport still answers
        with httpx.Client(base_url=night.s.url, timeout=30) as h:
            assert h.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "status"}
                          ).json()["result"]["running"] is True
        with connect(night.s.ws_url, open_timeout=10) as ws:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "status"}))
            while "result" not in (msg := json.loads(ws.recv(timeout=30))):
                pass
            assert msg["id"] == 2
        with LineSocket(night.s.tcp_port) as c:
            assert c.read_event()["Event"] == "Connection"
            assert c.request("get_camera_info")["result"]["framesize"] == [320, 240]
