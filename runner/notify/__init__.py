"""Notifications: the plan's ``notify:`` turns run events into a command, a webhook POST and
an e-mail, delivered in the background with bounded retries (the night never waits)."""

from runner.notify.notifier import Notifier, attach_notifier

__all__ = ["Notifier", "attach_notifier"]
