"""The defects found under faults and hostile input, each as a user would meet it.

Every error is one line on stderr with the right exit code and a true next step;
nothing raw reaches the terminal.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from dealflow.api import DealService
from dealflow.cli import _after_outage
from dealflow.cli_parser import build_parser
from dealflow.errors import NotWaiting
from state.audit import Origin
from tests.conftest import cli_env, dealflow_executable, run_cli
from tests.helpers import make_deal


def _one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def empty_database(pg_admin_url: str) -> Iterator[str]:
    """A database with nothing in it: no checkpoint tables, no migrations."""
    name = f"dfempty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(pg_admin_url, dbname=name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_concurrent_first_starts_on_an_empty_database_do_not_race(empty_database: str) -> None:
    procs = [subprocess.Popen([dealflow_executable(), "threads", "--json"],
                              env=cli_env(empty_database), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 8, [err for _, _, err in results]
    assert all(json.loads(out) == {"threads": [], "next_cursor": None}
               for _, out, _ in results)


def test_the_same_amount_written_differently_is_the_same_terms(database_url: str) -> None:
    env = cli_env(database_url)
    base = ["run", "--deal-id", "AMT-1", "--client", "Acme", "--json", "--value"]
    assert run_cli([*base, "12"], env).returncode == 0
    again = run_cli([*base, "12.00"], env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["context"]["deal"]["value"] == "12.00"
    science = run_cli(["run", "--deal-id", "AMT-2", "--client", "Acme", "--value", "12e2",
                       "--json"], env)
    assert json.loads(science.stdout)["context"]["deal"]["value"] == "1200.00"
    listed = json.loads(run_cli(["threads", "--json"], env).stdout)["threads"]
    assert {t["deal_id"]: t["value"] for t in listed} == {"AMT-1": "12.00", "AMT-2": "1200.00"}


def test_lead_files_are_bounded_in_size_and_depth(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url)
    run = ["run", "--deal-id", "LEAD-1", "--client", "Acme", "--value", "10", "--lead"]
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 30000)
    _one_line_error(run_cli([*run, str(deep)], env), 2, "nested deeper than")
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"notes": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {
        "h": 1}}}}}}}}}))
    _one_line_error(run_cli([*run, str(nested)], env), 2, "nested deeper than 8 levels")
    _one_line_error(run_cli([*run, "/dev/urandom"], env), 2, "larger than 64 KiB")
    assert run_cli(["threads", "--json"], env).stdout.count("LEAD-1") == 0


@pytest.mark.parametrize("since", ["99999999999d", "999999999d"])
def test_stats_refuses_a_window_longer_than_a_century(database_url: str, since: str) -> None:
    _one_line_error(run_cli(["stats", "--since", since], cli_env(database_url)), 2,
                    "--since: duration must be at most 36500d")


def test_an_unreachable_database_says_what_to_do(tmp_path: Path) -> None:
    done = run_cli(["threads"], cli_env("postgresql://postgres@127.0.0.1:1/none"))
    _one_line_error(done, 5, "cannot connect", "pg_isready", "run the same command again")


def test_control_characters_are_refused_and_never_printed_raw(service: DealService,
                                                              database_url: str) -> None:
    env = cli_env(database_url)
    service.start(make_deal("ESC-1", "60000.00"))
    hostile = "\x1b]0;owned\x07\x1b[2J"
    done = run_cli(["resume", "ESC-1", "--decision", "approve", "--comment", hostile],
                   env)
    _one_line_error(done, 2, "control characters")
    _one_line_error(run_cli(["run", "--deal-id", "NL-1", "--client", "Evil\nCorp",
                             "--value", "10"], env), 2, "one line")
    # an entry written before the check (or by another tool) is shown escaped
    service.data.audit.append(Origin(deal_id="ESC-1", agent="mcp"), "note", reason=hostile)
    shown = run_cli(["audit", "ESC-1"], env)
    assert shown.returncode == 0 and "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "\\x1b]0;owned\\x07" in shown.stdout


def test_threads_are_paginated_and_a_cut_list_says_so(service: DealService,
                                                     database_url: str) -> None:
    env = cli_env(database_url)
    for n in range(3):
        service.registry.claim(make_deal(f"PG-{n}"), f"deal-PG-{n}")
    first = json.loads(run_cli(["threads", "--limit", "2", "--json"], env).stdout)
    assert len(first["threads"]) == 2 and first["next_cursor"]
    rest = json.loads(run_cli(["threads", "--limit", "2", "--cursor", first["next_cursor"],
                               "--json"], env).stdout)
    assert len(rest["threads"]) == 1 and rest["next_cursor"] is None
    seen = {t["deal_id"] for t in first["threads"] + rest["threads"]}
    assert seen == {"PG-0", "PG-1", "PG-2"}
    text = run_cli(["threads", "--limit", "2"], env).stdout
    assert "more threads (this page shows 2): dealflow threads --cursor " in text
    _one_line_error(run_cli(["threads", "--cursor", "garbage"], env), 2, "--cursor")
    _one_line_error(run_cli(["threads", "--limit", "0"], env), 2, "between 1 and 1000")
    assert [r.deal_id for r in service.registry.list(page_size=1)] == \
        [t["deal_id"] for t in first["threads"] + rest["threads"]]


def test_a_repeated_signature_event_is_an_idempotent_success(service: DealService,
                                                              database_url: str) -> None:
    env = cli_env(database_url)
    service.start(make_deal("DUP-1"))
    assert run_cli(["event", "DUP-1", "signature.completed"], env).returncode == 0
    again = run_cli(["event", "DUP-1", "signature.completed", "--json"], env)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["status"] == "completed"
    assert report["note"] == "signature.completed was already delivered; the thread is completed"
    other = run_cli(["event", "DUP-1", "signature.declined"], env)
    _one_line_error(other, 4, "the signature wait already ended with signature.completed at",
                    "the thread is completed")


def test_a_thread_whose_only_checkpoint_is_its_input_reads_as_starting(
        service: DealService, database_url: str) -> None:
    # LangGraph checkpoints a run's input before its first step; a reader that came
    # in between (the service's GET right after POST) once got a 500
    deal = make_deal("IC-1")
    service.registry.claim(deal, "deal-IC-1")
    service.graph.update_state({"configurable": {"thread_id": "deal-IC-1"}}, {"deal": deal},
                               as_node="__input__")
    report = service.status("IC-1")
    assert (report.status, report.context["deal"]["deal_id"]) == ("running", "IC-1")
    assert report.note == "no process drives it any more: continue it with dealflow recover"
    assert json.loads(run_cli(["status", "IC-1", "--json"], cli_env(database_url)).stdout
                      )["status"] == "running"
    with pytest.raises(NotWaiting, match="stopped mid-run"):
        service.event("IC-1", "signature.completed")
    [continued] = service.recover()
    assert (continued.deal_id, continued.status) == ("IC-1", "waiting_signature")


def test_a_deal_registered_under_an_older_thread_name_keeps_its_thread(
        service: DealService) -> None:
    # thread ids were `deal-<id>` before they became uuid5s: the registry maps the deal
    service.registry.claim(make_deal("OLD-1"), "deal-OLD-1")
    assert service.start(make_deal("OLD-1")).thread_id == "deal-OLD-1"
    assert service.start(make_deal("NEW-1")).thread_id == str(
        uuid.uuid5(uuid.UUID("6c0f3b52-6d1e-5a43-9d1b-2f7c1e0a8d11"), "NEW-1"))  # never changes


def test_watch_on_an_unknown_deal_exits_3(database_url: str) -> None:
    _one_line_error(run_cli(["watch", "NOPE-1", "--seconds", "1"], cli_env(database_url)), 3,
                    "no deal 'NOPE-1'")


def test_a_reader_that_goes_away_is_no_error(service: DealService, database_url: str) -> None:
    service.start(make_deal("PIPE-1"))
    proc = subprocess.Popen([dealflow_executable(), "audit", "PIPE-1"],
                            env=cli_env(database_url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # like `| head` that has read all it wanted
    assert proc.wait(timeout=120) == 0
    assert proc.stderr is not None and proc.stderr.read() == b""


@pytest.mark.parametrize(("argv", "advice"), [
    (["run", "--deal-id", "D-1", "--client", "A", "--value", "1"],
     "run the same command again to continue"),
    (["resume", "deal-D-1", "--decision", "approve"], "whether it still waits for a review"),
    (["event", "deal-D-1", "signature.completed"],
     "send it again (dealflow event deal-D-1 signature.completed)"),
    (["recover"], "run dealflow recover again"),
    (["status", "D-1"], "nothing was changed"),
])
def test_a_lost_connection_names_the_true_next_step(argv: list[str], advice: str) -> None:
    assert advice in _after_outage(build_parser().parse_args(argv))
