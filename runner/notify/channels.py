"""One delivery attempt per channel. Each raises ``DeliveryError`` with a message that is safe
to log: no secret (token, password) and no URL path or query (hooks often carry a key there)."""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import subprocess
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from runner.plan.models import NotifyEmail

USER_AGENT = "nightrunner-notify/1"


class DeliveryError(Exception):
    """A failed attempt; ``final`` when retrying cannot help (a 4xx answer, a missing secret)."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


def where(url: str) -> str:
    """The part of a URL that may be shown: scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def secret(env: str | None, what: str) -> str | None:
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        raise DeliveryError(f"{what}: environment variable {env} is not set", final=True)
    return value


def env_for(payload: dict[str, Any]) -> dict[str, str]:
    return {
        "NIGHTRUNNER_EVENT": str(payload["kind"]),
        "NIGHTRUNNER_PLAN": str(payload["plan"]),
        "NIGHTRUNNER_RUN": str(payload.get("run") or ""),
        "NIGHTRUNNER_RUN_DIR": str(payload.get("run_dir") or ""),
        "NIGHTRUNNER_OUTCOME": str(payload.get("outcome") or ""),
    }


def run_command(argv: list[str], payload: dict[str, Any], timeout: float) -> None:
    """The event's JSON on stdin; the program's output is its own business (discarded)."""
    body = json.dumps(payload, default=str).encode()
    try:
        done = subprocess.run(argv, input=body, env={**os.environ, **env_for(payload)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise DeliveryError(f"command {argv[0]}: not found", final=True) from None
    except PermissionError:
        raise DeliveryError(f"command {argv[0]}: not executable", final=True) from None
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"command {argv[0]}: no exit after {timeout:g} s") from None
    if done.returncode != 0:
        raise DeliveryError(f"command {argv[0]}: exit status {done.returncode}")


def post_webhook(url: str, token: str | None, payload: dict[str, Any], timeout: float) -> None:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(payload, default=str).encode(),
                                 headers=headers, method="POST")
    shown = f"webhook {where(url)}"
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the connection
        # a 4xx (but a timeout or rate limit) will not change on retry
        final = 400 <= exc.code < 500 and exc.code not in (408, 425, 429)
        raise DeliveryError(f"{shown}: HTTP {exc.code}", final=final) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{shown}: {reason}") from None


def send_email(cfg: NotifyEmail, payload: dict[str, Any], timeout: float) -> None:
    password = secret(cfg.password_env, "e-mail")
    msg = EmailMessage()
    msg["From"] = cfg.from_
    msg["To"] = ", ".join(cfg.to)
    msg["Subject"] = f"Nightrunner: {payload['plan']}: {payload['message']}"
    msg.set_content(payload["message"] + "\n\n" + json.dumps(payload, indent=2, default=str))
    shown = f"e-mail via {cfg.host}:{cfg.port}"
    try:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=timeout) as smtp:
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.username is not None and password is not None:
                smtp.login(cfg.username, password)
            smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{shown}: login refused ({exc.smtp_code})", final=True) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"{shown}: SMTP {exc.smtp_code}",
                            final=500 <= exc.smtp_code < 600) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{shown}: {type(exc).__name__}: {exc}") from None
