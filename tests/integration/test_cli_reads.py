"""`dealflow threads` and `status` on a database: what they import, the database they name.

`status` prints the report a thread's last run recorded while nothing wrote to the
thread since (`dealflow.recorded_status`), and asks the graph otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys

from dealflow.api import DealService
from state.config import Settings
from state.database import redact_url
from state.registry import DealRegistry
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.unit.test_cli_imports import LAZY


def test_threads_reads_the_registry_without_the_graph(database_url: str) -> None:
    probe = ("import sys\nfrom dealflow.cli import main\n"
             "code = main(['threads', '--json'])\n"
             "print(sorted(m for m in ('langgraph', 'graph', 'dealflow.api')\n"
             "             if m in sys.modules))\n"
             "sys.exit(code)")
    fresh = subprocess.run([sys.executable, "-c", probe], env=cli_env(database_url),
                           capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    listed, imported = fresh.stdout.splitlines()
    assert json.loads(listed) == {"threads": [], "next_cursor": None}
    assert imported == "[]"


def test_status_and_records_import_no_llm_agents_or_service_stack(database_url: str) -> None:
    env = cli_env(database_url)
    started = run_cli(["run", "--deal-id", "IM-1", "--client", "Lean Co", "--value", "900",
                       "--json"], env)
    assert started.returncode == 0, started.stderr
    for command in ("status", "records"):
        probe = ("import sys\nfrom dealflow.cli import main\n"
                 f"code = main([{command!r}, 'IM-1', '--json'])\n"
                 f"print(sorted(m for m in {LAZY!r} if m in sys.modules))\n"
                 "sys.exit(code)")
        fresh = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                               text=True, timeout=120)
        assert fresh.returncode == 0, fresh.stderr
        shown, imported = fresh.stdout.splitlines()
        assert json.loads(shown)["deal_id"] == "IM-1"
        assert imported == "[]", command


def test_status_names_its_database(database_url: str) -> None:
    env = cli_env(database_url)
    started = run_cli(["run", "--deal-id", "DB-1", "--client", "Where Co", "--value", "900",
                       "--json"], env)
    assert started.returncode == 0, started.stderr
    shown = run_cli(["status", "DB-1", "--json"], env)
    assert "database" not in json.loads(shown.stdout)  # the view the HTTP API serves too
    text = run_cli(["status", "DB-1"], env).stdout
    assert text.splitlines()[-1] == f"database: {redact_url(database_url)}"


def _read_probe(env: dict[str, str], ref: str, *flags: str, command: str = "status"
               ) -> tuple[str, bool]:
    """`dealflow <command> ref` in a fresh process: its output, and whether LangGraph loaded."""
    probe = ("import sys\nfrom dealflow.cli import main\n"
             f"code = main([{command!r}, {ref!r}, *{list(flags)!r}])\n"
             "print('langgraph' in sys.modules)\nsys.exit(code)")
    fresh = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    *shown, imported = fresh.stdout.splitlines()
    return "\n".join(shown), imported == "True"


def test_status_prints_the_recorded_report_as_the_graph_would(
        service: DealService, settings: Settings, database_url: str) -> None:
    env = cli_env(database_url)
    signing = service.start(make_deal("RS-SIGN"))
    reviewing = service.start(make_deal("RS-REVIEW", "120000.00"))
    with DealService(settings.model_copy(update={"sandbox_outage": {"esign": 3}})) as down:
        failing = down.start(make_deal("RS-FAIL"))
    done = service.start(make_deal("RS-DONE"))
    done = service.event(done.thread_id, "signature.completed")
    assert [r.status for r in (signing, reviewing, failing, done)] == [
        "waiting_signature", "waiting_review", "waiting_review", "completed"]
    recorded = {}
    for deal in ("RS-SIGN", "RS-REVIEW", "RS-FAIL", "RS-DONE"):
        for command, flags in (("status", ()), ("status", ("--json",)), ("records", ())):
            recorded[deal, command, flags] = _read_probe(env, deal, *flags, command=command)
            assert recorded[deal, command, flags][1] is False, deal  # read without the graph
    with service.pool.connection() as conn:
        assert conn.execute("DELETE FROM dealflow_deal_reports").rowcount == 4
    for (deal, command, flags), (shown, _) in recorded.items():
        asked, imported = _read_probe(env, deal, *flags, command=command)
        assert imported is True  # nothing recorded: the graph answered
        assert shown == asked, (deal, command)
    assert "deadline signature.remind at" in recorded["RS-SIGN", "status", ()][0]
    assert "dealflow resume RS-FAIL --decision retry" in recorded["RS-FAIL", "status", ()][0]
    assert "envelope" in recorded["RS-DONE", "records", ()][0].lower()


def test_a_write_to_the_thread_after_its_report_makes_status_ask_the_graph(
        service: DealService, database_url: str) -> None:
    env = cli_env(database_url)
    waiting = service.start(make_deal("RS-EDIT"))
    registry = DealRegistry(service.pool)
    assert registry.recorded_report("RS-EDIT") is not None
    snapshot = service.snapshot(waiting.thread_id)
    service.graph.checkpointer.put_writes(snapshot.config, [("notes", "a late write")], "t-1")
    service.snapshot(waiting.thread_id)  # a read of the thread sends the writes held till then
    assert registry.recorded_report("RS-EDIT") is None  # a pending write changed the stamp
    service.graph.update_state(snapshot.config, {"deal": make_deal("RS-EDIT", "777.00")})
    shown, imported = _read_probe(env, "RS-EDIT", "--json")
    assert imported is True and json.loads(shown)["context"]["deal"]["value"] == "777.00"
    assert registry.recorded_report(waiting.thread_id) is None
    assert service.status("RS-EDIT").status == "running"  # edited at its wait: to continue
    service.recover()  # a run records the report of where it stopped
    assert registry.recorded_report(waiting.thread_id) is not None
    shown, imported = _read_probe(env, "RS-EDIT", "--json")
    assert imported is False and json.loads(shown)["context"]["deal"]["value"] == "777.00"
