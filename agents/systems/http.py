"""One HTTP client for every real provider: timeouts, retries, `Retry-After`, one-line errors.

`ProviderClient.send` makes one logical call, repeating the request where that
is safe, inside one attempt of the step:
- a request that never reached the provider (connection refused, connect timeout)
  is repeated with backoff, up to `retries` times;
- 429, and 503 with `Retry-After`, mean "not done, come back later": the call
  waits as told (or backs off) and asks again, without spending the step's
  attempts, until `max_wait` seconds of waiting in all;
- a request that may have been carried out without its answer arriving (a read
  timeout, a closed connection, a 500/502/504) is repeated only if it is
  `repeatable` (a read, or a write with an idempotency key the provider honours);
  otherwise it fails with `ResponseLost`, and the effect ledger asks the system
  (`lookup`) before the step's next attempt sends anything again;
- any other 4xx fails with `ProviderRefused`: the step goes to review.

With a `limiter` (the provider has a declared rate limit, `agents.systems.rate_limits`)
every request takes a slot of the limit shared by all processes first, and a
429's pause is recorded there: every process's next slot waits it out. The wait
for a slot is slept like a `Retry-After`, within the same `max_wait` (a worker's
job decided before the effect's claim whether to wait at all: `RateLimiter.hold_back`).

Errors are one line naming the system, the method and path, never a secret.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from agents.systems.base import SystemUnavailable
from agents.systems.rate_limits import RateLimited, RateLimiter

UNCERTAIN_STATUSES = (500, 502, 504)  # the provider may have done it
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 5.0  # seconds


class ResponseLost(SystemUnavailable):
    """A request may have been carried out, but its answer did not arrive."""


class ProviderRefused(RuntimeError):
    """The provider refused a request (a 4xx other than 429): repeating it will not help."""

    def __init__(self, system: str, message: str, status: int) -> None:
        super().__init__(f"{system}: {message}")
        self.system, self.status = system, status


Sleep = Callable[[float], None]


class ProviderClient:
    """Calls one provider's HTTP API (see the module's docstring for what is repeated)."""

    def __init__(self, system: str, base_url: str, headers: Mapping[str, str], *,
                 timeout: float, retries: int, max_wait: float,
                 transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep,
                 limiter: RateLimiter | None = None):
        """A client of `system` at `base_url`; `headers` carry its credentials.

        `limiter`: the provider's shared rate limit, if one is declared.
        """
        self.system, self.base_url = system, base_url.rstrip("/")
        self.retries, self.max_wait, self._sleep = retries, max_wait, sleep
        self.limiter = limiter
        self._http = httpx.Client(base_url=self.base_url, headers=dict(headers),
                                  timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def send(self, method: str, path: str, *, repeatable: bool,
             idempotency_key: str | None = None, **request: Any) -> httpx.Response:
        """The provider's 2xx answer to one call (`request`: httpx's params, data, json)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        where = f"{method} {path}"
        failures, waited = 0, 0.0
        while True:
            slot, slept = self._slot(where, waited)
            waited += slept
            try:
                response = self._request(slot, method, path, headers=headers, **request)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                failures = self._again(failures, f"{where}: cannot connect to "
                                       f"{self.base_url} ({_name(exc)})")
                continue
            except httpx.TransportError as exc:
                if not repeatable:
                    raise ResponseLost(self.system, f"{where}: no answer ({_name(exc)}); "
                                       "it may have been carried out") from None
                failures = self._again(failures, f"{where}: no answer ({_name(exc)})")
                continue
            status = response.status_code
            if status == 429 or (status == 503 and "retry-after" in response.headers):
                pause = retry_after(response.headers.get("retry-after")) \
                    or _backoff(failures + 1)
                if self.limiter is not None:  # for every process: the next slot waits it out
                    self.limiter.pause(pause)
                    continue
                if waited + pause > self.max_wait:
                    raise SystemUnavailable(self.system, f"{where}: {status}, still asked to "
                                            f"wait after {waited:.0f} s")
                waited += pause
                self._sleep(pause)
                continue
            if status in UNCERTAIN_STATUSES and not repeatable:
                raise ResponseLost(self.system, f"{where}: {status} {_said(response)}; "
                                   "it may have been carried out")
            if status >= 500:
                failures = self._again(failures, f"{where}: {status} {_said(response)}")
                continue
            if status >= 400:
                raise ProviderRefused(self.system, f"{where}: {status} {_said(response)}",
                                      status)
            return response

    def _request(self, slot: int | None, method: str, path: str,
                 **request: Any) -> httpx.Response:
        """One request; its rate-limit slot is released when it ends, however it ends."""
        try:
            return self._http.request(method, path, **request)
        finally:
            if slot is not None and self.limiter is not None:
                self.limiter.release(slot)

    def _slot(self, where: str, waited: float) -> tuple[int | None, float]:
        """A slot of the provider's rate limit (if it has one) and the seconds slept for it.

        A wait beyond the call's `max_wait` is the provider being unavailable.
        """
        if self.limiter is None:
            return None, 0.0
        try:
            return self.limiter.take(max(self.max_wait - waited, 0.0), self._sleep)
        except RateLimited as limited:
            raise SystemUnavailable(self.system, f"{where}: {limited}, after waiting "
                                    f"{waited:.0f} s") from None

    def _again(self, failures: int, what: str) -> int:
        """Back off before repeating a request, or fail once `retries` are spent."""
        if failures >= self.retries:
            raise SystemUnavailable(self.system, what)
        self._sleep(_backoff(failures + 1))
        return failures + 1


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), if usable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _backoff(n: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (n - 1)) * random.uniform(0.5, 1.0)


def _name(exc: Exception) -> str:
    return type(exc).__name__


def _said(response: httpx.Response) -> str:
    """The provider's own message, on one line (Stripe, DocuSign, HubSpot and Asana shapes)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    if isinstance(body, dict):
        error = body.get("error")
        errors = body.get("errors")
        for said in (error.get("message") if isinstance(error, dict) else error,
                     body.get("message"),
                     errors[0].get("message") if isinstance(errors, list) and errors
                     and isinstance(errors[0], dict) else None):
            if isinstance(said, str) and said.strip():
                return " ".join(said.split())[:300]
    return response.reason_phrase or "error"
