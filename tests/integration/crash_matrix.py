"""The crash matrix: SIGKILL `dealflow` at every kill point of every step, recover, count.

For each step with an external effect and each kill point (before the effect,
after it but before its receipt, after the receipt but before the checkpoint,
after the checkpoint), a `dealflow` process is killed with SIGKILL; the deal is
then continued by `dealflow recover` or by the same command again, and run to
completion. A connector that is not idempotent counts the real calls: each
effect must have been performed exactly once, and no deal may be lost. Then the
same with kills at random times during runs slowed by sandbox latency.

Each command is a process of its own. By default it is forked from a parent that
has imported the CLI once (`tests.integration.warm_cli`), which saves the
seconds of imports each new process would spend; `--cold` starts the installed
console script every time instead.

Run it: `make crash-matrix` (or `python -m tests.integration.crash_matrix [--cold]`).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from graph.workflow import DEFAULT_WORKFLOW, Workflow
from state.crash import PHASES
from state.database import open_pool
from tests.conftest import cli_env, dealflow_executable, run_cli
from tests.integration.counting import call_counts
from tests.integration.warm_cli import WarmProcess

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = tuple(spec.system or "" for spec in DEFAULT_WORKFLOW.effect_steps)


def kill_points(workflow: Workflow) -> list[tuple[str, str]]:
    """Every (step, phase) to kill at: each phase of each step that acts on a system."""
    return [(spec.name, phase) for spec in workflow.effect_steps for phase in PHASES]


def after_a_wait(workflow: Workflow, step: str) -> bool:
    """Whether `step` runs only after an event (so it is reached by `dealflow event`)."""
    names = [spec.name for spec in workflow.steps]
    if step not in names:  # a kill point of the run itself (`run:input_held`)
        return False
    return any(spec.kind == "event" for spec in workflow.steps[:names.index(step)])
LEAD = json.dumps({"company_size": 300, "industry": "software", "engagement": 80,
                   "budget": "100000"})


@dataclass
class CaseResult:
    """One kill and its recovery."""

    name: str
    killed: bool
    status: str
    calls: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Effects performed more than once."""
        return sum(max(0, n - 1) for n in self.calls.values())

    @property
    def lost(self) -> bool:
        """The deal did not end completed with every effect performed."""
        return self.status != "completed" or any(self.calls.get(s, 0) != 1 for s in SYSTEMS)


def _env(url: str, **extra: str) -> dict[str, str]:
    return cli_env(url, PYTHONPATH=str(ROOT),
                   DEALFLOW_SYSTEMS="tests.integration.counting:counting_systems", **extra)


class Running(Protocol):
    """A started command: `subprocess.Popen` or `WarmProcess`."""

    def kill(self) -> None:
        """SIGKILL the process."""

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status (-9 after SIGKILL)."""
        ...


@dataclass(frozen=True)
class Launcher:
    """How each `dealflow` command starts: forked warm (the default) or the console script cold."""

    cold: bool = False

    def start(self, args: list[str], env: dict[str, str]) -> Running:
        """Start `dealflow *args` with its output discarded."""
        if self.cold:
            return subprocess.Popen([dealflow_executable(), *args], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return WarmProcess(args, env, capture=False)

    def run(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """Run `dealflow *args --json` to its end; its exit status and output."""
        return run_cli([*args, "--json"], env, cold=self.cold)


WARM = Launcher()


def _status(url: str, deal_id: str, launch: Launcher) -> str:
    done = launch.run(["status", deal_id], _env(url))
    return str(json.loads(done.stdout)["status"]) if done.returncode == 0 else "missing"


def _finish(url: str, deal_id: str, launch: Launcher) -> str:
    if _status(url, deal_id, launch) == "waiting_signature":
        launch.run(["event", deal_id, "signature.completed"], _env(url))
    return _status(url, deal_id, launch)


def _calls(url: str, deal_id: str) -> dict[str, int]:
    pool = open_pool(url)
    try:
        return call_counts(pool, deal_id)
    finally:
        pool.close()


def run_case(url: str, lead_file: str, step: str, phase: str, index: int,
             launch: Launcher = WARM) -> CaseResult:
    """Kill at `step:phase`, recover (alternating recover / the same command), finish."""
    deal_id = f"CM-{index:02d}-{step}-{phase}"
    run = ["run", "--deal-id", deal_id, "--client", "Crash Co", "--value", "9000",
           "--lead", lead_file]
    crash = _env(url, DEALFLOW_CRASH_AT=f"{step}:{phase}")
    if after_a_wait(DEFAULT_WORKFLOW, step):
        launch.run(run, _env(url))
        command = ["event", deal_id, "signature.completed"]
    else:
        command = run
    killed = launch.run(command, crash).returncode == -9
    how = "recover" if index % 2 == 0 or command[0] == "event" else "same command"
    again = launch.run(["recover"] if how == "recover" else command, _env(url))
    notes = [f"{how} exit {again.returncode}"]
    status = _finish(url, deal_id, launch)
    return CaseResult(f"{step}:{phase}", killed, status, _calls(url, deal_id), notes)


def run_random_case(url: str, lead_file: str, index: int, rng: random.Random,
                    launch: Launcher = WARM, startup: float = 0.0) -> CaseResult:
    """Kill a run slowed by sandbox latency at a random moment, then recover and finish.

    A warm run reaches the signature wait in about 0.35 s with 60 ms per system
    call, so the kills fall across it; `startup` (a cold process's imports) is added.
    """
    deal_id = f"CR-{index:02d}"
    run = ["run", "--deal-id", deal_id, "--client", "Random Co", "--value", "9000",
           "--lead", lead_file]
    delay = startup + rng.uniform(0.02, 0.3)
    proc = launch.start([*run, "--json"], _env(url, DEALFLOW_SANDBOX_LATENCY_MS="60"))
    time.sleep(delay)
    proc.kill()
    killed = proc.wait() == -9
    launch.run(["recover"], _env(url))
    if _status(url, deal_id, launch) == "missing":  # killed before the deal was registered
        launch.run(run, _env(url))
    status = _finish(url, deal_id, launch)
    return CaseResult(f"random kill at {delay:.2f}s", killed, status, _calls(url, deal_id))


def run_matrix(url: str, workdir: Path, random_cases: int = 6, seed: int = 7,
               launch: Launcher = WARM) -> list[CaseResult]:
    """Every step x kill point, then `random_cases` random kills."""
    lead_file = workdir / "lead.json"
    lead_file.write_text(LEAD)
    results = [run_case(url, str(lead_file), step, phase, index, launch)
               for index, (step, phase) in enumerate(kill_points(DEFAULT_WORKFLOW))]
    rng = random.Random(seed)
    started = time.monotonic()
    launch.run(["--help"], {})
    startup = time.monotonic() - started if launch.cold else 0.0
    for n in range(random_cases):
        results.append(run_random_case(url, str(lead_file), n, rng, launch, startup))
    return results


def summary(results: list[CaseResult]) -> str:
    """The figures: kill points tried, processes killed, duplicates, deals lost."""
    lines = [f"{'case':<38} {'killed':<7} {'status':<18} calls (crm/pm/contracts/esign/billing)"]
    for r in results:
        calls = "/".join(str(r.calls.get(s, 0)) for s in SYSTEMS)
        lines.append(f"{r.name:<38} {'yes' if r.killed else 'no':<7} {r.status:<18} {calls}")
    lines.append(
        f"kill points tried: {len(results)}, processes killed: {sum(r.killed for r in results)}, "
        f"duplicate effects: {sum(r.duplicates for r in results)}, "
        f"deals lost: {sum(r.lost for r in results)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the matrix on a fresh database of TEST_DATABASE_URL (or the embedded server)."""
    import tempfile

    from bench.common import throwaway_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true",
                        help="start the installed console script for every command "
                             "(slower: each process imports LangGraph anew)")
    parser.add_argument("--random", type=int, default=6, metavar="N",
                        help="random kills after the scheduled ones (default 6)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with throwaway_database() as url:
        results = run_matrix(url, Path(tempfile.mkdtemp(prefix="dfcrash-", dir="/tmp")),
                             random_cases=args.random, launch=Launcher(cold=args.cold))
    print(summary(results))
    print(f"took {time.monotonic() - started:.0f}s")
    bad = sum(r.duplicates for r in results) + sum(r.lost for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
