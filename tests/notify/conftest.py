"""A local webhook receiver on a real socket, and the engine tests' small rig."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import Rig


@dataclass
class Hook:
    """What the receiver got, and how it answers (status; held until ``release``)."""

    url: str
    status: int = 200
    release: threading.Event = field(default_factory=threading.Event)
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    waiting: int = 0  # requests held open right now
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kinds(self) -> list[str]:
        return [p["kind"] for p in self.posts]


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(url="")
    state.release.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.waiting += 1
            state.release.wait(60)
            with state.lock:
                state.waiting -= 1
                state.posts.append(body)
                state.headers.append(dict(self.headers))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/night?key=abc"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, tmp_path / "data")
