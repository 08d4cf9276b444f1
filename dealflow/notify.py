"""Telling people: the notifier interface, the built-in webhook notifier, the deliverer.

Notifications are queued in the outbox (`state.outbox`) by whatever announces
something; the service's workers deliver them here with `deliver_due`, retrying
failed posts with back-off. `WebhookNotifier` posts each message as JSON to
`DEALFLOW_NOTIFY_URL`: a Slack incoming webhook shows its `text`, anything else
can read `event`, `deal_id`, `thread_id`, `due_at` and de-duplicate by `id`.
Every post is bounded (`DEALFLOW_NOTIFY_TIMEOUT_SECONDS`), and so is a delivery
run (`budget_seconds`): a slow receiver delays the notifications, nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from state.config import Settings
from state.outbox import Outbox, Pending

_log = logging.getLogger(__name__)


class Notifier(Protocol):
    """Something that delivers one notification, raising if it could not."""

    def send(self, message: dict[str, Any]) -> None:
        """Deliver `message` (its `id` is stable across retries)."""
        ...


class WebhookNotifier:
    """Posts each message as JSON to a URL; any answer but 2xx is a failure."""

    def __init__(self, url: str, timeout_seconds: float = 10) -> None:
        """Post to `url`; an attempt fails when one step of it takes over `timeout_seconds`.

        The steps: connecting, sending, waiting for the answer.
        """
        self.url = url
        self._timeout = timeout_seconds

    def send(self, message: dict[str, Any]) -> None:
        """Post `message`; raise `httpx.HTTPError` unless the receiver took it."""
        response = httpx.post(self.url, json=message, timeout=self._timeout,
                              headers={"Idempotency-Key": str(message.get("id", ""))})
        response.raise_for_status()


def build_notifier(settings: Settings) -> Notifier | None:
    """The notifier the settings name: a `WebhookNotifier` on `notify_url`, else none."""
    if not settings.notify_url:
        return None
    return WebhookNotifier(settings.notify_url, settings.notify_timeout_seconds)


def deliver_due(outbox: Outbox, notifier: Notifier | None, limit: int = 50,
                budget_seconds: float | None = None,
                clock: Callable[[], float] = time.monotonic) -> tuple[int, int]:
    """Post the notifications that are due, one at a time; `(sent, failed)`.

    Stops when none is left, after `limit`, or once `budget_seconds` have passed
    (a post under way finishes; the rest wait for the next run, untaken). Without
    a notifier, the notifications are marked skipped.
    """
    sent = failed = 0
    stop_at = None if budget_seconds is None else clock() + budget_seconds
    for _ in range(limit):
        if stop_at is not None and clock() >= stop_at:
            break
        taken = outbox.take_due(1)  # one at a time: nothing is held while others post
        if not taken:
            break
        if notifier is None:
            outbox.skipped(taken[0], "no receiver configured (DEALFLOW_NOTIFY_URL)")
        elif _post(outbox, notifier, taken[0]):
            sent += 1
        else:
            failed += 1
    return sent, failed


def _post(outbox: Outbox, notifier: Notifier, pending: Pending) -> bool:
    """Send one notification and record how it went; whether the receiver took it."""
    try:
        notifier.send(pending.message)
    except Exception as exc:
        _log.warning("notification %s not delivered (attempt %d): %s",
                     pending.message.get("id"), pending.attempts + 1, exc)
        outbox.failed(pending, f"{type(exc).__name__}: {exc}")
        return False
    outbox.sent(pending)
    return True
