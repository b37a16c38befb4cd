"""The plan's ``notify:`` section: who hears about the night, and how (command, webhook,
e-mail)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from runner.plan.models.base import Model
from runner.plan.units import Duration

NotifyEvent = Literal["start", "finish", "failure", "abort", "safety"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("start", "finish", "failure", "abort", "safety")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _env_name(v: Any, key: str) -> Any:
    """The plan names the variable; the secret itself never sits in a plan file."""
    if isinstance(v, str) and not re.match(_ENV_NAME, v):
        raise ValueError(f"`{key}` names an environment variable (letters, digits, _), "
                         f"it does not hold the secret itself")
    return v


class NotifyEmail(Model):
    """E-mail through SMTP; the password comes from the environment, never from the plan."""

    host: str = Field(..., min_length=1, description="SMTP server host name.")
    port: int = Field(25, ge=1, le=65535, description="SMTP port (587 with `starttls`).")
    from_: str = Field(..., alias="from", min_length=3, description="Sender address.")
    to: list[str] = Field(..., min_length=1, description="Recipient addresses.")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    username: str | None = Field(None, description="SMTP login (with `password_env`).")
    password_env: str | None = Field(
        None, pattern=_ENV_NAME,
        description="Name of the environment variable holding the SMTP password.",
    )

    @field_validator("to", mode="before")
    @classmethod
    def _one_address(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("password_env", mode="before")
    @classmethod
    def _env_name(cls, v: Any) -> Any:
        return _env_name(v, "password_env")

    @model_validator(mode="after")
    def _login_pair(self) -> NotifyEmail:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("`username` and `password_env` go together (an SMTP login)")
        return self


class Notify(Model):
    """Who hears about the night: a command and/or a webhook and/or an e-mail, in the
    background (a slow or failing endpoint never delays the night)."""

    command: list[str] | str | None = Field(
        None,
        description="Program run with the event's JSON on stdin (argv list, or a string "
        "split like a shell line, no shell); env NIGHTRUNNER_EVENT, _PLAN, _RUN, _OUTCOME.",
    )
    webhook: str | None = Field(
        None, pattern=r"^https?://[^\s/]+", description="URL the event's JSON is POSTed to.",
    )
    webhook_token_env: str | None = Field(
        None, pattern=_ENV_NAME,
        description="Name of the environment variable whose value is sent as "
        "`Authorization: Bearer …` with the webhook.",
    )
    email: NotifyEmail | None = None
    on: list[NotifyEvent] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS),
        description="Events that notify: start, finish (every end, with the summary), "
        "failure, abort (when requested), safety (the safety monitor said unsafe).",
    )
    retries: int = Field(3, ge=0, le=10, description="Retries of a failed delivery.")
    backoff: Duration = Field(
        2.0, description="Seconds before the first retry; doubles on each further retry."
    )
    timeout: Duration = Field(10.0, description="Seconds one delivery attempt may take.")

    @field_validator("webhook_token_env", mode="before")
    @classmethod
    def _token_env(cls, v: Any) -> Any:
        return _env_name(v, "webhook_token_env")

    @field_validator("webhook", mode="before")
    @classmethod
    def _url(cls, v: Any) -> Any:
        if isinstance(v, str) and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("`webhook` must be an http:// or https:// URL")
        return v

    @field_validator("command")
    @classmethod
    def _argv(cls, v: list[str] | str | None) -> list[str] | str | None:
        import shlex

        if v is None:
            return v
        try:
            argv = shlex.split(v) if isinstance(v, str) else v
        except ValueError as exc:
            raise ValueError(f"command cannot be split: {exc}") from None
        if not argv or not argv[0]:
            raise ValueError("command is empty")
        return v

    @model_validator(mode="after")
    def _some_channel(self) -> Notify:
        if self.command is None and self.webhook is None and self.email is None:
            raise ValueError("notify needs a `command`, a `webhook` or an `email`")
        if self.webhook_token_env is not None and self.webhook is None:
            raise ValueError("`webhook_token_env` without a `webhook`")
        return self

    def argv(self) -> list[str] | None:
        import shlex

        if self.command is None:
            return None
        return shlex.split(self.command) if isinstance(self.command, str) else list(self.command)
