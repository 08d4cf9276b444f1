"""The measured workloads: floors and the durable step (paired), throughput, resume."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from agents.systems.hubspot import HubSpotCRM
from bench.common import (
    CountingCursor,
    commits,
    counted_statements,
    median,
    p95,
    timed,
    transaction_ids,
)
from bench.paired import Side, paired_rounds, pooled, spread
from bench.reference import MemoryDeals
from dealflow.api import DealService
from graph.builder import build_graph
from state.config import Settings
from state.models import DealInput
from tests.providers.connect import with_hubspot
from tests.providers.hubspot import HubSpotServer

LEAD = {"company_size": 300, "budget": "100000", "engagement": 80}
WEAK = {"company_size": 5, "industry": "mining", "engagement": 10, "budget": "1"}


def deal(prefix: str, value: str = "9000", lead: dict[str, Any] | None = None) -> DealInput:
    """A fresh deal id each call, so no receipt is ever reused."""
    return DealInput.model_validate({"deal_id": f"{prefix}-{uuid.uuid4().hex[:10]}",
                                     "client": "Bench Co", "value": value,
                                     "lead": lead or LEAD})


@contextmanager
def commit_floor(url: str, batch: int = 50) -> Iterator[Callable[[], list[float]]]:
    """Floor F_commit: a batch of 1 KB INSERT + COMMIT round trips (seconds each)."""
    payload = "x" * 1024
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial, payload text)")
        conn.commit()

        def once() -> None:
            conn.execute("INSERT INTO bench_floor (payload) VALUES (%s)", (payload,))
            conn.commit()

        timed(once, 20)
        yield lambda: timed(once, batch)


STEPS_PER_SHORT_DEAL = 3  # supervisor, qualify_lead, supervisor (a disqualified lead)


def engine_floor(service: DealService, batch: int = 10) -> Callable[[], list[float]]:
    """Floor F_engine: a batch of the same super-steps with no checkpointer (seconds per step)."""
    graph = build_graph(service.settings).compile()
    context = service.context

    def once() -> None:
        graph.invoke({"deal": deal("FE", lead=WEAK)}, context=context)  # type: ignore[call-overload]

    timed(once, 5)
    return lambda: [t / STEPS_PER_SHORT_DEAL for t in timed(once, batch)]


def durable_steps(service: DealService, batch: int = 10) -> Callable[[], list[float]]:
    """W1's T: a batch of short deals with durability="sync" (seconds per super-step)."""
    timed(_short_deal(service), 5)
    return lambda: [t / STEPS_PER_SHORT_DEAL for t in timed(_short_deal(service), batch)]


def memory_steps(service: DealService, batch: int = 10) -> Callable[[], list[float]]:
    """The reference for T: the same short deals on `InMemorySaver` (seconds per super-step)."""
    once = MemoryDeals(service).short(lambda: deal("W1M", lead=WEAK))
    timed(once, 5)
    return lambda: [t / STEPS_PER_SHORT_DEAL for t in timed(once, batch)]


def _short_deal(service: DealService) -> Callable[[], None]:
    def once() -> None:
        service.graph.invoke({"deal": deal("W1", lead=WEAK)},
                             {"configurable": {"thread_id": f"w1-{uuid.uuid4().hex}"}},
                             context=service.context, durability="sync")
    return once


def w1_durable_step(settings: Settings, url: str, rounds: int = 6) -> dict[str, Any]:
    """W1 and its floors, timed in paired rounds: F_commit, F_engine, T, and the ratio.

    T_memory, the same short deals on `InMemorySaver` (`bench.reference`), runs in
    the same rounds: `memory_ratio` is its (T_memory − F_engine) / F_commit.

    Statements, commits and client CPU per step come from a counted run of their own.
    """
    with DealService(settings) as service, commit_floor(url) as commit:
        sides = (Side("F_commit", commit), Side("F_engine", engine_floor(service)),
                 Side("T", durable_steps(service)), Side("T_memory", memory_steps(service)))
        paired_rounds(rounds, sides)
    fc, fe, t, t_memory = (median(pooled(side)) for side in sides)
    per_round = [(median(s_t) - median(s_e)) / median(s_c)
                 for s_c, s_e, s_t, _ in zip(*(side.samples for side in sides), strict=True)]
    return {"F_commit_s": fc, "F_engine_s": fe, "step_s": t, "ratio": (t - fe) / fc,
            "ratio_rounds": spread(per_round), "memory_step_s": t_memory,
            "memory_ratio": (t_memory - fe) / fc, **w1_counts(settings, url)}


def w1_counts(settings: Settings, url: str, repeat: int = 60) -> dict[str, float]:
    """Per durable super-step: statements sent, commits, client CPU.

    `commits_per_step` counts every transaction (pg_stat_database's `xact_commit`,
    LangGraph's reads included); `write_commits_per_step` those that wrote, each
    a commit record flushed to disk (`transaction_ids`). Both include the sandbox
    CRM's own commit: it stands for an outside system, in the same database.
    """
    with counted_statements():
        with DealService(settings) as warm:
            timed(_short_deal(warm), 5)
        service = DealService(settings)
        time.sleep(0.5)
        commits_before, statements_before = commits(url), CountingCursor.statements
        xids_before = transaction_ids(url)
        cpu_before = time.process_time()
        timed(_short_deal(service), repeat)
        cpu = time.process_time() - cpu_before
        wrote = transaction_ids(url) - xids_before
        statements = CountingCursor.statements - statements_before
        service.pool.close()  # backends exit and flush their statistics
        time.sleep(1.0)
        committed = commits(url) - commits_before
    steps = repeat * STEPS_PER_SHORT_DEAL
    return {"statements_per_step": statements / steps, "commits_per_step": committed / steps,
            "write_commits_per_step": wrote / steps, "client_cpu_per_step_s": cpu / steps}


def w1_counts_on_hubspot(settings: Settings, url: str, repeat: int = 150) -> dict[str, float]:
    """Statements and commits per step as `w1_counts`, the CRM a provider over HTTP.

    The sandbox CRM keeps its records in dealflow's database, so its own commit
    counts there; a real CRM's (here the local HubSpot's) does not: these are
    the commits a deployment's database sees. (`write_commits_per_step` is left
    out: it reads the server's transaction ids, which any other database moves.)
    """
    with HubSpotServer() as server:
        on_hubspot = with_hubspot(settings, server)
        HubSpotCRM.from_settings(on_hubspot).setup()
        counts = w1_counts(on_hubspot, url, repeat)
    return {f"{name}_on_hubspot": counts[name]
            for name in ("statements_per_step", "commits_per_step")}


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


STEPS_PER_DEAL = 11  # super-steps of a small deal from start to completion


def w2_batch(full_deal: Callable[[], float], concurrency: int, deals: int
             ) -> Callable[[], tuple[float, list[float]]]:
    """A batch of complete deals at `concurrency`: (wall seconds, each deal's latency)."""
    def run() -> tuple[float, list[float]]:
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(lambda _: full_deal(), range(deals)))
        return time.perf_counter() - started, latencies
    return run


W2Levels = dict[str, dict[str, float]]


def w2_throughput(service: DealService, levels: tuple[int, ...] = (1, 4, 8), rounds: int = 3
                  ) -> tuple[W2Levels, list[float], W2Levels]:
    """Deals/s, steps/s and latency at each concurrency, the levels in paired rounds.

    Also each round's own throughput at the highest level over the lowest, and
    the reference (`bench.reference`: the same deals on `InMemorySaver`) at the
    lowest and highest levels, in the same rounds.
    """
    memory = MemoryDeals(service).full(lambda: deal("W2M"))
    sides = [Side(str(c), w2_batch(lambda: _full_deal(service), c, _w2_deals(c)))
             for c in levels]
    references = [Side(str(c), w2_batch(memory, c, _w2_deals(c)))
                  for c in (levels[0], levels[-1])]
    for side in (*sides, *references):
        side.run()  # warm: the pool's connections at this concurrency
    paired_rounds(rounds, [*sides, *references])
    low, high = sides[0], sides[-1]
    scaling = [(len(h) / h_wall) / (len(lo) / lo_wall)
               for (lo_wall, lo), (h_wall, h) in zip(low.samples, high.samples, strict=True)]
    return _w2_figures(sides), scaling, _w2_figures(references)


def _w2_deals(concurrency: int) -> int:
    return 24 if concurrency > 1 else 12


def _w2_figures(sides: list[Side[tuple[float, list[float]]]]) -> W2Levels:
    out = {}
    for side in sides:
        wall = sum(batch_wall for batch_wall, _ in side.samples)
        latencies = [value for _, batch in side.samples for value in batch]
        out[side.name] = {"deals_per_s": len(latencies) / wall,
                          "steps_per_s": len(latencies) * STEPS_PER_DEAL / wall,
                          "p95_deal_s": p95(latencies), "median_deal_s": median(latencies)}
    return out


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

    def read(*argv: str) -> None:
        subprocess.run([exe, *argv], env=env, capture_output=True, check=True)

    reads = {"status": timed(lambda: read("status", waiting[0]), 5),
             "records": timed(lambda: read("records", waiting[0]), 5),
             "threads": timed(lambda: read("threads"), 5)}
    return {"warm_s": median(warm), "new_process_s": median(cold),
            "process_start_s": median(startup), "connect_s": median(connect),
            **{f"{command}_new_process_s": median(took) for command, took in reads.items()}}
