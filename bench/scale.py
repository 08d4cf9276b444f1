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

The modules: `bench.scale_cpu` (CPU from /proc), `bench.scale_procs` (the child
processes), `bench.scale_load` (the closed loop and its sampler) and
`bench.scale_report` (a level's figures and the table).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import psycopg

from bench.common import throwaway_database
from bench.paired import Side, paired_rounds, spread
from bench.scale_cpu import NCPU, machine_busy
from bench.scale_load import Load, drive, postmaster_of
from bench.scale_procs import EXE, Proc, child_env, free_port, processes, start, wait_for
from bench.scale_report import Level, scale_lines

LEVELS = (1, 2, 4)
CONCURRENCY = 2  # job slots per worker process
IN_FLIGHT = 24  # deals between POST and waiting_signature: 3 x the 8 slots of 4 processes
ROUNDS = 3
WARMUP_S = 3.0
WINDOW_S = 5.0  # per level and round: 15 s a level in all
__all__ = ["scale_lines", "scale_out"]


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
            workers = [start(fleet, f"dealflow worker {n}", [
                "worker", "--concurrency", str(self.concurrency)], self.url)
                for n in range(level.workers)]
            everything = [*self.procs, *workers]

            def registered() -> bool:  # each process: the deals' worker and the posts'
                row = self.conn.execute(
                    "SELECT count(*) FROM procrastinate_workers"
                    " WHERE last_heartbeat >= to_timestamp(%s)", (since,)).fetchone()
                return row is not None and row[0] >= 2 * level.workers

            wait_for(f"{level.workers} worker processes", registered, everything)
            load = Load(self.base, self.token, f"S{level.workers}r{number}", self.in_flight)
            first, last = drive(self.conn, load, self.procs[0], workers, self.postmaster,
                                level.sampler, self.warmup, self.seconds)

            def finished() -> bool:  # the last jobs record their end after the deal's
                row = self.conn.execute(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name ="
                    " 'dealflow.drive' AND status = 'doing'").fetchone()
                return row is not None and row[0] == 0

            wait_for("the last jobs", finished, everything, timeout=60)
            level.add_window(self.conn, load, first, last)


@contextmanager
def service(url: str, in_flight: int, concurrency: int, warmup: float, seconds: float
            ) -> Iterator[Service]:
    """The API on its own (`dealflow serve --workers 0`) on `url`, and an operator token."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with processes() as procs, psycopg.connect(url, autocommit=True) as conn:
        start(procs, "dealflow serve", ["serve", "--port", str(port), "--workers", "0"], url)
        wait_for("the API", lambda: httpx.get(base + "/healthz/live", timeout=5)
                 .status_code == 200, procs)
        made = subprocess.run([EXE, "token", "create", "--role", "operator", "--name",
                               "bench", "--json"], env=child_env(url), capture_output=True,
                              text=True, timeout=120, check=True)
        yield Service(url, procs, conn, base, json.loads(made.stdout)["token"],
                      postmaster_of(conn), in_flight, concurrency, warmup, seconds)


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
