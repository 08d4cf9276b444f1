"""The bounded load run: 8 processes x 50 deals on loopback, every deal checked.

Each worker process runs its deals start to finish through `DealService`; the
parent then checks every deal ended `completed` with exactly one record per
system of record, and that no worker saw an error (pool exhaustion included).
Run by `make bench`; `python -m bench.load [PROCESSES] [DEALS]`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from bench.common import throwaway_database
from dealflow.api import DealService
from state.config import Settings

WORKER = """
import json, sys, uuid
from dealflow.api import DealService
from state.config import Settings
from state.models import DealInput
url, worker, deals = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors, done = [], []
with DealService(Settings(database_url=url)) as service:
    for n in range(deals):
        deal = DealInput.model_validate({"deal_id": f"L{worker}-{n}", "client": "Load Co",
            "value": "9000", "lead": {"company_size": 300, "budget": "20000"}})
        try:
            report = service.start(deal)
            report = service.event(report.thread_id, "signature.completed")
            done.append(report.status)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"statuses": done, "errors": errors}))
"""


def run_load(url: str, processes: int = 8, deals: int = 50) -> dict[str, Any]:
    """Run the workers, then check every deal; return the figures."""
    started = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(w), str(deals)],
                                stdout=subprocess.PIPE, text=True) for w in range(processes)]
    outputs = [json.loads(w.communicate(timeout=900)[0]) for w in workers]
    wall = time.perf_counter() - started
    statuses = Counter(s for out in outputs for s in out["statuses"])
    errors = [e for out in outputs for e in out["errors"]]
    wrong_records = 0
    with DealService(Settings(database_url=url)) as service:
        for w in range(processes):
            for n in range(deals):
                records = service.records(f"L{w}-{n}")
                wrong_records += any(len(rows) != 1 for rows in records.values())
    return {"deals": processes * deals, "wall_s": wall, "deals_per_s": processes * deals / wall,
            "statuses": dict(statuses), "errors": errors, "deals_with_wrong_records":
            wrong_records}


def main() -> int:
    """Print the figures; exit non-zero if any deal went wrong."""
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    deals = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with throwaway_database() as url:
        result = run_load(url, processes, deals)
    print(f"load: {result['deals']} deals in {result['wall_s']:.1f}s "
          f"({result['deals_per_s']:.1f} deals/s) over {processes} processes; statuses "
          f"{result['statuses']}; errors {len(result['errors'])}; deals with a record count "
          f"other than 1: {result['deals_with_wrong_records']}")
    for error in result["errors"][:5]:
        print("  error:", error)
    ok = not result["errors"] and not result["deals_with_wrong_records"] and \
        result["statuses"] == {"completed": result["deals"]}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
