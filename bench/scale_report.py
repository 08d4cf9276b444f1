"""The processes curve's figures: each level pooled over its rounds, and the printed table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from statistics import quantiles
from typing import Any

import psycopg

from bench.scale_cpu import NCPU, CpuSnapshot, ours_delta, postgres_delta
from bench.scale_load import COUNTERS, Load, Sampler


def _pct(values: list[float], pct: int) -> float:
    return quantiles(values, n=100, method="inclusive")[pct - 1] if len(values) > 1 \
        else values[0]


CPU_PARTS = ("workers", "postgres", "postgres_ours", "api", "client", "machine", "steal")


def upkeep(conn: psycopg.Connection[Any], first: CpuSnapshot, last: CpuSnapshot
           ) -> dict[str, float]:
    """The sweep's `continue`s queued in the window, and the seconds `dealflow.timers` ran."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE j.task_name = 'dealflow.drive' AND e.type = 'deferred'"
        "  AND j.args ->> 'action' = 'continue'),"
        " coalesce(sum(extract(epoch FROM (SELECT min(f.at) FROM procrastinate_events f"
        "  WHERE f.job_id = j.id AND f.type IN ('succeeded', 'failed')) - e.at))"
        "  FILTER (WHERE j.task_name = 'dealflow.timers' AND e.type = 'started'), 0)::float8"
        " FROM procrastinate_jobs j JOIN procrastinate_events e ON e.job_id = j.id"
        " WHERE e.type IN ('deferred', 'started')"
        " AND e.at BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
        (first.wall, last.wall)).fetchone()
    assert row is not None
    return {"continues": int(row[0]), "timers_s": float(row[1])}


@dataclass
class Level:
    """One level's windows, pooled over the rounds."""

    workers: int
    wall: float = 0.0
    rates: list[float] = field(default_factory=list)  # each round's deals/s
    disturbed: list[tuple[float, float]] = field(default_factory=list)  # other, steal shares
    parts: dict[str, list[float]] = field(default_factory=lambda: {
        "latency": [], "api": [], "queued": [], "run": [], "job": []})
    cpu: Counter[str] = field(default_factory=Counter)  # seconds
    counters: Counter[str] = field(default_factory=Counter)
    steps: dict[str, list[float]] = field(default_factory=dict)  # node → [ms sum, count]
    spans_ms: float = 0.0
    retries: int = 0
    other_status: int = 0
    upkeep: Counter[str] = field(default_factory=Counter)  # the periodic tasks' share
    sampler: Sampler = field(default_factory=Sampler)

    @property
    def deals(self) -> int:
        """Deals that reached waiting_signature inside the windows."""
        return len(self.parts["latency"])

    def add_window(self, conn: psycopg.Connection[Any], load: Load, first: CpuSnapshot,
                   last: CpuSnapshot) -> None:
        """Pool one window: its deals' timelines and spans, and the CPU it took."""
        rows = conn.execute(
            "SELECT d.deal_id, extract(epoch FROM d.updated_at)::float8,"
            " extract(epoch FROM min(e.at) FILTER (WHERE e.type = 'deferred'))::float8,"
            " extract(epoch FROM min(e.at) FILTER (WHERE e.type = 'started'))::float8,"
            " extract(epoch FROM max(e.at) FILTER (WHERE e.type = 'succeeded'))::float8,"
            " count(*) FILTER (WHERE e.type = 'deferred_for_retry')"
            " FROM dealflow_deals d"
            " JOIN procrastinate_jobs j ON j.task_name = 'dealflow.drive'"
            "  AND j.args ->> 'thread_id' = d.thread_id AND j.args ->> 'action' = 'start'"
            " JOIN procrastinate_events e ON e.job_id = j.id"
            " WHERE d.status = 'waiting_signature' AND d.deal_id LIKE %s"
            " AND d.updated_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)"
            " GROUP BY d.deal_id, d.updated_at",
            (f"{load.prefix}-%", first.wall, last.wall)).fetchall()
        if not rows:
            raise RuntimeError(f"no deal reached waiting_signature in a window at "
                               f"{self.workers} worker processes")
        for deal, end, deferred, begun, done, retries in rows:
            posted = load.posted[deal]
            self.parts["latency"].append(end - posted)
            self.parts["api"].append(deferred - posted)
            self.parts["queued"].append(begun - deferred)
            self.parts["run"].append(end - begun)
            if done is not None:
                self.parts["job"].append(done - begun)
            self.retries += int(retries)
        deals = [row[0] for row in rows]
        for node, ms, n in conn.execute(
                "SELECT node, sum(duration_ms), count(*) FROM dealflow_spans"
                " WHERE deal_id = ANY(%s) GROUP BY node ORDER BY min(started_at)", (deals,)):
            step = self.steps.setdefault(node, [0.0, 0.0])
            step[0] += float(ms)
            step[1] += int(n)
            self.spans_ms += float(ms)
        self.other_status += sum(s != "waiting_signature" for s in load.ended.values())
        self.upkeep.update(upkeep(conn, first, last))
        wall = last.wall - first.wall
        self.wall += wall
        self.rates.append(len(rows) / wall)
        cpu = {"workers": sum(last.workers[p] - first.workers[p] for p in last.workers),
               "postgres": postgres_delta(first, last), "postgres_ours": ours_delta(first, last),
               "api": last.api - first.api, "client": last.client - first.client,
               "machine": last.machine - first.machine, "steal": last.steal - first.steal}
        self.cpu.update(cpu)
        other = cpu["machine"] - sum(cpu[k] for k in ("workers", "postgres", "api", "client"))
        self.disturbed.append((other / (wall * NCPU), cpu["steal"] / (wall * NCPU)))
        self.counters.update({k: last.counters[k] - first.counters[k] for k in COUNTERS})

    def figures(self) -> dict[str, Any]:
        """The level's figures, pooled over its windows."""
        deals, parts = self.deals, self.parts
        cpu = {k: self.cpu[k] for k in CPU_PARTS}
        cpu["other"] = cpu["machine"] - sum(cpu[k] for k in ("workers", "postgres", "api",
                                                             "client"))
        ours = sum(cpu[k] for k in ("workers", "postgres", "api", "client"))
        return {
            "workers": self.workers, "window_s": self.wall, "deals": deals,
            "deals_per_s": deals / self.wall, "rounds_deals_per_s": self.rates,
            # each round's share of the machine taken by other programs, and stolen
            "rounds_other_steal": [[round(o, 3), round(st, 3)] for o, st in self.disturbed],
            "retries": self.retries, "ended_other_than_waiting_signature": self.other_status,
            # the sweep's `continue`s queued a deal; seconds of job slots the timers held a second
            "sweep_continues_per_deal": self.upkeep["continues"] / deals,
            "timers_slot_s_per_s": self.upkeep["timers_s"] / self.wall,
            "p50_s": _pct(parts["latency"], 50), "p95_s": _pct(parts["latency"], 95),
            "api_p50_s": _pct(parts["api"], 50), "queued_p50_s": _pct(parts["queued"], 50),
            "run_p50_s": _pct(parts["run"], 50),
            "run_mean_s": sum(parts["run"]) / deals,
            "job_mean_s": sum(parts["job"]) / max(1, len(parts["job"])),
            "spans_ms_per_deal": self.spans_ms / deals,
            "step_mean_ms": {node: round(ms / n, 2) for node, (ms, n) in self.steps.items()},
            "cpu_ms_per_deal": {k: 1000 * v / deals for k, v in cpu.items()},
            "cpu_utilisation": {k: v / (self.wall * NCPU) for k, v in cpu.items()},
            # deals/s if every core ran only this (workers, Postgres, API and client)
            "cpu_bound_deals_per_s": NCPU * deals / ours,
            "pg_activity": self.sampler.summary(),
            # commits: our database; WAL: the whole server (other databases' too)
            "per_deal": {k: self.counters[k] / deals for k in COUNTERS}}


def scale_lines(results: dict[str, Any]) -> list[str]:
    """The table: one line per level, then where the time went, level by level."""
    out = [f"Scale-out: the API on its own + N × `dealflow worker --concurrency "
           f"{results['concurrency']}`, {results['cpus']} CPUs, {results['in_flight']} deals "
           f"in flight, {results['rounds']} rounds × {results['window_s']:g} s a level",
           "  N  deals/s  ×1 (rounds lo/med/hi)  p50 s  p95 s  queued/run p50 s │ CPU ms/deal:"
           " workers  postgres (our db)  api  client  other  busy%"]
    for n, r in results["levels"].items():
        cpu, use = r["cpu_ms_per_deal"], r["cpu_utilisation"]
        rounds = r["ratio_to_1_rounds"]
        ratio = (f"{r['ratio_to_1']:4.2f} ({rounds['min']:.2f}/{rounds['median']:.2f}/"
                 f"{rounds['max']:.2f})") if rounds else " " * 21
        out.append(f"  {n}  {r['deals_per_s']:7.1f}  {ratio}  {r['p50_s']:5.2f}  "
                   f"{r['p95_s']:5.2f}  {r['queued_p50_s']:5.2f}/{r['run_p50_s']:5.2f}      │"
                   f"         {cpu['workers']:5.1f}  {cpu['postgres']:5.1f} "
                   f"({cpu['postgres_ours']:5.1f})  {cpu['api']:5.1f}  {cpu['client']:5.1f}"
                   f"  {cpu['other']:5.1f}  {100 * use['machine']:4.0f}")
    for n, r in results["levels"].items():
        waits = ", ".join(f"{k} {v:.2f}" for k, v in list(r["pg_activity"]["sessions"].items())
                          [:5])
        out.append(f"  N={n}: our db's sessions (avg) {waits}; todo jobs ≥ "
                   f"{r['pg_activity']['todo_min']}, mean {r['pg_activity']['todo_mean']:.1f}"
                   f", doing {r['pg_activity']['doing_mean']:.1f}; spans "
                   f"{r['spans_ms_per_deal']:.0f} ms of a {r['run_mean_s'] * 1000:.0f} ms run; "
                   f"{r['per_deal']['commits']:.0f} commits, {r['per_deal']['wal_syncs']:.1f} "
                   f"WAL syncs a deal; sweep continues {r['sweep_continues_per_deal']:.2f} a "
                   f"deal, timers hold {r['timers_slot_s_per_s']:.2f} slots; "
                   f"{results['cpus']} cores would do "
                   f"{r['cpu_bound_deals_per_s']:.0f}/s at this CPU per deal")
    noisy = {n: r["cpu_utilisation"] for n, r in results["levels"].items()
             if r["cpu_utilisation"]["other"] + r["cpu_utilisation"]["steal"] > 0.10}
    if noisy:
        out.append("  other programs (and the hypervisor's steal) took " + ", ".join(
            f"{100 * v['other']:.0f}% ({100 * v['steal']:.0f}%) at N={n}"
            for n, v in noisy.items())
            + " of the machine's CPU: these levels shared the cores, not representative")
    if "ratio_2_over_1" in results:
        out.append(f"  2 processes ÷ 1 = {results['ratio_2_over_1']:.2f} (target ≥ 1.5); with "
                   f"every core busy at 2 processes' CPU per deal it would be "
                   f"{results['ceiling_2_over_1']:.2f}")
    return out
