"""schemathesis drives every web endpoint of the OpenAPI document that answers (the streams,
which never end, are left out) while a night images: never a 5xx, never a traceback, every
reply as the document describes it, and the night goes on and finishes its frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.control.cpkit import assert_no_traceback
from tests.control.fuzzkit import night_under_fuzz

STREAMS = ("/api/updates/", "/api/video/", "/stream")
EXAMPLES = 4


def test_schemathesis_on_the_web_endpoints(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with night_under_fuzz(tmp_path, monkeypatch) as night:
        schema = schemathesis.openapi.from_url(f"{night.s.url}/openapi.json")
        operations = [r.ok() for r in schema.get_all_operations()]
        fuzzed = [op for op in operations
                  if not op.path.startswith(("/api/v1/", "/rpc"))
                  and not op.path.startswith(STREAMS)]
        assert len(fuzzed) >= 20
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
                    kind = str(response.headers.get("content-type", ""))
                    if "json" in kind or "text" in kind:
                        assert_no_traceback(response.text)
                    case.validate_response(response, checks=checks)

                try:
                    exercise()
                except Unsatisfiable:
                    # an operation without parameters has no invalid input to make
                    assert mode is GenerationMode.NEGATIVE, op.path
        assert calls >= len(fuzzed)
