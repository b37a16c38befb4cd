"""The control plane's OpenAPI document as text: what ``GET /openapi.json`` serves, checked
in as ``schemas/openapi.json`` (``nightrunner schema --write``; a test keeps it current)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any


def openapi_document() -> dict[str, Any]:
    import runner.control.server  # noqa: F401  (registers every method)
    from runner.control.http_app import build_app
    from runner.control.hub import Hub
    from runner.control.protocol import Dispatcher

    with tempfile.TemporaryDirectory() as tmp:
        doc: dict[str, Any] = build_app(Dispatcher(Hub(Path(tmp)))).openapi()
    doc["info"]["version"] = "see GET /openapi.json"  # the installed version, not the file's
    return doc


def openapi_text() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
