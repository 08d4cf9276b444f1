"""Commands forked warm are processes of their own: their environment, directory and status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.integration.warm_cli import WarmProcess, run_warm


def test_a_warm_command_sees_only_its_own_environment(database_url: str) -> None:
    listed = run_warm(["threads", "--json"], cli_env(database_url))
    assert listed.returncode == 0, listed.stderr
    assert "threads" in json.loads(listed.stdout)
    unreachable = run_warm(["threads"], cli_env("postgresql://nobody@127.0.0.1:1/none"
                                                "?connect_timeout=2"))
    assert unreachable.returncode == 5
    assert "cannot connect to Postgres" in unreachable.stderr


def test_a_warm_command_runs_in_its_directory_and_can_be_killed(database_url: str,
                                                                tmp_path: Path) -> None:
    lead = tmp_path / "lead.json"
    lead.write_text('{"company_size": 300, "industry": "software", "engagement": 80}')
    done = run_warm(["run", "--deal-id", "WARM-1", "--client", "Warm Co", "--value", "9000",
                     "--lead", "lead.json", "--json"], cli_env(database_url), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deal_id"] == "WARM-1"
    slow = WarmProcess(["run", "--deal-id", "WARM-2", "--client", "Warm Co", "--value", "9000"],
                       cli_env(database_url, DEALFLOW_SANDBOX_LATENCY_MS="5000"))
    slow.kill()
    assert slow.wait(timeout=60) == -9


@pytest.mark.parametrize("args", [["--help"], ["no-such-command"]])
def test_a_warm_command_exits_with_the_clis_own_status(args: list[str]) -> None:
    done = run_warm(args, cli_env(None))
    assert done.returncode == (0 if args == ["--help"] else 2)
    assert ("usage: dealflow" in done.stdout) if args == ["--help"] else (
        "dealflow: error:" in done.stderr)
