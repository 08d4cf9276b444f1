"""Scale-out, measured: the API on its own and 1, 2 and 4 `dealflow worker` processes.

    python -m bench.scale [--levels 1,2,4] [--rounds 3] [--seconds 5] [--warmup 3]

On one throwaway database (`DATABASE_URL` of every process): `dealflow serve
--workers 0` (the API, a process of its own) and, for each level, N `dealflow
worker --concurrency 2` processes, started for the level and stopped after it
(SIGTERM, wait). Deals go in through `POST /v1/deals` (an operator token from
`dealflow token create`) from a small thread pool that keeps `--in-flight` deals
between their POST and `waiting_signature`, more than the largest level's job
slots (4 x 2), so the queue is never empty. Each level runs `--rounds` times, the
levels in reversed order every other round (`bench.paired`), so what else the
machine does lands on every level alike; each figure pools its level's windows
(`--seconds` each, after `--warmup`), and each round's own ratio to 1 process is
kept too (lowest / median / highest):

- deals/s: the deals that reached `waiting_signature` inside the windows, over
  their length, and each level's figure beside 1 process's as a ratio;
- latency: from the client's clock just before the POST to the database's own
  time of the deal reaching `waiting_signature` (`dealflow_deals.updated_at` of
  that status, written with the step's checkpoint): no polling in the figure
  (the client and Postgres share this machine's clock). Its parts come from
  procrastinate's job events: POST → job queued (the API), queued → started
  (waiting for a worker slot: with `--in-flight` deals in the loop, most of the
  latency), started → waiting_signature (the run);
- CPU seconds per deal from `/proc/<pid>/stat` (utime + stime): the worker
  processes; Postgres, every process of the server (the postmaster and its
  children, with the children that exited in the window through the
  postmaster's cutime + cstime), of which our database's backends; the API
  process and this bench client apart, measured the same way; and the
  machine's busy CPU (`/proc/stat`), so what other programs took shows too,
  with what the hypervisor stole (each round's shares in `rounds_other_steal`);
- where the time goes: `pg_stat_activity` of our database sampled every 0.1 s
  (average sessions per wait event, `CPU` for active without one; a lock on
  `pg_database` is the commit of a NOTIFY), the job queue's depth (`dealflow.drive`
  jobs, the sweep's `continue`s included), commits and WAL syncs per deal
  (cumulative statistics, which lag up to about 1 s), and the mean per-step span
  durations (`dealflow_spans`).

The completion poll (every 0.1 s, one indexed query) only paces the submitters.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from statistics import quantiles
from typing import IO, Any

import httpx
import psycopg

from bench.common import throwaway_database
from bench.paired import Side, paired_rounds, spread

EXE = str(Path(sys.executable).parent / "dealflow")
LEVELS = (1, 2, 4)
CONCURRENCY = 2  # job slots per worker process
IN_FLIGHT = 24  # deals between POST and waiting_signature: 3 x the 8 slots of 4 processes
SUBMITTERS = 4
POLL_S = 0.1
ROUNDS = 3
WARMUP_S = 3.0
WINDOW_S = 5.0  # per level and round: 15 s a level in all
TICK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


# -- CPU from /proc ---------------------------------------------------------------------

def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def process_cpu(pid: int | str, children: bool = False) -> float:
    """CPU seconds (utime + stime, every thread) of a process; with its reaped children's."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the machine spent busy (every core), and stolen by the hypervisor."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _, _, irq, softirq, steal = values[:8]  # guest time is inside user
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def machine_busy() -> float:
    """CPU seconds the machine spent busy (every core), from /proc/stat."""
    return machine_cpu()[0]


def server_processes(postmaster: int) -> dict[int, float]:
    """CPU seconds of every process of the Postgres server: the postmaster and its children."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields is not None and (int(entry.name) == postmaster
                                       or int(fields[1]) == postmaster):
                found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return found


@dataclass
class CpuSnapshot:
    """The CPU counters at one moment."""

    wall: float
    workers: dict[int, float]
    api: float
    client: float
    machine: float
    steal: float
    postgres: dict[int, float]
    postmaster_children: float
    ours: dict[int, float]
    counters: dict[str, int]  # our database's commits; the server's WAL syncs and bytes


def postgres_delta(a: CpuSnapshot, b: CpuSnapshot) -> float:
    """The server's CPU between two snapshots, processes that came and went included.

    A child that exited between them is in the postmaster's cutime + cstime with
    its whole life, so what it had used by `a` comes off.
    """
    total = b.postmaster_children - a.postmaster_children
    for pid, cpu in b.postgres.items():
        total += cpu - a.postgres.get(pid, 0.0)
    total -= sum(cpu for pid, cpu in a.postgres.items() if pid not in b.postgres)
    return total


def ours_delta(a: CpuSnapshot, b: CpuSnapshot) -> float:
    """Our database's backends between two snapshots (those alive at the second)."""
    return sum(cpu - a.ours.get(pid, 0.0) for pid, cpu in b.ours.items())


# -- processes --------------------------------------------------------------------------

@dataclass
class Proc:
    """A child process and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]

    def tail(self) -> str:
        """The last lines it wrote."""
        self.log.flush()
        self.log.seek(0)
        return b"\n".join(self.log.read().splitlines()[-15:]).decode(errors="replace")

    def check(self) -> None:
        """Raise if it has exited."""
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")


def _env(url: str) -> dict[str, str]:
    env = {"DATABASE_URL": url, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "LANGGRAPH_STRICT_MSGPACK": os.environ.get("LANGGRAPH_STRICT_MSGPACK", "true")}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


@contextmanager
def processes() -> Iterator[list[Proc]]:
    """Processes started into the list are stopped on the way out: SIGTERM, wait, then SIGKILL."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=10)
            proc.log.close()


def _start(started: list[Proc], name: str, args: list[str], url: str) -> Proc:
    log = tempfile.TemporaryFile(prefix="dfscale-")  # noqa: SIM115 (closed by `processes`)
    try:
        popen = subprocess.Popen([EXE, *args], env=_env(url), stdout=log,
                                 stderr=subprocess.STDOUT)
    except OSError:
        log.close()
        raise
    proc = Proc(name, popen, log)
    started.append(proc)
    return proc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(what: str, ready: Callable[[], bool], procs: list[Proc],
              timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            proc.check()
        with suppress(httpx.HTTPError, psycopg.Error):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


# -- the load ---------------------------------------------------------------------------

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


def _snapshot(conn: psycopg.Connection[Any], postmaster: int, workers: list[Proc],
              api: Proc) -> CpuSnapshot:
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


def _postmaster(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    fields = _stat(int(row[0]))
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
                first = _snapshot(conn, postmaster, workers, api)
            if first is not None and last is None and time.time() - first.wall >= seconds:
                last = _snapshot(conn, postmaster, workers, api)
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


# -- one level, pooled over its rounds ---------------------------------------------------

def _pct(values: list[float], pct: int) -> float:
    return quantiles(values, n=100, method="inclusive")[pct - 1] if len(values) > 1 \
        else values[0]


CPU_PARTS = ("workers", "postgres", "postgres_ours", "api", "client", "machine", "steal")


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


@dataclass
class Service:
    """The API process and what a level needs to reach it."""

    url: str
    procs: list[Proc]
    conn: psycopg.Connection[Any]
    base: str
    token: str
    postmaster: int
    in_flight: int
    concurrency: int
    warmup: float
    seconds: float

    def window(self, level: Level) -> None:
        """Start the level's worker processes, run one window, stop them."""
        number = len(level.rates)  # the level's windows so far: deal ids apart
        with processes() as fleet:
            since = time.time()
            workers = [_start(fleet, f"dealflow worker {n}", [
                "worker", "--concurrency", str(self.concurrency)], self.url)
                for n in range(level.workers)]
            everything = [*self.procs, *workers]

            def registered() -> bool:  # each process: the deals' worker and the posts'
                row = self.conn.execute(
                    "SELECT count(*) FROM procrastinate_workers"
                    " WHERE last_heartbeat >= to_timestamp(%s)", (since,)).fetchone()
                return row is not None and row[0] >= 2 * level.workers

            _wait_for(f"{level.workers} worker processes", registered, everything)
            load = Load(self.base, self.token, f"S{level.workers}r{number}", self.in_flight)
            first, last = drive(self.conn, load, self.procs[0], workers, self.postmaster,
                                level.sampler, self.warmup, self.seconds)

            def finished() -> bool:  # the last jobs record their end after the deal's
                row = self.conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name ="
                    " 'dealflow.drive' AND status = 'doing'").fetchone()
                return row is not None and row[0] == 0

            _wait_for("the last jobs", finished, everything, timeout=60)
            level.add_window(self.conn, load, first, last)


@contextmanager
def service(url: str, in_flight: int, concurrency: int, warmup: float, seconds: float
            ) -> Iterator[Service]:
    """The API on its own (`dealflow serve --workers 0`) on `url`, and an operator token."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with processes() as procs, psycopg.connect(url, autocommit=True) as conn:
        _start(procs, "dealflow serve", ["serve", "--port", str(port), "--workers", "0"], url)
        _wait_for("the API", lambda: httpx.get(base + "/healthz/live", timeout=5)
                  .status_code == 200, procs)
        made = subprocess.run([EXE, "token", "create", "--role", "operator", "--name",
                               "bench", "--json"], env=_env(url), capture_output=True,
                              text=True, timeout=120, check=True)
        yield Service(url, procs, conn, base, json.loads(made.stdout)["token"],
                      _postmaster(conn), in_flight, concurrency, warmup, seconds)


def background(seconds: float = 2.0) -> float:
    """The machine's busy share (of every core) over `seconds`, before the bench starts."""
    before, started = machine_busy(), time.monotonic()
    time.sleep(seconds)
    return (machine_busy() - before) / ((time.monotonic() - started) * NCPU)


def scale_out(levels: tuple[int, ...] = LEVELS, rounds: int = ROUNDS,
              seconds: float = WINDOW_S, warmup: float = WARMUP_S,
              in_flight: int = IN_FLIGHT, concurrency: int = CONCURRENCY) -> dict[str, Any]:
    """Every level in paired rounds on one throwaway database; ratios to 1 process."""
    tallies = [Level(n) for n in levels]
    busy = background()
    with throwaway_database() as url, \
            service(url, in_flight, concurrency, warmup, seconds) as api:
        paired_rounds(rounds, [Side(str(level.workers), partial(api.window, level))
                               for level in tallies])
    results: dict[str, Any] = {
        "cpus": NCPU, "concurrency": concurrency, "in_flight": in_flight, "rounds": rounds,
        "window_s": seconds, "busy_before": busy,
        "levels": {str(level.workers): level.figures() for level in tallies}}
    base = results["levels"].get("1")
    for level in results["levels"].values():
        level["ratio_to_1"] = level["deals_per_s"] / base["deals_per_s"] if base else None
        level["ratio_to_1_rounds"] = spread([
            a / b for a, b in zip(level["rounds_deals_per_s"], base["rounds_deals_per_s"],
                                  strict=True)]) if base else None
    if "2" in results["levels"] and base:
        results["ratio_2_over_1"] = results["levels"]["2"]["ratio_to_1"]
        # the most 2 processes could give: every core busy at their CPU per deal
        results["ceiling_2_over_1"] = (results["levels"]["2"]["cpu_bound_deals_per_s"]
                                       / base["deals_per_s"])
    return results


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
                   f"WAL syncs a deal; {results['cpus']} cores would do "
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


def main() -> int:
    """Measure every level and print the table (and the JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=float, default=WINDOW_S)
    parser.add_argument("--warmup", type=float, default=WARMUP_S)
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    results = scale_out(tuple(int(n) for n in args.levels.split(",")), args.rounds,
                        args.seconds, args.warmup, args.in_flight, args.concurrency)
    print("\n".join(scale_lines(results)))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
