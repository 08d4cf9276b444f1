"""The real `dealflow` executable, one process per command, on one database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env, run_cli
from tests.helpers import GOOD_LEAD, ONE_EACH


def _json(args: list[str], env: dict[str, str], code: int = 0) -> dict[str, Any]:
    done = run_cli([*args, "--json"], env)
    assert done.returncode == code, done.stderr
    data = json.loads(done.stdout)  # exactly one JSON object, nothing else
    assert isinstance(data, dict)
    return data


def _lead_file(tmp_path: Path, **extra: Any) -> str:
    path = tmp_path / f"lead-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps({**GOOD_LEAD, "budget": "100000", **extra}))
    return str(path)


def _counts(env: dict[str, str], deal_id: str) -> dict[str, int]:
    data = _json(["records", deal_id], env)
    return {system: len(data[system]) for system in ONE_EACH}


def test_small_deal_across_processes(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url)
    lead = _lead_file(tmp_path)
    run = _json(["run", "--deal-id", "C-1", "--client", "Acme", "--value", "12000",
                 "--lead", lead], env)
    assert run["status"] == "waiting_signature"
    assert {"thread_id", "deal_id", "status", "completed_steps", "pending", "context",
            "usage"} <= set(run)
    again = _json(["run", "--deal-id", "C-1", "--client", "Acme", "--value", "12000",
                   "--lead", lead], env)
    assert again["thread_id"] == run["thread_id"]
    done = _json(["event", run["thread_id"], "signature.completed"], env)
    assert done["status"] == "completed"
    assert _json(["status", run["thread_id"]], env)["status"] == "completed"
    assert _counts(env, "C-1") == ONE_EACH
    threads = _json(["threads", "--status", "completed"], env)["threads"]
    assert [t["deal_id"] for t in threads] == ["C-1"]
    history = _json(["history", run["thread_id"]], env)["history"]
    assert history[-1]["status"] == "completed" and history[0]["source"] == "input"


def test_human_output_shows_progress_and_next_command(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url)
    done = run_cli(["run", "--deal-id", "C-2", "--client", "Globex", "--value", "60000",
                    "--lead", _lead_file(tmp_path)], env)
    assert done.returncode == 0, done.stderr
    assert "✓ lead agent" in done.stdout
    assert "status waiting_review" in done.stdout
    assert "dealflow resume C-2 --decision approve" in done.stdout
    approved = run_cli(["resume", "C-2", "--decision", "approve", "--comment", "ok"], env)
    assert approved.returncode == 0, approved.stderr
    assert "✓ project agent" in approved.stdout and "status waiting_signature" in approved.stdout


def test_outage_then_retry_in_later_processes(database_url: str, tmp_path: Path) -> None:
    lead = _lead_file(tmp_path)
    down = cli_env(database_url, DEALFLOW_SANDBOX_OUTAGE="esign:3")
    run = _json(["run", "--deal-id", "C-3", "--client", "Initech", "--value", "9000",
                 "--lead", lead], down)
    assert run["status"] == "waiting_review"
    assert run["context"]["failures"][0]["system"] == "esign"
    env = cli_env(database_url)
    assert _json(["resume", "C-3", "--decision", "retry"], env)["status"] == "waiting_signature"
    assert _json(["event", "C-3", "signature.completed"], env)["status"] == "completed"
    assert _counts(env, "C-3") == ONE_EACH


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--value", "-5"], "value"),
        (["--value", "1e12"], "value"),
        (["--value", "12.345"], "value"),
        (["--value", "lots"], "value"),
        (["--currency", "XXX"], "currency"),
        (["--client", ""], "client"),
        (["--client", "x" * 201], "client"),
        (["--deal-id", "bad id; DROP TABLE"], "deal_id"),
        (["--deal-type", "barter"], "deal_type"),
    ],
)
def test_bad_deal_input_names_the_field_and_writes_nothing(
    database_url: str, flags: list[str], field: str
) -> None:
    env = cli_env(database_url)
    args = {"--deal-id": "C-BAD", "--client": "Acme", "--value": "100"}
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        args[flag] = value
    done = run_cli(["run", *[x for kv in args.items() for x in kv]], env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert field in done.stderr
    assert _json(["threads"], env)["threads"] == []


def test_bad_lead_file(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    base = ["run", "--deal-id", "C-L", "--client", "Acme", "--value", "100"]
    for lead, message in ((str(broken), "not valid JSON"),
                          (str(tmp_path / "missing.json"), "cannot read"),
                          (_lead_file(tmp_path, engagement=101), "lead.engagement"),
                          (_lead_file(tmp_path, contact_email="nope"), "lead.contact_email"),
                          (_lead_file(tmp_path, shoe_size=44), "lead.shoe_size")):
        done = run_cli([*base, "--lead", lead], env)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert _json(["threads"], env)["threads"] == []


def test_errors_are_one_line_with_distinct_exit_codes(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url)
    _json(["run", "--deal-id", "C-E", "--client", "Big", "--value", "70000",
           "--lead", _lead_file(tmp_path)], env)
    cases = [
        (["status", "nope"], 3, "no deal or thread 'nope'"),
        (["event", "C-E", "signature.completed"], 4, "not waiting for a signature event"),
        (["resume", "C-E", "--decision", "retry"], 2, "does not fit the pending approval"),
        (["resume", "C-E", "--decision", "perhaps"], 2, "invalid choice"),
        (["status", "C-E", "--bogus"], 2, "unrecognized arguments"),
        (["threads", "--status", "lost"], 2, "invalid choice"),
    ]
    for args, code, message in cases:
        done = run_cli(args, env)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert _json(["status", "C-E"], env)["status"] == "waiting_review"


def test_unreachable_database_is_a_clear_error() -> None:
    env = cli_env("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    done = run_cli(["threads"], env, cold=True)  # the installed console script itself
    assert done.returncode == 5
    assert "cannot connect to Postgres" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_demo_on_embedded_postgres_twice(tmp_path: Path) -> None:
    # `make demo` runs the console script: so does this test, cold; the per-user data folder
    # ($XDG_DATA_HOME/dealflow) is the test's own
    env = cli_env(None, XDG_DATA_HOME=str(tmp_path))
    first = run_cli(["demo"], env, cwd=tmp_path, timeout=300, cold=True)
    assert first.returncode == 0, first.stderr
    assert "✗ contract agent  send_for_signature" in first.stdout
    assert "retry by demo reviewer" in first.stdout
    assert (tmp_path / "dealflow" / "pgdata").is_dir()
    second = run_cli(["demo", "--json"], env, cwd=tmp_path, timeout=300, cold=True)
    assert second.returncode == 0, second.stderr
    data = json.loads(second.stdout)
    assert [d["status"] for d in data["deals"]] == ["completed", "waiting_review", "completed"]
    threads = run_cli(["threads", "--json"], env, cwd=tmp_path)
    assert len(json.loads(threads.stdout)["threads"]) == 6  # both demo runs survived
