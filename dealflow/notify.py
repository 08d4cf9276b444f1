"""Telling people: the notifier interface, the built-in webhook notifier, the deliverer.

Notifications are queued in the outbox (`state.outbox`) by whatever announces
something; the service's workers deliver them here with `deliver_due`, retrying
failed posts with back-off. `WebhookNotifier` posts each message as JSON to
`DEALFLOW_NOTIFY_URL`: a Slack incoming webhook shows its `text`, anything else
can read `event`, `deal_id`, `thread_id`, `due_at` and de-duplicate by `id`.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from state.config import Settings
from state.outbox import Outbox

_log = logging.getLogger(__name__)


class Notifier(Protocol):
    """Something that delivers one notification, raising if it could not."""

    def send(self, message: dict[str, Any]) -> None:
        """Deliver `message` (its `id` is stable across retries)."""
        ...


class WebhookNotifier:
    """Posts each message as JSON to a URL; any answer but 2xx is a failure."""

    def __init__(self, url: str, timeout_seconds: float = 10) -> None:
        """Post to `url`, giving up on one attempt after `timeout_seconds`."""
        self.url = url
        self._timeout = timeout_seconds

    def send(self, message: dict[str, Any]) -> None:
        """Post `message`; raise `httpx.HTTPError` unless the receiver took it."""
        response = httpx.post(self.url, json=message, timeout=self._timeout,
                              headers={"Idempotency-Key": str(message.get("id", ""))})
        response.raise_for_status()


def build_notifier(settings: Settings) -> Notifier | None:
    """The notifier the settings name: a `WebhookNotifier` on `notify_url`, else none."""
    return WebhookNotifier(settings.notify_url) if settings.notify_url else None


def deliver_due(outbox: Outbox, notifier: Notifier | None, limit: int = 50) -> tuple[int, int]:
    """Post the notifications that are due; `(sent, failed)`. Without a notifier, skip them."""
    sent = failed = 0
    for pending in outbox.take_due(limit):
        if notifier is None:
            outbox.skipped(pending, "no receiver configured (DEALFLOW_NOTIFY_URL)")
            continue
        try:
            notifier.send(pending.message)
        except Exception as exc:
            _log.warning("notification %s not delivered (attempt %d): %s",
                         pending.message.get("id"), pending.attempts + 1, exc)
            outbox.failed(pending, f"{type(exc).__name__}: {exc}")
            failed += 1
        else:
            outbox.sent(pending)
            sent += 1
    return sent, failed
