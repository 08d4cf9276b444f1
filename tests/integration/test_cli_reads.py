"""`dealflow threads` and `status` on a database: what they import, and the database they name."""

from __future__ import annotations

import json
import subprocess
import sys

from state.database import redact_url
from tests.conftest import cli_env, run_cli
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
