"""The measured workloads: floors, durable step, throughput, resume, growth, peer."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from bench.common import CountingCursor, commits, counted_statements, median, p95, timed
from dealflow.api import DealService
from graph.builder import build_graph
from state.config import Settings
from state.models import DealInput

LEAD = {"company_size": 300, "budget": "100000", "engagement": 80}
WEAK = {"company_size": 5, "industry": "mining", "engagement": 10, "budget": "1"}


def deal(prefix: str, value: str = "9000", lead: dict[str, Any] | None = None) -> DealInput:
    """A fresh deal id each call, so no receipt is ever reused."""
    return DealInput.model_validate({"deal_id": f"{prefix}-{uuid.uuid4().hex[:10]}",
                                     "client": "Bench Co", "value": value,
                                     "lead": lead or LEAD})


def f_commit(url: str, repeat: int = 300) -> float:
    """Floor: one 1 KB INSERT + COMMIT round trip through psycopg (median seconds)."""
    payload = "x" * 1024
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial, payload text)")
        conn.commit()

        def once() -> None:
            conn.execute("INSERT INTO bench_floor (payload) VALUES (%s)", (payload,))
            conn.commit()

        timed(once, 20)
        return median(timed(once, repeat))


STEPS_PER_SHORT_DEAL = 3  # supervisor, qualify_lead, supervisor (a disqualified lead)


def f_engine(service: DealService, repeat: int = 60) -> float:
    """Floor: the same super-steps with no checkpointer (median seconds per step)."""
    graph = build_graph(service.settings).compile()
    context = service.context

    def once() -> None:
        graph.invoke({"deal": deal("FE", lead=WEAK)}, context=context)  # type: ignore[call-overload]

    timed(once, 5)
    return median(timed(once, repeat)) / STEPS_PER_SHORT_DEAL


def w1_durable_step(settings: Settings, url: str, repeat: int = 60) -> dict[str, float]:
    """Per super-step with durability='sync': time, statements, commits, client CPU."""
    with counted_statements():
        service = DealService(settings)
        graph, context = service.graph, service.context
        runs: list[float] = []

        def once() -> None:
            thread = f"w1-{uuid.uuid4().hex}"
            graph.invoke({"deal": deal("W1", lead=WEAK)},
                         {"configurable": {"thread_id": thread}}, context=context,
                         durability="sync")

        timed(once, 5)
        service.pool.close()
        service = DealService(settings)
        graph, context = service.graph, service.context
        time.sleep(0.5)
        commits_before, statements_before = commits(url), CountingCursor.statements
        cpu_before = time.process_time()
        runs = timed(once, repeat)
        cpu = time.process_time() - cpu_before
        statements = CountingCursor.statements - statements_before
        service.pool.close()  # backends exit and flush their statistics
        time.sleep(1.0)
        committed = commits(url) - commits_before
    steps = repeat * STEPS_PER_SHORT_DEAL
    return {"step_s": median(runs) / STEPS_PER_SHORT_DEAL, "statements_per_step":
            statements / steps, "commits_per_step": committed / steps,
            "client_cpu_per_step_s": cpu / steps}


def statements_per_deal(settings: Settings, repeat: int = 10) -> float:
    """Statements sent for one complete small deal (start + signature), any connection."""
    with counted_statements(), DealService(settings) as service:
        _full_deal(service)  # warm: migrations checked, pool filled
        before = CountingCursor.statements
        for _ in range(repeat):
            _full_deal(service)
        return (CountingCursor.statements - before) / repeat


def _full_deal(service: DealService) -> float:
    started = time.perf_counter()
    report = service.start(deal("W2"))
    service.event(report.thread_id, "signature.completed")
    return time.perf_counter() - started


def w2_throughput(service: DealService, concurrency: int, deals: int) -> dict[str, float]:
    """Complete deals (start + signature) at `concurrency`; deals/s, steps/s, p95 latency."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(lambda _: _full_deal(service), range(deals)))
    wall = time.perf_counter() - started
    steps_per_deal = 11  # super-steps of a small deal from start to completion
    return {"deals_per_s": deals / wall, "steps_per_s": deals * steps_per_deal / wall,
            "p95_deal_s": p95(latencies), "median_deal_s": median(latencies)}


def w3_resume(service: DealService, url: str, repeat: int = 20) -> dict[str, float]:
    """Event to completion: warm in this process, and as a new `dealflow` process."""
    waiting = [service.start(deal("W3")).thread_id for _ in range(repeat + 3)]
    exe = str(Path(sys.executable).parent / "dealflow")
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}

    def warm_event(thread: str) -> float:
        started = time.perf_counter()
        service.event(thread, "signature.completed")
        return time.perf_counter() - started

    def cold_event(thread: str) -> float:
        started = time.perf_counter()
        subprocess.run([exe, "event", thread, "signature.completed", "--json"], env=env,
                       capture_output=True, check=True)
        return time.perf_counter() - started

    warm = [warm_event(t) for t in waiting[:repeat]]
    cold = [cold_event(t) for t in waiting[repeat:]]
    startup = timed(lambda: subprocess.run([exe, "--help"], env=env, capture_output=True,
                                           check=True), 3)
    connect = timed(lambda: psycopg.connect(url).close(), 10)
    return {"warm_s": median(warm), "new_process_s": median(cold),
            "process_start_s": median(startup), "connect_s": median(connect)}
