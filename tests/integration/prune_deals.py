"""Deals for the retention tests, made fast: a few real deals of each ending, then copies.

The real deals run through `DealService`; a thousand ended deals are those
threads copied row for row in SQL (checkpoints, blobs, writes and the registry
row, under new deal and thread ids), as `bench.growth` copies them: the same
history to prune, without a minute of runs. The copies have no lease row (a
thread LangGraph Server drove never has one): the prune makes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal

import psycopg

from dealflow.api import DealService
from dealflow.prune import ENDED
from state.database import Pool, fetch_all
from tests.helpers import WEAK_LEAD, make_deal
from tests.integration.fencing import wait_until

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
_COPY = {
    "checkpoints": "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
                   " checkpoint, metadata",
    "checkpoint_blobs": "thread_id, checkpoint_ns, channel, version, type, blob",
    "checkpoint_writes": "thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type,"
                         " blob, task_path",
}
REAL_ENDED = {"E-C": "completed", "E-D": "declined", "E-Q": "disqualified", "E-R": "rejected"}


def run_real_ended(service: DealService) -> None:
    """One real deal of each ending in `REAL_ENDED`."""
    service.start(make_deal("E-C"))
    service.event("E-C", "signature.completed")
    service.start(make_deal("E-D"))
    service.event("E-D", "signature.declined")
    service.start(make_deal("E-Q", lead=WEAK_LEAD))
    service.start(make_deal("E-R", "80000.00"))
    service.resume("E-R", {"decision": "reject", "comment": "not this quarter"})
    assert {d: service.deal(d).status for d in REAL_ENDED} == REAL_ENDED


def copy_ended(pool: Pool, total: int) -> None:
    """Copy every thread (all ended) until `total` ended deals exist (a copy's ids: `cN-...`)."""
    have = len(registry_threads(pool, ENDED))
    copies, left = divmod(total - have, have)
    everyone = fetch_all(pool, "SELECT count(*) AS n FROM dealflow_deals")[0]["n"]
    assert left == 0 and have == everyone, "copy the ended deals before making others"
    with pool.connection() as conn, conn.transaction():
        for table, columns in _COPY.items():
            rest = columns.split(", ", 1)[1]
            conn.execute(
                f"INSERT INTO {table} ({columns}) SELECT 'c' || g || '-' || thread_id, {rest}"
                f" FROM {table}, generate_series(1, %s) g", (copies,))
        conn.execute(
            "INSERT INTO dealflow_deals (deal_id, thread_id, client, value, currency, input,"
            " status, created_at, updated_at) SELECT 'c' || g || '-' || deal_id,"
            " 'c' || g || '-' || thread_id, client, value, currency, input, status, created_at,"
            " updated_at FROM dealflow_deals, generate_series(1, %s) g", (copies,))
        conn.execute("ANALYZE")


def age_ended(pool: Pool, days: int) -> None:
    """Make every ended deal look as if it ended `days` ago."""
    with pool.connection() as conn:
        conn.execute("UPDATE dealflow_deals SET updated_at = now() - %s * interval '1 day'"
                     " WHERE status = ANY(%s)", (days, list(ENDED)))


def start_waiting(service: DealService, count: int, prefix: str = "W") -> list[str]:
    """`count` real deals waiting for the signature, started four at a time."""
    ids = [f"{prefix}-{n}" for n in range(count)]
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda deal_id: service.start(make_deal(deal_id)), ids))
    assert {r.status for r in reports} == {"waiting_signature"}
    return ids


def sign_all(service: DealService, deal_ids: Iterable[str]) -> set[str]:
    """Deliver `signature.completed` to each deal, four at a time; the statuses reached."""
    with ThreadPoolExecutor(4) as pool:
        return {r.status for r in pool.map(
            lambda deal_id: service.event(deal_id, "signature.completed"), deal_ids)}


def fork_after_end(service: DealService, deal_id: str) -> None:
    """A completed deal forked from the checkpoint after qualification (not run yet)."""
    deal = make_deal(deal_id, "40000.00")
    service.start(deal)
    service.event(deal_id, "signature.completed")
    config = {"configurable": {"thread_id": service.deal(deal_id).thread_id}}
    after = next(s for s in service.graph.get_state_history(config)  # type: ignore[arg-type]
                 if s.values.get("completed_steps") == ["qualify_lead"]
                 and s.next == ("supervisor",))
    service.graph.update_state(after.config, {"deal": deal.model_copy(
        update={"value": Decimal("75000.00")})})


def registry_threads(pool: Pool, statuses: Iterable[str]) -> dict[str, str]:
    """Thread id → deal id of the deals in `statuses`."""
    return {r["thread_id"]: r["deal_id"] for r in fetch_all(
        pool, "SELECT thread_id, deal_id FROM dealflow_deals WHERE status = ANY(%s)",
        (list(statuses),))}


def rows_per_thread(pool: Pool) -> dict[str, dict[str, int]]:
    """For each thread with rows: how many rows each checkpoint table holds of it."""
    found: dict[str, dict[str, int]] = {}
    for table in TABLES:
        for row in fetch_all(pool, f"SELECT thread_id, count(*) AS n FROM {table}"
                             " GROUP BY thread_id"):
            found.setdefault(row["thread_id"], dict.fromkeys(TABLES, 0))[table] = row["n"]
    return found


def missing_blobs(pool: Pool) -> set[tuple[str, str, str]]:
    """(thread, checkpoint, channel) of each blob a checkpoint names that is not there.

    A channel emptied since its version was written (`__start__` after the first
    step) has none to begin with: a prune must add nothing to this set.
    """
    return {(r["thread_id"], r["checkpoint_id"], r["key"]) for r in fetch_all(
        pool, "SELECT c.thread_id, c.checkpoint_id, v.key FROM checkpoints c,"
        " jsonb_each_text(c.checkpoint -> 'channel_versions') v WHERE NOT EXISTS"
        " (SELECT FROM checkpoint_blobs b WHERE b.thread_id = c.thread_id AND"
        " b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.key AND b.version = v.value)"
        " AND NOT c.checkpoint -> 'channel_values' ? v.key")}


@contextmanager
def registry_held(database_url: str) -> Iterator[Callable[[int], None]]:
    """Hold `dealflow_deals` against row locks; `until_queued(n)`: n sessions wait for it.

    Processes started inside take their first batch together when the block
    ends (on a loaded machine one might otherwise finish before the other began).
    """
    with psycopg.connect(database_url) as held, psycopg.connect(database_url,
                                                                autocommit=True) as probe:
        held.execute("LOCK TABLE dealflow_deals IN EXCLUSIVE MODE")  # plain reads go on

        def queued() -> int:
            row = probe.execute("SELECT count(*) FROM pg_locks WHERE NOT granted"
                                " AND relation = 'dealflow_deals'::regclass").fetchone()
            return int(row[0]) if row else 0

        yield lambda count: wait_until(lambda: queued() >= count, 120,
                                       f"{count} sessions queued for the registry")
        held.rollback()


def kill_after_first_batch(args: list[str], database_url: str,
                           committed: Callable[[], object]) -> None:
    """Run `dealflow` with `args`; SIGKILL it once `committed()` (its first batch is in)."""
    from tests.conftest import cli_env
    from tests.integration.warm_cli import WarmProcess

    killed = WarmProcess(args, cli_env(database_url))
    wait_until(committed, 120, "a first batch committed")
    killed.kill()
    assert killed.wait(30) == -9
