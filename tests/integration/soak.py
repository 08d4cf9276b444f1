"""`make soak`: deals flow for a while under database restarts and worker kills.

The service (`dealflow serve --workers 2` and standalone `dealflow worker`
processes) runs on a Postgres cluster of its own; deals are posted steadily
and signed once they wait for the signature. Meanwhile, at random, the server
is restarted (`-m fast` or `-m immediate`), stopped for a few seconds, or a
worker process is killed (SIGKILL) or stopped (SIGTERM) and replaced. At the
end it waits for every deal to settle and prints what became of them: lost
(not completed) and duplicated (an effect twice, a system record twice, a
forked checkpoint history) counts, worker processes that exited on their own,
and `/healthz` answers of 200 while the database was down. Exit status 1 if
any of those is not zero.

    python -m tests.integration.soak --seconds 600 [--seed 7] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.integration.own_postgres import OwnPostgres, unavailable_reason
from tests.integration.service_faults import HealthProbe, ServiceOnOwnPostgres, tally
from tests.integration.service_procs import log_tail, stop_process, webhook

SETTLE_SECONDS = 240


@dataclass
class Soak:
    """The running service, its deals, and what was done to it."""

    svc: ServiceOnOwnPostgres
    rng: random.Random
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    deals: list[str] = field(default_factory=list)
    signed: set[str] = field(default_factory=set)
    faults: dict[str, int] = field(default_factory=dict)
    exits: list[str] = field(default_factory=list)
    down: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def note(self, fault: str, took: float) -> None:
        """Count a fault and say it."""
        self.faults[fault] = self.faults.get(fault, 0) + 1
        print(f"[{time.strftime('%H:%M:%S')}] {fault} in {took:.1f} s ({len(self.deals)} "
              f"deals posted, {len(self.signed)} signed)", flush=True)


def produce(soak: Soak, every: float) -> None:
    """Post a deal every `every` seconds and sign every deal that waits for it."""
    n = 0
    while not soak.stop.is_set():
        n += 1
        deal_id = f"SOAK-{n}"
        soak.svc.post_deal(deal_id)
        soak.deals.append(deal_id)
        sign_waiting(soak)
        soak.stop.wait(every)


def sign_waiting(soak: Soak) -> None:
    """Deliver the signature webhook of each deal waiting for it (once it is taken)."""
    for deal_id in [d for d in soak.deals if d not in soak.signed]:
        try:
            report = soak.svc.service.status(deal_id)
        except Exception:  # the database may be down; next round
            return
        if report.status != "waiting_signature" or not report.pending:
            continue
        event = {"event_id": f"evt-{deal_id}", "envelope_id": report.pending["envelope_id"],
                 "event": "signature.completed"}
        try:
            if webhook(soak.svc.api, event).status_code in (200, 202):
                soak.signed.add(deal_id)
        except Exception:  # the API may answer 503 or time out; next round
            return


def one_fault(soak: Soak) -> None:
    """Do one fault, picked at random."""
    pg, kind = soak.svc.pg, soak.rng.choice(
        ["restart-fast", "restart-immediate", "outage", "kill-worker", "term-worker"])
    began = time.monotonic()
    if kind.startswith("restart"):
        started = time.monotonic()
        pg.restart(kind.split("-")[1])
        soak.down.append((started, time.monotonic()))
    elif kind == "outage":
        pg.stop(soak.rng.choice(["fast", "immediate"]))
        went = time.monotonic()
        time.sleep(soak.rng.uniform(1, 15))
        soak.down.append((went, time.monotonic()))
        pg.start()
    else:
        victim = soak.rng.choice(soak.workers)
        os.kill(victim.pid, signal.SIGKILL if kind == "kill-worker" else signal.SIGTERM)
        victim.wait(timeout=120)
        if kind == "term-worker" and victim.returncode != 0:
            soak.exits.append(f"SIGTERM gave exit {victim.returncode}")
        soak.workers[soak.workers.index(victim)] = soak.svc.start_worker()
    soak.note(kind, time.monotonic() - began)


def watch_exits(soak: Soak) -> None:
    """Workers that exited on their own are failures: note them, start another."""
    for proc in [soak.svc.serve, *soak.workers]:
        if proc.poll() is not None:
            soak.exits.append(f"pid {proc.pid} exited {proc.returncode}: "
                              f"{log_tail(proc, 300)!r}")
            if proc is soak.svc.serve:
                raise SystemExit(f"dealflow serve exited: {log_tail(proc)}")
            soak.workers[soak.workers.index(proc)] = soak.svc.start_worker()


def settle(soak: Soak) -> None:
    """Sign what still waits, until every deal is completed or SETTLE_SECONDS pass."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        sign_waiting(soak)
        if all(soak.svc.status(d) == "completed" for d in soak.deals):
            return
        time.sleep(1)


def lies(probe: HealthProbe, down: list[tuple[float, float]]) -> int:
    """`/healthz` answers of 200 to requests made and answered while the server was down."""
    return sum(1 for start, end in down for p in probe.within(start, end) if p.status == 200)


def run(seconds: float, seed: int, workers: int, every: float) -> dict[str, Any]:
    """The soak itself; its summary."""
    with OwnPostgres() as pg:
        svc = ServiceOnOwnPostgres(pg, "soak")
        soak = Soak(svc, random.Random(seed), workers=[svc.worker])
        soak.workers += [svc.start_worker() for _ in range(workers - 1)]
        probe = HealthProbe(svc.api.base, every=0.5).start()
        producer = threading.Thread(target=produce, args=(soak, every), daemon=True)
        producer.start()
        try:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(soak.rng.uniform(3, 12))
                watch_exits(soak)
                one_fault(soak)
            soak.stop.set()
            producer.join(timeout=300)
            watch_exits(soak)
            settle(soak)
            outcome = tally(svc.service, dict.fromkeys(soak.deals, "completed"))
        finally:
            probe.stop()
            for proc in soak.workers:
                stop_process(proc)
            svc.close()
    return {**outcome, "lost_count": len(outcome["lost"]),
            "duplicated_count": len(outcome["doubled"]), "faults": soak.faults,
            "worker_exits": soak.exits, "healthz_200_while_down": lies(probe, soak.down),
            "seconds": seconds, "seed": seed}


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print its summary as JSON; 1 if anything was lost or doubled."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--workers", type=int, default=2, help="standalone worker processes")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between deals")
    args = parser.parse_args(argv)
    if (reason := unavailable_reason()) is not None:
        print(f"soak: cannot run: {reason}", file=sys.stderr)
        return 2
    summary = run(args.seconds, args.seed, args.workers, args.every)
    print(json.dumps(summary, indent=1))
    print(f"soak: {summary['deals']} deals, lost {summary['lost_count']}, duplicated "
          f"{summary['duplicated_count']}, worker exits {len(summary['worker_exits'])}, "
          f"/healthz 200 while down {summary['healthz_200_while_down']}")
    bad = (summary["lost_count"] or summary["duplicated_count"] or summary["worker_exits"]
           or summary["healthz_200_while_down"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
