"""Simulated outages and latency for the sandbox systems (configuration, not code).

`DEALFLOW_SANDBOX_OUTAGE="esign:2"` makes the next two e-sign calls made by
this process fail; `DEALFLOW_SANDBOX_LATENCY_MS` delays every call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from agents.systems.base import SystemUnavailable


class FaultInjector:
    """Counts down outages per system and adds latency, thread-safely."""

    def __init__(self, outage: Mapping[str, int] | None = None, latency_ms: int = 0) -> None:
        """Start with `outage[system]` failing calls per system and a fixed delay."""
        self._remaining = dict(outage or {})
        self._latency = latency_ms / 1000.0
        self._lock = threading.Lock()
        self.failed_calls: dict[str, int] = {}

    def before_call(self, system: str) -> None:
        """Sleep the configured latency, then fail if the system is in an outage."""
        if self._latency:
            time.sleep(self._latency)
        with self._lock:
            remaining = self._remaining.get(system, 0)
            if remaining <= 0:
                return
            self._remaining[system] = remaining - 1
            self.failed_calls[system] = self.failed_calls.get(system, 0) + 1
        raise SystemUnavailable(system, "simulated outage (503 Service Unavailable)")

    def remaining(self, system: str) -> int:
        """How many more calls to `system` will fail."""
        with self._lock:
            return self._remaining.get(system, 0)
