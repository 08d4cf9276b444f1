"""The peer: the same five-step process as a DBOS workflow on the same Postgres.

`peer_ratio` times our complete deal and DBOS's in paired rounds (`bench.paired`),
so both sides see the same load on a shared machine; the same deal on
LangGraph's `InMemorySaver` (`bench.reference`) runs in the same rounds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import timed
from bench.paired import Side, paired_rounds, spread
from bench.reference import MemoryDeals
from bench.workloads import deal
from dealflow.api import DealService


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


@contextmanager
def dbos_deal(url: str) -> Iterator[Callable[[str], None]]:
    """A launched DBOS whose workflow runs the five steps of a deal, each one effect row."""
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
        yield run_deal
    finally:
        DBOS.destroy()
        pool.close()


def peer_ratio(service: DealService, dbos_url: str, rounds: int = 6, per_round: int = 8
               ) -> dict[str, Any]:
    """Milliseconds per complete deal, ours and DBOS's, in paired rounds, and their ratio.

    The reference (`bench.reference`: the same deals on `InMemorySaver`) runs in the
    same rounds: `memory_peer_ratio` is its milliseconds per deal over DBOS's.
    """
    def ours() -> None:
        report = service.start(deal("PD"))
        service.event(report.thread_id, "signature.completed")

    memory = MemoryDeals(service).full(lambda: deal("PM"))
    with dbos_deal(dbos_url) as run_deal:
        def peer() -> None:
            run_deal(f"peer-{uuid.uuid4().hex}-{time.time()}")

        sides = (Side("ours", lambda: timed(ours, per_round)),
                 Side("dbos", lambda: timed(peer, per_round)),
                 Side("memory", lambda: timed(memory, per_round)))
        for side in sides:
            side.run()  # warm
        paired_rounds(rounds, sides)
    ours_ms, dbos_ms, memory_ms = (sum(map(sum, side.samples)) / (rounds * per_round) * 1000
                                   for side in sides)
    per_round_ratio = [sum(a) / sum(b) for a, b, _ in zip(*(s.samples for s in sides),
                                                          strict=True)]
    return {"ours_ms_per_deal": ours_ms, "peer_dbos_ms_per_deal": dbos_ms,
            "peer_ratio": ours_ms / dbos_ms, "peer_ratio_rounds": spread(per_round_ratio),
            "memory_ms_per_deal": memory_ms, "memory_peer_ratio": memory_ms / dbos_ms}
