"""The bench's closed loop of deals, and what it samples while it runs.

`drive` keeps `in_flight` deals between their POST and their end, takes the CPU
snapshots at both ends of the window, and samples `pg_stat_activity` and the
queue's depth in between (`Sampler`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from bench.scale_cpu import CpuSnapshot, machine_cpu, proc_stat, process_cpu, server_processes
from bench.scale_procs import Proc

SUBMITTERS = 4
POLL_S = 0.1


@dataclass
class Load:
    """The closed loop: keep `in_flight` deals between their POST and their end."""

    base: str
    token: str
    prefix: str
    in_flight: int
    posted: dict[str, float] = field(default_factory=dict)  # deal id → client epoch of POST
    ended: dict[str, str] = field(default_factory=dict)  # deal id → status it ended in
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, deal_id: str) -> None:
        """POST one deal (a client per submitter thread)."""
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = httpx.Client(
                base_url=self.base, timeout=60,
                headers={"Authorization": f"Bearer {self.token}"})
        at = time.time()
        answer = http.post("/v1/deals", json={"deal_id": deal_id, "client": "Scale Co",
                                              "value": "9000"})
        if answer.status_code != 202:
            raise RuntimeError(f"POST {deal_id}: {answer.status_code} {answer.text[:200]}")
        with self._lock:
            self.posted[deal_id] = at


@dataclass
class Sampler:
    """pg_stat_activity of our database and the queue's depth, sampled in the window."""

    samples: int = 0
    waits: Counter[str] = field(default_factory=Counter)
    queries: Counter[str] = field(default_factory=Counter)  # wait | statement
    todo: list[int] = field(default_factory=list)
    doing: list[int] = field(default_factory=list)

    def sample(self, conn: psycopg.Connection[Any]) -> None:
        """One sample: every backend of our database but this one."""
        self.samples += 1
        for state, kind, event, query, on in conn.execute(
                "SELECT a.state, a.wait_event_type, a.wait_event, left(a.query, 70),"
                " (SELECT min(l.classid::regclass::text) FROM pg_locks l"
                "  WHERE l.pid = a.pid AND NOT l.granted)"
                " FROM pg_stat_activity a"
                " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
                " AND a.state IS DISTINCT FROM 'idle'"):
            if state == "active":  # a lock on pg_database: the commit of a NOTIFY
                wait = "CPU" if kind is None else f"{kind}:{event}" + (f"({on})" if on else "")
            else:
                wait = state if kind in (None, "Client") else f"{state} {kind}:{event}"
            self.waits[wait] += 1
            self.queries[f"{wait} | {' '.join(str(query).split())}"] += 1
        depth = dict(conn.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs WHERE task_name ="
            " 'dealflow.drive' AND status IN ('todo', 'doing') GROUP BY status").fetchall())
        self.todo.append(int(depth.get("todo", 0)))
        self.doing.append(int(depth.get("doing", 0)))

    def summary(self) -> dict[str, Any]:
        """Average sessions per wait event (top 8), queue depth min/mean."""
        n = max(1, self.samples)
        return {"samples": self.samples,
                "sessions": {k: round(v / n, 3) for k, v in self.waits.most_common(8)},
                "statements": {k: round(v / n, 3) for k, v in self.queries.most_common(8)},
                "todo_min": min(self.todo, default=0),
                "todo_mean": sum(self.todo) / max(1, len(self.todo)),
                "doing_mean": sum(self.doing) / max(1, len(self.doing))}


COUNTERS = ("commits", "wal_syncs", "wal_bytes")


def snapshot(conn: psycopg.Connection[Any], postmaster: int, workers: list[Proc],
             api: Proc) -> CpuSnapshot:
    """Every CPU counter now, with our database's commits and the server's WAL syncs."""
    backends = [int(r[0]) for r in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()")]
    counters = conn.execute(  # cumulative statistics: each backend's lag up to about 1 s
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
        " wal_sync, wal_bytes FROM pg_stat_wal").fetchone()
    assert counters is not None
    busy, steal = machine_cpu()
    return CpuSnapshot(
        wall=time.time(), workers={w.popen.pid: process_cpu(w.popen.pid) for w in workers},
        api=process_cpu(api.popen.pid), client=process_cpu("self"),
        machine=busy, steal=steal,
        postgres=server_processes(postmaster),
        postmaster_children=process_cpu(postmaster, children=True) - process_cpu(postmaster),
        ours={pid: process_cpu(pid) for pid in backends},
        counters={k: int(v) for k, v in zip(COUNTERS, counters, strict=True)})


def postmaster_of(conn: psycopg.Connection[Any]) -> int:
    """The pid of the Postgres server's postmaster (the parent of our backend)."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    fields = proc_stat(int(row[0]))
    if fields is None:
        raise RuntimeError("cannot read /proc of the Postgres server: is it on this machine?")
    return int(fields[1])


def drive(conn: psycopg.Connection[Any], load: Load, api: Proc, workers: list[Proc],
          postmaster: int, sampler: Sampler, warmup: float, seconds: float
          ) -> tuple[CpuSnapshot, CpuSnapshot]:
    """Run the closed loop: warm up, measure the window, then let the last deals finish."""
    procs = [api, *workers]
    outstanding: set[str] = set()
    futures: list[Future[None]] = []
    count = 0
    first: CpuSnapshot | None = None
    last: CpuSnapshot | None = None
    started = time.monotonic()
    with ThreadPoolExecutor(SUBMITTERS, thread_name_prefix="submit") as pool:
        while True:
            now = time.monotonic()
            if first is None and now - started >= warmup:
                first = snapshot(conn, postmaster, workers, api)
            if first is not None and last is None and time.time() - first.wall >= seconds:
                last = snapshot(conn, postmaster, workers, api)
            if last is None:
                while len(outstanding) < load.in_flight:
                    deal_id = f"{load.prefix}-{count}"
                    count += 1
                    outstanding.add(deal_id)
                    futures.append(pool.submit(load.post, deal_id))
            elif not outstanding:
                break
            elif time.time() - last.wall > 120:
                raise RuntimeError(f"{len(outstanding)} deals never ended")
            for future in [f for f in futures if f.done()]:
                futures.remove(future)
                future.result()  # a failed POST ends the run
            if first is not None and last is None:
                sampler.sample(conn)
            for deal_id, status in conn.execute(
                    "SELECT deal_id, status FROM dealflow_deals WHERE deal_id = ANY(%s)"
                    " AND status <> 'running'", (list(outstanding),)):
                outstanding.discard(deal_id)
                load.ended[deal_id] = status
            for proc in procs:
                proc.check()
            time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))
    assert first is not None and last is not None
    return first, last
