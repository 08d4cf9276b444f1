"""W4 retention: bytes per ended deal before and after a prune, and size under steady load.

On a database of its own: `every` small deals run to completion; the checkpoint
rows' own bytes (and, after `VACUUM FULL`, the tables' on disk) are measured,
the deals pruned (`dealflow.prune`, retention 0s: every ended deal), the rows
measured again. Then the steady load: deals keep coming, `every` at a time, and
after each block the prune runs and a plain `VACUUM` of the database (what
autovacuum does, here at once) makes the freed space reusable; the sizes after
each block are the series. Without a prune the checkpoint tables grow by the
"before" figure per deal; with it, by about the "after" one (the latest
checkpoint of each deal is kept, by design); the data layer (registry, audit
trail, effect ledger, facts, spans, records) is kept whole and grows as before.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import psycopg

from bench.common import throwaway_database
from bench.workloads import deal
from dealflow.api import DealService
from dealflow.prune import prune
from state.config import Settings

CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
SIZES = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname = ANY(%s)), 0)
           AS checkpoint_bytes,
       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname LIKE 'dealflow%%'
           OR c.relname LIKE 'sandbox%%'), 0) AS dealflow_bytes,
       pg_database_size(current_database()) AS database_bytes,
       (SELECT coalesce(sum(pg_column_size(k.*)), 0) FROM checkpoints AS k)
       + (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM checkpoint_blobs AS b)
       + (SELECT coalesce(sum(pg_column_size(w.*)), 0) FROM checkpoint_writes AS w)
           AS checkpoint_row_bytes
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
"""


def _sizes(service: DealService) -> dict[str, int]:
    """Bytes on disk: the checkpoint tables, dealflow's (as `bench.growth`), the database.

    `checkpoint_row_bytes`: the checkpoint rows' own, whatever vacuum has reclaimed yet.
    """
    with service.pool.connection() as conn:
        row = conn.execute(SIZES, (list(CHECKPOINT_TABLES),)).fetchone()
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def _vacuum(url: str, full: bool) -> None:
    """`VACUUM FULL` of the checkpoint tables (their rows' own bytes), or plain `VACUUM`.

    The plain one is of the whole database: what autovacuum does after a prune, at once.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        if not full:
            conn.execute("VACUUM")
        for table in CHECKPOINT_TABLES if full else ():
            conn.execute(f"VACUUM FULL {table}".encode())


def _run_deals(service: DealService, count: int, concurrency: int) -> None:
    def one(_: int) -> None:
        report = service.start(deal("W4R"))
        service.event(report.thread_id, "signature.completed")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))


def _pruned(service: DealService) -> tuple[int, float]:
    started = time.perf_counter()
    run = prune(service.pool, timedelta(0))
    return len(run.pruned), time.perf_counter() - started


def _first_block(service: DealService, url: str, every: int, concurrency: int
                 ) -> dict[str, Any]:
    """Bytes per ended deal before and after the first prune.

    The rows' own bytes before and after, and the bytes on disk (indexes included)
    before: `VACUUM FULL` right after a delete may keep rows some snapshot on the
    server can still see, so the on-disk cost after a prune is the series' slope.
    """
    _vacuum(url, full=True)
    empty = _sizes(service)
    _run_deals(service, every, concurrency)
    _vacuum(url, full=True)
    full = _sizes(service)
    pruned, _ = _pruned(service)
    kept = _sizes(service)
    per_deal = {"before_bytes": (full["checkpoint_bytes"] - empty["checkpoint_bytes"]) / every,
                **{f"{when}_row_bytes": (sizes["checkpoint_row_bytes"]
                                         - empty["checkpoint_row_bytes"]) / every
                   for when, sizes in (("before", full), ("after", kept))}}
    return {"per_deal": per_deal, "pruned": pruned, "kept": kept}


def w4_retention(deals: int = 2000, every: int = 100, concurrency: int = 4) -> dict[str, Any]:
    """Bytes per ended deal before/after pruning, and the sizes over `deals` with retention 0s."""
    with throwaway_database() as url, DealService(Settings(database_url=url)) as service:
        first = _first_block(service, url, every, concurrency)
        series = [{"deals": every, **first["kept"]}]
        pruned, prune_seconds = first["pruned"], []
        while series[-1]["deals"] < deals:
            _run_deals(service, every, concurrency)
            count, seconds = _pruned(service)
            pruned += count
            prune_seconds.append(seconds)
            _vacuum(url, full=False)
            series.append({"deals": series[-1]["deals"] + every, **_sizes(service)})
    half = series[len(series) // 2]
    slope = {key: (series[-1][key] - half[key]) / max(1, series[-1]["deals"] - half["deals"])
             for key in ("checkpoint_bytes", "checkpoint_row_bytes", "dealflow_bytes",
                         "database_bytes")}
    return {"bytes_per_ended_deal": first["per_deal"], "series": series, "pruned": pruned,
            "first_prune": first["pruned"], "every": every,
            "prune_s_per_block": sum(prune_seconds) / max(1, len(prune_seconds)),
            "bytes_per_deal_second_half": slope}


def retention_lines(r: dict[str, Any]) -> list[str]:
    """The figures of `w4_retention` as lines of the bench table."""
    per, slope, mib = r["bytes_per_ended_deal"], r["bytes_per_deal_second_half"], 1024 * 1024
    lines = [f"W4 bytes per ended deal in the checkpoint tables: rows "
             f"{per['before_row_bytes'] / 1024:.1f} KiB before pruning → "
             f"{per['after_row_bytes'] / 1024:.1f} KiB after ({r['first_prune']} of "
             f"{r['every']} deals pruned, the latest checkpoint of each kept); on disk with "
             f"indexes {per['before_bytes'] / 1024:.1f} KiB before",
             f"   steady load, {r['series'][-1]['deals']} deals, retention 0s, a prune every "
             f"{r['every']} deals ({r['prune_s_per_block'] * 1000:.0f} ms each) and a VACUUM; "
             "MiB after each:",
             "   deals  checkpoint rows  checkpoint tables  dealflow tables  database"]
    lines += [f"   {s['deals']:>5}  {s['checkpoint_row_bytes'] / mib:>15.2f}  "
              f"{s['checkpoint_bytes'] / mib:>17.2f}  {s['dealflow_bytes'] / mib:>15.2f}  "
              f"{s['database_bytes'] / mib:>8.2f}" for s in r["series"]]
    lines.append(f"   growth per deal over the second half: checkpoint rows "
                 f"{slope['checkpoint_row_bytes'] / 1024:.1f} KiB, checkpoint tables "
                 f"{slope['checkpoint_bytes'] / 1024:.1f} KiB (unpruned: "
                 f"{per['before_bytes'] / 1024:.1f}), dealflow tables (kept by design) "
                 f"{slope['dealflow_bytes'] / 1024:.1f} KiB, database "
                 f"{slope['database_bytes'] / 1024:.1f} KiB")
    return lines
