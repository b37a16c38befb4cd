"""`notify:` as a user sees it: who hears about the night, with what, and that a slow or
failing endpoint never holds the night up nor leaks a secret."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.engine.run import Run
from runner.notify import attach_notifier
from tests.engine.conftest import CLUSTER, Rig
from tests.notify.conftest import Hook

TOKEN = "s3cr3t-token-Zq81"

NIGHT = f"""\
targets:
  - name: NGC 188
    coordinates: {CLUSTER}
    sequence: [{{filter: L}}, {{expose: {{count: 3, exposure: 10}}}}]
"""

LONG_NIGHT = f"""\
targets:
  - name: NGC 188
    coordinates: {CLUSTER}
    sequence: [{{expose: {{count: 1, exposure: 10}}}}, {{wait: {{for: 7200}}}},
               {{expose: {{count: 1, exposure: 10}}}}]
"""


def _events(run: Run) -> list[dict[str, Any]]:
    assert run.run_dir is not None
    lines = (run.run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def _night(rig: Rig, notify: str, body: str = NIGHT, *, abort_on: Any = None) -> Run:
    """Run a plan with ``notify`` (YAML flow text); ``abort_on(event)`` true aborts it."""
    run = rig.make_run(rig.write(body + f"notify: {notify}\n"))
    notifier = attach_notifier(run)
    if abort_on is not None:
        def watch(event: dict[str, Any]) -> None:
            if abort_on(event):
                asyncio.get_running_loop().call_soon(run.abort, "stopped by the test")
        run.listeners.append(watch)
    asyncio.run(run.execute())
    assert notifier.drain(30)
    run.notifier = notifier  # type: ignore[attr-defined]
    return run


def test_the_webhook_hears_the_start_and_the_finish_with_the_summary(
        rig: Rig, hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NR_HOOK_TOKEN", TOKEN)
    run = _night(rig, f"{{webhook: '{hook.url}', webhook_token_env: NR_HOOK_TOKEN}}")
    assert hook.kinds() == ["start", "finish"]
    start, finish = hook.posts
    assert run.run_dir is not None
    assert start["plan"] == finish["plan"] == "test plan"
    assert start["run"] == finish["run"] == run.run_dir.name
    assert finish["outcome"] == "completed"
    summary = json.loads((run.run_dir / "summary.json").read_text())
    summary.pop("report")  # the report's figures, kept there after the night has ended
    assert finish["summary"] == summary and summary["frames"]["light"] == 3
    assert finish["message"] == "night ended: completed, 3 light frames"
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for h in hook.headers)
    assert TOKEN not in (run.run_dir / "events.jsonl").read_text()


def test_an_abort_is_told_at_once_and_the_end_says_aborted(rig: Rig, hook: Hook) -> None:
    run = _night(rig, f"{{webhook: '{hook.url}', on: [abort, finish]}}", LONG_NIGHT,
                 abort_on=lambda e: e["event"] == "step" and e.get("kind") == "wait")
    assert hook.kinds() == ["abort", "finish"]
    assert hook.posts[0]["reason"] == "stopped by the test"
    assert hook.posts[0]["message"] == "night aborted: stopped by the test"
    assert hook.posts[1]["outcome"] == "aborted"
    assert hook.posts[1]["summary"]["outcome"] == "aborted"
    assert [e["event"] for e in _events(run)].count("abort") == 1


def test_a_hanging_endpoint_does_not_hold_the_night(rig: Rig, hook: Hook) -> None:
    hook.release.clear()  # the receiver holds every request open until released
    run = rig.make_run(rig.write(NIGHT + f"notify: {{webhook: '{hook.url}', timeout: 60}}\n"))
    notifier = attach_notifier(run)
    result = asyncio.run(run.execute())
    # the whole night ran, frames and summary written, while `start` was still in flight
    assert result.outcome == "completed" and result.summary["frames"]["light"] == 3
    assert hook.waiting == 1 and hook.posts == []
    hook.release.set()
    assert notifier.drain(30)
    assert hook.kinds() == ["start", "finish"]


def test_a_failing_endpoint_is_retried_then_given_up_with_a_warning(
        rig: Rig, hook: Hook) -> None:
    hook.status = 503
    # the night aborts itself once the warning is in its event log: the warning came while
    # the night was running (if it never came, the night completes and the test fails)
    run = _night(rig, f"{{webhook: '{hook.url}', retries: 2, backoff: 0.05}}", LONG_NIGHT,
                 abort_on=lambda e: e["event"] == "warning"
                 and "not delivered" in e["message"])
    assert hook.kinds() == ["start"] * 3 + ["abort"] * 3 + ["finish"] * 3
    warnings = [e["message"] for e in _events(run) if e["event"] == "warning"]
    port = hook.url.split("/")[2]
    assert (f"notification 'start' not delivered: webhook http://{port}: HTTP 503 "
            "(gave up after 3 attempts); the night goes on") in warnings
    assert not any("key=abc" in w or "/hooks" in w for w in warnings)  # the URL's secret part
    # the end's warning comes after the event log closed: it is a log line (and kept)
    assert any("'finish' not delivered" in w for w in run.notifier.warnings)  # type: ignore[attr-defined]


def test_a_refusing_client_error_is_not_retried(rig: Rig, hook: Hook) -> None:
    hook.status = 404
    _night(rig, f"{{webhook: '{hook.url}', on: [finish], retries: 5, backoff: 0.05}}")
    assert hook.kinds() == ["finish"]


def test_a_command_gets_the_json_on_stdin_and_the_event_in_its_environment(
        rig: Rig, tmp_path: Path) -> None:
    out = tmp_path / "heard.jsonl"
    script = ("import json, os, sys; d = json.load(sys.stdin); "
              "d['env'] = {k: v for k, v in os.environ.items() if k.startswith('NIGHTRUNNER_')}; "
              f"open({str(out)!r}, 'a').write(json.dumps(d) + chr(10))")
    run = _night(rig, json.dumps({"command": [sys.executable, "-c", script]}))
    heard = [json.loads(x) for x in out.read_text().splitlines()]
    assert [h["kind"] for h in heard] == ["start", "finish"]
    assert run.run_dir is not None
    finish = heard[1]
    assert finish["summary"]["frames"]["light"] == 3
    assert finish["env"]["NIGHTRUNNER_EVENT"] == "finish"
    assert finish["env"]["NIGHTRUNNER_RUN"] == run.run_dir.name
    assert finish["env"]["NIGHTRUNNER_OUTCOME"] == "completed"
    assert finish["env"]["NIGHTRUNNER_PLAN"] == "test plan"


def test_a_missing_command_is_a_warning_and_the_night_completes(rig: Rig) -> None:
    run = _night(rig, "{command: 'no-such-notifier --night', on: [start]}", LONG_NIGHT,
                 abort_on=lambda e: e["event"] == "warning"
                 and "not delivered" in e["message"])
    warnings = [e["message"] for e in _events(run) if e["event"] == "warning"]
    assert ("notification 'start' not delivered: command no-such-notifier: not found "
            "(gave up after 1 attempt); the night goes on") in warnings


@pytest.mark.parametrize(("notify", "message"), [
    ("{on: [finish]}", "notify needs a `command`, a `webhook` or an `email`"),
    ("{webhook: 'ftp://x/y'}", "`webhook` must be an http:// or https:// URL"),
    ("{webhook: 'http://x/', on: [dawn]}",
     "expected 'start', 'finish', 'failure', 'abort' or 'safety', got 'dawn'"),
    ("{email: {host: h, from: a@b.c, to: x@y.z, password_env: P}}",
     "`username` and `password_env` go together"),
    ("{email: {host: h, from: a@b.c, to: x@y.z, username: u, password_env: 'hunter 2'}}",
     "`password_env` names an environment variable"),
])
def test_a_notify_that_cannot_work_is_rejected_at_its_line(
        rig: Rig, notify: str, message: str) -> None:
    from runner.plan.loader import load_plan

    plan = rig.write(NIGHT + f"notify: {notify}\n")
    diags = [d.format() for d in load_plan(plan).diagnostics]
    assert any(d.startswith(f"{plan}:9:") and message in d for d in diags), diags
