"""W4 growth, and the DBOS peer.

Growth: bytes per completed deal, and list/status/history latency from 100 to 10,000 deals.
Peer: the same five-step process as a DBOS workflow on the same Postgres.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import median, timed
from bench.workloads import deal
from dealflow.api import DealService

CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
CLONES = {
    "checkpoints": "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,"
                   " checkpoint, metadata",
    "checkpoint_blobs": "thread_id, checkpoint_ns, channel, version, type, blob",
    "checkpoint_writes": "thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type,"
                         " blob, task_path",
}


def table_bytes(service: DealService) -> dict[str, int]:
    """Total size (heap, indexes, TOAST) of the checkpoint tables and of ours."""
    with service.pool.connection() as conn:
        rows = conn.execute(
            "SELECT relname, pg_total_relation_size(c.oid) AS bytes FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            " AND c.relkind = 'r'").fetchall()
    sizes = {row["relname"]: int(row["bytes"]) for row in rows}
    checkpoint = sum(sizes.get(t, 0) for t in CHECKPOINT_TABLES)
    ours = sum(v for k, v in sizes.items() if k.startswith(("dealflow_", "sandbox_")))
    return {"checkpoint_bytes": checkpoint, "dealflow_bytes": ours}


def _latencies(service: DealService, thread: str) -> dict[str, float]:
    return {
        "threads_s": median(timed(lambda: service.threads(), 5)),
        "status_s": median(timed(lambda: service.status(thread), 10)),
        "history_s": median(timed(lambda: service.history(thread), 5)),
    }


def _clone(service: DealService, copies: int) -> None:
    with service.pool.connection() as conn, conn.transaction():
        for table, columns in CLONES.items():
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


def w4_growth(service: DealService, base_deals: int = 100, scale: int = 100) -> dict[str, Any]:
    """Bytes per completed deal, and query latency at base_deals and base_deals * scale."""
    empty = table_bytes(service)
    threads = []
    for _ in range(base_deals):
        report = service.start(deal("W4"))
        service.event(report.thread_id, "signature.completed")
        threads.append(report.thread_id)
    full = table_bytes(service)
    per_deal = {k: (full[k] - empty[k]) / base_deals for k in full}
    small = _latencies(service, threads[0])
    _clone(service, scale - 1)
    large = _latencies(service, threads[0])
    return {"bytes_per_deal": per_deal, "at_small": small, "at_large": large,
            "deals_small": base_deals, "deals_large": base_deals * scale}


def as_url(conninfo: str) -> str:
    """A `postgresql://` URL (what DBOS and SQLAlchemy take) for a conninfo string."""
    if "://" in conninfo:
        return conninfo
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(conninfo)
    user, host = str(parts.get("user", "postgres")), str(parts.get("host", "localhost"))
    auth = f"{quote(user)}:{quote(str(parts['password']))}" if parts.get("password") else user
    if host.startswith("/"):
        return f"postgresql://{auth}@/{parts['dbname']}?host={host}"
    return f"postgresql://{auth}@{host}:{parts.get('port', 5432)}/{parts['dbname']}"


def peer_dbos(url: str, deals: int = 50) -> float:
    """Milliseconds per deal of the five-step process as a DBOS workflow (same Postgres)."""
    from dbos import DBOS
    from psycopg_pool import ConnectionPool

    pool: ConnectionPool[Any] = ConnectionPool(url, min_size=1, max_size=4,
                                               kwargs={"autocommit": True})
    with pool.connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS peer_effects (deal_id text, step text,"
                     " PRIMARY KEY (deal_id, step))")

    def effect(deal_id: str, step: str) -> None:
        with pool.connection() as conn:
            conn.execute("INSERT INTO peer_effects VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (deal_id, step))

    DBOS(config={"name": "dealflow-peer", "system_database_url": as_url(url)})
    steps = {name: DBOS.step(name=f"peer_{name}")(lambda d, n=name: effect(d, n))
             for name in ("qualify", "project", "contract", "send", "invoice")}

    @DBOS.workflow(name="peer_deal")
    def run_deal(deal_id: str) -> None:
        for step in steps.values():
            step(deal_id)

    DBOS.launch()
    try:
        for i in range(5):
            run_deal(f"warm-{i}-{time.time()}")
        started = time.perf_counter()
        for i in range(deals):
            run_deal(f"peer-{i}-{time.time()}")
        return (time.perf_counter() - started) / deals * 1000
    finally:
        DBOS.destroy()
        pool.close()
