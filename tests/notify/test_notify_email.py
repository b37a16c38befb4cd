"""E-mail through SMTP, as cron runs it: `nightrunner run --log-file`, the password only in
the environment, and never in the night's event log or the log file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.engine.conftest import CLUSTER, Rig

NR = str(Path(sys.executable).parent / "nightrunner")
PASSWORD = "pw-Kx7!night-9931"


class Inbox:
    def __init__(self) -> None:
        self.mails: list[Message] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(message_from_bytes(envelope.content))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            self.logins.append((data.login, data.password))
            ok = data.login == b"astro" and data.password == PASSWORD.encode()
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                     auth_require_tls=False)
    ctl.start()
    yield inbox, port
    ctl.stop()


def test_the_morning_mail_arrives_and_the_password_is_nowhere_on_disk(
        tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    rig = Rig(tmp_path, tmp_path / "data")
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{expose: {{count: 2, exposure: 10}}}}]
        notify:
          on: [finish]
          email:
            host: 127.0.0.1
            port: {port}
            from: nightrunner@example.org
            to: astro@example.org
            username: astro
            password_env: NR_SMTP_PASSWORD
        """)
    log = tmp_path / "nightrunner.log"
    env = {**os.environ, "NR_SMTP_PASSWORD": PASSWORD}
    done = subprocess.run([NR, "run", str(plan), "--data-dir", str(rig.data), "--speed", "200",
                           "--log-file", str(log), "--progress", "plain"],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, log.read_text()
    assert inbox.logins == [(b"astro", PASSWORD.encode())]
    [mail] = inbox.mails
    assert mail["To"] == "astro@example.org"
    assert mail["Subject"] == "Nightrunner: test plan: night ended: completed, 2 light frames"
    body = mail.get_payload()
    assert isinstance(body, str) and '"light": 2' in body  # the summary
    written = [p for p in rig.data.rglob("*") if p.is_file() and p.suffix != ".fits"]
    for path in [log, *written]:
        assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in done.stdout + done.stderr


def test_a_refused_login_is_one_warning_and_the_night_still_exits_0(
        tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    rig = Rig(tmp_path, tmp_path / "data")
    plan = rig.write(f"""\
        targets:
          - name: NGC 188
            coordinates: {CLUSTER}
            sequence: [{{expose: {{count: 1, exposure: 10}}}}]
        notify:
          on: [finish]
          retries: 4
          email: {{host: 127.0.0.1, port: {port}, from: a@b.c, to: [x@y.z],
                   username: astro, password_env: NR_SMTP_PASSWORD}}
        """)
    log = tmp_path / "nightrunner.log"
    env = {**os.environ, "NR_SMTP_PASSWORD": "wrong-" + PASSWORD}
    done = subprocess.run([NR, "run", str(plan), "--data-dir", str(rig.data), "--speed", "200",
                           "--log-file", str(log), "--progress", "plain"],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0
    assert inbox.logins and inbox.mails == []  # refused (smtplib tries each mechanism)
    text = log.read_text()
    assert (f"notification 'finish' not delivered: e-mail via 127.0.0.1:{port}: login "
            "refused (535) (gave up after 1 attempt)") in text
    assert PASSWORD not in text
