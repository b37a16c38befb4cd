"""`notify:` in the equipment profile: the rig's owner hears about every night run on the
rig, whatever plan it runs, beside the plan's own `notify:`; a bad profile `notify` is an
error at its line and column in the profile, and its secrets are names of variables."""

from __future__ import annotations

import asyncio

import pytest

from runner.notify import attach_notifier
from runner.plan.loader import load_equipment, load_plan
from tests.engine.conftest import Rig
from tests.notify.conftest import Hook
from tests.notify.test_notify import NIGHT


def _with_profile_notify(rig: Rig, body: str, notify: str) -> None:
    """Append ``notify:`` to the rig's profile (eq.yaml, written by ``rig.write``)."""
    eq = rig.dir / "eq.yaml"
    eq.write_text(eq.read_text().rstrip("\n") + f"\nnotify: {notify}\n")


def test_the_profile_owner_hears_a_night_whose_plan_says_nothing(
        rig: Rig, hook: Hook) -> None:
    plan = rig.write(NIGHT)
    _with_profile_notify(rig, NIGHT, f"{{webhook: '{hook.url}', on: [finish]}}")
    run = rig.make_run(plan)
    notifier = attach_notifier(run)
    asyncio.run(run.execute())
    assert notifier.drain(30)
    assert hook.kinds() == ["finish"]
    assert hook.posts[0]["plan"] == "test plan" and hook.posts[0]["outcome"] == "completed"


def test_plan_and_profile_both_notify_and_a_channel_both_name_is_told_once(
        rig: Rig, hook: Hook) -> None:
    plan = rig.write(NIGHT + f"notify: {{webhook: '{hook.url}', on: [start, finish]}}\n")
    # the owner asks for the same webhook (told once, as the plan says) and a command
    marker = rig.dir / "owner-heard"
    _with_profile_notify(rig, NIGHT, f"{{webhook: '{hook.url}', on: [finish], command: "
                         f"['sh', '-c', 'cat >> {marker}']}}")
    run = rig.make_run(plan)
    notifier = attach_notifier(run)
    asyncio.run(run.execute())
    assert notifier.drain(30)
    assert hook.kinds() == ["start", "finish"]
    heard = marker.read_text()  # the owner's own `on:` for its own channel
    assert heard.count('"kind": "finish"') == 1 and '"kind": "start"' not in heard


@pytest.mark.parametrize(("notify", "at", "message"), [
    ("{webhook: 'ftp://x/y'}", "'ftp", "`webhook` must be an http:// or https:// URL"),
    ("{webhook: 'http://x/', webhook_token_env: 'Bearer abc123'}", "'Bearer",
     "`webhook_token_env` names an environment variable"),
    ("{email: {host: h, from: a@b.c, to: x@y.z, username: u, password_env: 'hunter 2'}}",
     "'hunter", "`password_env` names an environment variable"),
])
def test_a_profile_notify_that_cannot_work_is_an_error_at_its_line_and_column(
        rig: Rig, notify: str, at: str, message: str) -> None:
    """The error points at the offending value (``at``) in the profile."""
    plan = rig.write(NIGHT)
    _with_profile_notify(rig, NIGHT, notify)
    eq = rig.dir / "eq.yaml"
    text = f"notify: {notify}"
    line = eq.read_text().splitlines().index(text) + 1
    column = text.index(at) + 1
    equipment, diags = load_equipment(eq)
    assert equipment is None
    texts = [d.format() for d in diags]
    assert any(t.startswith(f"{eq}:{line}:{column}: error:") and message in t
               for t in texts), texts
    # and the plan that uses the profile does not validate either, pointing at the profile
    texts = [d.format() for d in load_plan(plan).diagnostics]
    assert any(f"eq.yaml:{line}:{column}:" in t and message in t for t in texts), texts
