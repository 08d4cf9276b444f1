"""The service under load, beside library mode on the same database server.

    python -m bench.service [--deals 20] [--clients 50]

Prints, for `dealflow serve` with 1 and 2 in-process workers: deals/s and
p50/p95 seconds from `POST /v1/deals` to `waiting_signature`; the API's p95 for
`GET /v1/deals/{id}` under `--clients` concurrent clients (a bounded load on
loopback); and library mode (`DealService.start` in this process) as the
reference, each as a ratio to it.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import quantiles

import httpx

from bench.common import throwaway_database
from dealflow.api import DealService
from dealflow.service.auth import create_token
from state.config import Settings
from state.models import DealInput

EXE = str(Path(sys.executable).parent / "dealflow")


def _deal(prefix: str, n: int) -> dict[str, str]:
    return {"deal_id": f"{prefix}-{n}", "client": "Bench Co", "value": "9000"}


def _p(values: list[float], pct: int) -> float:
    return quantiles(values, n=100)[pct - 1] if len(values) > 1 else values[0]


def library(url: str, deals: int) -> tuple[float, list[float]]:
    """Deals/s and latencies of `DealService.start` in this process."""
    with DealService(Settings(database_url=url)) as service:
        latencies = []
        started = time.perf_counter()
        for n in range(deals):
            t0 = time.perf_counter()
            service.start(DealInput.model_validate(_deal("LIB", n)))
            latencies.append(time.perf_counter() - t0)
        return deals / (time.perf_counter() - started), latencies


def service_run(url: str, workers: int, deals: int, clients: int
                ) -> tuple[float, list[float], float]:
    """Deals/s, POST→waiting_signature latencies, and the API's p95 under load."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([EXE, "serve", "--port", str(port), "--workers", str(workers)],
                            env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base)
        with DealService(Settings(database_url=url)) as service:
            token = create_token(service.pool, f"bench-{workers}-{time.time_ns()}", "operator")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            prefix = f"W{workers}"
            posted = {}
            started = time.perf_counter()
            for n in range(deals):
                http.post("/v1/deals", json=_deal(prefix, n)).raise_for_status()
                posted[f"{prefix}-{n}"] = time.perf_counter()
            done: dict[str, float] = {}
            while len(done) < deals:
                for deal_id in set(posted) - set(done):
                    if http.get(f"/v1/deals/{deal_id}").json()["status"] == "waiting_signature":
                        done[deal_id] = time.perf_counter()
                time.sleep(0.05)
            rate = deals / (max(done.values()) - started)
            latencies = [done[d] - posted[d] for d in posted]
        api_p95 = _api_p95(base, headers, f"{prefix}-0", clients)
        return rate, latencies, api_p95
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the API never answered")


def _api_p95(base: str, headers: dict[str, str], deal_id: str, clients: int) -> float:
    def one(_: int) -> list[float]:
        times = []
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            for _ in range(10):
                t0 = time.perf_counter()
                http.get(f"/v1/deals/{deal_id}").raise_for_status()
                times.append(time.perf_counter() - t0)
        return times

    with ThreadPoolExecutor(clients) as pool:
        samples = [t for batch in pool.map(one, range(clients)) for t in batch]
    return _p(samples, 95)


def main() -> int:
    """Run library mode, then the service with 1 and 2 workers; print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    with throwaway_database() as url:
        lib_rate, lib_lat = library(url, args.deals)
        print(f"library mode: {lib_rate:.2f} deals/s, p50 {_p(lib_lat, 50):.2f}s, "
              f"p95 {_p(lib_lat, 95):.2f}s per deal to waiting_signature")
        for workers in (1, 2):
            rate, lat, api = service_run(url, workers, args.deals, args.clients)
            print(f"service, {workers} worker(s): {rate:.2f} deals/s "
                  f"({rate / lib_rate:.2f}x library), POST→waiting_signature "
                  f"p50 {_p(lat, 50):.2f}s p95 {_p(lat, 95):.2f}s "
                  f"({_p(lat, 95) / _p(lib_lat, 95):.1f}x library p95); "
                  f"GET p95 under {args.clients} clients {api * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
