"""W4 retention: bytes per ended deal before and after each tier, and size under steady load.

On a database of its own. First `every` small deals run to completion and the
rows' own bytes are measured (and, after `VACUUM FULL`, the tables' on disk):
before, after a prune (`dealflow.prune`: the checkpoint history goes but the
latest checkpoint), after a forget (`dealflow.prune_forget`: every row of the
deal goes to its archive, then is deleted; a tombstone stays).

Then the steady load with both tiers on at short ages: deals keep coming,
`every` at a time; after each block a simulated day passes (every ended deal's
registry row is dated a day earlier, as if it had ended a day before), the
forget runs (deals ended `forget_days` ago), then the prune (ended a day ago),
then a plain `VACUUM` of the database (what autovacuum does, here at once) so the
freed space is reused. The sizes after each block are the series: dealflow's
and LangGraph's tables level off once the first deals age out; the sandbox
systems' tables (external systems of record in production) are never touched,
and are reported apart.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.common import throwaway_database
from bench.workloads import deal
from dealflow.api import DealService
from dealflow.prune import ENDED, prune
from dealflow.prune_forget import forget
from dealflow.prune_forget_sql import TABLES
from state.config import Settings

CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def _row_bytes(tables: list[str]) -> str:
    """SQL: the rows' own bytes of `tables`, summed."""
    return " + ".join(f"(SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {table} AS t)"
                      for table in tables)


SIZES = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname = ANY(%s)), 0)
           AS checkpoint_bytes,
       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname LIKE 'dealflow%%'),
           0) AS dealflow_bytes,
       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname LIKE 'sandbox%%'),
           0) AS sandbox_bytes,
       pg_database_size(current_database()) AS database_bytes,
       {checkpoint_rows} AS checkpoint_row_bytes,
       {dealflow_rows} AS dealflow_row_bytes
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
""".format(  # dealflow's rows: every table a deal has rows in (the forget's), the tombstones
    checkpoint_rows=_row_bytes(list(CHECKPOINT_TABLES)), dealflow_rows=_row_bytes(
    [t for t, _ in TABLES if t not in CHECKPOINT_TABLES] + ["dealflow_forgotten_deals"]))
# A day passes: every ended deal ended a day earlier than it did (what the tiers' ages read).
A_DAY_PASSES = """
UPDATE dealflow_deals SET updated_at = updated_at - interval '1 day' WHERE status = ANY(%s)
"""


def _sizes(service: DealService) -> dict[str, int]:
    """Bytes on disk of the checkpoint tables, dealflow's, the sandbox's, the database.

    `*_row_bytes`: the rows' own (checkpoint tables; dealflow's that name a deal, and the
    tombstones), whatever vacuum has reclaimed yet.
    """
    with service.pool.connection() as conn:
        row = conn.execute(SIZES, (list(CHECKPOINT_TABLES),)).fetchone()
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def _vacuum(url: str, full: bool) -> None:
    """`VACUUM FULL` (every table's rows' own bytes on disk), or a plain `VACUUM`.

    Both of the whole database; the plain one is what autovacuum does after a delete.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM FULL" if full else "VACUUM")


def _run_deals(service: DealService, count: int, concurrency: int) -> None:
    def one(_: int) -> None:
        report = service.start(deal("W4R"))
        service.event(report.thread_id, "signature.completed")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))


def _first_block(service: DealService, url: str, every: int, concurrency: int,
                 archive: Path) -> dict[str, Any]:
    """Bytes per ended deal before the tiers, after the prune, after the forget.

    The rows' own bytes at each stage, and the bytes on disk (indexes included)
    before: `VACUUM FULL` right after a delete may keep rows some snapshot on the
    server can still see, so the on-disk cost after the tiers is the series' slope.
    """
    _vacuum(url, full=True)
    empty = _sizes(service)
    _run_deals(service, every, concurrency)
    _vacuum(url, full=True)
    stages = {"before": _sizes(service)}
    pruned = len(prune(service.pool, timedelta(0)).pruned)
    stages["pruned"] = _sizes(service)
    forgotten = len(forget(service.pool, timedelta(0), archive=archive).forgotten)
    stages["forgotten"] = _sizes(service)
    per_deal = {f"{stage}_{kind}": (sizes[kind] - empty[kind]) / every
                for stage, sizes in stages.items()
                for kind in ("checkpoint_row_bytes", "dealflow_row_bytes")}
    per_deal.update({f"before_{kind}": (stages["before"][kind] - empty[kind]) / every
                     for kind in ("checkpoint_bytes", "dealflow_bytes", "sandbox_bytes")})
    return {"per_deal": per_deal, "pruned": pruned, "forgotten": forgotten,
            "archive_bytes": _archive_bytes(archive) / max(1, forgotten)}


def _archive_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.iterdir())


def _block(service: DealService, url: str, every: int, concurrency: int, forget_days: int,
           archive: Path) -> dict[str, Any]:
    """One block of the steady load: deals, a day, the forget, the prune, a VACUUM."""
    _run_deals(service, every, concurrency)
    with service.pool.connection() as conn:
        conn.execute(A_DAY_PASSES, (list(ENDED),))
    started = time.perf_counter()
    forgotten = len(forget(service.pool, timedelta(days=forget_days),
                           archive=archive).forgotten)
    pruned = len(prune(service.pool, timedelta(days=1)).pruned)
    seconds = time.perf_counter() - started
    _vacuum(url, full=False)
    return {**_sizes(service), "forgotten": forgotten, "pruned": pruned, "tiers_s": seconds}


def w4_retention(deals: int = 2000, every: int = 100, concurrency: int = 4,
                 forget_days: int = 5) -> dict[str, Any]:
    """Bytes per ended deal before/after each tier, and the sizes over `deals` with both on.

    Steady load: a simulated day per block of `every` deals, the prune at 1 day,
    the forget at `forget_days` (a deal lives `forget_days` blocks, then goes).
    """
    with throwaway_database() as url, DealService(Settings(database_url=url)) as service, \
            tempfile.TemporaryDirectory(prefix="dfbench-archive-") as folder:
        archive = Path(folder)
        first = _first_block(service, url, every, concurrency, archive)
        _vacuum(url, full=False)
        series = [{"deals": every, **_sizes(service), "forgotten": first["forgotten"],
                   "pruned": first["pruned"], "tiers_s": 0.0}]
        while series[-1]["deals"] < deals:
            block = _block(service, url, every, concurrency, forget_days, archive)
            series.append({"deals": series[-1]["deals"] + every, **block})
        archived = _archive_bytes(archive)
    half = series[len(series) // 2]
    slope = {key: (series[-1][key] - half[key]) / max(1, series[-1]["deals"] - half["deals"])
             for key in ("checkpoint_bytes", "dealflow_bytes", "sandbox_bytes",
                         "database_bytes", "checkpoint_row_bytes", "dealflow_row_bytes")}
    forgotten = sum(s["forgotten"] for s in series)
    return {"bytes_per_ended_deal": first["per_deal"], "series": series, "every": every,
            "forget_days": forget_days, "forgotten": forgotten,
            "archive_bytes_per_deal": archived / max(1, forgotten),
            "tiers_s_per_block": sum(s["tiers_s"] for s in series[1:]) / max(1, len(series) - 1),
            "bytes_per_deal_second_half": slope}


def retention_lines(r: dict[str, Any]) -> list[str]:
    """The figures of `w4_retention` as lines of the bench table."""
    per, slope, mib, kib = r["bytes_per_ended_deal"], r["bytes_per_deal_second_half"], \
        1024 * 1024, 1024
    lines = [f"W4 bytes per ended deal, rows' own: checkpoint tables "
             f"{per['before_checkpoint_row_bytes'] / kib:.1f} KiB before → "
             f"{per['pruned_checkpoint_row_bytes'] / kib:.1f} pruned → "
             f"{per['forgotten_checkpoint_row_bytes'] / kib:.1f} forgotten; dealflow tables "
             f"{per['before_dealflow_row_bytes'] / kib:.1f} KiB → "
             f"{per['pruned_dealflow_row_bytes'] / kib:.1f} → "
             f"{per['forgotten_dealflow_row_bytes'] / kib:.2f} (the tombstone)",
             f"   on disk with indexes before: checkpoint tables "
             f"{per['before_checkpoint_bytes'] / kib:.1f} KiB, dealflow tables "
             f"{per['before_dealflow_bytes'] / kib:.1f} KiB, sandbox systems "
             f"{per['before_sandbox_bytes'] / kib:.1f} KiB (never deleted); archive "
             f"{r['archive_bytes_per_deal'] / kib:.1f} KiB per forgotten deal (gzip)",
             f"   steady load, {r['series'][-1]['deals']} deals, a simulated day per "
             f"{r['every']} deals: prune at 1 day, forget at {r['forget_days']} days, then a "
             f"VACUUM ({r['tiers_s_per_block'] * 1000:.0f} ms of tiers per block); MiB after each:",
             "   deals  forgot  checkpoint tables  dealflow tables  both  sandbox  database"]
    lines += [f"   {s['deals']:>5}  {s['forgotten']:>6}  {s['checkpoint_bytes'] / mib:>17.2f}  "
              f"{s['dealflow_bytes'] / mib:>15.2f}  "
              f"{(s['checkpoint_bytes'] + s['dealflow_bytes']) / mib:>4.2f}  "
              f"{s['sandbox_bytes'] / mib:>7.2f}  {s['database_bytes'] / mib:>8.2f}"
              for s in r["series"]]
    lines.append(f"   growth per deal over the second half: checkpoint tables "
                 f"{slope['checkpoint_bytes'] / kib:.2f} KiB, dealflow tables "
                 f"{slope['dealflow_bytes'] / kib:.2f} KiB (rows' own "
                 f"{slope['checkpoint_row_bytes'] / kib:.2f} + "
                 f"{slope['dealflow_row_bytes'] / kib:.2f}), sandbox systems "
                 f"{slope['sandbox_bytes'] / kib:.2f} KiB, database "
                 f"{slope['database_bytes'] / kib:.2f} KiB")
    return lines
