"""W4 growth: bytes per completed deal, and list/status/history latency from 100 to 10,000 deals.

With `bench.retention`: the same bytes after a prune and after a forget, and the size under a
steady load with both retention tiers on.
"""

from __future__ import annotations

from typing import Any

from bench.common import median, timed
from bench.retention import w4_retention
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
        "threads_page_s": median(timed(lambda: service.threads_page(limit=100), 10)),
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
            "deals_small": base_deals, "deals_large": base_deals * scale,
            "retention": w4_retention()}  # the tiers: bytes per ended deal, size under load
