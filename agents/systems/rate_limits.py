"""Rate limits shared by every process and host: calls per sliding window, per provider.

`DEALFLOW_RATE_LIMITS="hubspot=100/10s,docusign=3000/h,stripe=25/s"` declares
them (`parse_rate_limits`: a bad entry is a one-line `ConfigError`); none by
default, and the sandbox never has one. Every request a connector sends through
`agents.systems.http.ProviderClient` takes a slot of its provider's limit first
(`RateLimiter.take`): one statement on the database every process shares,
`dealflow_rate_slot` (migration 0022), which locks the provider's row, forgets
the calls that left the window, counts the rest, and either records the call or
answers how long until a slot may be free. When the answer is back the slot is
`release`d: restamped with that moment, so a call counts from its grant until a
window after its answer, and the provider, which saw it in between, sees at most
the limit in any window of the declared length whatever the network's delays
(a sliding window: fixed buckets would let twice the limit through at a boundary).

A provider's 429 (or 503 with `Retry-After`) is recorded on the same row
(`pause`): every process's next slot of that provider waits until it ends.

Waiting for a slot: a request waits (sleeps) for its slot, up to the call's
`DEALFLOW_PROVIDER_MAX_WAIT_SECONDS`. A worker's job does not park its thread for
long: before an effect is claimed, a step run in a job asks `hold_back`, which
raises `RateLimited(wait)` when no slot is due within `SLEEP_AT_MOST` seconds.
That is not a step failure (no retry in the process, no review): the run stops
at its last checkpoint and the worker queues the thread's continuation `wait`
seconds later (`dealflow.service.rate_deferral`), its thread free meanwhile.
Once an effect is claimed its requests are only ever slept for: a deferred
effect starts over when its job comes back, the effect ledger asking the
provider first (`lookup`), so deferring an effect after its first request would
spend a slot on that question each time and, under a tight limit, never get to
its call. Who may defer is handed in (`StepRun.rate_limit`, set by the graph
builder from `DealContext.defer_rate_limits`), never looked up.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from state.config import ConfigError, Settings, env_var
from state.database import Pool, open_pool, pool_options, resolve_database_url
from state.durations import format_duration, parse_duration

SLEEP_AT_MOST = 1.0  # seconds: a wait this short is slept, in a worker's job too
STALE_TIMEOUTS = 4  # a slot never released (its process died in flight) lapses this many
#                     request timeouts after its window
MAX_CALLS = 2**31 - 1  # Postgres `integer`
_ENTRY = re.compile(r"\s*([a-z][a-z0-9_]*)\s*=\s*([0-9]+)\s*/\s*([0-9]+(?:\.[0-9]+)?)?\s*"
                    r"([smhd])\s*")
_SLOT = "SELECT o_slot, o_wait FROM dealflow_rate_slot(%s, %s, %s, %s, %s)"
_RELEASE = ("UPDATE dealflow_rate_calls SET at = clock_timestamp(), released = true"
            " WHERE id = %s")
# Seconds until `dealflow_rate_slot` could grant a slot (0: now), without taking one: the
# pause's end, or when enough of the window's calls leave it (one in flight counts a
# window from now), whichever is later. Only a forecast: another process may be first.
_NEXT_SLOT = """
SELECT greatest(0,
    extract(epoch FROM (SELECT r.paused_until FROM dealflow_rate_limits AS r
                        WHERE r.provider = %(provider)s) - clock_timestamp()),
    extract(epoch FROM (SELECT CASE WHEN c.released THEN c.at ELSE clock_timestamp() END
                               + make_interval(secs => %(window)s) AS leaves
                        FROM dealflow_rate_calls AS c
                        WHERE c.provider = %(provider)s AND c.at > clock_timestamp()
                              - make_interval(secs => %(window)s
                                              + CASE WHEN c.released THEN 0 ELSE %(stale)s END)
                        ORDER BY leaves DESC OFFSET %(calls)s - 1 LIMIT 1) - clock_timestamp())
)::double precision AS wait
"""
_pools: dict[str, Pool] = {}
_pools_lock = threading.Lock()
_log = logging.getLogger(__name__)
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class RateLimit:
    """At most `calls` requests in any `window` seconds."""

    calls: int
    window: float

    def __str__(self) -> str:
        """As declared: `100/10s`."""
        return f"{self.calls}/{format_duration(timedelta(seconds=self.window))}"


class RateLimited(RuntimeError):
    """No slot of `provider`'s limit for `wait` seconds: continue the job later.

    Raised inside a worker's job only (see the module's docstring); not a
    `SystemUnavailable`, so the graph neither retries it nor sends the step to review.
    """

    def __init__(self, provider: str, wait: float) -> None:
        """`wait`: seconds until a slot may be free."""
        super().__init__(f"{provider}: rate limit reached, next slot in {wait:.1f} s")
        self.provider, self.wait = provider, wait


def parse_rate_limits(raw: str | None, known: Iterable[str]) -> dict[str, RateLimit]:
    """`"hubspot=100/10s, stripe=25/s"` → {provider: limit}; a bad entry is a `ConfigError`.

    `known`: the provider names there are. The window is a duration (`10s`, `2m`,
    `h`: one hour).
    """
    var, names = env_var("rate_limits"), sorted(known)
    limits: dict[str, RateLimit] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        match = _ENTRY.fullmatch(part)
        if match is None:
            raise ConfigError(f"{var}: expected provider=calls/window (e.g. hubspot=100/10s, "
                              f"docusign=3000/h), got {part.strip()!r:.80}")
        name, calls, length, unit = match.groups()
        if name not in names:
            raise ConfigError(f"{var}: unknown provider {name!r} (known: {', '.join(names)})")
        if name in limits:
            raise ConfigError(f"{var}: {name} is given two limits")
        try:
            window = parse_duration(f"{length or 1}{unit}").total_seconds()
        except ValueError as exc:
            raise ConfigError(f"{var}: {name}: {exc}") from None
        if not 1 <= int(calls) <= MAX_CALLS or window <= 0:
            raise ConfigError(f"{var}: {part.strip()!r:.80}: a limit is at least one call "
                              "in a window longer than 0 s")
        limits[name] = RateLimit(int(calls), window)
    return limits


class RateLimiter:
    """One provider's limit, shared through the database of `pool` (see the module)."""

    def __init__(self, pool: Pool, provider: str, limit: RateLimit, *, stale: float) -> None:
        """`stale`: seconds after its window an unreleased slot lapses."""
        self.pool, self.provider, self.limit, self.stale = pool, provider, limit, stale

    def take(self, budget: float, sleep: Sleep) -> tuple[int, float]:
        """A slot's id and the seconds slept for it; `RateLimited` past `budget` seconds."""
        slept = 0.0
        while True:
            slot, wait = self._ask(0.0)
            if slot is not None:
                return slot, slept
            wait = max(wait, 0.001)
            if slept + wait > budget:
                raise RateLimited(self.provider, wait)
            sleep(wait)
            slept += wait

    def hold_back(self) -> None:
        """`RateLimited` if no slot is due within `SLEEP_AT_MOST` (a job defers, see the module)."""
        wait = self.next_slot_in()
        if wait > SLEEP_AT_MOST:
            raise RateLimited(self.provider, wait)

    def next_slot_in(self) -> float:
        """Seconds until a slot could be granted (0: now), without taking one: a forecast."""
        with self.pool.connection() as conn:
            row = conn.execute(_NEXT_SLOT, {"provider": self.provider, "calls": self.limit.calls,
                                            "window": self.limit.window,
                                            "stale": self.stale}).fetchone()
        assert row is not None
        return float(row["wait"])

    def release(self, slot: int) -> None:
        """The slot's call has its answer: it counts until a window from now.

        A database error leaves it counted as in flight (until it lapses): the
        call's answer stands.
        """
        try:
            with self.pool.connection() as conn:
                conn.execute(_RELEASE, (slot,))
        except psycopg.Error as exc:
            _log.warning("%s: could not release rate-limit slot %s: %s", self.provider, slot,
                         str(exc).strip().splitlines()[0] if str(exc).strip() else exc)

    def pause(self, seconds: float) -> None:
        """The provider asked to wait (429 `Retry-After`): no process gets a slot before then."""
        self._ask(max(seconds, 0.001))

    def _ask(self, pause: float) -> tuple[int | None, float]:
        with self.pool.connection() as conn:
            row = conn.execute(_SLOT, (self.provider, self.limit.calls, self.limit.window,
                                       self.stale, pause)).fetchone()
        assert row is not None
        return row["o_slot"], float(row["o_wait"])


def rate_limiter(settings: Settings, provider: str, limit: RateLimit | None,
                 pool: Pool | None) -> RateLimiter | None:
    """`provider`'s limiter if it has a `limit`: on `pool`, else one on the settings' database."""
    if limit is None:
        return None
    return RateLimiter(pool or _shared_pool(settings), provider, limit,
                       stale=STALE_TIMEOUTS * settings.provider_timeout_seconds)


def _shared_pool(settings: Settings) -> Pool:
    """A small pool of this process on the settings' database (connectors built alone).

    The database is set up first (once): `dealflow systems check` may be its first user.
    (Imported here: the setup imports LangGraph, which a read without the graph avoids.)
    """
    from state.checkpointer import setup_database

    url = resolve_database_url(settings)
    with _pools_lock:
        if url not in _pools:
            resolved = settings.model_copy(update={"database_url": url})
            options = pool_options(resolved)
            pool = open_pool(url, **options | {"max_size": 2,
                                               "min_size": min(options["min_size"], 2)})
            setup_database(pool, settings.direct_database_url)  # a session's lock: direct
            _pools[url] = pool
        return _pools[url]
