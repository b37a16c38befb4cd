"""From run events to notifications, without ever holding up the night.

The notifier is an event listener: it only builds a small payload and puts it on a queue (the
bus calls listeners inline, so anything slower would delay the night). One worker thread per
channel delivers in order with bounded retries and exponential back-off; a delivery that
gives up becomes one ``warning`` event (and a log line), and the night goes on. Threads, not
tasks: smtplib, urllib and subprocess block, and a hub's loop must not.

Which events notify: ``start`` (the run's first event), ``safety`` (``unsafe``), ``abort``
(the abort request, before the safe shutdown), and at ``run_end`` ``finish`` (every end,
with the summary) plus ``failure`` when the night failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.notify import channels
from runner.notify.channels import DeliveryError
from runner.plan.models import Notify

log = logging.getLogger("nightrunner.notify")

#: back-off never grows past this, whatever ``retries`` and ``backoff`` say
MAX_BACKOFF = 300.0

Send = Callable[[dict[str, Any]], None]


class _Channel:
    """A named delivery function and the thread that feeds it."""

    def __init__(self, name: str, send: Send, cfg: Notify, notifier: Notifier) -> None:
        self.name = name
        self.cfg = cfg
        self.send = send
        self.n = notifier
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._work, name=f"notify-{name}", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while (payload := self.queue.get()) is not None:
            try:
                self._deliver(payload)
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def _deliver(self, payload: dict[str, Any]) -> None:
        cfg = self.cfg
        if payload["kind"] in ("finish", "failure"):
            payload = {**payload, "summary": _summary(payload.get("run_dir"))}
        attempts = cfg.retries + 1
        delay = cfg.backoff
        for attempt in range(1, attempts + 1):
            try:
                self.send(payload)
                log.info("notified %s by %s", payload["kind"], self.name)
                return
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # a bug in a channel: reported like a failure, in one line
                error = DeliveryError(f"{self.name}: {type(exc).__name__}", final=True)
            if error.final or attempt == attempts:
                break
            log.info("notify %s by %s failed (%s); retry in %g s", payload["kind"], self.name,
                     error, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
        tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
        self.n.warn(f"notification '{payload['kind']}' not delivered: {error} "
                    f"(gave up after {tries}); the night goes on")


def _summary(run_dir: Any) -> dict[str, Any] | None:
    """The night's summary.json (written just before ``run_end``)."""
    if not run_dir:
        return None
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((Path(run_dir) / "summary.json").read_text())
        return data if isinstance(data, dict) else None
    return None


class Notifier:
    """An event listener (``Run(..., listeners=[notifier])``); ``bind`` gives it the run.

    ``cfg`` is the plan's ``notify:`` (its author hears about that plan), ``owner`` the
    equipment profile's (the rig's owner hears about every night on the rig). Both are
    delivered, each channel with its own settings; a channel both name (the same command,
    webhook URL, or SMTP server and recipients) is delivered once, as the plan says."""

    def __init__(self, cfg: Notify | None, plan_name: str, owner: Notify | None = None) -> None:
        self.cfg = cfg
        self.plan = plan_name
        self.run: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._ended = False
        self.warnings: list[str] = []  # every delivery given up, for callers and tests
        self._channels: list[_Channel] = []
        seen: set[tuple[Any, ...]] = set()
        for source in (cfg, owner):
            if source is not None:
                self._add_channels(source, seen)

    def _add_channels(self, cfg: Notify, seen: set[tuple[Any, ...]]) -> None:
        timeout = cfg.timeout
        argv = cfg.argv()
        if argv is not None and _new(seen, ("command", *argv)):
            self._channels.append(_Channel(
                "command", lambda p: channels.run_command(argv, p, timeout), cfg, self))
        if cfg.webhook is not None and _new(seen, ("webhook", cfg.webhook)):
            url, token_env = cfg.webhook, cfg.webhook_token_env
            self._channels.append(_Channel("webhook", lambda p: channels.post_webhook(
                url, channels.secret(token_env, "webhook token"), p, timeout), cfg, self))
        if cfg.email is not None and _new(
                seen, ("email", cfg.email.host, cfg.email.port, *cfg.email.to)):
            mail = cfg.email
            self._channels.append(_Channel(
                "email", lambda p: channels.send_email(mail, p, timeout), cfg, self))

    def bind(self, run: Any) -> None:
        self.run = run

    # ------------------------------------------------------------------ the listener

    def __call__(self, event: dict[str, Any]) -> None:
        if not self._channels:
            return
        kind = event.get("event")
        if not self._started:
            self._started = True
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
            self._notify("start", event, resumed=kind == "resume")
        if kind == "unsafe":
            self._notify("safety", event, message="the safety monitor reports unsafe "
                         "conditions; the night stops")
        elif kind == "abort":
            self._notify("abort", event, reason=event.get("reason"))
        elif kind == "run_end":
            self._ended = True
            outcome = event.get("outcome")
            if outcome == "failed":
                self._notify("failure", event, outcome=outcome)
            self._notify("finish", event, outcome=outcome, lights=event.get("lights"),
                         rig_safe=event.get("rig_safe"))
            self._close()

    def _close(self) -> None:
        """Nothing follows ``run_end``: the workers end once their queue is delivered."""
        for ch in self._channels:
            ch.queue.put(None)

    def _notify(self, kind: str, event: dict[str, Any], **extra: Any) -> None:
        wanted = [ch for ch in self._channels if kind in ch.cfg.on]
        if not wanted:
            return
        run_dir = getattr(self.run, "run_dir", None)
        payload: dict[str, Any] = {
            "kind": kind, "plan": self.plan,
            "run": run_dir.name if run_dir else None,
            "run_dir": str(run_dir) if run_dir else None,
            "time": event.get("time"), "clock": event.get("clock"),
            "outcome": None, **extra,
        }
        payload["message"] = extra.get("message") or _message(payload)
        for ch in wanted:
            ch.queue.put(payload)

    # ------------------------------------------------------------------ warnings, end

    def warn(self, message: str) -> None:
        """From a worker thread: a log line always; a ``warning`` event while the night's
        event log is still open (emitted on the loop's thread, as the bus expects)."""
        self.warnings.append(message)
        log.warning("%s", message)
        loop = self._loop
        if loop is None or self._ended:
            return

        def emit() -> None:
            bus = getattr(self.run, "bus", None)
            if bus is not None and not self._ended:
                bus.emit("warning", message=message)

        with contextlib.suppress(RuntimeError):  # the loop is closed: the log line stays
            loop.call_soon_threadsafe(emit)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait (bounded) for queued notifications, e.g. before the process exits after a
        night; True when all were delivered or given up."""
        deadline = time.monotonic() + timeout
        if not self._ended:
            self._ended = True
            self._close()
        for ch in self._channels:
            ch.thread.join(max(0.0, deadline - time.monotonic()))
        return not any(ch.thread.is_alive() for ch in self._channels)


def _message(p: dict[str, Any]) -> str:
    kind = p["kind"]
    if kind == "start":
        return "night resumed" if p.get("resumed") else "night started"
    if kind == "abort":
        return f"night aborted: {p.get('reason') or 'abort requested'}"
    if kind == "failure":
        return "night failed"
    return f"night ended: {p.get('outcome')}, {p.get('lights') or 0} light frames"


def _new(seen: set[tuple[Any, ...]], key: tuple[Any, ...]) -> bool:
    if key in seen:
        return False
    seen.add(key)
    return True


def attach_notifier(run: Any) -> Notifier:
    """Listen to ``run``'s events as its plan's ``notify:`` and its equipment profile's
    say (a no-op without either)."""
    notifier = Notifier(run.plan.notify, run.plan.name,
                        owner=getattr(run.equipment, "notify", None))
    notifier.bind(run)
    run.listeners.append(notifier)
    return notifier
